// One benchmark run = one system × one scenario: a fresh tracker, a fresh throttled origin and a
// fresh Chromium, N viewers (each its own browser context: own storage, own service worker, its
// own User-Agent token), every viewer playing the video to its end at 1x, muted. Everything the
// run started is stopped in `finally`, whatever happened.
import { existsSync } from 'node:fs';
import { mkdir, open, readFile, rm, writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { COTURN_READY_PATTERN, coturnCommand } from '../../test/harness/coturn.mjs';
import { buildTopology, INTERNET_ADDRESS, secureOriginArgs, TURN_ADDRESS } from '../../test/harness/topology.mjs';
import { defaultUserAgent, launchChromium, VIEWER_UA_TOKEN } from './browser.mjs';
import { cpuBetween, cpuSnapshot } from './cpu.mjs';
import { profilePage, profileWorkers } from './profile.mjs';
import { HLS_SEGMENT_SECONDS } from './media.mjs';
import { startBackground, startProcess } from './processes.mjs';
import { startHostileMember } from './hostile.mjs';
import { PIECE_SIZE, writeTorrent } from './site.mjs';

/** The systems, by the id used on the command line. */
export const SYSTEMS = {
  'origin-mp4': { label: 'origin only, MP4 (<video>)', page: 'origin-mp4.html', format: 'mp4', p2p: false },
  'origin-hls': { label: 'origin only, HLS (hls.js)', page: 'origin-hls.html', format: 'hls', p2p: false },
  'peerfetch-mp4': { label: 'peerfetch, MP4 (<video>)', page: 'peerfetch-mp4.html', format: 'mp4', p2p: true },
  'peerfetch-hls': { label: 'peerfetch, HLS (hls.js)', page: 'peerfetch-hls.html', format: 'hls', p2p: true },
  p2pml: { label: 'p2p-media-loader, HLS (hls.js)', page: 'p2pml.html', format: 'hls', p2p: true },
  webtorrent: { label: 'WebTorrent, MP4 (its SW)', page: 'webtorrent.html', format: 'mp4', p2p: true, torrent: true },
  // The player is in the page's HTML and starts while the page is parsed, before peerfetch's
  // service worker controls it on a first visit (issue 11 item 1); the pages above wait for
  // peerfetch.ready before they create their player.
  'inpage-mp4': { label: 'peerfetch, player in the page, MP4', page: 'inpage-mp4.html', format: 'mp4', p2p: true, tracker: 'template' },
  'inpage-hls': { label: 'peerfetch, player in the page, HLS (hls.js)', page: 'inpage-hls.html', format: 'hls', p2p: true, tracker: 'template' },
};
/** Command-line shorthands. */
export const SYSTEM_ALIASES = { origin: ['origin-mp4', 'origin-hls'], peerfetch: ['peerfetch-mp4', 'peerfetch-hls'], inpage: ['inpage-mp4', 'inpage-hls'], 'p2p-media-loader': ['p2pml'] };
/** The default systems: the player in the page has its own scenario (`--systems origin,peerfetch,inpage`). */
export const DEFAULT_SYSTEMS = ['origin-mp4', 'origin-hls', 'peerfetch-mp4', 'peerfetch-hls', 'p2pml', 'webtorrent'];

/**
 * The homes of the uplinks scenario, viewer by viewer in join order: upload caps from a weak DSL
 * line (1 Mbit/s, under the video's 1.2 Mbit/s) to fibre (20 Mbit/s), each with a 20 Mbit/s
 * downlink and no loss, so that what differs between viewers is only what they can send. The
 * first four are the 4-viewer swarm; with 8 viewers the next four join as a second mix of home
 * lines (2, 1, 10 and 3 Mbit/s: cable and DSL uplinks of 1 to 3 Mbit/s are the common case), so
 * that slow homes also join when many peers are ahead of them. More viewers repeat the list.
 */
export const UPLINK_HOMES = [1000, 2000, 5000, 20_000, 2000, 1000, 10_000, 3000].map((uplinkKbit) => ({ nat: 'cone', uplinkKbit, downlinkKbit: 20_000, lossPercent: 0 }));
/**
 * The uploader whose own playback is measured with and without seeding (issue 15 item 3), by join
 * order: the 2 Mbit/s home, 1.7x the video's bitrate, which serves every viewer joining after it.
 */
export const UPLINK_UPLOADER = 1;
/**
 * The homes of the uplinks-even scenario (issue 15 item 4's first goal): every home's upload at
 * 1.5x the video's bitrate (bench/run.mjs VIDEO_KBPS, 1.2 Mbit/s), the line that can just carry one
 * stream, with a 20 Mbit/s downlink and no loss; uplinks-uncapped has the same homes with no cap,
 * the figure the second viewer's share from peers is held to (within 10 points).
 */
export const EVEN_UPLINK_HOME = { nat: 'cone', uplinkKbit: 1800, downlinkKbit: 20_000, lossPercent: 0 };
/** No rate given: the topology caps nothing (test/harness/topology.mjs). */
export const UNCAPPED_HOME = { nat: 'cone', lossPercent: 0 };

export const SCENARIOS = {
  staggered: { label: 'staggered', description: 'viewers join 8 s apart', staggered: true },
  flash: { label: 'flash crowd', description: 'all viewers join together' },
  wan: { label: 'WAN: homes behind NATs', description: 'viewers join 8 s apart, each alone in a home behind a NAT on a shaped line', staggered: true, wan: true },
  // Each viewer has been on the page before (the service worker is installed and holds what the
  // first visit played): a first visit until the video plays, then the measured visit.
  return: { label: 'return visit', description: 'viewers join 8 s apart, each on its second visit', staggered: true, returnVisit: true },
  // Issue 15: homes whose uplinks differ (see UPLINK_HOMES); only when named (`--scenarios uplinks`).
  uplinks: {
    label: 'home uplinks',
    description: 'viewers join 8 s apart, each alone in a home behind a NAT, the homes\' uploads capped at 1, 2, 5 and 20 Mbit/s (8 viewers: then 2, 1, 10 and 3)',
    staggered: true,
    wan: true,
    uplinks: true,
    home: (index) => UPLINK_HOMES[index % UPLINK_HOMES.length],
  },
  // Issue 15 item 3: the same, but the uploader measured (UPLINK_UPLOADER) seeds nothing (upload
  // limit 0), so its own startup and rebuffers can be set beside the seeding run's; peerfetch only
  // (`--scenarios uplinks,uplinks-noseed`).
  'uplinks-noseed': {
    label: 'home uplinks, one uploader not seeding',
    description: `like home uplinks, but viewer ${UPLINK_UPLOADER + 1} (the ${UPLINK_HOMES[UPLINK_UPLOADER].uplinkKbit / 1000} Mbit/s home) uploads nothing`,
    staggered: true,
    wan: true,
    uplinks: true,
    home: (index) => UPLINK_HOMES[index % UPLINK_HOMES.length],
    notSeeding: UPLINK_UPLOADER,
    systems: ['peerfetch-mp4', 'peerfetch-hls'],
  },
  // Issue 15 item 4: every home's upload at 1.5x the bitrate, and the same homes uncapped; the
  // report holds the second viewer's share from peers in the first to the second's
  // (`--scenarios uplinks-even,uplinks-uncapped`).
  'uplinks-even': {
    label: 'home uplinks at 1.5x the bitrate',
    description: `viewers join 8 s apart, each alone in a home behind a NAT, every home's upload capped at ${EVEN_UPLINK_HOME.uplinkKbit / 1000} Mbit/s (1.5x the video's bitrate)`,
    staggered: true,
    wan: true,
    uplinks: true,
    section: 'uplinks-even',
    home: () => EVEN_UPLINK_HOME,
  },
  'uplinks-uncapped': {
    label: 'home uplinks not capped',
    description: 'viewers join 8 s apart, each alone in a home behind a NAT, no line capped',
    staggered: true,
    wan: true,
    uplinks: true,
    section: 'uplinks-even',
    home: () => UNCAPPED_HOME,
  },
  // Issue 12 item 5: a live stream (see LIVE); only when named (`--scenarios live`), HLS systems only.
  live: {
    label: 'live',
    description: 'a 90 s live HLS stream (2 s segments, a window of 6) packaged in real time; viewers join during its first 20 s',
    live: true,
    systems: ['origin-hls', 'peerfetch-hls', 'p2pml'],
  },
  // Issue 13: one more member of the swarm attacks it (bench/lib/hostile.mjs); only when named
  // (`--scenarios hostile`), against origin-only and peerfetch (it speaks peerfetch's protocol).
  // Issue 11 item 3: three videos on one page path (one swarm, as `/watch?v=…` pages make it),
  // each viewer picks one and seeks once (see CATALOG); only when named (`--scenarios catalog`), MP4.
  catalog: {
    label: 'catalog',
    description: 'three videos on one page path; viewers join 8 s apart, each picks one (two of four the first) and seeks forward once',
    staggered: true,
    catalog: true,
    systems: ['origin-mp4', 'peerfetch-mp4'],
  },
  hostile: {
    label: 'one hostile viewer',
    description: 'viewers join 8 s apart; one more swarm member claims every piece, sends none, floods have messages and comes back under a fresh id every 10 s',
    staggered: true,
    hostile: true,
  },
};
/**
 * The live scenario: the benchmark video packaged in real time (ffmpeg -re -c copy, the encode
 * done ahead so a busy machine cannot make the source late) into site/live/ as live HLS with
 * EXT-X-PROGRAM-DATE-TIME, `peerfetch manifest --watch` publishing each playlist after the
 * manifest lists its segments (for every system, so all see the same publication delay), and
 * viewers joining evenly spread over the stream's first 20 s.
 */
export const LIVE = { streamSeconds: 90, joinSpreadMs: 20_000, windowSegments: 6 };
/**
 * When live viewer `index` of `viewers` navigates to its page: `afterMs` after the publication of
 * the playlist whose newest segment is the first playlist's plus `segments`. Spread over the first
 * LIVE.joinSpreadMs, and at a different phase of the 2 s segment cycle each (viewer i of n at i/n of
 * a segment). A viewer's latency holds the phase at which its player loaded the playlist (0-2 s),
 * and 4 viewers 5 s apart had only two phases, 0 and 1 s, so a system whose page loads the playlist
 * a few hundred ms later could land all of them just past or just before a new segment: a median
 * moved by about a second from run to run. Timed from each publication, not from the first: the
 * same phases in every system's run, whatever the watcher's and ffmpeg's timing on a busy machine.
 */
export function liveJoin(index, viewers) {
  const segmentMs = HLS_SEGMENT_SECONDS * 1000;
  const spread = (index * LIVE.joinSpreadMs) / viewers;
  return { segments: Math.floor(spread / segmentMs), afterMs: (index * segmentMs) / viewers };
}
/**
 * The catalog scenario: the videos of the page path (the benchmark video and two more, each its
 * own encode), the one each viewer picks in join order (repeated for more viewers: two of four
 * watch the first, as a page's first video is the most watched), and its one seek: at a quarter
 * of the video, forward to half of it, so viewers of one video read it at different positions.
 */
export const CATALOG = {
  videos: ['/media/video.mp4', '/media/video-2.mp4', '/media/video-3.mp4'],
  picks: [0, 1, 0, 2],
  seekAtFraction: 0.25,
  seekToFraction: 0.5,
};
/** The video viewer `index` plays in the catalog scenario. */
export function catalogVideo(index) {
  return CATALOG.videos[CATALOG.picks[index % CATALOG.picks.length]];
}
/** Longest wait for the live source's first published playlist, in ms: one 2 s segment plus a slow start on a busy machine. */
const LIVE_FIRST_PLAYLIST_MS = 30_000;
/** The default scenarios: the LAN ones. `--scenarios wan` (or `all`) adds the WAN scenario. */
export const DEFAULT_SCENARIOS = ['staggered', 'flash'];
export const SCENARIO_ALIASES = { 'flash-crowd': ['flash'], all: ['staggered', 'flash', 'wan'] };

/**
 * Each viewer's home in the WAN scenario (test/harness/topology.mjs): an ordinary (cone) NAT, a
 * 2 Mbit/s uplink (1.7x the video's 1.2 Mbit/s: a home line that can just carry one viewer's
 * stream to one peer), a 20 Mbit/s downlink and 1% random loss each way. No added delay: this
 * kernel has no netem (see the topology harness).
 */
export const WAN_HOME = { nat: 'cone', uplinkKbit: 2000, downlinkKbit: 20_000, lossPercent: 1 };
/** The STUN server both P2P systems are given in the WAN scenario: coturn, STUN only, on the internet. */
const WAN_STUN_PORT = 3478;

/** Return visits: how long a viewer's first visit plays before the viewer comes back, in ms (its SW is installed by then). */
const FIRST_VISIT_PLAY_MS = 3_000;
/** Return visits: longest first visit, in ms (its video may not start at all on a broken build). */
const FIRST_VISIT_MS = 20_000;
/** Gap between joins in the staggered scenario, in ms (issue 4 item 8: 8 s apart). */
const STAGGER_MS = 8_000;
/** How often the runner samples the viewers, in ms: fine enough for a 60 s play, cheap for 4 pages. */
const POLL_MS = 1_000;
/**
 * Time a viewer may need beyond the video's duration, in ms: startup (a second or two), stalls,
 * and the end of the stream. A viewer still playing after this has not played to the end.
 */
const VIEWER_SLACK_MS = 60_000;
/** Time to start servers and the browser and to collect results, in ms, on top of the viewers' time. */
const RUN_OVERHEAD_MS = 30_000;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** The upper bound of one run, in ms (also used to bound the whole benchmark). */
export function runTimeoutMs({ scenario, viewers, seconds }) {
  if (SCENARIOS[scenario].live) return LIVE_FIRST_PLAYLIST_MS + LIVE.joinSpreadMs + LIVE.streamSeconds * 1000 + VIEWER_SLACK_MS + RUN_OVERHEAD_MS;
  const joins = (SCENARIOS[scenario].staggered ? (viewers - 1) * STAGGER_MS : 0) + (SCENARIOS[scenario].returnVisit ? viewers * FIRST_VISIT_MS : 0);
  return joins + seconds * 1000 + VIEWER_SLACK_MS + RUN_OVERHEAD_MS;
}

/**
 * Runs one system in one scenario and returns per-viewer measurements.
 * @param {{ root: string, site: { dir: string, mapped: Record<string,string> }, runDir: string, system: string,
 *   scenario: string, viewers: number, seconds: number, rateBytesPerSecond: number, media: { mp4Bytes: number, hlsBytes: number, fileSizes: Record<string, number> },
 *   liveSource?: string, log: (line: string) => void }} options (liveSource: the MP4 the live scenario packages in real time)
 */
export async function runOne(options) {
  const { root, site, system, scenario, viewers, seconds, log } = options;
  const spec = SYSTEMS[system];
  const wan = Boolean(SCENARIOS[scenario].wan);
  const live = Boolean(SCENARIOS[scenario].live);
  const liveDir = join(site.dir, 'live');
  const runDir = join(options.runDir, `${system}-${scenario}`);
  await mkdir(runDir, { recursive: true });
  const torrentFile = join(runDir, 'video.torrent');
  const stoppers = [];
  const result = {
    system,
    scenario,
    viewers: [],
    startedAt: new Date().toISOString(),
    timedOut: false,
    problems: [],
  };
  const deadline = Date.now() + runTimeoutMs({ scenario, viewers, seconds });
  // The machine's 1-minute load average before and after: on a shared 2-core machine it explains startup figures.
  result.loadBefore = loadavg()[0];
  try {
    // WAN: every viewer alone in a home behind its own NAT router; the servers on the internet.
    let topology = null;
    let stunUrl = null;
    if (wan) {
      const homeFor = SCENARIOS[scenario].home ?? (() => WAN_HOME);
      result.homes = Array.from({ length: viewers }, (_, index) => homeFor(index));
      topology = buildTopology({ homes: result.homes });
      stoppers.push(() => topology.destroy());
      const [command, args] = coturnCommand({ address: TURN_ADDRESS, port: WAN_STUN_PORT });
      const stun = await startProcess(command, args, { readyPattern: COTURN_READY_PATTERN, name: 'coturn (STUN)', cwd: root });
      stoppers.push(() => stun.stop());
      stunUrl = `stun:${TURN_ADDRESS}:${WAN_STUN_PORT}`;
    }
    const host = wan ? INTERNET_ADDRESS : '127.0.0.1';
    const tracker = await startProcess(process.execPath, [join(root, 'bin', 'peerfetch.js'), 'tracker', '--port', '0', '--host', host], {
      readyPattern: /ws:\/\/[\d.]+:\d+/,
      name: 'peerfetch tracker',
      cwd: root,
    });
    stoppers.push(() => tracker.stop());
    const trackerUrl = tracker.ready[0];
    if (live) {
      // A fresh folder per run; the watcher publishes `index.m3u8` once its manifest lists the segments.
      await rm(liveDir, { recursive: true, force: true });
      await mkdir(liveDir, { recursive: true });
      const watcher = await startProcess(
        process.execPath,
        [join(root, 'bin', 'peerfetch.js'), 'manifest', liveDir, '--watch', '--base-url', '/live/', '--piece-size', String(PIECE_SIZE), '--out', join(liveDir, 'peerfetch-manifest.json')],
        { readyPattern: /watching/, name: 'peerfetch manifest --watch', cwd: root },
      );
      stoppers.push(() => watcher.stop());
    }
    const maps = Object.entries({ ...site.mapped, '/wt/video.torrent': torrentFile }).flatMap(([url, file]) => ['--map', `${url}=${file}`]);
    const origin = await startProcess(
      process.execPath,
      [join(root, 'bench', 'lib', 'origin-server.mjs'), '--root', site.dir, '--host', host, '--rate', String(options.rateBytesPerSecond), '--piece-size', String(PIECE_SIZE), '--throttle', '/media/', '--throttle', '/hls/', '--throttle', '/live/', ...maps],
      { readyPattern: /http:\/\/[\d.]+:\d+/, name: 'bench origin', cwd: root },
    );
    stoppers.push(() => origin.stop());
    const originUrl = origin.ready[0];
    if (spec.torrent) {
      await writeTorrent({ file: join(site.dir, 'media', 'video.mp4'), out: torrentFile, trackerUrl, webSeedUrl: `${originUrl}/media/video.mp4` });
    }

    // PEERFETCH_BENCH_PROFILE=<folder>: CPU profiles of every viewer's page and worker (see profile.mjs).
    const profileDir = process.env.PEERFETCH_BENCH_PROFILE;
    if (profileDir) await mkdir(profileDir, { recursive: true });
    /** Profiled viewers' names by their browser context's CDP id, and the savers of their workers' profiles. */
    const profiledViewers = new Map();
    const workerProfiles = [];
    // LAN: one Chromium, a browser context per viewer. WAN: one Chromium process per viewer, inside its home.
    const browsers = [];
    const browserFor = async (index) => {
      if (!wan) index = 0;
      if (!browsers[index]) {
        browsers[index] = launchChromium(wan ? { executablePath: topology.visitors[index].executablePath, extraArgs: secureOriginArgs([originUrl]) } : {});
        if (profileDir) {
          const browser = await browsers[index];
          workerProfiles.push(await profileWorkers(browser, (contextId) => profiledViewers.get(contextId), profileDir, join(root, 'dist')));
        }
        stoppers.push(async () => (await browsers[index]).close());
      }
      return browsers[index];
    };
    // Every home's Chromium starts before the clock does, so no join waits for a browser launch.
    if (wan) await Promise.all(topology.visitors.map((_, index) => browserFor(index)));
    const firstBrowser = await browserFor(0);
    result.chromium = firstBrowser.version();
    const baseUa = await defaultUserAgent(firstBrowser);
    if (topology) result.topology = { homes: SCENARIOS[scenario].home ? result.homes : WAN_HOME, stun: stunUrl };
    // `ice`: the STUN server the pages give their P2P system (none on the LAN: host candidates suffice).
    const debugDir = process.env.PEERFETCH_BENCH_DEBUG;
    if (spec.tracker === 'template') {
      // A static script tag as a site writes it, with this run's tracker (and the engine's log on with PEERFETCH_BENCH_DEBUG).
      const page = await readFile(join(root, 'bench', 'pages', spec.page), 'utf8');
      await writeFile(join(site.dir, spec.page), page.replaceAll('__TRACKER__', trackerUrl).replaceAll('__DEBUG__', debugDir ? 'on' : 'off'));
    }
    if (debugDir) await mkdir(debugDir, { recursive: true });
    // Live: players start at once (peerfetch's page does not wait for its worker; see peerfetch-hls.html).
    const liveQuery = live ? { src: '/live/index.m3u8', manifest: '/live/peerfetch-manifest.json', player: 'at-once' } : {};
    const pageUrl = `${originUrl}/${spec.page}?${new URLSearchParams({ tracker: trackerUrl, ...(stunUrl ? { ice: stunUrl } : {}), ...(debugDir ? { debug: 'on' } : {}), ...liveQuery })}`;
    let liveEndsAt = 0;
    /** Live: the published playlist, and the newest segment of its first publication (see liveJoin). */
    const livePlaylist = join(liveDir, 'index.m3u8');
    let firstLiveSegment = 0;
    // Set when the clock starts (below); a viewer opened before that logs nothing until it navigates.
    let runStart = 0;
    const joined = [];

    // Catalog: each viewer's video and seek in its page URL (the same page path for all).
    const catalog = Boolean(SCENARIOS[scenario].catalog);
    const viewerPageUrl = (index) => {
      if (!catalog) return pageUrl;
      const query = new URLSearchParams({ src: catalogVideo(index), 'seek-at': String(seconds * CATALOG.seekAtFraction), 'seek-to': String(seconds * CATALOG.seekToFraction) });
      return `${pageUrl}&${query}`;
    };
    /** A viewer's browser context and blank page, with the probe and the log and profile hooks: all but its navigation. */
    const openViewer = async (index) => {
      const name = `${system}-${scenario}-v${index}`;
      const context = await (await browserFor(index)).newContext({ userAgent: `${baseUa} ${VIEWER_UA_TOKEN}${name}` });
      await context.addInitScript({ path: join(root, 'bench', 'lib', 'probe.js') });
      const page = await context.newPage();

      // The uploader of the uplinks-noseed scenario seeds nothing (the page's upload limit 0).
      const seeding = SCENARIOS[scenario].notSeeding !== index;
      const url = seeding ? viewerPageUrl(index) : `${viewerPageUrl(index)}&${new URLSearchParams({ 'upload-limit': '0' })}`;
      const viewer = { index, name, context, page, url, seeding, joinedAtMs: 0, last: null, originBytesBefore: 0 };
      page.on('crash', () => result.problems.push(`${name}: page crashed`));
      // PEERFETCH_BENCH_DEBUG=<folder>: each viewer's console (the engine's decisions with the
      // page's debug switch) goes to <folder>/<viewer>.log, to read why a piece came from where.
      if (debugDir) {
        const lines = [];
        page.on('console', (message) => lines.push(`${(Date.now() - runStart) / 1000}s ${message.text()}`));
        viewer.saveLog = () => writeFile(join(debugDir, `${name}.log`), `${lines.join('\n')}\n`);
      }
      if (profileDir) {
        const profile = await profilePage(context, page, join(profileDir, name), join(root, 'dist'));
        profiledViewers.set(profile.browserContextId, name);
        viewer.saveProfile = profile.save;
      }
      return viewer;
    };
    /** Navigates an opened viewer to its page (a return visit: after its first visit). */
    const joinViewer = async (viewer) => {
      const { page, name } = viewer;
      viewer.joinedAtMs = Date.now() - runStart;
      if (SCENARIOS[scenario].returnVisit) {
        await page.goto(viewer.url, { waitUntil: 'domcontentloaded' });
        await page
          .waitForFunction(() => (document.querySelector('video')?.currentTime ?? 0) > 0, null, { timeout: FIRST_VISIT_MS, polling: 200 })
          .catch(() => result.problems.push(`${name}: the first visit did not play within ${FIRST_VISIT_MS} ms`));
        await sleep(FIRST_VISIT_PLAY_MS);
        // The measured visit starts now: what the origin sent the first visit is not its cost.
        const stats = await (await fetch(`${originUrl}/__bench/stats`)).json();
        viewer.originBytesBefore = mediaBytes(stats.byViewer[name] ?? {});
        viewer.joinedAtMs = Date.now() - runStart;
      }
      joined.push(viewer);
      await page.goto(viewer.url, { waitUntil: 'domcontentloaded' });
      return viewer;
    };
    // Live: every viewer's context and page are made before the stream starts, so that each
    // navigates at its moment of the segment cycle; made at the join, they started the page 0.5-1.7 s
    // late on a busy machine (a different phase in each system's run).
    const liveViewers = live ? await Promise.all(Array.from({ length: viewers }, (_, index) => openViewer(index))) : [];

    if (live) {
      const source = startLiveSource(options.liveSource, liveDir);
      stoppers.push(() => source.stop());
      const waitUntil = Date.now() + LIVE_FIRST_PLAYLIST_MS;
      while (!existsSync(livePlaylist)) {
        if (Date.now() > waitUntil) throw new Error(`no live playlist published within ${LIVE_FIRST_PLAYLIST_MS} ms (ffmpeg: ${source.stderr().trim() || 'no output'})`);
        await sleep(100);
      }
      firstLiveSegment = newestSegmentNumber(await readFile(livePlaylist, 'utf8')) ?? 0;
      liveEndsAt = Date.now() + LIVE.streamSeconds * 1000;
      log(`  live stream published (${LIVE.streamSeconds} s from now)`);
    }
    if (SCENARIOS[scenario].hostile && spec.p2p) {
      // In the swarm before the first viewer, so that every viewer meets it.
      const member = await startHostileMember({ root, runDir, trackerUrl, pageUrl: `${originUrl}/${spec.page}`, manifestUrl: `${originUrl}/peerfetch-manifest.json`, site, log });
      stoppers.push(() => (result.hostile = member.stop()));
    }
    runStart = Date.now();
    const cpuBefore = cpuSnapshot();
    const sample = async (viewer) => {
      try {
        viewer.last = await viewer.page.evaluate(() => window.__bench.snapshot());
        viewer.sampleError = null;
      } catch (error) {
        // The page navigated or crashed: keep the last good sample and say so.
        viewer.sampleError = error.message.split('\n')[0];
      }
    };
    const viewerDeadline = (viewer) => (live ? liveEndsAt : runStart + viewer.joinedAtMs + seconds * 1000) + VIEWER_SLACK_MS;
    const finished = (viewer) => viewer.last?.ended || Date.now() > viewerDeadline(viewer);

    const joins = [];
    for (let index = 0; index < viewers; index++) {
      if (SCENARIOS[scenario].staggered && index > 0) {
        // Only sleep here: sampling pages on a loaded machine can take seconds and would delay the joins.
        // (What happens meanwhile is recorded in the pages themselves.)
        await sleep(Math.max(0, runStart + index * STAGGER_MS - Date.now()));
      }
      if (!live) {
        joins.push(openViewer(index).then(joinViewer));
        continue;
      }
      // Live: at the viewer's phase after a playlist's publication (see liveJoin).
      const { segments, afterMs } = liveJoin(index, viewers);
      const publishedAt = await playlistPublishedAt(livePlaylist, firstLiveSegment + segments, deadline);
      await sleep(Math.max(0, publishedAt + afterMs - Date.now()));
      liveViewers[index].joinedAfterPublicationMs = Math.round(Date.now() - publishedAt);
      joins.push(joinViewer(liveViewers[index]));
    }
    await Promise.all(joins);
    log(`  all ${viewers} viewers joined (${(Date.now() - runStart) / 1000} s)`);
    let lastLog = Date.now();
    for (;;) {
      await Promise.all(joined.map(sample));
      if (joined.every(finished)) break;
      if (Date.now() > deadline) {
        result.timedOut = true;
        break;
      }
      if (Date.now() - lastLog > 15_000) {
        lastLog = Date.now();
        log(`  t=${Math.round((Date.now() - runStart) / 1000)} s: ${joined.map((v) => `${v.index}@${(v.last?.currentTime ?? 0).toFixed(0)}s${v.last?.ended ? ' ended' : ''}`).join(', ')}`);
      }
      await sleep(POLL_MS);
    }
    // Before anything is stopped: a thread that has ended is not counted.
    result.cpu = cpuBetween(cpuBefore, cpuSnapshot());
    log(`  CPU ${result.cpu.totalSeconds} s: ${Object.entries(result.cpu.byKind).slice(0, 6).map(([kind, seconds]) => `${kind} ${seconds}`).join(', ')}; renderers ${result.cpu.renderers.join(', ')}`);
    // By thread, where a system's cost shows (its worker, WebRTC, IPC): the raw results hold every thread.
    log(`  CPU by thread: ${Object.entries(result.cpu.byThread).slice(0, 10).map(([thread, seconds]) => `${thread.replace('chromium ', '')} ${seconds}`).join(', ')}`);
    const originStats = await (await fetch(`${originUrl}/__bench/stats`)).json();
    await Promise.all(joined.map((viewer) => viewer.saveLog?.()));
    await Promise.all(joined.map((viewer) => viewer.saveProfile?.().catch((error) => result.problems.push(`${viewer.name}: profile not saved: ${error.message}`))));
    for (const save of workerProfiles) result.problems.push(...(await save()));
    // Live: what was consumed is what each player loaded; the origin had to send each distinct segment once.
    const liveSizes = {};
    if (live) {
      // The players' own byte counts are not reliable (hls.js hands a segment's buffer to its worker); the origin's file sizes are.
      for (const viewer of joined) for (const path of Object.keys(viewer.last?.fragments ?? {})) liveSizes[path] = originStats.sizes[path] ?? 0;
      result.liveDistinctBytes = Object.values(liveSizes).reduce((sum, bytes) => sum + bytes, 0);
    }
    if (catalog) {
      // What the player reads is its whole video (measured in a 20 s run: with the origin's 3 Mbit/s
      // each origin-only viewer fetched the whole file, 1.00 of it, not the 75% it played); the
      // origin must send each picked video once.
      const watched = (index) => options.media.fileSizes[catalogVideo(index)] ?? 0;
      const distinct = new Map(joined.map((viewer) => [catalogVideo(viewer.index), watched(viewer.index)]));
      result.distinctBytes = [...distinct.values()].reduce((sum, bytes) => sum + bytes, 0);
      for (const viewer of joined) viewer.consumedBytes = watched(viewer.index);
    }
    for (const viewer of joined) {
      result.viewers.push({
        ...measureViewer({ viewer, spec, originStats, media: live ? { ...options.media, fileSizes: liveSizes } : options.media, runStartEpoch: runStart, live }),
        uplinkKbit: result.homes?.[viewer.index]?.uplinkKbit ?? null,
        seeding: viewer.seeding,
      });
    }
    result.anonymousOriginBytes = mediaBytes(originStats.byViewer.anonymous ?? {});
    // Every request of a viewer carries its token; media bytes without one would escape the per-viewer figures.
    if (result.anonymousOriginBytes > 0) result.problems.push(`${result.anonymousOriginBytes} media bytes went to requests without a viewer token`);
    result.loadAfter = loadavg()[0];
  } catch (error) {
    result.problems.push(`run failed: ${error.stack ?? error}`);
  } finally {
    // Browser first (its pages hold connections to the servers), then the servers.
    for (const stop of stoppers.reverse()) {
      await Promise.race([Promise.resolve().then(stop).catch(() => {}), sleep(10_000)]);
    }
  }
  return result;
}

/** True for URL paths of the video (what "bytes consumed" and "origin bytes" count): the MP4, HLS playlists and segments, the live stream's files. */
function isMediaPath(path) {
  return path.startsWith('/media/') || path.startsWith('/hls/') || path.startsWith('/live/');
}

/**
 * Live: origin bytes of segments only. Every system reloads the live playlist from the origin
 * every segment (no P2P system shares playlists), so playlists are left out of both sides of the
 * offload and reported apart, with peerfetch's manifest reloads.
 */
function isLiveSegmentPath(path) {
  return path.startsWith('/live/') && path.endsWith('.ts');
}

/** The number of the newest segment a live playlist lists (ffmpeg's `seg-%05d.ts` names), or undefined when it lists none. */
export function newestSegmentNumber(playlist) {
  const numbers = [...playlist.matchAll(/^seg-(\d+)\.ts\s*$/gm)].map((match) => Number(match[1]));
  return numbers.at(-1);
}

/** How often (ms) the runner looks for a new live playlist: a small part of the 2 s segment cycle. */
const PUBLICATION_POLL_MS = 20;

/**
 * When (epoch ms) the live playlist `file` whose newest segment is `segment` was published: its
 * modification time (the watcher renames each playlist into place), so a runner that polls late
 * on a busy machine still times a join from the publication itself. Found only after a later one
 * (polled more than a segment late): that one's time less a segment per segment. Throws after
 * `deadline` (epoch ms).
 */
async function playlistPublishedAt(file, segment, deadline) {
  for (;;) {
    // One handle for the time and the text: a playlist renamed into place between the two would
    // give the old one's time to the new one's segments.
    const handle = await open(file);
    try {
      const { mtimeMs } = await handle.stat();
      const newest = newestSegmentNumber(await handle.readFile('utf8'));
      if (newest !== undefined && newest >= segment) return mtimeMs - (newest - segment) * HLS_SEGMENT_SECONDS * 1000;
    } finally {
      await handle.close();
    }
    if (Date.now() > deadline) throw new Error(`no live playlist with segment ${segment} published before the run's deadline`);
    await sleep(PUBLICATION_POLL_MS);
  }
}

/** Starts ffmpeg packaging `mp4` in real time into `folder` as live HLS (the watcher publishes its hidden playlist). */
function startLiveSource(mp4, folder) {
  return startBackground(process.env.PEERFETCH_FFMPEG ?? 'ffmpeg', [
    '-nostdin', '-hide_banner', '-loglevel', 'error', '-y',
    '-re', '-i', mp4, '-c', 'copy',
    '-f', 'hls', '-hls_time', String(HLS_SEGMENT_SECONDS), '-hls_list_size', String(LIVE.windowSegments),
    // temp_file: the playlist appears whole after its segments; program_date_time: the latency's reference.
    '-hls_flags', 'temp_file+delete_segments+program_date_time',
    '-hls_segment_filename', join(folder, 'seg-%05d.ts'),
    join(folder, '.index.m3u8'),
  ]);
}

function mediaBytes(byPath) {
  let total = 0;
  for (const [path, bytes] of Object.entries(byPath)) if (isMediaPath(path)) total += bytes;
  return total;
}

/**
 * Max over the viewer's pieces of (bytes of that piece the origin sent it) / (piece length).
 * Playlists are not pieces (players may re-read them; no P2P system shares them), so they are left out.
 */
function maxCopies(piecesByPath, fileSizes) {
  let max = 0;
  let where = null;
  for (const [path, perPiece] of Object.entries(piecesByPath ?? {})) {
    if (!isMediaPath(path) || path.endsWith('.m3u8')) continue;
    const size = fileSizes[path];
    if (!size) continue;
    perPiece.forEach((bytes, index) => {
      if (!bytes) return;
      const length = Math.min(PIECE_SIZE, size - index * PIECE_SIZE);
      const copies = bytes / length;
      if (copies > max) {
        max = copies;
        where = `${path}#${index}`;
      }
    });
  }
  return { max, where };
}

function measureViewer({ viewer, spec, originStats, media, runStartEpoch, live = false }) {
  const s = viewer.last ?? {};
  const byPath = originStats.byViewer[viewer.name] ?? {};
  const liveSegmentBytes = Object.entries(byPath).reduce((sum, [path, bytes]) => sum + (isLiveSegmentPath(path) ? bytes : 0), 0);
  const consumed = viewer.consumedBytes ?? (live ? Object.keys(s.fragments ?? {}).reduce((sum, path) => sum + (media.fileSizes[path] ?? 0), 0) : spec.format === 'mp4' ? media.mp4Bytes : media.hlsBytes);
  const originBytes = live ? liveSegmentBytes : mediaBytes(byPath) - viewer.originBytesBefore;
  const copies = maxCopies(originStats.pieces[viewer.name], media.fileSizes);
  // When a piece went out more than once, list the viewer's requests that covered it: which
  // requests overlapped tells whether it was a rescue, a retry or two streams.
  let worstPieceRequests = [];
  if (copies.max > 1.0001 && copies.where) {
    const [path, index] = copies.where.split('#');
    const pieceStart = Number(index) * PIECE_SIZE;
    const pieceEnd = pieceStart + PIECE_SIZE - 1;
    worstPieceRequests = originStats.requests
      .filter((r) => r.viewer === viewer.name && r.path === path)
      .filter((r) => {
        const m = /^bytes=(\d*)-(\d*)$/.exec(r.range ?? 'bytes=0-');
        const start = m?.[1] === '' ? 0 : Number(m?.[1] ?? 0);
        const end = m?.[2] === '' || !m ? Infinity : Number(m[2]);
        return start <= pieceEnd && end >= pieceStart;
      })
      .map((r) => `${r.range ?? 'no range'} at +${((r.at - runStartEpoch) / 1000).toFixed(1)} s`);
  }
  const pairs = Object.values(s.pairs ?? {});
  const endpoints = [...new Set(pairs.map((p) => `${p.local.split(':')[0]} <-> ${p.remote.split(':')[0]}`))];
  // A live stream's end is its #EXT-X-ENDLIST: `ended` after it is the end of the stream.
  const playedToEnd = live ? Boolean(s.ended) : Boolean(s.ended) && s.duration > 0 && s.currentTime >= s.duration - 0.5;
  const latencies = [...(s.latencies ?? [])].sort((a, b) => a - b);
  return {
    name: viewer.name,
    joinedAtS: viewer.joinedAtMs / 1000,
    // Live: when the viewer navigated after the publication of the playlist its join is timed from (see liveJoin).
    joinedAfterPublicationMs: viewer.joinedAfterPublicationMs ?? null,
    originBytes,
    consumedBytes: consumed,
    offload: 1 - originBytes / consumed,
    startupMs: s.firstPlaying ?? null,
    videoCreatedMs: s.videoAt ?? null,
    takenOverMs: s.takenOverAt ?? null,
    stallLog: s.stallLog ?? [],
    stalls: s.stalls ?? 0,
    stallMs: s.stallMs ?? 0,
    playedToEnd,
    endedAtS: s.endedAt != null ? s.endedAt / 1000 : null,
    position: s.currentTime ?? 0,
    duration: s.duration ?? 0,
    maxOriginCopies: copies.max,
    maxOriginCopiesAt: copies.where,
    worstPieceRequests,
    peerConnections: s.connections ?? 0,
    connectedPairs: pairs.length,
    icePairs: endpoints,
    p2pBytesReceived: pairs.reduce((sum, p) => sum + (p.bytesReceived ?? 0), 0),
    // Data-channel payload received, and the part of it the system used (verified pieces; segments completed from peers).
    channelBytesReceived: Object.values(s.channelBytes ?? {}).reduce((sum, bytes) => sum + bytes, 0),
    peerBytesUsed: s.peerfetch?.bytesFromPeers ?? s.extra?.p2pml?.p2pSegments ?? null,
    engineStats: s.peerfetch ?? s.extra?.p2pml ?? s.extra?.webtorrent ?? null,
    hlsMilestones: s.extra?.hls ?? null,
    hlsErrors: s.extra?.hlsErrors ?? null,
    liveSync: s.extra?.liveSync ?? null,
    // Live: the median latency over the viewer's samples (once a second while playing), and the bytes the origin sent it besides segments.
    latencyMedianMs: latencies.length ? latencies[Math.floor(latencies.length / 2)] : null,
    latencySamples: latencies.length,
    // The same less the age of the first playlist at its load (see probe.js): the latency without
    // the phase of the segment cycle at which the viewer happened to load it.
    playlistAgeMs: s.extra?.liveSync?.playlistAgeMs ?? null,
    latencyLessPhaseMs: latencies.length && s.extra?.liveSync?.playlistAgeMs != null ? latencies[Math.floor(latencies.length / 2)] - s.extra.liveSync.playlistAgeMs : null,
    // The term of that latency a system controls at startup (hls.js starts a fixed distance behind
    // the playlist it loaded): from that load to the first frame.
    playlistToFirstFrameMs: s.firstPlaying != null && s.extra?.liveSync?.playlistLoadedMs != null ? Math.round(s.firstPlaying - s.extra.liveSync.playlistLoadedMs) : null,
    liveOtherOriginBytes: live ? mediaBytes(byPath) - liveSegmentBytes : null,
    segmentsLoaded: live ? Object.keys(s.fragments ?? {}).length : null,
    errors: (s.errors ?? []).slice(0, 5),
    sampleError: viewer.sampleError ?? null,
  };
}
