/**
 * `peerfetch demo`: the tracker, and an origin serving demo/ with the peerfetch scripts, a fresh
 * manifest of demo/media and the page with the tracker URL filled in. Everything on loopback.
 */
import { createSocket } from 'node:dgram';
import { existsSync } from 'node:fs';
import { readFile, rename, writeFile } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import { createRequire } from 'node:module';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { createJsonLogger, startTracker, type RunningTracker } from '../tracker/index.js';
import { DEFAULT_STUN_PORT } from '../tracker/options.js';
import { MANIFEST_FILE_NAME, buildManifest } from './build-manifest.js';
import type { ManifestJson } from '../shared/manifest.js';
import { DEMO_LIVE_PLAYLIST, DEMO_LIVE_PREFIX, startDemoLiveSource, type DemoLiveSource } from './demo-live.js';
import { PeerfetchError } from '../shared/errors.js';
import { joinNegativeValues } from '../shared/command-line.js';
import { packageRoot, parsePort, parseRate, peerfetchScriptFiles, untilSignal } from './cli-support.js';
import {
  MAX_HEADLESS_VIEWERS,
  findChromium,
  launchHeadlessViewers,
  serveViewerControl,
  type HeadlessViewers,
  type ViewerControl,
} from './demo-viewers.js';
import { ORIGIN_STATS_PATH, startOriginServer, type OriginServer } from './origin-server.js';

/** Options of {@link startDemo}. */
export interface DemoOptions {
  /** Port of the demo site. Default 8080; 0 picks a free one. */
  port?: number;
  /** Address of the site and the tracker. Default 127.0.0.1 (then 127.0.0.2 serves a second viewer). */
  host?: string;
  /** Port of the tracker. Default 8000; 0 picks a free one. */
  trackerPort?: number;
  /**
   * UDP port of the tracker's STUN service, as the tracker's `stunPort` (0 turns it off). Default:
   * the tracker's (3478; a free port when `trackerPort` is 0). A port that is taken (a STUN or TURN
   * server already running on this machine) is replaced by a free one, with a warning: pages learn
   * the port from the tracker.
   */
  stunPort?: number;
  /** Bandwidth cap of each origin connection in bytes per second. Default: none (the command's default is DEFAULT_DEMO_RATE_KBPS). */
  bytesPerSecond?: number;
  /** The demo site folder. Default: demo/ of this package. */
  dir?: string;
  /**
   * Headless viewers to start (0–{@link MAX_HEADLESS_VIEWERS}), each its own browser context in a
   * headless Chromium (PEERFETCH_CHROMIUM or /usr/bin/chromium). Default 0. They open WebRTC
   * connections like any viewer: on a shared machine, run them inside a private network.
   */
  viewers?: number;
  /**
   * Start the live stream of the page's live tab: ffmpeg encoding a test pattern in real time,
   * followed by the manifest watcher. Default true. Without ffmpeg the demo runs without it
   * (a warning, and the tab says so).
   */
  live?: boolean;
  /** The ffmpeg command for the live stream. Default PEERFETCH_FFMPEG, else `ffmpeg`. */
  ffmpeg?: string;
}

/** A running demo. */
export interface RunningDemo {
  /** The page for the first viewer, e.g. `http://127.0.0.1:8080/`. */
  url: string;
  /** The same page on another loopback address: another origin, so its own storage and SW. */
  secondViewerUrl?: string;
  /** Every address the page is served on, the first one first: one viewer each (own origin, own storage). */
  viewerUrls: string[];
  trackerUrl: string;
  /** UDP port of the tracker's STUN service, undefined when it is off. */
  stunPort: number | undefined;
  origin: OriginServer;
  /** The headless viewers, once any was started (with `viewers` or the page's button). */
  readonly headless: HeadlessViewers | undefined;
  /** URL of the endpoint the page's "headless viewer" button POSTs to; undefined without Chromium. */
  viewerControlUrl?: string;
  /** The live stream of the live tab, when it started. */
  live?: DemoLiveSource;
  /** Things the person starting the demo should know (missing build, skipped files, no ffmpeg). */
  warnings: string[];
  close(): Promise<void>;
}

