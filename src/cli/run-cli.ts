/**
 * `peerfetch <command>`: a thin shell over library calls. Each command parses its own flags with
 * node:util parseArgs. Usage errors exit 2, the command's own failures exit 1 with one clear line
 * on stderr, never a stack trace.
 */
import { existsSync } from 'node:fs';
import { rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { joinNegativeValues } from '../shared/command-line.js';
import { PeerfetchError } from '../shared/errors.js';
import { MANIFEST_FILE_NAME, buildManifest, checkIgnoreQuery, checkPieceSize, parseSize, urlMaker, type ManifestProgress } from './build-manifest.js';
import { watchManifest, type WatchManifestOptions } from './live-manifest.js';
import { wantsCatalog, writeCatalog, type CatalogMode } from './catalog-writer.js';
import {
  EXIT_FAILURE,
  EXIT_USAGE,
  formatBytes,
  packageRoot,
  isUsageError,
  packageVersion,
  parsePort,
  parseRate,
  peerfetchScriptFiles,
  untilSignal,
} from './cli-support.js';
import { loadManifestReuse, saveManifestReuse } from './manifest-cache.js';
import { startOriginServer } from './origin-server.js';

const USAGE_HEAD = `Usage: peerfetch <command> [options]   (peerfetch <command> --help: that command's options)

Commands:
  manifest <dir>   Hash the video and audio of <dir> (the site root) into peerfetch-manifest.json.
  tracker          Run the signaling tracker.
`;

const MANIFEST_USAGE = `Usage: peerfetch manifest <dir> [options]

Hash the video, audio and media segment files of <dir> (the site root) into
peerfetch-manifest.json. Files unchanged since the
last run over the same folder keep their hashes (fingerprints in $XDG_CACHE_HOME/peerfetch, else
~/.cache/peerfetch), so re-publishing a large library after adding a file reads only that file.

  --out FILE        where to write it (default <dir>/peerfetch-manifest.json)
  --piece-size N    piece size: bytes or B, KB, KiB, MB, MiB (default 256KiB, 16KiB-16MiB)
  --base-url URL    where <dir> is served from, when not the site root: an absolute
                    http(s) URL (a CDN folder) or a path such as /static/
  --all-files       list every file (images, fonts, archives), not only video and audio
  --ignore-query NAMES  query parameters of signed URLs, comma-separated (e.g.
                    token,expires): pages and workers match assets whatever their values
  --catalog MODE    auto (default): a manifest over 64 KiB is written as a catalog in
                    peerfetch-catalog/ beside it (shards and per-file piece lists that
                    workers load when a file is first requested); on: always; off: never
  --watch           keep running and keep the manifest current (a live stream's packager)
  --progress        show progress on stderr (default: only when stderr is a terminal)
  --no-progress     never show progress
  --rehash          hash every file again, ignoring the fingerprints of the last run
`;

const ORIGIN_USAGE = `Usage: peerfetch origin <dir> [options]

Serve <dir> as a static origin with Range support and byte counters
(GET /__peerfetch/origin-stats). /peerfetch.js and /peerfetch-sw.js come from this package's
dist/ unless <dir> has its own.

  --port N            TCP port, 0-65535 (default 0: any free port)
  --host ADDR         address to bind (default 127.0.0.1)
  --rate KBPS         cap per connection, in kilobytes per second (default 0: no cap)
  --file /URL=FILE    serve FILE at /URL (repeatable)
  --require-query NAME=VALUE  answer 403 to media requests whose query lacks NAME=VALUE,
                      like a CDN that checks signed URLs
`;

/** Only in a clone of the repository: the npm package leaves out the demo's page and media (3 MB). */
const USAGE_DEMO = `  demo             Serve the demo site with its tracker; prints the URLs to open.
`;

const USAGE_TAIL = `  origin <dir>     Serve <dir> as a static origin with Range support and byte counters.

  peerfetch --help | --version
`;

/** Whether the demo's page and media are there (a clone of the repository, not the npm package). */
export function demoAvailable(): boolean {
  return existsSync(path.join(packageRoot(), 'demo', 'index.html'));
}

/** `peerfetch --help`: the demo is listed only where it can run. */
export function usage(): string {
  return USAGE_HEAD + (demoAvailable() ? USAGE_DEMO : '') + USAGE_TAIL;
}

type Print = (text: string) => void;
const out: Print = (text) => process.stdout.write(text);
const err: Print = (text) => process.stderr.write(text);

/** Least time (ms) between two progress lines: often enough to see it move, rarely enough to cost nothing. */
const PROGRESS_INTERVAL_MS = 250;

/** Runs `parse`, turning its option-invalid error into one that names `flag`. */
function forFlag<T>(flag: string, parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    if (error instanceof PeerfetchError && error.code === 'option-invalid') {
      throw new PeerfetchError('option-invalid', `${flag}: ${error.message}`, { ...error.details, flag });
    }
    throw error;
  }
}

