// Turns run results into the Delivery table, checks the goals of issue 4 item 8, and writes the
// "Delivery" section of BENCHMARKS.md (other sections are kept as they are).
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { SCENARIOS, SYSTEMS } from './runs.mjs';

const MB = 1e6;
/**
 * Stalls at least this long, in ms, are shown apart: Chromium also fires `waiting` for gaps of a
 * few ms that no viewer notices; 250 ms is about where a stall becomes visible.
 */
const LONG_STALL_MS = 250;
/**
 * A `waiting` with at least this many seconds of media buffered past the playhead is not a stall for
 * want of data: Chromium's renderer ran out of decoded frames (a starved CPU: several browsers share
 * this machine's two cores), which no delivery could have prevented; origin-only runs have them too.
 * The rebuffer goals count only the others ("for want of data"); the tables show both.
 */
const BUFFERED_STALL_S = 1;

/** A viewer's stalls for want of data: every `waiting` but those logged with media buffered (one not logged counts). */
function starvedStalls(viewer) {
  const buffered = viewer.stallLog.filter((l) => l.ahead != null && l.ahead >= BUFFERED_STALL_S);
  return { stalls: viewer.stalls - buffered.length, stallMs: Math.max(0, viewer.stallMs - buffered.reduce((sum, l) => sum + (l.ms ?? 0), 0)) };
}

/** Rebuffers as the tables show them: for want of data, and in all when some came with media buffered. */
const rebuffersCell = (s) =>
  `${s.starved.stalls} (${secs(s.starved.stallMs)})${s.stalls > s.starved.stalls ? `; ${s.stalls} in all (${secs(s.stallMs)})` : ''}`;

/** The goal "rebuffers ≤ origin-only" of `s` against `base` (summaries or per-viewer figures): [met, figure]. */
function rebuffersGoal(s, base) {
  return [s.starved.stalls <= base.starved.stalls ? 'met' : 'not met', `${rebuffersCell(s)} vs ${rebuffersCell(base)}`];
}