/**
 * Loopback addresses the demo listens on besides 127.0.0.1, one viewer each: distinct origins,
 * so each has its own SW and IndexedDB (docs/contributing.md, "Chromium"). Linux routes all of 127/8 to loopback; 8
 * viewers are as many as a person arranges on one screen.
 */
const EXTRA_VIEWER_HOSTS = ['127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5', '127.0.0.6', '127.0.0.7', '127.0.0.8'];
const TRACKER_ATTRIBUTE = /data-tracker="[^"]*"/;
/**
 * Piece size of the demo manifest, in bytes: 64 KiB instead of the 256 KiB default, so the
 * 1.5 MB film has 24 pieces (a piece map worth looking at) and each ~110 KB HLS segment two;
 * small pieces also let a new viewer take more of the film from peers before its player needs it.
 */
const DEMO_PIECE_SIZE = 64 * 1024;
/** URL path of hls.js on the demo site; the file comes from node_modules (a development dependency). */
const HLS_SCRIPT_PATH = '/vendor/hls.js';
/** URL path of the page's settings: viewer addresses and headless viewers. */
const DEMO_CONFIG_PATH = '/demo-config.json';

/** hls.js's light build (no subtitles, alternate audio or DRM: the demo film has none), if installed. */
function hlsScriptFile(): string | undefined {
  try {
    return createRequire(path.join(packageRoot(), 'package.json')).resolve('hls.js/dist/hls.light.min.js');
  } catch {
    return undefined;
  }
}

/**
 * Writes the manifest of demo/media only when it changed, through a rename, so a running page
 * never reads half a file; returns it.
 */
async function refreshManifest(dir: string, warnings: string[]): Promise<ManifestJson> {
  const { manifest, warnings: skipped } = await buildManifest(path.join(dir, 'media'), { baseUrl: '/media/', pieceSize: DEMO_PIECE_SIZE });
  warnings.push(...skipped.map((warning) => `demo/media: ${warning}`));
  const file = path.join(dir, MANIFEST_FILE_NAME);
  const text = `${JSON.stringify(manifest, null, 2)}\n`;
  const current = await readFile(file, 'utf8').catch(() => undefined);
  if (current === text) return manifest;
  const temporary = `${file}.${process.pid}.tmp`;
  await writeFile(temporary, text);
  await rename(temporary, file);
  return manifest;
}

/**
 * The site's manifest: demo/media's, plus the live stream's current window and live section.
 * Read per request from the watcher, which updates it before it publishes a playlist, so a page
 * never sees a playlist naming a segment this manifest does not list yet.
 */
function siteManifest(media: ManifestJson, live: DemoLiveSource | undefined): ManifestJson {
  if (!live) return media;
  const stream = live.manifest();
  return { ...media, assets: [...media.assets, ...stream.assets], live: stream.live, ...(stream.refreshMs ? { refreshMs: stream.refreshMs } : {}) };
}

/** A UDP port free on `host` right now (the system picks it), for a service that must not fail on a taken one. */
function freeUdpPort(host: string): Promise<number> {
  const socket = createSocket(host.includes(':') ? 'udp6' : 'udp4');
  return new Promise((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(0, host, () => {
      const { port } = socket.address();
      socket.close(() => resolve(port));
    });
  });
}

/**
 * The demo's tracker. Its STUN port (UDP 3478 by default) is often taken on a developer's machine
 * (coturn, another tracker, a TURN server of a video-call tool): the demo then runs its STUN
 * service on a free port and says so in `warnings`, instead of failing to start. Pages learn the
 * port from the tracker's announce replies, so any port works for them.
 */
