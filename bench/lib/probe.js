// Injected into every benchmark page before its own scripts (Playwright addInitScript).
// Records what a viewer experienced, the same way for every system:
// - playback: time of the first `playing` (ms since navigation start), stalls (`waiting` after
//   the first `playing`, until the next `playing`), `ended`, media errors;
// - HLS (pages call watchHls): each segment the player loaded, and at a live stream the
//   latency, wall clock minus the EXT-X-PROGRAM-DATE-TIME of the frame on screen, once a second;
// - WebRTC: every RTCPeerConnection the page's libraries create, sampled every 2 s for the
//   selected ICE candidate pair and its bytes, so a run in which P2P never worked is visible.
(() => {
  if (window.__bench) return;
  /** Sampling period of the peer connections, in ms: short enough to see connections that live a few seconds. */
  const RTC_SAMPLE_MS = 2000;
  /** Latency sampling period, in ms, and the samples kept (a 90 s stream takes about 90). */
  const LATENCY_SAMPLE_MS = 1000;
  const MAX_LATENCY_SAMPLES = 600;
  const state = {
    firstPlaying: null,
    stalls: 0,
    stallMs: 0,
    stallOpenAt: null,
    stallLog: [],
    videoAt: null,
    /** When peerfetch reloaded a first visit's player through its service worker (its src gained #peerfetch), ms since navigation start. */
    takenOverAt: null,
    ended: false,
    endedAt: null,
    currentTime: 0,
    duration: 0,
    errors: [],
    pairs: {},
    channelBytes: {},
    extra: {},
    /** Segment URL path → times loaded, for each segment the player loaded (HLS pages; sizes come from the origin). */
    fragments: {},
    latencies: [],
  };
  const connections = [];
  const NativePC = window.RTCPeerConnection;
  if (NativePC) {
    // A Proxy keeps `instanceof RTCPeerConnection` and static methods working for the libraries.
    window.RTCPeerConnection = new Proxy(NativePC, {
      construct(target, args, newTarget) {
        const pc = Reflect.construct(target, args, newTarget);
        connections.push(pc);
        return pc;
      },
    });
  }
  async function sampleConnections() {
    for (let i = 0; i < connections.length; i++) {
      const pc = connections[i];
      if (pc.connectionState === 'closed') continue;
      let report;
      try {
        report = await pc.getStats();
      } catch {
        continue;
      }
      let selectedId = null;
      // Payload bytes received on the connection's data channels (message bytes, without the
      // SCTP/DTLS/UDP overhead the candidate pair counts): what a system took in from peers.
      let channelBytes = 0;
      report.forEach((entry) => {
        if (entry.type === 'transport' && entry.selectedCandidatePairId) selectedId = entry.selectedCandidatePairId;
        if (entry.type === 'data-channel') channelBytes += entry.bytesReceived ?? 0;
      });
      state.channelBytes[i] = channelBytes;
      if (!selectedId) {
        report.forEach((entry) => {
          if (entry.type === 'candidate-pair' && entry.nominated && entry.state === 'succeeded') selectedId = entry.id;
        });
      }
      const pair = selectedId && report.get(selectedId);
      if (!pair) continue;
      const local = report.get(pair.localCandidateId);
      const remote = report.get(pair.remoteCandidateId);
      state.pairs[i] = {
        local: local ? `${local.candidateType} ${local.address}:${local.port}/${local.protocol}` : '?',
        remote: remote ? `${remote.candidateType} ${remote.address}:${remote.port}/${remote.protocol}` : '?',
        bytesReceived: pair.bytesReceived ?? 0,
        bytesSent: pair.bytesSent ?? 0,
      };
    }
  }
  setInterval(() => void sampleConnections(), RTC_SAMPLE_MS);

  /** Seconds of media buffered past the playhead: near 0 at a stall for want of data, more when the renderer starved. */
  function bufferedAhead(video) {
    const t = video.currentTime;
    for (let i = 0; i < video.buffered.length; i++) {
      if (video.buffered.start(i) <= t + 0.1 && t < video.buffered.end(i)) return Number((video.buffered.end(i) - t).toFixed(2));
    }
    return 0;
  }

  function attach(video) {
    state.videoAt = performance.now();
    video.addEventListener('playing', () => {
      if (state.firstPlaying === null) state.firstPlaying = performance.now();
      if (state.stallOpenAt !== null) {
        const ms = performance.now() - state.stallOpenAt;
        state.stallMs += ms;
        state.stallOpenAt = null;
        const last = state.stallLog[state.stallLog.length - 1];
        if (last) last.ms = Math.round(ms);
      }
    });
    video.addEventListener('waiting', () => {
      // The wait that follows a seek is the seek's, not a rebuffer (and is the same for every system).
      if (state.firstPlaying === null || state.ended || state.stallOpenAt !== null || video.seeking) return;
      state.stalls += 1;
      state.stallOpenAt = performance.now();
      if (state.stallLog.length < 50) state.stallLog.push({ at: Number(video.currentTime.toFixed(2)), ms: null, ahead: bufferedAhead(video), dropped: video.getVideoPlaybackQuality?.().droppedVideoFrames ?? null });
    });
    video.addEventListener('loadstart', () => {
      if (state.takenOverAt === null && video.currentSrc.endsWith('#peerfetch')) state.takenOverAt = performance.now();
    });
    video.addEventListener('ended', () => {
      state.ended = true;
      state.endedAt = performance.now();
      if (state.stallOpenAt !== null) {
        state.stallMs += performance.now() - state.stallOpenAt;
        state.stallOpenAt = null;
      }
    });
    video.addEventListener('error', () => state.errors.push(`media error ${video.error?.code}: ${video.error?.message ?? ''}`));
    const sample = () => {
      state.currentTime = video.currentTime;
      state.duration = Number.isFinite(video.duration) ? video.duration : 0;
    };
    video.addEventListener('timeupdate', sample);
    video.addEventListener('durationchange', sample);
    video.addEventListener('ended', sample);
  }

  /**
   * Follows an hls.js instance (`events` = Hls.Events): the segments it loads and, when the
   * playlist carries a program date time, the latency of the frame on screen.
   */
  function watchHls(hls, events, video) {
    // Milestones of the player's startup (ms since navigation start), the same in every system's
    // page, to see where startup time goes (a live viewer's latency holds the time from its
    // playlist load to its first frame): hls.js's events, and when a service worker took control
    // of the page (peerfetch on a first visit: a fragment asked for before that went to the network).
    const milestones = {};
    state.extra.hls = milestones;
    for (const name of ['MEDIA_ATTACHED', 'MANIFEST_PARSED', 'FRAG_LOADING', 'FRAG_LOADED', 'FRAG_BUFFERED']) {
      hls.once(events[name], () => (milestones[name] = Math.round(performance.now())));
    }
    navigator.serviceWorker?.addEventListener('controllerchange', () => (milestones.WORKER_CONTROLS ??= Math.round(performance.now())), { once: true });
    hls.on(events.FRAG_LOADED, (_event, data) => {
      const path = new URL(data.frag.url, location.href).pathname;
      state.fragments[path] = (state.fragments[path] ?? 0) + 1;
    });
    // Non-fatal player errors (a fragment load timing out, a stall hls.js noticed): where a rebuffer came from.
    const hlsErrors = [];
    state.extra.hlsErrors = hlsErrors;
    hls.on(events.ERROR, (_event, data) => {
      if (hlsErrors.length < 40) hlsErrors.push({ at: Math.round(performance.now()), details: data.details, fatal: data.fatal, url: data.frag?.url ? new URL(data.frag.url, location.href).pathname : undefined });
    });
    // Where hls.js holds the playhead at a live edge, to tell a player setting from delivery: its
    // target latency (seconds behind the playlist's edge) and the liveSyncDurationCount it uses
    // (a P2P engine may change it), first and last seen.
    const liveSync = {};
    state.extra.liveSync = liveSync;
    // The phase of the segment cycle at which the player loaded its first live playlist: how old
    // the end of its newest segment was (wall clock minus that segment's program date time plus its
    // duration). hls.js starts a fixed distance behind that end, so this age goes into the
    // viewer's latency whole; it depends on the moment of the load within the 2 s cycle, not on
    // delivery (every system here loads playlists from the origin).
    hls.on(events.LEVEL_LOADED, (_event, data) => {
      const newest = data.details?.fragments?.[data.details.fragments.length - 1];
      if (liveSync.playlistAgeMs !== undefined || !data.details?.live || !newest?.programDateTime) return;
      liveSync.playlistLoadedMs = Math.round(performance.now());
      liveSync.playlistAgeMs = Math.round(Date.now() - (newest.programDateTime + newest.duration * 1000));
    });
    setInterval(() => {
      const date = hls.playingDate;
      if (!date || video.paused || video.readyState < 3 || state.latencies.length >= MAX_LATENCY_SAMPLES) return;
      state.latencies.push(Date.now() - date.getTime());
      const seen = { targetLatency: hls.targetLatency, behindEdge: hls.latency, liveSyncDurationCount: hls.config.liveSyncDurationCount };
      liveSync.first ??= seen;
      liveSync.last = seen;
    }, LATENCY_SAMPLE_MS);
  }

  /** Seeks once, to `seek-to` s, when playback reaches `seek-at` s (both from the page's query; absent: no seek). */
  function seekOnce(video, query) {
    const at = Number(query.get('seek-at'));
    const to = Number(query.get('seek-to'));
    if (!query.has('seek-at') || !Number.isFinite(at) || !Number.isFinite(to)) return;
    const onTime = () => {
      if (video.currentTime < at) return;
      video.removeEventListener('timeupdate', onTime);
      state.extra.seek = { at: Number(video.currentTime.toFixed(2)), to };
      video.currentTime = to;
    };
    video.addEventListener('timeupdate', onTime);
  }

  window.__bench = {
    /**
     * The hls.js settings of every system's page: hls.js's own defaults, stated where an engine
     * tunes what a page leaves unset. p2p-media-loader raises liveSyncDurationCount (how many
     * segments behind a live edge the player starts) up to the playlist window, 5 segments here,
     * and live latency must be compared with the same player settings in every system. (Its
     * maxBufferLength tuning is left alone: a live player cannot buffer past the edge, and the
     * on-demand scenarios keep the conditions of their recorded runs.)
     * enableWorker false: p2p-media-loader's page bundles hls.js, which resolves to its ES module
     * build, and that build has no transmuxing worker without a `workerPath`; the other pages load
     * hls.min.js, which starts one at the first segment (0.12-0.54 s from FRAG_LOADED to
     * FRAG_BUFFERED against 0.03-0.12 s inline, live, 4 viewers: the whole of p2p-media-loader's
     * lead in startup and in latency less the phase). Given hls.min.js (the same file for every
     * page), p2p-media-loader's viewers failed to parse the segments they took from peers (3 of 4
     * stopped with a fatal internalException, staggered scenario): so every page transmuxes on its
     * own thread, as p2p-media-loader's always has.
     */
    hlsConfig: { liveSyncDurationCount: 3, enableWorker: false },
    attach,
    seekOnce,
    watchHls,
    error(message) {
      state.errors.push(String(message));
    },
    set(key, value) {
      state.extra[key] = value;
    },
    async snapshot() {
      await sampleConnections();
      const openStall = state.stallOpenAt !== null ? performance.now() - state.stallOpenAt : 0;
      let stats = null;
      try {
        stats = window.peerfetch?.getStats?.() ?? null;
      } catch {}
      return {
        ...state,
        stallMs: state.stallMs + openStall,
        connections: connections.length,
        connected: connections.filter((pc) => pc.connectionState === 'connected').length,
        peerfetch: stats,
      };
    },
  };
  window.addEventListener('error', (event) => state.errors.push(`page error: ${event.message}`));
  window.addEventListener('unhandledrejection', (event) => state.errors.push(`unhandled rejection: ${event.reason?.message ?? event.reason}`));
})();
