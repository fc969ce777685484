/**
 * `peerfetch demo`: the tracker, and an origin serving demo/ with the peerfetch scripts, a fresh
 * manifest of demo/media and the page with the tracker URL filled in. Everything on loopback.
 */
import { existsSync } from 'node:fs';
import { readFile, rename, writeFile } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { createJsonLogger, startTracker } from '../tracker/index.js';
import { MANIFEST_FILE_NAME, buildManifest } from './build-manifest.js';
import { packageRoot, parsePort, parseRate, peerfetchScriptFiles, untilSignal } from './cli-support.js';
import { ORIGIN_STATS_PATH, startOriginServer, type OriginServer } from './origin-server.js';

/** Options of {@link startDemo}. */
export interface DemoOptions {
  /** Port of the demo site. Default 8080; 0 picks a free one. */
  port?: number;
  /** Address of the site and the tracker. Default 127.0.0.1 (then 127.0.0.2 serves a second viewer). */
  host?: string;
  /** Port of the tracker. Default 8000; 0 picks a free one. */
  trackerPort?: number;
  /** Bandwidth cap of each origin connection in bytes per second. Default: none (the command's default is DEFAULT_DEMO_RATE_KBPS). */
  bytesPerSecond?: number;
  /** The demo site folder. Default: demo/ of this package. */
  dir?: string;
}

/** A running demo. */
export interface RunningDemo {
  /** The page for the first viewer, e.g. `http://127.0.0.1:8080/`. */
  url: string;
  /** The same page on another loopback address: another origin, so its own storage and SW. */
  secondViewerUrl?: string;
  trackerUrl: string;
  origin: OriginServer;
  /** Things the person starting the demo should know (missing build, skipped files). */
  warnings: string[];
  close(): Promise<void>;
}

/** Loopback address of the second viewer: a distinct origin with its own SW and IndexedDB (TESTING.md). */
const SECOND_VIEWER_HOST = '127.0.0.2';
const TRACKER_ATTRIBUTE = /data-tracker="[^"]*"/;

/** Writes the manifest only when it changed, through a rename, so a running page never reads half a file. */
async function refreshManifest(dir: string, warnings: string[]): Promise<void> {
  const { manifest, warnings: skipped } = await buildManifest(path.join(dir, 'media'), { baseUrl: '/media/' });
  warnings.push(...skipped.map((warning) => `demo/media: ${warning}`));
  const file = path.join(dir, MANIFEST_FILE_NAME);
  const text = `${JSON.stringify(manifest, null, 2)}\n`;
  const current = await readFile(file, 'utf8').catch(() => undefined);
  if (current === text) return;
  const temporary = `${file}.${process.pid}.tmp`;
  await writeFile(temporary, text);
  await rename(temporary, file);
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
  const warnings: string[] = [];
  const scripts = peerfetchScriptFiles();
  for (const script of ['/peerfetch.js', '/peerfetch-sw.js']) {
    if (!existsSync(scripts[script]!)) warnings.push(`${scripts[script]} is missing: run npm run build (the page plays without peerfetch meanwhile)`);
  }
  await refreshManifest(dir, warnings);

  const tracker = await startTracker({
    port: options.trackerPort ?? 8000,
    host,
    logger: createJsonLogger((line) => process.stderr.write(line), 'warn'),
  });
  const pageTemplate = await readFile(path.join(dir, 'index.html'), 'utf8');
  // The page names the tracker; behind a wildcard address, the one the browser used to reach us.
  const page = (request: IncomingMessage) => {
    let trackerUrl = tracker.url;
    if (isWildcard(host)) {
      const hostname = new URL(`http://${request.headers.host ?? '127.0.0.1'}`).hostname;
      trackerUrl = `ws://${hostname}:${tracker.port}`;
    }
    return {
      body: pageTemplate.replace(TRACKER_ATTRIBUTE, `data-tracker="${trackerUrl}"`),
      contentType: 'text/html; charset=utf-8',
    };
  };

  const originOptions = {
    root: dir,
    port: options.port ?? 8080,
    bytesPerSecond: options.bytesPerSecond,
    files: scripts,
    pages: { '/': page, '/index.html': page },
  };
  let origin: OriginServer;
  let secondViewerUrl: string | undefined;
  try {
    if (host === '127.0.0.1') {
      try {
        origin = await startOriginServer({ ...originOptions, host: [host, SECOND_VIEWER_HOST] });
        secondViewerUrl = `http://${SECOND_VIEWER_HOST}:${origin.port}/`;
      } catch (error) {
        // Some systems only configure 127.0.0.1 on loopback: run without the second address.
        if ((error as NodeJS.ErrnoException).code !== 'EADDRNOTAVAIL') throw error;
        origin = await startOriginServer({ ...originOptions, host });
      }
    } else {
      origin = await startOriginServer({ ...originOptions, host });
    }
  } catch (error) {
    await tracker.close();
    throw error;
  }

  let closing: Promise<void> | undefined;
  return {
    url: `${origin.url}/`,
    secondViewerUrl,
    trackerUrl: tracker.url,
    origin,
    warnings,
    close: () => {
      closing ??= Promise.all([origin.close(), tracker.close()]).then(() => undefined);
      return closing;
    },
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

const DEMO_USAGE = `Usage: peerfetch demo [--port 8080] [--host 127.0.0.1] [--tracker-port 8000] [--rate KBPS]
  --rate KBPS   cap each origin connection at KBPS kilobytes per second, like a CDN edge
                (default ${DEFAULT_DEMO_RATE_KBPS}; 0: no cap)
`;

/** `peerfetch demo ...`: starts the demo, prints where to look, stops on SIGTERM/SIGINT. */
export async function runDemoCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      port: { type: 'string' },
      host: { type: 'string' },
      'tracker-port': { type: 'string' },
      rate: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(DEMO_USAGE);
    return 0;
  }
  const options: DemoOptions = {
    port: parsePort(values.port, 8080, '--port'),
    host: values.host ?? '127.0.0.1',
    trackerPort: parsePort(values['tracker-port'], 8000, '--tracker-port'),
    bytesPerSecond: parseRate(values.rate ?? String(DEFAULT_DEMO_RATE_KBPS)),
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
  process.stdout.write(
    [
      `peerfetch demo listening on ${demo.url}`,
      '',
      `  open         ${demo.url}`,
      demo.secondViewerUrl ? `  2nd viewer   ${demo.secondViewerUrl}  (another origin: its own storage, a separate peer)` : '',
      `  tracker      ${demo.trackerUrl}`,
      `  origin       ${cap}, byte counts at ${demo.origin.url}${ORIGIN_STATS_PATH}`,
      '',
      'Press Ctrl+C to stop.',
      '',
    ]
      .filter((line, index, lines) => line !== '' || lines[index - 1] !== '')
      .join('\n'),
  );
  await untilSignal();
  await demo.close();
  return 0;
}
