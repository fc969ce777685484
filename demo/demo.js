// The demo page's code: what a site writes around peerfetch. Plain browser JavaScript, served as
// it is (no build step). peerfetch itself needs none of this: the script tag in index.html is
// enough for an ordinary <video src>. This file adds the player choice (MP4, HLS or the live
// stream), the controls and the panel of figures (drawn by panel.js).
import { createPanel } from './panel.js';

/** The demo film, progressive MP4; its pieces are listed in /peerfetch-manifest.json. */
const MP4_URL = '/media/film.mp4';
/**
 * The same film as HLS, 2 s segments, made with
 * `ffmpeg -i film.mp4 -c copy -f hls -hls_time 2 -hls_playlist_type vod -hls_segment_filename hls/seg-%03d.ts hls/index.m3u8`.
 * The manifest lists the segments (never the playlist), so hls.js's segment requests go through peerfetch.
 */
const HLS_URL = '/media/hls/index.m3u8';
/**
 * The live stream (when `peerfetch demo` could start ffmpeg): its playlist comes from
 * /demo-config.json. ffmpeg writes 2 s segments with a window of 6 into a folder that
 * `watchManifest` follows: each segment is in the manifest before the playlist names it.
 */
const LIVE_PREFIX = '/media/live/';
/** How often the live latency is shown, in ms. */
const LATENCY_EVERY_MS = 1000;
/**
 * How long to wait for `peerfetch.ready` before playing without it, in ms. The first visit
 * installs the service worker (well under a second here); a site never waits long for P2P.
 */
const READY_TIMEOUT_MS = 4000;

const peerfetch = window.peerfetch; // set by /peerfetch.js (undefined if it failed to load)
const $ = (selector) => document.querySelector(selector);

// 1. Wait for peerfetch before creating the player: `ready` means its service worker controls the
//    page, and requests made before that would go straight to the origin. If ready never comes, play anyway.
function whenReady() {
  if (!peerfetch) return Promise.resolve('peerfetch did not load: plain playback');
  const timeout = new Promise((resolve) =>
    setTimeout(resolve, READY_TIMEOUT_MS, 'peerfetch not ready in time: plain playback'));
  const ready = peerfetch.ready.then(
    () => 'peerfetch ready: pieces come from peers, the local store or the origin',
    (error) => `peerfetch failed (${error}): plain playback`,
  );
  return Promise.race([ready, timeout]);
}

// 2. The player: an ordinary <video>. For MP4 its src is the file; for HLS, hls.js (served by the
//    demo from node_modules) fetches the segments. Nothing here is specific to peerfetch.
let hls; // the running hls.js instance, if any
let latencyTimer;
/** The demo's settings (viewer addresses, headless viewers, the live stream), fetched once. */
const demoConfig = fetch('/demo-config.json').then((response) => response.json());

function play(format, live) {
  hls?.destroy();
  hls = undefined;
  clearInterval(latencyTimer);
  $('#live-status').hidden = format !== 'live';
  if (format === 'live' && !live?.playlist) {
    const message = Object.assign(document.createElement('p'), { className: 'unavailable' });
    message.textContent = `No live stream: ${live?.unavailable ?? 'the demo did not start one'}. The MP4 and HLS tabs still play.`;
    $('#player').replaceChildren(message);
    $('#live-status').hidden = true;
    panel.showVideo(() => false);
    return;
  }
  const video = document.createElement('video');
  video.controls = true;
  video.muted = true; // muted videos may autoplay (Chromium's autoplay policy)
  video.autoplay = true;
  video.playsInline = true;
  $('#player').replaceChildren(video);
  const source = format === 'live' ? live.playlist : HLS_URL;
  if (format !== 'mp4' && window.Hls?.isSupported()) {
    // hls.js plays a live playlist by itself: it reloads it and starts near the live edge.
    hls = new window.Hls();
    hls.loadSource(source);
    hls.attachMedia(video);
  } else if (format !== 'mp4') {
    video.src = source; // browsers with native HLS
  } else {
    video.src = MP4_URL;
  }
  if (format === 'live') {
    // Latency: the wall clock against the EXT-X-PROGRAM-DATE-TIME of the frame on screen.
    const status = $('#live-status');
    status.textContent = 'Live: waiting for the first frame';
    latencyTimer = setInterval(() => {
      const date = hls?.playingDate;
      if (!date || video.paused) return;
      const latency = Date.now() - date.getTime();
      status.dataset.latency = String(latency);
      status.textContent = `Live: ${(latency / 1000).toFixed(1)} s behind the camera`;
    }, LATENCY_EVERY_MS);
  }
  const prefix = { mp4: undefined, hls: '/media/hls/', live: LIVE_PREFIX }[format];
  panel.showVideo(prefix ? (path) => path.startsWith(prefix) : (path) => path === MP4_URL);
}

