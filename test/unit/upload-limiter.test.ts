import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { COMFORTABLE_BUFFER_MS, COMFORTABLE_QUEUEING_MS, MIN_BACKOFF_RATE_BPS, UploadBackoff } from '../../src/engine/upload-backoff.js';
import { UploadLimiter } from '../../src/engine/upload-limiter.js';
import { START_RATE_BPS } from '../../src/engine/line-pacer.js';
import { CHUNK_SIZE } from '../../src/shared/peer-messages.js';

/** Uploads through `limiter` freely, a chunk every 80 ms (about 200 kB/s), for two seconds of the fake clock. */
async function uploadFreely(limiter: UploadLimiter): Promise<void> {
  for (let t = 0; t < 2000; t += 80) {
    await limiter.take(CHUNK_SIZE);
    await vi.advanceTimersByTimeAsync(80);
  }
}

describe('UploadLimiter', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("without a cap, holds uploads to the line's pace only: 2 Mbit/s until peers report, then what they report", async () => {
    const limiter = new UploadLimiter();
    expect(limiter.bytesPerSecond).toBeUndefined();
    expect(limiter.effectiveRate).toBe(START_RATE_BPS);
    const done: number[] = [];
    for (let i = 0; i < 3; i++) void limiter.take(CHUNK_SIZE).then(() => done.push(i));
    await vi.advanceTimersByTimeAsync(0);
    expect(done).toEqual([0]); // a lone chunk goes at once
    await vi.advanceTimersByTimeAsync(Math.ceil((2 * CHUNK_SIZE * 1000) / START_RATE_BPS));
    expect(done).toEqual([0, 1, 2]);
    // A peer sees our chunks queue 100 ms on the path (its base: 20 ms) while it gets 150 kB/s: cut under that.
    limiter.noteReceived('peer', 20, 15_000, 100);
    await vi.advanceTimersByTimeAsync(100);
    limiter.noteReceived('peer', 120, 15_000, 100);
    expect(limiter.effectiveRate).toBeCloseTo(0.9 * 150_000, 6);
    limiter.bytesPerSecond = 50_000; // a lower cap set by the viewer still rules
    expect(limiter.effectiveRate).toBe(50_000);
  });

  it('holds uploads back to the cap, in order', async () => {
    const limiter = new UploadLimiter();
    limiter.bytesPerSecond = 1000;
    const done: number[] = [];
    void limiter.take(500).then(() => done.push(1));
    void limiter.take(500).then(() => done.push(2));
    await vi.advanceTimersByTimeAsync(0);
    // The bucket starts empty: 500 bytes need half a second.
    expect(done).toEqual([]);
    await vi.advanceTimersByTimeAsync(500);
    expect(done).toEqual([1]);
    await vi.advanceTimersByTimeAsync(500);
    expect(done).toEqual([1, 2]);
  });

  it('honours the cap exactly: over any window, at most cap × window + one chunk', async () => {
    const rate = 40_000;
    const limiter = new UploadLimiter();
    limiter.bytesPerSecond = rate;
    const sent: { at: number; bytes: number }[] = [];
    // Two uploaders taking chunks of varied sizes as fast as they may, with pauses (idle time
    // must not build up a burst beyond one chunk).
    const uploader = async (sizes: number[]) => {
      for (const [index, bytes] of sizes.entries()) {
        await limiter.take(bytes);
        sent.push({ at: performance.now(), bytes });
        if (index % 7 === 6) await new Promise((resolve) => setTimeout(resolve, 1500));
      }
    };
    const sizes = (seed: number) => Array.from({ length: 40 }, (_, i) => ((i * 7919 + seed) % CHUNK_SIZE) + 1);
    const both = Promise.all([uploader(sizes(1)), uploader(sizes(2))]);
    await vi.advanceTimersByTimeAsync(120_000);
    await both;
    expect(sent).toHaveLength(80);
    for (const windowMs of [50, 250, 1000, 5000]) {
      for (const start of sent) {
        const inWindow = sent.filter((s) => s.at >= start.at && s.at < start.at + windowMs).reduce((sum, s) => sum + s.bytes, 0);
        expect(inWindow).toBeLessThanOrEqual((rate * windowMs) / 1000 + CHUNK_SIZE);
      }
    }
    // And it is a cap, not a throttle to nothing: the whole ran at nearly the rate where it was busy.
    const total = sent.reduce((sum, s) => sum + s.bytes, 0);
    expect(total / rate).toBeGreaterThan(0.5 * (sent.at(-1)!.at / 1000 - 5 * 1.5));
  });

  it('a timer that fires late is no credit: the next chunk still waits its full turn', async () => {
    let skew = 0;
    const clock = () => performance.now() + skew;
    const limiter = new UploadLimiter(clock);
    limiter.bytesPerSecond = 100_000;
    const sent: number[] = [];
    const first = limiter.take(CHUNK_SIZE).then(() => sent.push(clock()));
    await vi.advanceTimersByTimeAsync(150);
    expect(sent).toHaveLength(0);
    skew = 300; // a busy page: the timer's callback runs 300 ms after it was due
    await vi.advanceTimersByTimeAsync(20);
    await first;
    const second = limiter.take(CHUNK_SIZE).then(() => sent.push(clock()));
    await vi.advanceTimersByTimeAsync(100);
    expect(sent).toHaveLength(1); // not sent right behind the first
    await vi.advanceTimersByTimeAsync(100);
    await second;
    expect(sent[1]! - sent[0]!).toBeGreaterThanOrEqual((CHUNK_SIZE / 100_000) * 1000 - 1);
  });

  it('a timer that fires before the debt is repaid leaves the rest owed by the next chunk', async () => {
    // setTimeout drops a delay's fraction of a millisecond, and a timer can run a little before the
    // clock says it is due: 100 bytes a millisecond at this cap, so a forgiven remainder adds up
    // over a window of many chunks (CI saw 25 B over cap × 2.9 s + one chunk).
    let skew = 0;
    const clock = () => performance.now() + skew;
    const rate = 100_000;
    const limiter = new UploadLimiter(clock);
    limiter.bytesPerSecond = rate;
    const sent: number[] = [];
    const first = limiter.take(CHUNK_SIZE).then(() => sent.push(clock()));
    await vi.advanceTimersByTimeAsync(100);
    expect(sent).toHaveLength(0);
    skew = -2; // the clock now reads 2 ms behind the timers: the first timer fires 2 ms early by it
    await vi.advanceTimersByTimeAsync(100);
    await first;
    skew = 0;
    const second = limiter.take(CHUNK_SIZE).then(() => sent.push(clock()));
    await vi.advanceTimersByTimeAsync(400);
    await second;
    // The bucket started empty: two chunks by the clock's time need two chunks' worth of it.
    expect(sent[1]!).toBeGreaterThanOrEqual((2 * CHUNK_SIZE * 1000) / rate);
  });

  it('treats zero, negative and infinite caps as no cap', () => {
    const limiter = new UploadLimiter();
    for (const value of [0, -5, Infinity, Number.NaN]) {
      limiter.bytesPerSecond = value;
      expect(limiter.bytesPerSecond).toBeUndefined();
    }
  });

  it('holds uploads to the delay backoff when it is below the cap', async () => {
    const limiter = new UploadLimiter();
    await uploadFreely(limiter);
    expect(limiter.uploadRate).toBeGreaterThan(150_000);
    for (let i = 0; i < 3; i++) limiter.noteOwnDelay(40);
    expect(limiter.effectiveRate).toBe(START_RATE_BPS); // the line's pace only
    for (let i = 0; i < 3; i++) limiter.noteOwnDelay(400); // our own requests now wait 360 ms more
    expect(limiter.effectiveRate).toBeLessThan(limiter.uploadRate);
    limiter.bytesPerSecond = 10_000; // a lower cap set by the viewer still rules
    expect(limiter.effectiveRate).toBe(10_000);
  });
  it('a delay of its own requests is not the uploads\' doing while the peers they go to see no queue on the uplink: no cut', async () => {
    const limiter = new UploadLimiter();
    await uploadFreely(limiter);
    for (let i = 0; i < 3; i++) limiter.noteOwnDelay(40);
    const paced = limiter.effectiveRate;
    // A peer being sent to sees our chunks come with no queue (20 ms, its base) ...
    limiter.noteReceived('peer', 20, 20_000, 100);
    // ... while our own requests take 360 ms more: the delay is elsewhere (our downlink, the origin).
    for (let i = 0; i < 3; i++) limiter.noteOwnDelay(400);
    expect(limiter.backoff.rate).toBeUndefined();
    expect(limiter.effectiveRate).toBe(paced);
    // Once that report is stale (nobody says the uplink is clear), the backoff cuts as before.
    await vi.advanceTimersByTimeAsync(600);
    for (let i = 0; i < 3; i++) limiter.noteOwnDelay(400);
    expect(limiter.backoff.rate).toBeDefined();
    expect(limiter.effectiveRate).toBeLessThan(paced);
  });
});

