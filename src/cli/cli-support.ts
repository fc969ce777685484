/** Small pieces shared by the CLI commands: option parsing, the package root, signals. */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PeerfetchError } from '../shared/errors.js';

/** Exit codes of `peerfetch`: 1 for its own failures, 2 for usage errors. */
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

/**
 * The package folder (the one with peerfetch's package.json). Found by walking up from this
 * module, so it works from the sources (src/cli) and from the build (dist/node) alike.
 */
export function packageRoot(): string {
  let folder = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const manifest = path.join(folder, 'package.json');
    if (existsSync(manifest)) {
      const { name } = JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string };
      if (name === 'peerfetch') return folder;
    }
    const parent = path.dirname(folder);
    if (parent === folder) throw new Error('cannot find the peerfetch package folder');
    folder = parent;
  }
}

export function packageVersion(): string {
  const { version } = JSON.parse(readFileSync(path.join(packageRoot(), 'package.json'), 'utf8')) as { version: string };
  return version;
}

/** The two peerfetch scripts a site serves at its root, taken from this package's dist/. */
export function peerfetchScriptFiles(): Record<string, string> {
  const dist = path.join(packageRoot(), 'dist');
  const files: Record<string, string> = {};
  for (const name of ['peerfetch.js', 'peerfetch-sw.js']) {
    files[`/${name}`] = path.join(dist, name);
    files[`/${name}.map`] = path.join(dist, `${name}.map`);
  }
  return files;
}

function usageError(message: string, details: Record<string, unknown> = {}): PeerfetchError {
  return new PeerfetchError('option-invalid', message, details);
}

/** A TCP port: an integer 0–65535 (0 picks a free port). */
export function parsePort(text: string | undefined, fallback: number, flag: string): number {
  if (text === undefined) return fallback;
  const port = Number(text);
  if (!/^\d+$/.test(text) || port > 65535) throw usageError(`${flag} must be a port number (0-65535), not "${text}"`, { flag });
  return port;
}

/** `--rate KBPS`: kilobytes (1000 B) per second into bytes per second; 0 means no cap (undefined). */
export function parseRate(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const rate = Number(text);
  if (text.trim() === '' || !Number.isFinite(rate) || rate < 0) {
    throw usageError(`--rate must be a number of kilobytes per second (0: no cap), not "${text}"`, { flag: '--rate' });
  }
  return rate === 0 ? undefined : Math.round(rate * 1000);
}

/** True for the errors that mean "the command line is wrong" (exit 2). */
export function isUsageError(error: unknown): boolean {
  if (error instanceof PeerfetchError) return error.code === 'option-invalid';
  // node:util parseArgs reports unknown options and missing values with these codes.
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS_');
}

/** Resolves on the first SIGTERM or SIGINT (then stops listening for them). */
export function untilSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const onSignal = (signal: NodeJS.Signals): void => {
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
      resolve(signal);
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
}

/** `1.5 MiB`-style byte count for summaries. */
export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value >= 10 ? value.toFixed(0) : value.toFixed(1)} ${units[unit]}`;
}