/** Loads hls.js on first use: a page that plays MP4 never downloads it. */
function loadHls() {
  if (window.Hls) return Promise.resolve();
  return new Promise((resolve) => {
    const script = document.createElement('script');
    script.src = '/vendor/hls.js';
    script.onload = script.onerror = resolve; // without hls.js, play() falls back to native HLS
    document.head.append(script);
  });
}

let format = { '#hls': 'hls', '#live': 'live' }[location.hash] ?? 'mp4';

async function choose(next) {
  format = next;
  history.replaceState(null, '', next === 'mp4' ? location.pathname : `#${next}`);
  for (const tab of document.querySelectorAll('[data-format]')) tab.setAttribute('aria-selected', String(tab.dataset.format === next));
  const live = next === 'live' ? (await demoConfig.catch(() => ({}))).live : undefined;
  if (next !== 'mp4') await loadHls();
  if (format === next) play(next, live);
}

// 3. The live panel: redrawn on every `stats` event (once a second) from the engine's figures,
//    plus the swarm's figures, which the tracker aggregates from every viewer's reports.
const panel = createPanel(peerfetch);

whenReady().then((status) => {
  $('#mode').textContent = status;
  $('#mode').classList.toggle('ok', status.startsWith('peerfetch ready'));
  for (const tab of document.querySelectorAll('[data-format]')) tab.addEventListener('click', () => choose(tab.dataset.format));
  void choose(format);
});

// 4. Controls, each one call on the running instance.
if (peerfetch) {
  const note = (text) => ($('#control-note').textContent = text);
  $('#p2p').checked = peerfetch.p2p;
  $('#p2p').addEventListener('change', (event) => {
    peerfetch.setP2P(event.target.checked); // off: leave the swarm; the store and the origin still serve
    note(event.target.checked ? 'Back in the swarm.' : 'Left the swarm: pieces come from the local store and the origin.');
  });
  $('#upload-limit').addEventListener('change', (event) => {
    const value = event.target.value;
    peerfetch.setUploadLimit(value ? Number(value) : undefined); // bytes per second, for all peers together
    note(value ? `Uploads capped at ${Number(value) / 1000} kB/s.` : 'Uploads uncapped.');
  });
  $('#clear-storage').addEventListener('click', async () => {
    await peerfetch.clearStorage(); // this origin's pieces on this device; other viewers keep theirs
    note('Stored pieces cleared: the next play fetches them again.');
  });
  // Problems peerfetch reports while it runs, such as a tracker that refuses this site or cannot
  // be reached (`detail.error.code`): playback goes on from the store and the origin. A site would log them.
  peerfetch.addEventListener('error', ({ detail }) => note(`peerfetch: ${detail.error.message}`));
} else {
  for (const control of document.querySelectorAll('.controls input, .controls select, .controls button')) control.disabled = true;
}

// 5. More viewers: the demo listens on several loopback addresses (127.0.0.1, 127.0.0.2, ...).
//    Each is another origin, so another service worker, store and swarm member, in the same browser.
demoConfig
  .then(({ viewers, headlessViewers, headless }) => {
    const here = viewers.findIndex((url) => new URL(url).host === location.host);
    $('#viewer-name').textContent = here >= 0 ? `viewer ${here + 1}` : 'a viewer'; // e.g. opened as localhost
    $('#viewer-origin').textContent = location.host;
    $('#viewer-links').replaceChildren(
      ...viewers.map((url, index) => {
        const link = Object.assign(document.createElement('a'), { href: url, target: `peerfetch-viewer-${index + 1}`, textContent: String(index + 1) });
        link.title = `viewer ${index + 1}: ${new URL(url).host}`;
        if (index === here) link.setAttribute('aria-current', 'page');
        return link;
      }),
    );
    const showHeadless = (count) => ($('#headless').textContent = count > 0 ? `+ ${count} headless` : '');
    showHeadless(headlessViewers);
    let next = here;
    $('#add-viewer').disabled = viewers.length < 2;
    $('#add-viewer').addEventListener('click', () => {
      next = (next + 1) % viewers.length;
      if (next === here) next = (next + 1) % viewers.length;
      window.open(viewers[next] + location.hash, `peerfetch-viewer-${next + 1}`);
    });
    // With Chromium on the machine, the demo server can start headless viewers too (each its own
    // browser context): a viewer without a window, for a person alone with one screen.
    if (headless) {
      const button = $('#add-headless');
      button.hidden = false;
      button.disabled = headlessViewers >= headless.max;
      button.addEventListener('click', async () => {
        button.disabled = true;
        const answer = await fetch(headless.url, { method: 'POST' }).then((response) => response.json(), () => ({}));
        if (answer.headlessViewers !== undefined) showHeadless(answer.headlessViewers);
        button.disabled = (answer.headlessViewers ?? 0) >= headless.max || answer.error !== undefined;
        if (answer.error) button.title = answer.error;
      });
    }
  })
  .catch(() => ($('#add-viewer').disabled = true));