describe('UploadBackoff (LEDBAT-like)', () => {
  it('cuts the upload rate when its own requests slow down, and grows it back once they are fast again', () => {
    let now = 0;
    const backoff = new UploadBackoff(() => now);
    const uploadRate = 250_000;
    const sample = (ms: number) => {
      now += 1000;
      backoff.noteDelay(ms, Math.min(uploadRate, backoff.rate ?? uploadRate));
    };
    for (let i = 0; i < 10; i++) sample(30 + (i % 3) * 5);
    expect(backoff.baseDelay).toBe(30);
    expect(backoff.rate).toBeUndefined(); // at the base: seeding is not held back

    // Uploads fill the uplink: every own request waits 300 ms in the home's queue.
    // The lowest of the newest three samples counts, so the third slow one shows the queue.
    for (let i = 0; i < 2; i++) sample(330);
    expect(backoff.rate).toBeUndefined();
    const rates: number[] = [];
    for (let i = 0; i < 8; i++) {
      sample(330);
      rates.push(backoff.rate!);
    }
    expect(rates[0]).toBeLessThan(uploadRate);
    for (let i = 1; i < rates.length; i++) expect(rates[i]).toBeLessThan(rates[i - 1]! + 1);
    expect(rates.at(-1)).toBeGreaterThanOrEqual(MIN_BACKOFF_RATE_BPS);

    // The queue drains: the rate grows back, and lets go once it no longer limits anything.
    const held = backoff.rate!;
    for (let i = 0; i < 3; i++) sample(32);
    expect(backoff.rate).toBeGreaterThan(held);
    for (let i = 0; i < 200 && backoff.rate !== undefined; i++) sample(32);
    expect(backoff.rate).toBeUndefined();
  });

  it('delays that rise while nothing is uploaded cut nothing (the queue is not ours)', () => {
    let now = 0;
    const backoff = new UploadBackoff(() => now);
    for (let i = 0; i < 3; i++) (now += 1000), backoff.noteDelay(30, 0);
    for (let i = 0; i < 5; i++) (now += 1000), backoff.noteDelay(600, 0);
    expect(backoff.rate).toBeUndefined();
    // The same delays while uploading 200 kB/s: that is our queue.
    for (let i = 0; i < 3; i++) (now += 1000), backoff.noteDelay(600, 200_000);
    expect(backoff.rate).toBeLessThan(200_000);
  });

  it("while this page's players have COMFORTABLE_BUFFER_MS buffered, delays up to COMFORTABLE_QUEUEING_MS cut nothing; longer ones, or with less buffered or nothing playing, cut", () => {
    let now = 0;
    const backoff = new UploadBackoff(() => now);
    for (let i = 0; i < 3; i++) (now += 1000), backoff.noteDelay(30, 100_000, false, 20_000);
    // Our uploads queue our own requests 440 ms: the player, 15 s ahead, does not feel it.
    for (let i = 0; i < 5; i++) (now += 1000), backoff.noteDelay(COMFORTABLE_QUEUEING_MS - 30, 100_000, false, COMFORTABLE_BUFFER_MS + 5000);
    expect(backoff.rate).toBeUndefined();
    // Its buffer down to 4 s: the same delays are cut for.
    for (let i = 0; i < 3; i++) (now += 1000), backoff.noteDelay(COMFORTABLE_QUEUEING_MS - 30, 100_000, false, 4000);
    const cut = backoff.rate;
    expect(cut).toBeLessThan(100_000);
    // Back to 15 s buffered with the queue under the comfortable target: the rate grows again.
    for (let i = 0; i < 3; i++) (now += 1000), backoff.noteDelay(30 + COMFORTABLE_QUEUEING_MS / 2, 100_000, false, COMFORTABLE_BUFFER_MS + 5000);
    expect(backoff.rate).toBeGreaterThan(cut!);
    // A queue past the comfortable target is cut for, however much is buffered.
    const full = new UploadBackoff(() => now);
    for (let i = 0; i < 3; i++) (now += 1000), full.noteDelay(30, 100_000, false, 30_000);
    for (let i = 0; i < 3; i++) (now += 1000), full.noteDelay(30 + COMFORTABLE_QUEUEING_MS + 100, 100_000, false, 30_000);
    expect(full.rate).toBeLessThan(100_000);
    // And with nothing playing (no buffer to go by), as before.
    const idle = new UploadBackoff(() => now);
    for (let i = 0; i < 3; i++) (now += 1000), idle.noteDelay(30, 100_000);
    for (let i = 0; i < 3; i++) (now += 1000), idle.noteDelay(500, 100_000, false, undefined);
    expect(idle.rate).toBeLessThan(100_000);
  });

  it('a single slow answer does not cut the rate (the lowest of the newest samples counts)', () => {
    let now = 0;
    const backoff = new UploadBackoff(() => now);
    for (let i = 0; i < 5; i++) (now += 1000), backoff.noteDelay(30, 100_000);
    now += 1000;
    backoff.noteDelay(900, 100_000);
    expect(backoff.rate).toBeUndefined();
  });

  it('lets go when its own traffic stops (nothing left for seeding to slow)', () => {
    let now = 0;
    const backoff = new UploadBackoff(() => now);
    for (let i = 0; i < 3; i++) (now += 1000), backoff.noteDelay(30, 100_000);
    for (let i = 0; i < 3; i++) (now += 1000), backoff.noteDelay(500, 100_000);
    expect(backoff.rate).toBeDefined();
    now += 4000; // a player reading at its pace asks every 2 s: still held
    expect(backoff.rate).toBeDefined();
    now += 1500;
    expect(backoff.rate).toBeUndefined();
  });
});
