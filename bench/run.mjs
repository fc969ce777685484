#!/usr/bin/env node
// `npm run bench` (after the build): the delivery benchmark of issue 4 item 8.
//
// Side by side in one run: origin only (MP4 and HLS), peerfetch (MP4 and HLS),
// p2p-media-loader v2 (HLS) and WebTorrent 3.0.21 (MP4), each with N viewers in a staggered and a
// flash-crowd scenario, against a throttled origin that counts what it sends to each viewer.
//
//   node bench/run.mjs [--systems a,b] [--scenarios staggered,flash,wan] [--viewers 4] [--seconds 60]
//                      [--rate-kbps 3000] [--write | --no-write]
//
// Systems: origin-mp4, origin-hls, peerfetch-mp4, peerfetch-hls, p2pml, webtorrent
// (shorthands: origin, peerfetch), and on request only inpage-mp4, inpage-hls (shorthand inpage: the
// player in the page's HTML, started before peerfetch's service worker controls a first visit).
// Scenarios: staggered, flash (the default pair, on one LAN) and
// wan (each viewer alone in a home behind a NAT on a shaped line, see WAN_HOME in bench/lib/runs.mjs;
// `all` = the three), and on request only return (each viewer's second visit). The "player in the
// page" scenario of issue 11:
//   node bench/run.mjs --systems origin,peerfetch,inpage --scenarios staggered --no-write  (first visit)
//   node bench/run.mjs --systems origin,inpage --scenarios return --no-write                (return visit) The Delivery section of BENCHMARKS.md is rewritten after a default (complete)
// run, or with --write; with --write, a run of the wan scenario alone, or of wan and staggered
// (the LAN figure its goal compares with, in the same run), rewrites the WAN section instead, e.g.
//   node bench/run.mjs --scenarios staggered,wan --systems origin-hls,peerfetch-hls,p2pml --write
// Scenario uplinks (issue 15, only when named): like wan, but the homes' uploads differ (1, 2, 5
// and 20 Mbit/s, with 8 viewers then 2, 1, 10 and 3; see UPLINK_HOMES) and the figures are offload
// against what the uplinks allow, wasted peer bytes and every viewer's rebuffers; a run of it
// alone with --write rewrites the Home uplinks section (with --viewers 8, "Home uplinks, 8 viewers"), e.g.
//   node bench/run.mjs --scenarios uplinks --systems origin-hls,peerfetch-hls,p2pml --write
// Scenario uplinks-noseed (issue 15 item 3, peerfetch only): the same homes, but the 2 Mbit/s
// home's viewer seeds nothing (upload limit 0); beside uplinks, the report sets that viewer's
// startup and rebuffers with and without seeding side by side (8 viewers: --viewers 8):
//   node bench/run.mjs --scenarios uplinks,uplinks-noseed --systems origin-hls,peerfetch-hls,p2pml --write
// Scenarios uplinks-even and uplinks-uncapped (issue 15 item 4, only when named): homes behind NATs
// whose uploads are all 1.5x the video's bitrate, and the same homes not capped; the goal holds the
// second viewer's share from peers in the first within 10 points of the second; with --write they
// rewrite the "Home uplinks at 1.5x the bitrate" section:
//   node bench/run.mjs --scenarios uplinks-even,uplinks-uncapped --systems peerfetch-hls,p2pml --viewers 2 --no-write
// Scenario live (issue 12, only when named; HLS systems only): a 90 s live stream packaged in real
// time, viewers joining during its first 20 s (see LIVE in bench/lib/runs.mjs); offload, latency
// against the stream's program date time, startup, rebuffers; a run of it alone with --write
// rewrites the "Live, N viewers" section, e.g.
//   node bench/run.mjs --scenarios live --systems origin-hls,peerfetch-hls,p2pml --viewers 4 --write
// Scenario hostile (issue 13, only when named): staggered, plus one hostile swarm member
// (bench/lib/hostile.mjs); compare with staggered for the no-attack figure, never written:
//   node bench/run.mjs --systems origin-mp4,peerfetch-mp4 --scenarios staggered,hostile --no-write
// Scenario catalog (issue 11 item 3, only when named; MP4): three videos on one page path (one
// swarm), each viewer picks one (two of four the first) and seeks forward once; offload against
// that mix's ideal (each video's watched part from the origin once), goals in the report:
//   node bench/run.mjs --systems origin-mp4,peerfetch-mp4 --scenarios catalog --no-write
// Results of every run go to bench/.cache/results/.
//
// The harness's own tests (origin counters, goal checks, BENCHMARKS.md writer) are part of npm test.
//
// WebRTC needs a private network (docs/contributing.md): as root on Linux the script re-executes itself
// under `unshare --net` with lo up, a veth pair 10.77.0.1/24 - 10.77.0.2/24 and a default route
// via 10.77.0.2; servers listen on 127.0.0.1 inside it. Nothing can leave the machine.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readdir, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { canUnshare, enterPrivateNetwork, isFreshNamespace, privateNetworkStatus, reexecInPrivateNetwork } from '../test/harness/netns.mjs';