async function startDemoTracker(host: string, port: number, stunPort: number | undefined, warnings: string[]): Promise<RunningTracker> {
  const start = (stun: number | undefined) =>
    startTracker({ port, host, ...(stun === undefined ? {} : { stunPort: stun }), logger: createJsonLogger((line) => process.stderr.write(line), 'warn') });
  const wanted = stunPort ?? (port === 0 ? undefined : DEFAULT_STUN_PORT);
  try {
    return await start(wanted);
  } catch (error) {
    // Only the STUN socket binds UDP (`bind`); a taken tracker port fails in `listen` and is the caller's to report.
    const { code, syscall, port: failedPort } = error as NodeJS.ErrnoException & { port?: number };
    if (wanted === undefined || code !== 'EADDRINUSE' || syscall !== 'bind' || failedPort !== wanted) throw error;
  }
  const tracker = await start(await freeUdpPort(host));
  warnings.push(`UDP port ${wanted} (STUN) is already in use on ${host}: the tracker's STUN service answers on UDP port ${tracker.stunPort} instead`);
  return tracker;
}

function isWildcard(host: string): boolean {
  return host === '0.0.0.0' || host === '::';
}

/**
 * Starts the demo: tracker, origin and page. Resolves once both listen.
 *
 * @example
 * const demo = await startDemo({ port: 0, trackerPort: 0 });
 * console.log(demo.url);
 * await demo.close();
 */
