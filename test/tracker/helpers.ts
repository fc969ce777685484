import { randomBytes } from 'node:crypto';
import { afterEach, beforeAll } from 'vitest';
import WebSocket from 'ws';
import { startTracker, type RunningTracker, type TrackerOptions } from '../../src/tracker/index.js';

/**
 * The network layers the tracker suites run on: native (uWebSockets.js) and node (`ws`). Each
 * suite runs whole on both, so the tracker's behaviour cannot depend on which one an operator has.
 */
export const TRANSPORTS = ['native', 'node'] as const;
export type TransportKind = (typeof TRANSPORTS)[number];

/** A 20-byte id in the protocol's wire form (one char per byte). */
export function randomId(): string {
  return randomBytes(20).toString('latin1');
}

export { binaryToHex as hex } from '../../src/shared/hex.js';

/**
 * Default bound for waiting on a condition, in ms: loopback round trips take < 5 ms, so 15 s only
 * trips on a bug, even when CI runs browser tests on the same two cores.
 */
export const WAIT_MS = 15_000;

/** Polls `condition` until it returns a truthy value or `timeoutMs` passes (then throws with `what`). */
export async function waitFor<T>(what: string, condition: () => T | Promise<T>, timeoutMs = WAIT_MS): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await condition();
    if (value) return value as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Frame = any;

/** A real WebSocket client that queues the JSON frames it receives, for tests to take in order. */
export class TestClient {
  readonly frames: Frame[] = [];
  private waiters: Array<() => void> = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  closeInfo: { code: number; reason: string } | undefined;

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data) => {
      let frame: Frame;
      try {
        frame = JSON.parse(String(data));
      } catch {
        frame = { unparsable: String(data) };
      }
      this.frames.push(frame);
      for (const w of this.waiters.splice(0)) w();
    });
    this.closed = new Promise((resolve) => {
      ws.on('close', (code, reason) => {
        this.closeInfo = { code, reason: reason.toString() };
        for (const w of this.waiters.splice(0)) w();
        resolve(this.closeInfo);
      });
    });
    ws.on('error', () => {});
  }

  static open(url: string, options: { headers?: Record<string, string>; origin?: string; autoPong?: boolean } = {}): Promise<TestClient> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { headers: options.headers, origin: options.origin, autoPong: options.autoPong ?? true });
      const client = new TestClient(ws);
      ws.once('open', () => resolve(client));
      ws.once('error', reject);
    });
  }

  send(frame: unknown): void {
    if (typeof frame === 'string' || Buffer.isBuffer(frame)) this.ws.send(frame);
    else this.ws.send(JSON.stringify(frame));
  }

  /** Takes the first queued frame matching `match` (waiting for it up to `timeoutMs`). */
  async next(match: (frame: Frame) => boolean = () => true, timeoutMs = WAIT_MS): Promise<Frame> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const index = this.frames.findIndex(match);
      if (index !== -1) return this.frames.splice(index, 1)[0];
      if (this.closeInfo) throw new Error(`socket closed (${this.closeInfo.code} ${this.closeInfo.reason}) while waiting for a frame`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for a frame; queued: ${JSON.stringify(this.frames).slice(0, 500)}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  close(): Promise<{ code: number; reason: string }> {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.close();
    return this.closed;
  }
}

export const isOffer = (f: Frame): boolean => f.action === 'announce' && f.offer !== undefined;
export const isAnswer = (f: Frame): boolean => f.action === 'announce' && f.answer !== undefined;
export const isReply = (f: Frame): boolean => f.action === 'announce' && f.interval !== undefined;
export const isFailure = (f: Frame): boolean => f['failure reason'] !== undefined;

export function announce(infoHash: string, peerId: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { action: 'announce', info_hash: infoHash, peer_id: peerId, numwant: 0, uploaded: 0, downloaded: 0, left: 100, event: 'started', ...extra };
}

export function offers(n: number, tag = 'x'): Array<{ offer: { type: string; sdp: string }; offer_id: string }> {
  return Array.from({ length: n }, (_, i) => ({ offer: { type: 'offer', sdp: `v=0 ${tag}-${i}` }, offer_id: randomId() }));
}

/**
 * An in-process tracker per test and the test's clients, all closed after each test. Call
 * `useTransport(kind)` inside a `describe.each(TRANSPORTS)` block to run its tests on that transport.
 *
 * @example
 * const fx = useTrackerFixture();
 * describe.each(TRANSPORTS)('limits, %s transport', (kind) => {
 *   fx.useTransport(kind);
 *   it('...', async () => { await fx.start({ maxFrameBytes: 1024 }); const a = await fx.client(); });
 * });
 */
export function useTrackerFixture() {
  let tracker: RunningTracker | undefined;
  let transport: TransportKind = 'native';
  const clients: TestClient[] = [];
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
    await tracker?.close();
    tracker = undefined;
  });
  return {
    /** The tracker the current test started. */
    get tracker(): RunningTracker {
      if (!tracker) throw new Error('no tracker: call start() first');
      return tracker;
    },
    useTransport(kind: TransportKind): void {
      beforeAll(() => {
        transport = kind;
      });
    },
    start: async (options: TrackerOptions = {}): Promise<RunningTracker> => {
      tracker = await startTracker({ port: 0, transport, ...options });
      return tracker;
    },
    client: async (options: { headers?: Record<string, string>; origin?: string } = {}): Promise<TestClient> => {
      if (!tracker) throw new Error('no tracker: call start() first');
      const c = await TestClient.open(tracker.url, options);
      clients.push(c);
      return c;
    },
    /** Closes a client the test opened itself after the test, too. */
    track(client: TestClient): void {
      clients.push(client);
    },
  };
}
