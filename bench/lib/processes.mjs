// Child processes of a benchmark run (origin, tracker): started with a readiness pattern,
// stopped by their own pid (SIGTERM, then SIGKILL), and killed on exit whatever happens.
import { spawn } from 'node:child_process';

/** Output kept per stream, in characters: enough for an error message, bounded for chatty processes. */
const MAX_CAPTURE = 200_000;
/** A cold `node` start with an import of the built CLI takes < 2 s here; 30 s only trips on a real hang. */
const READY_TIMEOUT_MS = 30_000;
/** Grace between SIGTERM and SIGKILL, in ms: our servers close in well under a second. */
const STOP_GRACE_MS = 3_000;

const live = new Set();
process.once('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

/**
 * Spawns `command args` and resolves once stdout matches `readyPattern`, with the match.
 * @returns {Promise<{ child: import('node:child_process').ChildProcess, ready: RegExpMatchArray, stderr: () => string, stop: () => Promise<void> }>}
 */
export function startProcess(command, args, { readyPattern, name = command, cwd } = {}) {
  const child = spawn(command, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(child);
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk) => {
    if (err.length < MAX_CAPTURE) err += chunk;
  });
  const exited = new Promise((resolve) => child.once('exit', () => {
    live.delete(child);
    resolve();
  }));
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
    await exited;
    clearTimeout(timer);
  };
  return new Promise((resolve, reject) => {
    let settled = false;
    const fail = (why) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      void stop();
      reject(new Error(`${name}: ${why}\n${out.slice(-2000)}\n${err.slice(-2000)}`));
    };
    const timer = setTimeout(() => fail(`not ready within ${READY_TIMEOUT_MS} ms`), READY_TIMEOUT_MS);
    child.once('error', (error) => fail(error.message));
    child.once('exit', (code, signal) => fail(`exited (${code ?? signal}) before it was ready`));
    child.stdout.on('data', (chunk) => {
      if (out.length < MAX_CAPTURE) out += chunk;
      const match = !settled && out.match(readyPattern);
      if (match) {
        settled = true;
        clearTimeout(timer);
        resolve({ child, ready: match, stderr: () => err, stop });
      }
    });
  });
}

/** Runs a command to completion; rejects with its stderr on a non-zero exit. */
export function runCommand(command, args, { cwd } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (c) => (out += c));
    child.stderr.setEncoding('utf8').on('data', (c) => (err += c));
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`${command} ${args.join(' ')} exited ${code}: ${err.trim()}`))));
  });
}

/**
 * Spawns a process that has no readiness line (ffmpeg packaging a live stream): killed on exit
 * like the others; `exited` resolves with its exit code, `stop()` ends it (SIGTERM, then SIGKILL).
 */
export function startBackground(command, args, { cwd } = {}) {
  const child = spawn(command, args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
  live.add(child);
  let err = '';
  child.stderr.setEncoding('utf8').on('data', (chunk) => {
    if (err.length < MAX_CAPTURE) err += chunk;
  });
  const exited = new Promise((resolve) => {
    child.once('error', (error) => {
      err += error.message;
      live.delete(child);
      resolve(null);
    });
    child.once('exit', (code) => {
      live.delete(child);
      resolve(code);
    });
  });
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
    await exited;
    clearTimeout(timer);
  };
  return { exited, stderr: () => err, stop };
}