const MANIFEST_OPTIONS = {
  out: { type: 'string', short: 'o' },
  'piece-size': { type: 'string' },
  'base-url': { type: 'string' },
  'all-files': { type: 'boolean' },
  'ignore-query': { type: 'string' },
  catalog: { type: 'string' },
  watch: { type: 'boolean' },
  progress: { type: 'boolean' },
  rehash: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** The `--catalog` mode; throws `option-invalid` for anything else. */
function checkCatalogMode(value: string | undefined): CatalogMode {
  if (value === undefined || value === 'auto' || value === 'on' || value === 'off') return value ?? 'auto';
  throw new PeerfetchError('option-invalid', `invalid catalog mode "${value}": use auto, on or off`, { catalog: value });
}

/** `peerfetch manifest <dir> ...` */
async function manifestCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: joinNegativeValues(argv, MANIFEST_OPTIONS),
    allowPositionals: true,
    allowNegative: true,
    options: MANIFEST_OPTIONS,
  });
  if (values.help) {
    out(MANIFEST_USAGE);
    return 0;
  }
  if (positionals.length !== 1) {
    throw new PeerfetchError('option-invalid', 'peerfetch manifest needs exactly one folder: peerfetch manifest <dir>');
  }
  const dir = positionals[0]!;
  const outFile = path.resolve(values.out ?? path.join(dir, MANIFEST_FILE_NAME));
  const pieceSize = values['piece-size'] === undefined ? undefined : forFlag('--piece-size', () => {
    const size = parseSize(values['piece-size']!);
    checkPieceSize(size);
    return size;
  });
  const baseUrl = values['base-url'];
  forFlag('--base-url', () => urlMaker(baseUrl));
  const allFiles = values['all-files'] ?? false;
  const ignoreQuery = values['ignore-query']?.split(',').map((name) => name.trim()).filter(Boolean);
  if (ignoreQuery) forFlag('--ignore-query', () => checkIgnoreQuery(ignoreQuery));
  const catalog = forFlag('--catalog', () => checkCatalogMode(values.catalog));
  if (values.watch) return watchCommand(dir, { pieceSize, baseUrl, outFile, allFiles, ignoreQuery, catalog });

  const showProgress = values.progress ?? process.stderr.isTTY === true;
  let lastProgressAt = 0;
  let progressShown = false;
  const onProgress = (progress: ManifestProgress) => {
    const now = Date.now();
    if (progress.files < progress.totalFiles && now - lastProgressAt < PROGRESS_INTERVAL_MS) return;
    lastProgressAt = now;
    progressShown = true;
    const line = `peerfetch manifest: ${progress.files}/${progress.totalFiles} files, ${formatBytes(progress.bytes)} of ${formatBytes(progress.totalBytes)}` +
      `${progress.reused > 0 ? ` (${progress.reused} unchanged, not read again)` : ''}`;
    // On a terminal one line updates in place; piped, each update is its own line.
    err(process.stderr.isTTY ? `\r${line}\x1b[K` : `${line}\n`);
  };
  const reuse = values.rehash ? undefined : await loadManifestReuse(outFile);
  const { manifest, warnings, fingerprints, reused } = await buildManifest(dir, { pieceSize, baseUrl, outFile, allFiles, ignoreQuery, reuse, onProgress: showProgress ? onProgress : undefined });
  if (progressShown && process.stderr.isTTY) err('\n');
  for (const warning of warnings) err(`peerfetch manifest: warning: ${warning}\n`);
  const written = wantsCatalog(manifest, catalog) ? await writeCatalog(manifest, outFile) : manifest;
  const text = `${JSON.stringify(written, null, 2)}\n`;
  // Write beside the target and rename, so a server never serves a half-written manifest.
  const temporary = `${outFile}.${process.pid}.tmp`;
  try {
    await writeFile(temporary, text);
    await rename(temporary, outFile);
  } catch (error) {
    throw new Error(`cannot write ${outFile} (${(error as NodeJS.ErrnoException).code ?? String(error)})`);
  }
  await saveManifestReuse(outFile, text, fingerprints);
  const bytes = manifest.assets.reduce((sum, asset) => sum + asset.size, 0);
  const pieces = manifest.assets.reduce((sum, asset) => sum + asset.pieces.length, 0);
  const size = manifest.assets[0]?.pieceSize ?? pieceSize ?? 0;
  err(
    `peerfetch manifest: ${manifest.assets.length} asset${manifest.assets.length === 1 ? '' : 's'}, ` +
      `${formatBytes(bytes)} in ${pieces} piece${pieces === 1 ? '' : 's'} of ${formatBytes(size)}` +
      `${reused > 0 ? `, ${reused} unchanged since the last run` : ''} -> ${outFile}` +
      `${written.catalog ? ` (a catalog of ${written.catalog.count} shard${written.catalog.count === 1 ? '' : 's'} in ${path.join(path.dirname(outFile), written.catalog.shards)})` : ''}\n`,
  );
  return 0;
}