export async function startDemo(options: DemoOptions = {}): Promise<RunningDemo> {
  const dir = options.dir ?? path.join(packageRoot(), 'demo');
  const host = options.host ?? '127.0.0.1';
  const viewers = options.viewers ?? 0;
  if (!Number.isInteger(viewers) || viewers < 0 || viewers > MAX_HEADLESS_VIEWERS) {
    throw new PeerfetchError('option-invalid', `viewers must be an integer from 0 to ${MAX_HEADLESS_VIEWERS}, not ${viewers}`);
  }
  const warnings: string[] = [];
  const files: Record<string, string> = peerfetchScriptFiles();
  for (const script of ['/peerfetch.js', '/peerfetch-sw.js']) {
    if (!existsSync(files[script]!)) warnings.push(`${files[script]} is missing: run npm run build (the page plays without peerfetch meanwhile)`);
  }
  const hls = hlsScriptFile();
  if (hls) files[HLS_SCRIPT_PATH] = hls;
  else warnings.push('hls.js is not installed (npm install): the page offers the MP4 only');
  const mediaManifest = await refreshManifest(dir, warnings);
  let live: DemoLiveSource | undefined;
  let liveProblem: string | undefined;
  if (options.live ?? true) {
    try {
      live = await startDemoLiveSource({ ffmpeg: options.ffmpeg ?? process.env.PEERFETCH_FFMPEG ?? 'ffmpeg', pieceSize: DEMO_PIECE_SIZE });
    } catch (error) {
      liveProblem = (error as Error).message;
      warnings.push(`no live stream: ${liveProblem} (the live tab says so; the other tabs work)`);
    }
  } else {
    liveProblem = 'the demo was started without its live stream';
  }

  let tracker: RunningTracker;
  try {
    tracker = await startDemoTracker(host, options.trackerPort ?? 8000, options.stunPort, warnings);
  } catch (error) {
    await live?.stop();
    throw error;
  }
  const pageTemplate = await readFile(path.join(dir, 'index.html'), 'utf8');
  /** The hostname the browser used to reach us (the page's tracker and links follow it behind a wildcard address). */
  const requestHostname = (request: IncomingMessage) => new URL(`http://${request.headers.host ?? '127.0.0.1'}`).hostname;
  // The page names the tracker; behind a wildcard address, the one the browser used to reach us.
  const page = (request: IncomingMessage) => {
    const trackerUrl = isWildcard(host) ? `ws://${requestHostname(request)}:${tracker.port}` : tracker.url;
    return {
      body: pageTemplate.replace(TRACKER_ATTRIBUTE, `data-tracker="${trackerUrl}"`),
      contentType: 'text/html; charset=utf-8',
    };
  };
  let viewerUrls: string[] = [];
  let headless: HeadlessViewers | undefined;
  let control: ViewerControl | undefined;
  const config = (request: IncomingMessage) => ({
    body: JSON.stringify({
      viewers: isWildcard(host) ? [`http://${requestHostname(request)}:${origin.port}/`] : viewerUrls,
      headlessViewers: headless?.count ?? 0,
      headless: control ? { url: control.url, max: MAX_HEADLESS_VIEWERS } : undefined,
      // The live tab plays this playlist, or says why there is none.
      live: live && !live.problem ? { playlist: DEMO_LIVE_PLAYLIST } : { unavailable: live?.problem ?? liveProblem },
    }),
    contentType: 'application/json; charset=utf-8',
  });

  const originOptions = {
    root: dir,
    port: options.port ?? 8080,
    bytesPerSecond: options.bytesPerSecond,
    files,
    folders: live ? { [DEMO_LIVE_PREFIX]: live.folder } : undefined,
    pages: {
      '/': page,
      '/index.html': page,
      [DEMO_CONFIG_PATH]: config,
      [`/${MANIFEST_FILE_NAME}`]: () => ({ body: JSON.stringify(siteManifest(mediaManifest, live)), contentType: 'application/json; charset=utf-8' }),
    },
  };
  let origin: OriginServer;
  let hosts = [host];
  try {
    if (host === '127.0.0.1') {
      try {
        origin = await startOriginServer({ ...originOptions, host: [host, ...EXTRA_VIEWER_HOSTS] });
        hosts = [host, ...EXTRA_VIEWER_HOSTS];
      } catch (error) {
        // Some systems (macOS) only configure 127.0.0.1 on loopback: run without the other addresses.
        if ((error as NodeJS.ErrnoException).code !== 'EADDRNOTAVAIL') throw error;
        origin = await startOriginServer({ ...originOptions, host });
      }
    } else {
      origin = await startOriginServer({ ...originOptions, host });
    }
  } catch (error) {
    await Promise.all([tracker.close(), live?.stop()]);
    throw error;
  }
  viewerUrls = isWildcard(host) ? [`${origin.url}/`] : hosts.map((name) => `http://${name}:${origin.port}/`);

  const chromium = findChromium();
  let launching: Promise<HeadlessViewers> | undefined;
  let adding: Promise<unknown> = Promise.resolve();
  /** Starts one more headless viewer (Chromium is launched on first use); one at a time, so the maximum holds. */
  const addHeadless = (): Promise<number> => {
    const next = adding.then(async () => {
      launching ??= launchHeadlessViewers(chromium!);
      headless = await launching;
      // Spread over the addresses after the first, the one a person opens first.
      await headless.add(viewerUrls[(headless.count + 1) % viewerUrls.length]!);
      return headless.count;
    });
    adding = next.catch(() => {});
    return next;
  };

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      await control?.close();
      // Viewers first, so they leave the swarm while the tracker still answers.
      await launching?.then((viewers) => viewers.close(), () => {});
      await Promise.all([origin.close(), tracker.close(), live?.stop()]);
    })();
    return closing;
  };
  try {
    if (chromium && !isWildcard(host)) {
      const origins = viewerUrls.map((url) => new URL(url).origin);
      control = await serveViewerControl({ host, allowedOrigins: () => origins, add: addHeadless });
    }
    if (viewers > 0 && !chromium) {
      warnings.push('no Chromium found (set PEERFETCH_CHROMIUM or install chromium): no headless viewers started');
    }
    for (let index = 0; chromium && index < viewers; index++) await addHeadless();
  } catch (error) {
    await close();
    throw error;
  }

  return {
    url: `${origin.url}/`,
    secondViewerUrl: viewerUrls[1],
    viewerUrls,
    trackerUrl: tracker.url,
    stunPort: tracker.stunPort,
    origin,
    get headless() {
      return headless;
    },
    viewerControlUrl: control?.url,
    live,
    warnings,
    close,
  };
}

/**
 * Default bandwidth cap of each demo origin connection, in kB/s: about three times the demo
 * video's 400 kbit/s. Unthrottled, the first viewer's player pulls the whole 1.5 MB file in one
 * go and a second viewer's does too, before any peer connection is up, so the demo would show
 * no offload; capped like a real CDN edge, pieces ahead of the playhead come from peers
 * (measured: second viewer ≈ 48 % from its peer at 150 kB/s, 0 % uncapped).
 */
export const DEFAULT_DEMO_RATE_KBPS = 150;