const here = fileURLToPath(import.meta.url);
const root = join(dirname(here), '..');
const argv = process.argv.slice(2);

/** Slack of the whole benchmark beyond the sum of its run bounds, in ms: closing browsers and servers between runs. */
const BENCH_MARGIN_MS = 120_000;

function log(line) {
  process.stderr.write(`[bench] ${line}\n`);
}

function parseArgs(args, runs) {
  const options = { systems: null, scenarios: null, viewers: 4, seconds: 60, rateKbps: 3000, write: null };
  for (let i = 0; i < args.length; i++) {
    const flag = args[i];
    const next = () => {
      const value = args[++i];
      if (value === undefined) throw new Error(`${flag} needs a value`);
      return value;
    };
    if (flag === '--systems') options.systems = next().split(',').filter(Boolean);
    else if (flag === '--scenarios') options.scenarios = next().split(',').filter(Boolean);
    else if (flag === '--viewers') options.viewers = Number(next());
    else if (flag === '--seconds') options.seconds = Number(next());
    else if (flag === '--rate-kbps') options.rateKbps = Number(next());
    else if (flag === '--write') options.write = true;
    else if (flag === '--no-write') options.write = false;
    else throw new Error(`unknown option ${flag} (see the header of bench/run.mjs)`);
  }
  const expand = (list, all, aliases, what, defaults = Object.keys(all)) =>
    list === null
      ? defaults
      : [...new Set(list.flatMap((id) => aliases[id] ?? [id]))].map((id) => {
          if (!all[id]) throw new Error(`unknown ${what} ${id}; known: ${Object.keys(all).join(', ')}`);
          return id;
        });
  const isDefault = options.systems === null && options.scenarios === null && options.viewers === 4 && options.seconds === 60 && options.rateKbps === 3000;
  options.systems = expand(options.systems, runs.SYSTEMS, runs.SYSTEM_ALIASES, 'system', runs.DEFAULT_SYSTEMS);
  options.scenarios = expand(options.scenarios, runs.SCENARIOS, runs.SCENARIO_ALIASES, 'scenario', runs.DEFAULT_SCENARIOS);
  if (!(options.viewers >= 2 && options.viewers <= 8)) throw new Error('--viewers must be 2..8 (a 2-core machine plays at most ~8 videos at once)');
  if (!(options.seconds >= 10 && options.seconds <= 600)) throw new Error('--seconds must be 10..600');
  options.write ??= isDefault;
  // WebTorrent picks its own (public) STUN servers and has no page setting here for the run's own.
  if (options.scenarios.some((id) => runs.SCENARIOS[id].hostile) && options.write) throw new Error('a run with the hostile scenario writes no BENCHMARKS.md section (its figures are compared with staggered by hand): use --no-write');
  if (options.scenarios.some((id) => runs.SCENARIOS[id].hostile) && options.systems.some((id) => runs.SYSTEMS[id].p2p && !id.startsWith('peerfetch') && !id.startsWith('inpage'))) throw new Error('the hostile scenario attacks peerfetch (its member speaks peerfetch\'s protocol): run origin-* and peerfetch-* (--systems)');
  if (options.scenarios.some((id) => runs.SCENARIOS[id].wan) && options.systems.includes('webtorrent')) throw new Error('the wan and uplinks scenarios run origin-*, peerfetch-* and p2pml; leave webtorrent out (--systems)');
  return options;
}

