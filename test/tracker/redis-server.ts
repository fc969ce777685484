import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { waitFor } from './helpers.js';

/** A free TCP port on 127.0.0.1 (bound once to port 0, then released). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

export interface RunningRedis {
  url: string;
  port: number;
  stop(): Promise<void>;
}

/**
 * Starts a real redis-server on a free loopback port (or `port`, to restart one where its clients
 * expect it), with no persistence; the test stops it.
 */
export async function startRedis(port?: number): Promise<RunningRedis> {
  port ??= await freePort();
  const child: ChildProcess = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.once('error', (error) => (out += String(error)));
  await waitFor(`redis-server on port ${port} (output: ${out.slice(-300)})`, () => out.includes('Ready to accept connections') || child.exitCode !== null, 15_000);
  if (child.exitCode !== null) throw new Error(`redis-server exited: ${out.slice(-500)}`);
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    async stop() {
      if (child.exitCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}