const DEMO_USAGE = `Usage: peerfetch demo [--port 8080] [--host 127.0.0.1] [--tracker-port 8000] [--stun-port 3478] [--rate KBPS] [--viewers N]
  --stun-port N UDP port of the tracker's STUN service (default 3478; taken: a free one, with a
                warning; 0: off)
  --rate KBPS   cap each origin connection at KBPS kilobytes per second, like a CDN edge
                (default ${DEFAULT_DEMO_RATE_KBPS}; 0: no cap)
  --viewers N   also start N headless viewers (at most ${MAX_HEADLESS_VIEWERS}), each its own browser context,
                in Chromium (PEERFETCH_CHROMIUM or /usr/bin/chromium); they stop with the demo
`;

const DEMO_OPTIONS = {
  port: { type: 'string' },
  host: { type: 'string' },
  'tracker-port': { type: 'string' },
  'stun-port': { type: 'string' },
  rate: { type: 'string' },
  viewers: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** `peerfetch demo ...`: starts the demo, prints where to look, stops on SIGTERM/SIGINT. */
export async function runDemoCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: joinNegativeValues(argv, DEMO_OPTIONS),
    options: DEMO_OPTIONS,
  });
  if (values.help) {
    process.stdout.write(DEMO_USAGE);
    return 0;
  }
  const viewers = values.viewers === undefined ? 0 : Number(values.viewers);
  if (!/^\d+$/.test(values.viewers ?? '0') || viewers > MAX_HEADLESS_VIEWERS) {
    throw new PeerfetchError('option-invalid', `--viewers must be a number from 0 to ${MAX_HEADLESS_VIEWERS}, not "${values.viewers}"`);
  }
  const options: DemoOptions = {
    port: parsePort(values.port, 8080, '--port'),
    host: values.host ?? '127.0.0.1',
    trackerPort: parsePort(values['tracker-port'], 8000, '--tracker-port'),
    ...(values['stun-port'] === undefined ? {} : { stunPort: parsePort(values['stun-port'], DEFAULT_STUN_PORT, '--stun-port') }),
    bytesPerSecond: parseRate(values.rate ?? String(DEFAULT_DEMO_RATE_KBPS)),
    viewers,
  };
  let demo: RunningDemo;
  try {
    demo = await startDemo(options);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') {
      throw new Error(`a port is already in use (${(error as Error).message}); pick others with --port and --tracker-port`);
    }
    throw error;
  }
  for (const warning of demo.warnings) process.stderr.write(`peerfetch demo: warning: ${warning}\n`);
  const cap = options.bytesPerSecond ? `capped at ${options.bytesPerSecond / 1000} kB/s per connection (--rate)` : 'no bandwidth cap';
  const [, second, ...more] = demo.viewerUrls;
  process.stdout.write(
    [
      `peerfetch demo listening on ${demo.url}`,
      '',
      `  open         ${demo.url}`,
      second ? `  2nd viewer   ${second}  (another origin: its own storage, a separate peer)` : undefined,
      more.length > 0 ? `  more         ${more[0]} ... ${more.at(-1)}  (or the page's "Open another viewer" button)` : undefined,
      demo.headless ? `  headless     ${demo.headless.count} viewer${demo.headless.count === 1 ? '' : 's'} in Chromium (--viewers)` : undefined,
      `  tracker      ${demo.trackerUrl}${demo.stunPort === undefined ? '' : `  (STUN on UDP port ${demo.stunPort})`}`,
      `  origin       ${cap}, byte counts at ${demo.origin.url}${ORIGIN_STATS_PATH}`,
      demo.live ? `  live         ${demo.url}#live  (ffmpeg in real time, 2 s segments, a window of 6)` : undefined,
      '',
      'Play the film in one viewer, then open the next: its offload ratio rises as it takes pieces from',
      `the first. Headless viewers too: npm start -- --viewers N (at most ${MAX_HEADLESS_VIEWERS}, needs Chromium).`,
      '',
      'Press Ctrl+C to stop.',
      '',
    ]
      .filter((line) => line !== undefined)
      .join('\n'),
  );
  await untilSignal();
  await demo.close();
  return 0;
}