function median(values) {
  const sorted = values.filter((v) => v != null).sort((a, b) => a - b);
  if (sorted.length === 0) return null;
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Aggregates one run: offload over all viewers, median startup, total stalls, the worst piece copy count. */
export function summarize(run, viewerCount) {
  const v = run.viewers;
  const origin = v.reduce((sum, x) => sum + x.originBytes, 0);
  const consumed = v.reduce((sum, x) => sum + x.consumedBytes, 0);
  // Live: the origin must send each distinct segment any viewer played once; catalog: each video's
  // watched part once (the mix's ideal); the rest is the ideal offload.
  const distinct = run.liveDistinctBytes ?? run.distinctBytes;
  const ideal = distinct != null ? (consumed > 0 ? 1 - distinct / consumed : 0) : (viewerCount - 1) / viewerCount;
  const offload = consumed > 0 ? 1 - origin / consumed : null;
  const pairs = [...new Set(v.flatMap((x) => x.icePairs))];
  return {
    system: run.system,
    scenario: run.scenario,
    viewers: v.length,
    originBytes: origin,
    consumedBytes: consumed,
    offload,
    ideal,
    ofIdeal: offload != null ? offload / ideal : null,
    startupMedianMs: median(v.map((x) => x.startupMs)),
    startupMaxMs: v.reduce((max, x) => Math.max(max, x.startupMs ?? Infinity), 0),
    videoCreatedMedianMs: median(v.map((x) => x.videoCreatedMs)),
    stalls: v.reduce((sum, x) => sum + x.stalls, 0),
    stallMs: v.reduce((sum, x) => sum + x.stallMs, 0),
    starved: v.map(starvedStalls).reduce((sum, x) => ({ stalls: sum.stalls + x.stalls, stallMs: sum.stallMs + x.stallMs }), { stalls: 0, stallMs: 0 }),
    longStalls: v.reduce((sum, x) => sum + x.stallLog.filter((l) => (l.ms ?? Infinity) >= LONG_STALL_MS).length, 0),
    load: [run.loadBefore, run.loadAfter].filter((x) => x != null),
    playedToEnd: v.filter((x) => x.playedToEnd).length,
    complete: v.length === viewerCount && v.every((x) => x.playedToEnd) && !run.timedOut,
    maxOriginCopies: v.reduce((max, x) => Math.max(max, x.maxOriginCopies), 0),
    p2pBytes: v.reduce((sum, x) => sum + x.p2pBytesReceived, 0),
    connectedPairs: v.reduce((sum, x) => sum + x.connectedPairs, 0),
    icePairs: pairs,
    problems: run.problems,
    // Live: the median of the viewers' median latencies, the worst viewer's, and the origin bytes beside segments.
    latencyMedianMs: median(v.map((x) => x.latencyMedianMs)),
    latencyMaxMs: v.some((x) => x.latencyMedianMs != null) ? Math.max(...v.map((x) => x.latencyMedianMs ?? 0)) : null,
    liveOtherOriginBytes: v.reduce((sum, x) => sum + (x.liveOtherOriginBytes ?? 0), 0),
    // Live: the same median without each viewer's phase at its playlist load (see measureViewer).
    latencyLessPhaseMedianMs: median(v.map((x) => x.latencyLessPhaseMs)),
    // CPU seconds of the run's processes (bench/lib/cpu.mjs): all, Chromium's renderers (pages and their workers), and the busiest renderer.
    cpu: run.cpu ? { totalSeconds: run.cpu.totalSeconds, renderers: run.cpu.byKind['chromium renderer'] ?? 0, busiestRenderer: run.cpu.renderers[0] ?? 0 } : null,
  };
}

const pct = (x) => (x == null ? 'n/a' : `${(x * 100).toFixed(1)}%`);
const secs = (ms) => (ms == null || !Number.isFinite(ms) ? 'n/a' : `${(ms / 1000).toFixed(2)} s`);

function iceCell(s) {
  if (!SYSTEMS[s.system].p2p) return '—';
  if (s.connectedPairs === 0) return '**none** (no P2P)';
  const kinds = [...new Set(s.icePairs.map((p) => p.replace(/\d+\.\d+\.\d+\.\d+/g, '').replace(/\s+/g, ' ').trim()))];
  return `${s.connectedPairs} pairs, ${kinds.join('; ')}, ${(s.p2pBytes / MB).toFixed(1)} MB rx`;
}

/** The Markdown table, one row per run. */
export function table(summaries) {
  const head = [
    'system', 'scenario', 'offload', 'of ideal', 'origin MB / consumed MB', 'startup median (max); median time the page created its <video>',
    'rebuffers for want of data (time); in all; long ones', 'played to end', 'max origin copies of a piece per viewer', 'P2P: selected ICE pairs', 'machine load (1 min avg) before → after',
  ];
  const rows = summaries.map((s) => [
    SYSTEMS[s.system].label,
    SCENARIOS[s.scenario].label,
    pct(s.offload),
    pct(s.ofIdeal),
    `${(s.originBytes / MB).toFixed(1)} / ${(s.consumedBytes / MB).toFixed(1)}`,
    `${secs(s.startupMedianMs)} (${secs(s.startupMaxMs)}); <video> at ${secs(s.videoCreatedMedianMs)}`,
    `${rebuffersCell(s)}; ${s.longStalls} ≥ ${LONG_STALL_MS / 1000} s`,
    `${s.playedToEnd}/${s.viewers}${s.complete ? '' : ' ⚠'}`,
    s.maxOriginCopies.toFixed(2),
    iceCell(s),
    s.load.map((x) => x.toFixed(1)).join(' → '),
  ]);
  return markdownTable(head, rows);
}

/** What the system itself says it fetched, as a cross-check of the origin's counter. */
function engineCell(stats) {
  if (!stats) return '';
  if ('bytesFromPeers' in stats) return `; engine: ${(stats.bytesFromPeers / MB).toFixed(2)} MB from peers, ${(stats.bytesFromOrigin / MB).toFixed(2)} MB from origin, ${(stats.bytesUploaded / MB).toFixed(2)} MB uploaded`;
  if ('http' in stats) return `; engine: ${(stats.p2p / MB).toFixed(2)} MB from peers, ${(stats.http / MB).toFixed(2)} MB over HTTP`;
  if ('downloaded' in stats) return `; engine: ${(stats.downloaded / MB).toFixed(2)} MB downloaded, ${(stats.uploaded / MB).toFixed(2)} MB uploaded`;
  return '';
}

/** Per-viewer detail lines (for the log and the collapsed section). */
export function viewerLines(run) {
  return run.viewers.map((x) =>
    `${x.name}: ${x.uplinkKbit ? `uplink ${x.uplinkKbit} kbit/s, ` : ''}${x.seeding === false ? 'not seeding, ' : ''}joined ${x.joinedAtS.toFixed(1)} s${x.joinedAfterPublicationMs != null ? ` (${x.joinedAfterPublicationMs} ms after a playlist's publication)` : ''}, origin ${(x.originBytes / MB).toFixed(2)} MB of ${(x.consumedBytes / MB).toFixed(2)} MB ` +
    `(offload ${pct(x.offload)}), startup ${secs(x.startupMs)} (<video> at ${secs(x.videoCreatedMs)}${x.takenOverMs != null ? `, taken over at ${secs(x.takenOverMs)}` : ''}), ${x.stalls} rebuffers (${secs(x.stallMs)})` +
    `${x.stallLog.length ? ` [${x.stallLog.map((l) => `@${l.at}s ${l.ms ?? '?'}ms${l.ahead != null ? ` ${l.ahead}s ahead` : ''}${l.dropped != null ? ` ${l.dropped} dropped` : ''}`).join(' ')}]` : ''}, ` +
    `${x.playedToEnd ? 'played to the end' : `stopped at ${x.position.toFixed(1)}/${x.duration.toFixed(1)} s`}, ` +
    `max origin copies ${x.maxOriginCopies.toFixed(2)}${x.maxOriginCopiesAt ? ` (${x.maxOriginCopiesAt})` : ''}` +
    `${x.worstPieceRequests?.length ? ` [requests covering it: ${x.worstPieceRequests.join('; ')}]` : ''}, ` +
    `peer connections ${x.connectedPairs}/${x.peerConnections}${x.icePairs.length ? ` [${x.icePairs.join(', ')}]` : ''}` +
    `${engineCell(x.engineStats)}` +
    `${x.channelBytesReceived ? `; data channels ${(x.channelBytesReceived / MB).toFixed(2)} MB received, ${((x.peerBytesUsed ?? 0) / MB).toFixed(2)} MB used` : ''}` +
    `${x.latencyMedianMs != null ? `; live latency median ${secs(x.latencyMedianMs)} (playlist ${x.playlistAgeMs != null ? secs(x.playlistAgeMs) : 'n/a'} old at its load, first frame ${x.playlistToFirstFrameMs != null ? secs(x.playlistToFirstFrameMs) : 'n/a'} after it) over ${x.latencySamples} samples, ${x.segmentsLoaded} segments loaded, ${((x.liveOtherOriginBytes ?? 0) / 1000).toFixed(0)} kB of playlists and manifests from the origin` : ''}` +
    `${x.hlsMilestones ? `; hls.js at ${Object.entries(x.hlsMilestones).map(([k, t]) => `${k} ${(t / 1000).toFixed(2)} s`).join(', ')}` : ''}` +
    `${x.errors.length ? `, errors: ${x.errors.join(' | ')}` : ''}`,
  );
}

/**
 * The goals of issue 4 item 8, each with the measured figure and met / not met / not measured.
 * Only complete runs (every viewer played to the end) count.
 */
export function goals(summaries) {
  const get = (system, scenario) => summaries.find((s) => s.system === system && s.scenario === scenario && s.complete);
  const ran = (system, scenario) => summaries.some((s) => s.system === system && s.scenario === scenario);
  const out = [];
  const add = (goal, status, figure) => out.push({ goal, status, figure });
  const scenarios = ['staggered', 'flash'];
  for (const pf of ['peerfetch-mp4', 'peerfetch-hls']) {
    const label = SYSTEMS[pf].label;
    const base = pf === 'peerfetch-mp4' ? 'origin-mp4' : 'origin-hls';
    const rival = pf === 'peerfetch-mp4' ? 'webtorrent' : 'p2pml';
    for (const scenario of scenarios) {
      if (!ran(pf, scenario)) continue;
      const s = get(pf, scenario);
      const sc = SCENARIOS[scenario].label;
      const need = scenario === 'staggered' ? 0.9 : 0.85;
      if (!s) {
        add(`${label}, ${sc}: offload ≥ ${need * 100}% of ideal`, 'not measured', 'not every viewer played to the end');
        continue;
      }
      add(`${label}, ${sc}: offload ≥ ${need * 100}% of ideal`, s.ofIdeal >= need ? 'met' : 'not met', `${pct(s.offload)} = ${pct(s.ofIdeal)} of ideal ${pct(s.ideal)}`);
      const b = get(base, scenario);
      if (b) {
        const ratio = s.startupMedianMs / b.startupMedianMs;
        add(`${label}, ${sc}: median startup ≤ 1.15× origin-only`, ratio <= 1.15 ? 'met' : 'not met', `${secs(s.startupMedianMs)} vs ${secs(b.startupMedianMs)} (${ratio.toFixed(2)}×)`);
        add(`${label}, ${sc}: rebuffers ≤ origin-only`, ...rebuffersGoal(s, b));
      } else if (ran(base, scenario)) {
        add(`${label}, ${sc}: startup and rebuffers vs origin-only`, 'not measured', `${SYSTEMS[base].label} did not complete`);
      }
      const r = get(rival, scenario);
      if (r) {
        add(`${label}, ${sc}: offload above ${SYSTEMS[rival].label}`, s.offload > r.offload ? 'met' : 'not met', `${pct(s.offload)} vs ${pct(r.offload)}`);
      } else if (ran(rival, scenario)) {
        add(`${label}, ${sc}: offload above ${SYSTEMS[rival].label}`, 'not measured', `${SYSTEMS[rival].label} did not complete (its figures are in the table)`);
      }
      add(`${label}, ${sc}: origin serves ≤ 1 copy of a piece per viewer`, s.maxOriginCopies <= 1.0001 ? 'met' : 'not met', `max ${s.maxOriginCopies.toFixed(2)} copies`);
    }
    wanGoals(pf, get, ran, add);
  }
  // Issue 11 item 3: several videos on one page path, viewers at different positions.
  if (ran('peerfetch-mp4', 'catalog')) {
    const label = `${SYSTEMS['peerfetch-mp4'].label}, ${SCENARIOS.catalog.label}`;
    const s = get('peerfetch-mp4', 'catalog');
    if (!s) add(`${label}: offload ≥ 90% of the mix's ideal`, 'not measured', 'not every viewer played to the end');
    else {
      add(`${label}: offload ≥ 90% of the mix's ideal`, s.ofIdeal >= 0.9 ? 'met' : 'not met', `${pct(s.offload)} = ${pct(s.ofIdeal)} of ideal ${pct(s.ideal)}`);
      const b = get('origin-mp4', 'catalog');
      if (b) add(`${label}: rebuffers ≤ origin-only`, ...rebuffersGoal(s, b));
    }
  }
  // Issue 11 item 1: the player in the page's HTML against the page that waits for `ready`
  // (offload) and against plain HTTP (startup, rebuffers), first visit and return visit.
  for (const inpage of ['inpage-mp4', 'inpage-hls']) {
    const label = SYSTEMS[inpage].label;
    const format = inpage.endsWith('mp4') ? 'mp4' : 'hls';
    for (const [scenario, startupFactor] of [['staggered', 1.15], ['return', 1.05]]) {
      if (!ran(inpage, scenario)) continue;
      const sc = SCENARIOS[scenario].label;
      const s = get(inpage, scenario);
      if (!s) {
        add(`${label}, ${sc}: every viewer plays to the end`, 'not met', 'not every viewer played to the end');
        continue;
      }
      const waiting = get(`peerfetch-${format}`, scenario);
      if (waiting && scenario === 'staggered') {
        const share = waiting.offload > 0 ? s.offload / waiting.offload : null;
        add(`${label}, ${sc}: offload ≥ 90% of the page that waits for ready`, share != null && share >= 0.9 ? 'met' : 'not met', `${pct(s.offload)} vs ${pct(waiting.offload)} (${share == null ? 'n/a' : share.toFixed(2)})`);
      }
      const b = get(`origin-${format}`, scenario);
      if (b) {
        const ratio = s.startupMedianMs / b.startupMedianMs;
        add(`${label}, ${sc}: median startup ≤ ${startupFactor}× origin-only`, ratio <= startupFactor ? 'met' : 'not met', `${secs(s.startupMedianMs)} vs ${secs(b.startupMedianMs)} (${ratio.toFixed(2)}×)`);
        add(`${label}, ${sc}: rebuffers ≤ origin-only`, ...rebuffersGoal(s, b));
      }
    }
  }
  return out;
}

/**
 * The goals of issue 10 item 5 for the WAN scenario: offload ≥ 90% of ideal and within 5 points of
 * the same system's LAN figure (the staggered scenario, which joins viewers the same way),
 * rebuffers ≤ origin-only on the same WAN.
 */
function wanGoals(pf, get, ran, add) {
  if (!ran(pf, 'wan')) return;
  const label = `${SYSTEMS[pf].label}, ${SCENARIOS.wan.label}`;
  const s = get(pf, 'wan');
  if (!s) {
    add(`${label}: offload ≥ 90% of ideal`, 'not measured', 'not every viewer played to the end');
    return;
  }
  add(`${label}: offload ≥ 90% of ideal`, s.ofIdeal >= 0.9 ? 'met' : 'not met', `${pct(s.offload)} = ${pct(s.ofIdeal)} of ideal ${pct(s.ideal)}`);
  const lan = get(pf, 'staggered');
  if (lan) {
    const points = (lan.offload - s.offload) * 100;
    add(`${label}: offload within 5 points of the LAN`, points <= 5 + 1e-9 ? 'met' : 'not met', `${pct(s.offload)} vs ${pct(lan.offload)} on the LAN (staggered), ${points.toFixed(1)} points less`);
  } else {
    add(`${label}: offload within 5 points of the LAN`, 'not measured', 'no complete LAN (staggered) run of this system in this run');
  }
  const base = pf === 'peerfetch-mp4' ? 'origin-mp4' : 'origin-hls';
  const b = get(base, 'wan');
  if (b) {
    add(`${label}: rebuffers ≤ origin-only`, ...rebuffersGoal(s, b));
  } else {
    add(`${label}: rebuffers ≤ origin-only`, 'not measured', `no complete ${SYSTEMS[base].label} run on the WAN in this run`);
  }
  const rival = pf === 'peerfetch-mp4' ? 'webtorrent' : 'p2pml';
  const r = get(rival, 'wan');
  if (r) add(`${label}: offload above ${SYSTEMS[rival].label}`, s.offload > r.offload ? 'met' : 'not met', `${pct(s.offload)} vs ${pct(r.offload)}`);
}

export function goalsTable(list, issue = 'issue 4 item 8; WAN: issue 10 item 5; player in the page: issue 11 item 1') {
  const rows = list.map((g) => `| ${g.goal} | ${g.status === 'met' ? '✅ met' : g.status === 'not met' ? '❌ not met' : '— not measured'} | ${g.figure} |`);
  return [`| goal (${issue}) | status | measured |`, '| --- | --- | --- |', ...rows].join('\n');
}

/**
 * Figures of a run on capped home uplinks (issue 15): offload against what the uplinks allow (the
 * smaller of the ideal and the viewers' total upload capacity over the video's duration divided
 * by the bytes all viewers consumed), wasted peer bytes (data-channel payload received that the
 * system did not use), and every viewer's rebuffers with its uplink.
 */
export function summarizeUplinks(run, seconds) {
  const s = summarize(run, run.viewers.length);
  // A viewer that seeds nothing (uplinks-noseed) adds no capacity; an uncapped line (uplinks-uncapped) no bound.
  const capacity = run.viewers.reduce((sum, x) => sum + (x.seeding === false ? 0 : x.uplinkKbit ? (x.uplinkKbit * 1000 * seconds) / 8 : Infinity), 0);
  const capacityRatio = s.consumedBytes > 0 ? capacity / s.consumedBytes : 0;
  const allowed = Math.min(s.ideal, capacityRatio);
  const received = run.viewers.reduce((sum, x) => sum + (x.channelBytesReceived ?? 0), 0);
  const used = run.viewers.reduce((sum, x) => sum + (x.peerBytesUsed ?? 0), 0);
  return {
    ...s,
    capacityRatio,
    allowed,
    ofAllowed: s.offload != null && allowed > 0 ? s.offload / allowed : null,
    channelBytesReceived: received,
    peerBytesUsed: used,
    wasted: SYSTEMS[run.system].p2p && received > 0 ? Math.max(0, received - used) / received : null,
    perViewer: run.viewers.map((x) => ({
      uplinkKbit: x.uplinkKbit,
      seeding: x.seeding !== false,
      uploadedBytes: x.engineStats?.bytesUploaded ?? null,
      stalls: x.stalls,
      stallMs: x.stallMs,
      starved: starvedStalls(x),
      offload: x.offload,
      startupMs: x.startupMs,
      playedToEnd: x.playedToEnd,
    })),
  };
}

/** The Markdown table of the home-uplinks runs. */
export function uplinksTable(summaries) {
  const head = [
    'system', 'uplinks (kbit/s)', 'offload', 'allowed by the uplinks', 'of allowed', 'wasted peer bytes (received, used)',
    'rebuffers for want of data per viewer (join order, uplink): count (time); in all', 'startup median', 'played to end', 'P2P: selected ICE pairs', 'machine load before → after',
  ];
  const rows = summaries.map((s) => [
    uplinksRunLabel(s),
    s.perViewer.map((v) => v.uplinkKbit || 'not capped').join(', '),
    pct(s.offload),
    `${pct(s.allowed)} (capacity/demand ${Number.isFinite(s.capacityRatio) ? s.capacityRatio.toFixed(2) : 'unbounded'})`,
    pct(s.ofAllowed),
    s.wasted == null ? '—' : `${pct(s.wasted)} (${(s.channelBytesReceived / MB).toFixed(1)} MB, ${(s.peerBytesUsed / MB).toFixed(1)} MB)`,
    s.perViewer.map((v, index) => `${index + 1} (${v.uplinkKbit || 'not capped'}): ${rebuffersCell(v)}`).join('; '),
    secs(s.startupMedianMs),
    `${s.playedToEnd}/${s.viewers}${s.complete ? '' : ' ⚠'}`,
    iceCell(s),
    s.load.map((x) => x.toFixed(1)).join(' → '),
  ]);
  return markdownTable(head, rows);
}

/** A run's row label: the system, and who did not seed (the uplinks-noseed scenario) or how the lines were capped (uplinks-even, uplinks-uncapped). */
function uplinksRunLabel(s) {
  const quiet = s.perViewer.findIndex((v) => !v.seeding);
  if (quiet !== -1) return `${SYSTEMS[s.system].label}, viewer ${quiet + 1} not seeding`;
  return s.scenario === 'uplinks' ? SYSTEMS[s.system].label : `${SYSTEMS[s.system].label}, ${SCENARIOS[s.scenario]?.label ?? s.scenario}`;
}

/**
 * Issue 15 item 4's first goal, per P2P system that ran both uplinks-even and uplinks-uncapped:
 * with every home's upload at 1.5x the bitrate, the second viewer's share of its video from peers
 * (its offload; only the first viewer is ahead of it) within 10 points of the same share with no
 * line capped. Only runs where every viewer played to the end count.
 */
export function evenUplinksGoals(summaries) {
  const out = [];
  for (const capped of summaries.filter((s) => s.scenario === 'uplinks-even' && SYSTEMS[s.system].p2p)) {
    const free = summaries.find((s) => s.scenario === 'uplinks-uncapped' && s.system === capped.system);
    const goal = `${SYSTEMS[capped.system].label}: second viewer's share from peers with uploads at 1.5x the bitrate within 10 points of uncapped`;
    if (!free) {
      out.push({ goal, status: 'not measured', figure: 'no uplinks-uncapped run' });
      continue;
    }
    if (!capped.complete || !free.complete || capped.perViewer.length < 2) {
      out.push({ goal, status: 'not measured', figure: 'not every viewer played to the end' });
      continue;
    }
    const [even, uncapped] = [capped.perViewer[1].offload, free.perViewer[1].offload];
    out.push({ goal, status: Math.abs(uncapped - even) <= 0.1 ? 'met' : 'not met', figure: `${pct(even)} vs ${pct(uncapped)}` });
  }
  return out;
}

/**
 * Issue 15 item 3: the uploader's own playback with and without seeding, per system that ran the
 * uplinks-noseed scenario beside uplinks: the viewer that did not seed there, in both runs, and
 * the same viewer (join order, uplink) in the origin-only run when there is one.
 */
export function uploaderTable(summaries) {
  const head = [
    'system', 'uploader (join order, uplink)', 'seeding: uploaded, startup, rebuffers (time)', 'not seeding: uploaded, startup, rebuffers (time)',
    'origin only: startup, rebuffers (time)',
  ];
  const cell = (v) => (v ? `${v.uploadedBytes == null ? 'n/a' : `${(v.uploadedBytes / MB).toFixed(2)} MB`}, ${secs(v.startupMs)}, ${rebuffersCell(v)}${v.playedToEnd ? '' : ' ⚠ did not play to the end'}` : 'not run');
  const base = summaries.find((s) => s.scenario === 'uplinks' && s.system === 'origin-hls') ?? summaries.find((s) => s.scenario === 'uplinks' && s.system === 'origin-mp4');
  const rows = [];
  for (const quiet of summaries.filter((s) => s.scenario !== 'uplinks' && s.perViewer.some((v) => !v.seeding))) {
    const index = quiet.perViewer.findIndex((v) => !v.seeding);
    const seeding = summaries.find((s) => s.scenario === 'uplinks' && s.system === quiet.system);
    const origin = base?.perViewer[index];
    rows.push([
      SYSTEMS[quiet.system].label,
      `${index + 1} (${quiet.perViewer[index].uplinkKbit} kbit/s)`,
      cell(seeding?.perViewer[index]),
      cell(quiet.perViewer[index]),
      origin ? `${secs(origin.startupMs)}, ${rebuffersCell(origin)}` : 'not run',
    ]);
  }
  return rows.length ? markdownTable(head, rows) : '';
}

/** The goals of issue 15 for the mixed swarm, per P2P system that ran; only complete runs of the uplinks scenario count. */
export function uplinksGoals(summaries) {
  const out = [];
  const add = (goal, status, figure) => out.push({ goal, status, figure });
  const runs = summaries.filter((s) => s.scenario === 'uplinks');
  const base = runs.find((s) => s.system === 'origin-hls' && s.complete) ?? runs.find((s) => s.system === 'origin-mp4' && s.complete);
  for (const s of runs.filter((x) => SYSTEMS[x.system].p2p)) {
    const label = `${SYSTEMS[s.system].label}, ${s.viewers} viewers`;
    if (!s.complete) {
      add(`${label}: every goal`, 'not measured', 'not every viewer played to the end');
      continue;
    }
    add(`${label}: offload ≥ 85% of what the uplinks allow`, s.ofAllowed >= 0.85 ? 'met' : 'not met', `${pct(s.offload)} = ${pct(s.ofAllowed)} of ${pct(s.allowed)}`);
    add(`${label}: wasted peer bytes ≤ 5%`, s.wasted != null && s.wasted <= 0.05 ? 'met' : 'not met', pct(s.wasted));
    if (!base || base.viewers !== s.viewers) {
      add(`${label}: every viewer's rebuffers ≤ origin-only`, 'not measured', 'no complete origin-only run with as many viewers');
      continue;
    }
    const worse = s.perViewer.filter((v, index) => !base.perViewer[index] || rebuffersGoal(v, base.perViewer[index])[0] !== 'met');
    add(
      `${label}: every viewer's rebuffers ≤ origin-only (the uploaders' included)`,
      worse.length === 0 ? 'met' : 'not met',
      s.perViewer.map((v, index) => `${index + 1} (${v.uplinkKbit} kbit/s): ${base.perViewer[index] ? rebuffersGoal(v, base.perViewer[index])[1] : `${rebuffersCell(v)} vs ?`}`).join('; '),
    );
  }
  return out;
}

/** Replaces (or appends) the `## Delivery` section of BENCHMARKS.md, leaving the other sections alone. */
export function writeDeliverySection(file, body) {
  return writeSection(file, 'Delivery', body);
}

/** Replaces (or appends) the `## <heading>` section of BENCHMARKS.md, leaving the other sections alone. */
export async function writeSection(file, heading, body) {
  const section = `## ${heading}\n\n${body.trim()}\n`;
  let text = existsSync(file) ? await readFile(file, 'utf8') : '# Benchmarks\n';
  const escaped = heading.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const start = text.search(new RegExp(`^## ${escaped}\\s*$`, 'm'));
  if (start === -1) {
    text = `${text.trimEnd()}\n\n${section}`;
  } else {
    const rest = text.slice(start + 1);
    const next = rest.search(/^## /m);
    const end = next === -1 ? text.length : start + 1 + next;
    text = `${text.slice(0, start)}${section}${end < text.length ? `\n${text.slice(end)}` : ''}`;
  }
  await writeFile(file, text.endsWith('\n') ? text : `${text}\n`);
}

/** The Markdown table of the live runs (issue 12 item 5). */
export function liveTable(summaries) {
  const head = [
    'system', 'viewers', 'offload (segments)', 'of ideal', 'origin MB / consumed MB (segments)', 'latency: median of viewers (worst viewer)',
    'latency less the phase at the playlist load: median of viewers', 'startup median (max)', 'rebuffers for want of data (time); in all; long ones', 'played to the end',
    'origin MB besides segments (playlists, manifests)', 'P2P: selected ICE pairs', 'CPU s: all processes (Chromium renderers; busiest renderer)', 'machine load (1 min avg) before → after',
  ];
  const rows = summaries.map((s) => [
    SYSTEMS[s.system].label,
    s.viewers,
    pct(s.offload),
    `${pct(s.ofIdeal)} of ${pct(s.ideal)}`,
    `${(s.originBytes / MB).toFixed(1)} / ${(s.consumedBytes / MB).toFixed(1)}`,
    `${secs(s.latencyMedianMs)} (${secs(s.latencyMaxMs)})`,
    secs(s.latencyLessPhaseMedianMs),
    `${secs(s.startupMedianMs)} (${secs(s.startupMaxMs)})`,
    `${rebuffersCell(s)}; ${s.longStalls} ≥ ${LONG_STALL_MS / 1000} s`,
    `${s.playedToEnd}/${s.viewers}${s.complete ? '' : ' ⚠'}`,
    (s.liveOtherOriginBytes / MB).toFixed(2),
    iceCell(s),
    s.cpu ? `${s.cpu.totalSeconds.toFixed(0)} (${s.cpu.renderers.toFixed(0)}; ${s.cpu.busiestRenderer.toFixed(0)})` : 'n/a',
    s.load.map((x) => x.toFixed(1)).join(' → '),
  ]);
  return markdownTable(head, rows);
}

/**
 * The goals of issue 12 for the live scenario: peerfetch's offload ≥ 80% of the ideal and ≥ 1.5×
 * p2p-media-loader's, its latency ≤ p2p-media-loader's and ≤ origin-only's + 0.5 s, its rebuffers
 * ≤ origin-only's. Only complete runs (every viewer played to the stream's end) count.
 *
 * Latency goals compare the latency less the phase at the playlist load. A viewer's latency is
 * three segments (hls.js's start), plus the age of the playlist it loaded (its phase in the 2 s
 * segment cycle), plus its time from that load to the first frame. Viewers who arrive at random
 * moments see playlist ages spread evenly over the cycle whatever the system, so the latency they
 * see on average differs between systems only by the last term. The bench's viewers join at a
 * fixed grid of phases (i/n of a segment), and a system's page that loads its playlist a few
 * hundred ms later shifts the grid: the ones pushed past a publication load a newer playlist and
 * gain 2 s, the others lose the delay, so the median as measured moves in a sawtooth of that
 * delay (a 0.09 s gap between two systems is inside it, and the sign flipped from run to run).
 * Without the age, the figure keeps what the system decides. The figure shows both.
 */
export function liveGoals(summaries) {
  const out = [];
  const add = (goal, status, figure) => out.push({ goal, status, figure });
  const get = (system) => summaries.find((s) => s.system === system && s.complete);
  const ran = (system) => summaries.some((s) => s.system === system);
  if (!ran('peerfetch-hls')) return out;
  const s = get('peerfetch-hls');
  const viewers = summaries.find((x) => x.system === 'peerfetch-hls').viewers;
  const label = `${SYSTEMS['peerfetch-hls'].label}, live, ${viewers} viewers`;
  if (!s) {
    add(`${label}: every goal`, 'not measured', 'not every viewer played to the end of the stream');
    return out;
  }
  add(`${label}: offload ≥ 80% of ideal`, s.ofIdeal >= 0.8 ? 'met' : 'not met', `${pct(s.offload)} = ${pct(s.ofIdeal)} of ideal ${pct(s.ideal)}`);
  const rival = get('p2pml');
  if (rival) {
    const ratio = rival.offload > 0 ? s.offload / rival.offload : Infinity;
    add(`${label}: offload ≥ 1.5× ${SYSTEMS.p2pml.label}`, ratio >= 1.5 ? 'met' : 'not met', `${pct(s.offload)} vs ${pct(rival.offload)} (${Number.isFinite(ratio) ? `${ratio.toFixed(2)}×` : 'theirs 0'})`);
    add(`${label}: latency ≤ ${SYSTEMS.p2pml.label}`, ...latencyGoal(s, rival, 0));
  } else if (ran('p2pml')) {
    add(`${label}: offload and latency against ${SYSTEMS.p2pml.label}`, 'not measured', `${SYSTEMS.p2pml.label} did not complete (its figures are in the table)`);
  }
  const base = get('origin-hls');
  if (base) {
    add(`${label}: latency ≤ origin-only + 0.5 s`, ...latencyGoal(s, base, 500));
    add(`${label}: rebuffers ≤ origin-only`, ...rebuffersGoal(s, base));
  } else if (ran('origin-hls')) {
    add(`${label}: latency and rebuffers against origin-only`, 'not measured', `${SYSTEMS['origin-hls'].label} did not complete`);
  }
  return out;
}

/**
 * Status and figure of a latency goal: `s`'s latency less the phase at most `slackMs` above
 * `other`'s (see liveGoals), with the medians as measured beside it.
 */
function latencyGoal(s, other, slackMs) {
  const ours = s.latencyLessPhaseMedianMs;
  const theirs = other.latencyLessPhaseMedianMs;
  if (ours == null || theirs == null) return ['not measured', 'no playlist age logged'];
  const more = slackMs ? ` (${((ours - theirs) / 1000).toFixed(2)} s more)` : '';
  return [ours <= theirs + slackMs ? 'met' : 'not met', `${secs(ours)} vs ${secs(theirs)} less the phase${more}; as measured ${secs(s.latencyMedianMs)} vs ${secs(other.latencyMedianMs)}`];
}

/** A Markdown table of `head` and `rows` (arrays of cell texts), as the BENCHMARKS.md sections show them. */
function markdownTable(head, rows) {
  return [head, head.map(() => '---'), ...rows].map((r) => `| ${r.join(' | ')} |`).join('\n');
}