/** `peerfetch manifest <dir> --watch`: keeps the manifest current until SIGTERM/SIGINT. */
async function watchCommand(dir: string, options: WatchManifestOptions): Promise<number> {
  let lastSummary = '';
  const watcher = await watchManifest(dir, {
    ...options,
    onWarning: (warning) => err(`peerfetch manifest: warning: ${warning}\n`),
    onUpdate: ({ manifest, published }) => {
      const live = manifest.live?.length ?? 0;
      const summary = `${manifest.assets.length} asset${manifest.assets.length === 1 ? '' : 's'}, ${live} live stream${live === 1 ? '' : 's'}`;
      // One line per change worth reading: the asset count, and each playlist published after the manifest.
      if (summary !== lastSummary || published.length > 0) err(`peerfetch manifest: ${summary}${published.length > 0 ? `, published ${published.join(', ')}` : ''}\n`);
      lastSummary = summary;
    },
  });
  out(`peerfetch manifest: watching ${dir} -> ${options.outFile}\n`);
  await untilSignal();
  await watcher.stop();
  return 0;
}

const ORIGIN_OPTIONS = {
  port: { type: 'string' },
  host: { type: 'string' },
  rate: { type: 'string' },
  file: { type: 'string', multiple: true },
  'require-query': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** `peerfetch origin <dir> ...`: serves until SIGTERM/SIGINT. */
async function originCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: joinNegativeValues(argv, ORIGIN_OPTIONS),
    allowPositionals: true,
    options: ORIGIN_OPTIONS,
  });
  if (values.help) {
    out(ORIGIN_USAGE);
    return 0;
  }
  if (positionals.length !== 1) {
    throw new PeerfetchError('option-invalid', 'peerfetch origin needs exactly one folder: peerfetch origin <dir>');
  }
  const root = positionals[0]!;
  const files: Record<string, string> = {};
  // The site's own copies of the scripts win over the package's.
  for (const [urlPath, file] of Object.entries(peerfetchScriptFiles())) {
    if (!existsSync(path.join(root, urlPath))) files[urlPath] = file;
  }
  for (const mapping of values.file ?? []) {
    const equals = mapping.indexOf('=');
    if (!mapping.startsWith('/') || equals < 2 || equals === mapping.length - 1) {
      throw new PeerfetchError('option-invalid', `--file must look like /URL/PATH=FILE, not "${mapping}"`);
    }
    files[mapping.slice(0, equals)] = path.resolve(mapping.slice(equals + 1));
  }
  let requireQuery: { name: string; value: string } | undefined;
  const required = values['require-query'];
  if (required !== undefined) {
    const equals = required.indexOf('=');
    if (equals < 1 || equals === required.length - 1) {
      throw new PeerfetchError('option-invalid', `--require-query must look like NAME=VALUE, not "${required}"`);
    }
    requireQuery = { name: required.slice(0, equals), value: required.slice(equals + 1) };
  }
  let origin;
  try {
    origin = await startOriginServer({
      requireQuery,
      root,
      port: parsePort(values.port, 0, '--port'),
      host: values.host ?? '127.0.0.1',
      bytesPerSecond: parseRate(values.rate),
      files,
    });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') throw new Error(`${root} is not a folder`);
    if (code === 'EADDRINUSE') throw new Error(`port ${values.port} is already in use`);
    throw error;
  }
  out(`peerfetch origin listening on ${origin.url}\n`);
  await untilSignal();
  await origin.close();
  return 0;
}

async function trackerCommand(argv: string[]): Promise<number> {
  // Loaded on demand: `peerfetch manifest` should not load the WebSocket server.
  const { runTrackerCommand } = await import('../tracker/cli.js');
  await runTrackerCommand(argv);
  return typeof process.exitCode === 'number' ? process.exitCode : 0;
}

async function demoCommand(argv: string[]): Promise<number> {
  const { runDemoCommand } = await import('./demo.js');
  return runDemoCommand(argv);
}

const COMMANDS: Record<string, (argv: string[]) => Promise<number>> = {
  manifest: manifestCommand,
  tracker: trackerCommand,
  demo: demoCommand,
  origin: originCommand,
};

/**
 * Runs `peerfetch` with `argv` (without `node` and the script) and resolves with the exit code.
 * Long-running commands (tracker, demo, origin) resolve after SIGTERM or SIGINT.
 *
 * @example
 * process.exitCode = await runCli(process.argv.slice(2));
 */
export async function runCli(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    (command === undefined ? err : out)(usage());
    return command === undefined ? EXIT_USAGE : 0;
  }
  if (command === '--version' || command === '-v') {
    out(`${packageVersion()}\n`);
    return 0;
  }
  if (command === 'demo' && !demoAvailable()) {
    err('peerfetch demo: the demo (its page and media) comes with a clone of the peerfetch repository, not with the npm package: run `npm install && npm start` in a clone\n');
    return EXIT_USAGE;
  }
  const run = COMMANDS[command];
  if (!run) {
    err(`peerfetch: unknown command "${command}"\n\n${usage()}`);
    return EXIT_USAGE;
  }
  try {
    return await run(rest);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    if (isUsageError(error)) {
      err(`peerfetch ${command}: ${message}\nRun peerfetch --help for usage.\n`);
      return EXIT_USAGE;
    }
    err(`peerfetch ${command}: ${message}\n`);
    return EXIT_FAILURE;
  }
}