function packageVersion(name) {
  return JSON.parse(readFileSync(join(root, 'node_modules', name, 'package.json'), 'utf8')).version;
}

function gitCommit() {
  const head = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8' }).stdout.trim();
  const dirty = spawnSync('git', ['status', '--porcelain', '--', 'src'], { cwd: root, encoding: 'utf8' }).stdout.trim();
  return dirty ? `${head} + uncommitted changes in src/` : head;
}

async function benchmark() {
  // Ctrl-C or a SIGTERM: exit through process.exit so the exit hooks kill our servers (and Playwright its browser).
  for (const signal of ['SIGINT', 'SIGTERM']) {
    process.once(signal, () => {
      log(`${signal}: stopping`);
      process.exit(130);
    });
  }
  const runs = await import('./lib/runs.mjs');
  const report = await import('./lib/report.mjs');
  const { ensureMedia, ensureMp4, folderBytes } = await import('./lib/media.mjs');
  const { buildSite } = await import('./lib/site.mjs');
  const options = parseArgs(argv, runs);
  const cacheDir = join(root, 'bench', '.cache');
  const started = new Date();
  // The checkout the build came from, read now: other commits may land while the runs go on.
  const peerfetchCommit = gitCommit();
  log(`systems ${options.systems.join(', ')}; scenarios ${options.scenarios.join(', ')}; ${options.viewers} viewers; ${options.seconds} s video; origin cap ${options.rateKbps} kbit/s per connection`);

  /** Video bitrate in kbit/s (issue 4 item 8: about 1.2 Mbit/s). */
  const VIDEO_KBPS = 1200;
  const media = await ensureMedia(cacheDir, { seconds: options.seconds, kbps: VIDEO_KBPS });
  // The catalog scenario's other videos: encodes of their own (other frame sizes), so no piece is shared between videos.
  const extraVideos = {};
  if (options.scenarios.some((id) => runs.SCENARIOS[id].catalog)) {
    const sizes = ['640x352', '624x360'];
    for (const [index, url] of runs.CATALOG.videos.slice(1).entries()) extraVideos[url] = (await ensureMp4(cacheDir, { seconds: options.seconds, kbps: VIDEO_KBPS, size: sizes[index] })).mp4;
  }
  const site = await buildSite({ root, cacheDir, media, extraVideos });
  const fileSizes = {};
  fileSizes['/media/video.mp4'] = (await stat(media.mp4)).size;
  for (const [url, file] of Object.entries(extraVideos)) fileSizes[url] = (await stat(file)).size;
  for (const name of await readdir(media.hlsDir)) fileSizes[`/hls/${name}`] = (await stat(join(media.hlsDir, name))).size;
  const mediaInfo = { mp4Bytes: fileSizes['/media/video.mp4'], hlsBytes: await folderBytes(media.hlsDir), fileSizes };

  // The live scenario packages its own, longer video in real time.
  const liveSource = options.scenarios.some((id) => runs.SCENARIOS[id].live)
    ? (await ensureMp4(cacheDir, { seconds: runs.LIVE.streamSeconds, kbps: VIDEO_KBPS })).mp4
    : undefined;

  const runDir = join(cacheDir, 'runs');
  // A scenario that names its systems (live: HLS only) runs those of the chosen ones.
  const plan = options.scenarios.flatMap((scenario) =>
    options.systems.filter((system) => runs.SCENARIOS[scenario].systems?.includes(system) ?? true).map((system) => ({ system, scenario })),
  );
  // Every run bounds itself; this bounds the whole benchmark if one of them hangs anyway
  // (the exit hooks then kill the servers and Playwright kills Chromium).
  const totalMs = plan.reduce((sum, p) => sum + runs.runTimeoutMs({ scenario: p.scenario, viewers: options.viewers, seconds: options.seconds }), 0) + BENCH_MARGIN_MS;
  setTimeout(() => {
    log(`the benchmark exceeded its bound of ${Math.round(totalMs / 1000)} s: stopping`);
    process.exit(3);
  }, totalMs).unref();
  const results = [];
  for (const [i, { system, scenario }] of plan.entries()) {
    log(`run ${i + 1}/${plan.length}: ${system}, ${scenario} (at most ${Math.round(runs.runTimeoutMs({ scenario, viewers: options.viewers, seconds: options.seconds }) / 1000)} s)`);
    const result = await runs.runOne({
      root, site, runDir, system, scenario, viewers: options.viewers, seconds: options.seconds,
      rateBytesPerSecond: Math.round((options.rateKbps * 1000) / 8), media: mediaInfo, liveSource, log,
    });
    results.push(result);
    for (const line of report.viewerLines(result)) log(`  ${line}`);
    for (const problem of result.problems) log(`  problem: ${problem}`);
    const s = report.summarize(result, options.viewers);
    log(`  => offload ${(s.offload * 100).toFixed(1)}% (ideal ${(s.ideal * 100).toFixed(1)}%), ${s.latencyMedianMs != null ? `live latency median ${(s.latencyMedianMs / 1000).toFixed(2)} s, ` : ''}median startup ${s.startupMedianMs?.toFixed(0)} ms, ${s.stalls} rebuffers, ${s.playedToEnd}/${options.viewers} played to the end, load ${s.load.map((x) => x.toFixed(1)).join(' -> ')}`);
  }

  const summaries = results.map((r) => report.summarize(r, options.viewers));
  const chromium = results.find((r) => r.chromium)?.chromium ?? 'unknown';
  const versions = {
    chromium,
    node: process.version,
    'hls.js': packageVersion('hls.js'),
    'p2p-media-loader': `core ${packageVersion('p2p-media-loader-core')}, hlsjs ${packageVersion('p2p-media-loader-hlsjs')}`,
    webtorrent: packageVersion('webtorrent'),
    peerfetch: peerfetchCommit,
  };
  const command = process.env.PEERFETCH_BENCH_COMMAND ?? `node bench/run.mjs ${argv.join(' ')}`.trim();
  const delivery = summaries.filter((s) => !runs.SCENARIOS[s.scenario].live);
  const liveSummaries = summaries.filter((s) => runs.SCENARIOS[s.scenario].live);
  const goalList = report.goals(delivery);
  const tableText = report.table(delivery);
  const goalsText = report.goalsTable(goalList);
  const liveGoals = report.liveGoals(liveSummaries);
  const liveText = liveSummaries.length ? `${report.liveTable(liveSummaries)}\n\n${report.goalsTable(liveGoals, 'issue 12 item 5')}` : '';
  const uplinkSummaries = results.filter((r) => runs.SCENARIOS[r.scenario].uplinks).map((r) => report.summarizeUplinks(r, options.seconds));
  const uplinkGoals = [...report.uplinksGoals(uplinkSummaries), ...report.evenUplinksGoals(uplinkSummaries)];
  const uploaderText = report.uploaderTable(uplinkSummaries);
  const uplinksText = uplinkSummaries.length ? `${report.uplinksTable(uplinkSummaries)}\n\n${report.goalsTable(uplinkGoals, 'issue 15')}${uploaderText ? `\n\n${uploaderText}` : ''}` : '';
  const minutes = ((Date.now() - started.getTime()) / 60000).toFixed(1);
  process.stdout.write(`\n${delivery.length ? `${tableText}\n\n${goalsText}\n\n` : ''}${uplinksText ? `${uplinksText}\n\n` : ''}${liveText ? `${liveText}\n\n` : ''}`);

  await mkdir(join(cacheDir, 'results'), { recursive: true });
  const resultsFile = join(cacheDir, 'results', `${started.toISOString().replace(/[:.]/g, '-')}.json`);
  await writeFile(resultsFile, JSON.stringify({ options, versions, media: mediaInfo, results, summaries, goals: goalList, uplinkSummaries, uplinkGoals, liveGoals }, null, 2));
  log(`raw results: ${resultsFile}`);

  // A run of the WAN or the uplinks scenario alone (or beside the staggered LAN run it is compared
  // with) writes its own section; any other run writes Delivery.
  // The uplinks-noseed runs belong to the Home uplinks section; uplinks-even and uplinks-uncapped to their own.
  const sections = [...new Set(options.scenarios.map((id) => (runs.SCENARIOS[id].uplinks ? (runs.SCENARIOS[id].section ?? 'uplinks') : id)))];
  const shaped = sections.filter((id) => id !== 'staggered');
  const only = shaped.length === 1 && (sections.length === 1 || sections.includes('staggered')) && ['wan', 'uplinks', 'uplinks-even'].includes(shaped[0]) ? shaped[0] : sections.length === 1 ? sections[0] : null;
  const section = {
    wan: { heading: 'WAN', notes: 'wan-notes.md' },
    // The 4-viewer swarm keeps the section the notes read; 8 viewers (separate runs) get their own.
    uplinks: options.viewers === 4 ? { heading: 'Home uplinks', notes: 'uplinks-notes.md' } : { heading: `Home uplinks, ${options.viewers} viewers`, notes: `uplinks-${options.viewers}-notes.md` },
    'uplinks-even': { heading: 'Home uplinks at 1.5x the bitrate', notes: 'uplinks-even-notes.md' },
    // One section per swarm size: the 4- and 8-viewer figures are separate runs.
    live: { heading: `Live, ${options.viewers} viewers`, notes: 'live-notes.md' },
    catalog: { heading: 'Catalog', notes: 'catalog-notes.md' },
  }[only] ?? { heading: 'Delivery', notes: 'delivery-notes.md' };
  /** Setup and definitions of the live section. */
  const liveDescription = () => [
    `Setup: ${options.viewers} viewers, each its own Chromium browser context (own storage and service worker), muted autoplay at 1x; ` +
      `a ${runs.LIVE.streamSeconds} s H.264 test pattern at ${VIDEO_KBPS} kbit/s packaged in real time by ffmpeg (\`-re -c copy\`, encoded ahead so a busy machine cannot make the source late) as live HLS: 2 s segments, a playlist window of ${runs.LIVE.windowSegments}, EXT-X-PROGRAM-DATE-TIME on every segment, #EXT-X-ENDLIST at the end; ` +
      '`peerfetch manifest --watch` follows the folder and publishes each playlist after the manifest lists its segments, for every system alike (the same publication delay for all). ' +
      `Viewers join evenly spread over the stream's first ${runs.LIVE.joinSpreadMs / 1000} s, each at its own phase of the 2 s segment cycle and at the same one in every system's run: viewer i of n opens its page i/n of a segment after the publication of a playlist (timed from the playlist file's time, with its browser context made before the stream starts), and plays until the stream ends; hls.js ${versions['hls.js']} with the same settings in every system: its defaults, with liveSyncDurationCount 3 stated so that p2p-media-loader does not raise it to the window (it starts three segments behind the edge), and enableWorker false, as p2p-media-loader's bundled hls.js (its ES module build, which has no worker without a workerPath) always ran: every page transmuxes on its own thread. ` +
      `Origin capped at ${options.rateKbps} kbit/s per TCP connection for the stream; a fresh tracker, origin, watcher, source and Chromium per run, inside a private network namespace.`,
    '',
    'Offload = 1 − origin segment bytes / segment bytes the players loaded, over all viewers; playlists (reloaded from the origin by every system every segment) and peerfetch\'s manifest reloads are left out of both sides and shown in their own column. ' +
      'Ideal = 1 − (bytes of the distinct segments any viewer loaded) / (segment bytes loaded): the origin has to send each segment once. ' +
      'Latency = wall clock minus the program date time of the frame on screen (hls.js `playingDate`), sampled once a second while playing; per viewer its median, per run the median of the viewers\' medians; less the phase = the same less the age of the playlist the viewer\'s player first loaded (where in the 2 s segment cycle it loaded it), the figure the latency goals compare: viewers arriving at random moments see every phase alike in every system, while this grid of phases moves a system\'s median in a sawtooth of how late its page loads the playlist. ' +
      'Startup = first `playing` event, from navigation start. Rebuffers = `waiting` events after the first `playing`, time until playback resumed; for want of data = those with less than 1 s of media buffered past the playhead (the goals count these; a `waiting` with more buffered is the renderer short of CPU on this shared 2-core machine, seen in origin-only runs too, and is shown in all). Played to the end = the player reached the end of the stream after #EXT-X-ENDLIST.',
    '',
  ];
  if (options.write) {
    // Hand-written reading of the figures (what limits them), kept beside the code so a rerun keeps it.
    const notesFile = join(root, 'bench', section.notes);
    const notes = existsSync(notesFile) ? readFileSync(notesFile, 'utf8') : '';
    const body = [
      `Command: \`${command}\` — ${started.toISOString().slice(0, 16).replace('T', ' ')} UTC, ${minutes} min for ${plan.length} runs.`,
      '',
      `Versions: Chromium ${versions.chromium}, Node ${versions.node}, hls.js ${versions['hls.js']}, p2p-media-loader ${versions['p2p-media-loader']}, WebTorrent ${versions.webtorrent}, peerfetch ${versions.peerfetch}.`,
      '',
      ...(only === 'live' ? liveDescription() : [
        `Setup: ${options.viewers} viewers, each its own Chromium browser context (own storage and service worker), muted autoplay at 1x to the end; ` +
          `a ${options.seconds} s H.264 test video at ${VIDEO_KBPS} kbit/s as MP4 (faststart, ${(mediaInfo.mp4Bytes / 1e6).toFixed(2)} MB) and as HLS with 2 s segments (${(mediaInfo.hlsBytes / 1e6).toFixed(2)} MB with the playlist); ` +
          `origin capped at ${options.rateKbps} kbit/s per TCP connection for the video (MP4, playlists, segments; pages and player scripts are not capped, as if served by a separate page host); staggered = joins 8 s apart, flash crowd = all join together; ` +
          'a fresh tracker (`peerfetch tracker`, used by every P2P system), origin and Chromium per run, inside a private network namespace. ' +
          'Viewers stay on the page after their video ends until the last viewer finishes.' +
          (options.scenarios.includes('wan')
            ? ` WAN = joins 8 s apart like staggered, but each viewer alone in its own home behind a NAT router (network namespaces, iptables MASQUERADE, unsolicited inbound dropped; test/harness/topology.mjs), its own Chromium process inside it, the servers on the "internet" (198.18.0.0/15); ` +
              `each home's line capped at ${runs.WAN_HOME.uplinkKbit / 1000} Mbit/s up and ${runs.WAN_HOME.downlinkKbit / 1000} Mbit/s down (tc tbf, 400 ms queue) with ${runs.WAN_HOME.lossPercent}% random loss each way (iptables statistic); ` +
              'no added delay (this kernel has no netem qdisc; round trips stay under a millisecond). Every P2P system is given the same STUN server (coturn, STUN only) and connects through server-reflexive candidates.'
            : '') +
          (options.scenarios.includes('uplinks')
            ? ` Home uplinks = like WAN, but the homes' uploads are capped at ${runs.UPLINK_HOMES.slice(0, options.viewers).map((home) => home.uplinkKbit / 1000).join(', ')} Mbit/s (viewer by viewer, in join order), ` +
              `downloads at ${runs.UPLINK_HOMES[0].downlinkKbit / 1000} Mbit/s, no loss. Allowed by the uplinks = the smaller of the ideal (N−1)/N and the viewers' total upload capacity over the video's duration divided by the bytes all viewers consumed. ` +
              'Wasted peer bytes = data-channel payload received (RTCDataChannel stats) that the system did not use (peerfetch: verified pieces, `bytesFromPeers`; p2p-media-loader: segments completed from peers), over what was received.' +
              (options.scenarios.includes('uplinks-noseed')
                ? ` The uploader's own playback: peerfetch runs a second time with viewer ${runs.UPLINK_UPLOADER + 1} (the ${runs.UPLINK_HOMES[runs.UPLINK_UPLOADER].uplinkKbit / 1000} Mbit/s home) seeding nothing (\`data-upload-limit="0"\`; it still downloads from peers), and its startup and rebuffers are set beside its own in the seeding run and in origin-only.`
                : '')
            : '') +
          (options.scenarios.some((id) => runs.SCENARIOS[id].section === 'uplinks-even')
            ? ` Home uplinks at 1.5x the bitrate = like WAN, but every home's upload capped at ${runs.EVEN_UPLINK_HOME.uplinkKbit / 1000} Mbit/s (1.5x the video's ${VIDEO_KBPS / 1000} Mbit/s), downloads at ${runs.EVEN_UPLINK_HOME.downlinkKbit / 1000} Mbit/s, no loss; ` +
              "home uplinks not capped = the same homes and NATs with no line capped. Goal (issue 15 item 4): the second viewer's share of its video from peers (its offload: only the first viewer is ahead of it) at 1.5x within 10 points of the uncapped one."
            : '') +
                    (options.scenarios.includes('catalog')
            ? ` Catalog = joins 8 s apart on one page path (one swarm) with three videos (${runs.CATALOG.videos.join(', ')}: the benchmark video and two encodes of their own at other frame sizes); ` +
              `viewer by viewer in join order the videos ${runs.CATALOG.picks.map((pick) => pick + 1).join(', ')} (repeated), each seeking once, at ${runs.CATALOG.seekAtFraction * 100}% of the video, forward to ${runs.CATALOG.seekToFraction * 100}%. ` +
              'Its bytes consumed = the size of the video a viewer plays, and its ideal = 1 − (each picked video once) / (bytes consumed): the mix\'s ideal; the wait after a seek is not a rebuffer.'
            : ''),
        '',
        'Offload = 1 − origin bytes / bytes consumed, over all viewers of a run; origin bytes are the media bytes (MP4, playlists, segments) the origin itself counted per viewer (User-Agent token); ' +
          `bytes consumed = the media size per viewer (a full play); ideal = (N−1)/N = ${(((options.viewers - 1) / options.viewers) * 100).toFixed(1)}%. ` +
          'Startup = first `playing` event, from navigation start (it includes loading each system\'s scripts and service worker). Rebuffers = `waiting` events after the first `playing`, time until playback resumed; for want of data = those with less than 1 s of media buffered past the playhead (the goals count these; a `waiting` with more buffered is the renderer short of CPU on this shared 2-core machine, seen in origin-only runs too, and is shown in all). ' +
          'Max origin copies = the most bytes of any one 256 KiB piece the origin sent one viewer, divided by the piece length. ' +
          'P2P column: the selected ICE candidate pairs seen on the pages\' RTCPeerConnections (none = the run had no P2P) and the bytes received over them.',
        '',
      ]),
      ...(only === 'uplinks' || only === 'uplinks-even' ? [uplinksText] : only === 'live' ? [liveText] : [tableText, '', goalsText]),
      '',
      ...(notes ? [notes.trim(), ''] : []),
      '<details><summary>Per viewer</summary>',
      '',
      ...results.flatMap((r) => ['```', `${r.system}, ${r.scenario}`, ...report.viewerLines(r), ...r.problems.map((p) => `problem: ${p.split('\n')[0]}`), '```']),
      '',
      '</details>',
    ].join('\n');
    await report.writeSection(join(root, 'BENCHMARKS.md'), section.heading, body);
    log(`wrote the ${section.heading} section of BENCHMARKS.md`);
  }
  return summaries.every((s) => s.complete) ? 0 : 1;
}

async function main() {
  if (isFreshNamespace()) {
    let network;
    try {
      network = enterPrivateNetwork();
    } catch (error) {
      log(error.message);
      process.exit(2);
    }
    log(`inside a private network namespace (${network})`);
  } else if (process.env.PEERFETCH_NETNS !== '1' && canUnshare()) {
    return reexecInPrivateNetwork(here, argv);
  }
  const network = privateNetworkStatus();
  if (!network.insideNamespace && !network.hostAllowed) {
    log('refusing to run: the benchmark opens WebRTC connections and needs the private network namespace (root + unshare on Linux), or PEERFETCH_ALLOW_HOST_WEBRTC=1 on a developer machine');
    return 2;
  }
  return benchmark();
}

process.exitCode = await main().catch((error) => {
  log(`failed: ${error.stack ?? error}`);
  return 1;
});
// Anything still holding the event loop (a stuck page, a socket) must not keep the benchmark alive.
setTimeout(() => process.exit(process.exitCode), 5_000).unref();
