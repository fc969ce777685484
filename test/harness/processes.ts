import { spawn, type ChildProcess } from 'node:child_process';

/** Options of {@link startProcess}. */
export interface StartProcessOptions {
  /** First stdout match of this pattern means "ready"; its match is returned. Default: ready once spawned. */
  readyPattern?: RegExp;
  /** Extra environment variables, merged over `process.env`. */
  env?: NodeJS.ProcessEnv;
  /** Working directory. Default: the current one (the repository root under vitest). */
  cwd?: string;
  /** Milliseconds to wait for readyPattern before giving up. Default 30 000: a cold `node` start plus a build-free import takes < 2 s here, so 30 s only trips on a real hang. */
  readyTimeoutMs?: number;
  /** Short name used in error messages. Default: the command and its first argument. */
  name?: string;
}

/** A child process started by {@link startProcess}. */
export interface RunningProcess {
  /** The underlying Node child process. */
  readonly child: ChildProcess;
  /** The readyPattern match (or null when no pattern was given). */
  readonly ready: RegExpMatchArray | null;
  /** Everything the process printed on stdout so far. */
  stdout(): string;
  /** Everything the process printed on stderr so far. */
  stderr(): string;
  /** Resolves with the exit code (or signal name) once the process has exited. */
  readonly exited: Promise<number | string>;
  /** SIGTERM, then SIGKILL after `graceMs` (default 5000 ms). Idempotent; resolves once the process has exited. */
  stop(graceMs?: number): Promise<number | string>;
}

/** Output kept per stream, in characters: enough for any failure message, bounded so a chatty process cannot grow memory without limit. */
const MAX_CAPTURE_CHARS = 1_000_000;

const live = new Set<ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // A crashed test file must not leave trackers or origins running: kill what is left
  // when the vitest worker exits.
  process.once('exit', () => {
    for (const child of live) child.kill('SIGKILL');
  });
}

/**
 * Spawns a real child process and resolves once its stdout matches `readyPattern`
 * (for example the URL a server prints). Rejects, with the collected stderr, if the
 * process exits or times out before that. Stop it with `stop()` in afterAll/afterEach.
 *
 * @example
 * const tracker = await startProcess('node', ['bin/peerfetch.js', 'tracker', '--port', '0'], {
 *   readyPattern: /ws:\/\/127\.0\.0\.1:\d+/,
 * });
 * const trackerUrl = tracker.ready![0];
 * afterAll(() => tracker.stop());
 */
export function startProcess(command: string, args: readonly string[], options: StartProcessOptions = {}): Promise<RunningProcess> {
  installExitHook();
  const name = options.name ?? [command, args[0]].filter(Boolean).join(' ');
  const readyTimeoutMs = options.readyTimeoutMs ?? 30_000;
  const child = spawn(command, [...args], {
    cwd: options.cwd ?? process.cwd(),
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(child);
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8');
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (chunk: string) => {
    if (err.length < MAX_CAPTURE_CHARS) err += chunk;
  });

  const exited = new Promise<number | string>((resolve) => {
    child.once('exit', (code, signal) => {
      live.delete(child);
      resolve(code ?? signal ?? 'unknown');
    });
  });

  let stopping: Promise<number | string> | undefined;
  const stop = (graceMs = 5_000): Promise<number | string> => {
    if (stopping) return stopping;
    stopping = (async () => {
      if (child.exitCode !== null || child.signalCode !== null) return exited;
      child.kill('SIGTERM');
      let timer: NodeJS.Timeout | undefined;
      const killed = new Promise<void>((resolve) => {
        timer = setTimeout(() => {
          child.kill('SIGKILL');
          resolve();
        }, graceMs);
      });
      await Promise.race([exited, killed]);
      clearTimeout(timer);
      return exited;
    })();
    return stopping;
  };

  return new Promise<RunningProcess>((resolve, reject) => {
    let settled = false;
    const handle = (ready: RegExpMatchArray | null): RunningProcess => ({
      child,
      ready,
      stdout: () => out,
      stderr: () => err,
      exited,
      stop,
    });
    const fail = (why: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      void stop(1_000);
      reject(new Error(`${name}: ${why}\n--- stdout ---\n${out.slice(-4000)}\n--- stderr ---\n${err.slice(-4000)}`));
    };
    const timer = setTimeout(() => fail(`no output matching ${String(options.readyPattern)} within ${readyTimeoutMs} ms`), readyTimeoutMs);
    child.once('error', (error) => fail(`failed to start: ${error.message}`));
    child.once('exit', (code, signal) => fail(`exited (${code ?? signal}) before it was ready`));
    child.stdout!.on('data', (chunk: string) => {
      if (out.length < MAX_CAPTURE_CHARS) out += chunk;
      if (settled || !options.readyPattern) return;
      const match = out.match(options.readyPattern);
      if (match) {
        settled = true;
        clearTimeout(timer);
        resolve(handle(match));
      }
    });
    if (!options.readyPattern) {
      child.once('spawn', () => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(handle(null));
      });
    }
  });
}
