import { describe, expect, it, vi } from 'vitest';
import { SENDING_MS, URGENT_WITHIN_MS, UploadTurns } from '../../src/engine/upload-turns.js';

// The most urgent upload first across a page's peers (the line's behaviour is in peer-uploads).

describe('UploadTurns', () => {
  it('holds an upload back while one due earlier is being sent, until that one is done', async () => {
    const turns = new UploadTurns();
    const [urgent, later] = [turns.turn(), turns.turn()];
    urgent.sent(1000);
    expect(await urgent.wait(1000), 'nothing due earlier').toBe(false);
    let waited: boolean | undefined;
    void later.wait(5000).then((result) => (waited = result));
    await Promise.resolve();
    expect(waited).toBeUndefined();
    urgent.idle();
    await vi.waitFor(() => expect(waited).toBe(true));
    // Due at the same time: neither waits for the other.
    later.sent(5000);
    expect(await turns.turn().wait(5000)).toBe(false);
  });

  it('a peer that moves on to a piece due later holds back no upload due before it (it waits its turn instead)', async () => {
    const turns = new UploadTurns();
    const [a, b] = [turns.turn(), turns.turn()];
    b.sent(2000);
    a.sent(1000);
    // a's piece due at 1000 is done; its next is due at 5000, after b's: b goes on, a waits for b.
    let aWaited: boolean | undefined;
    void a.wait(5000).then((result) => (aWaited = result));
    expect(await b.wait(2000)).toBe(false);
    b.idle();
    await vi.waitFor(() => expect(aWaited).toBe(true));
  });

  it('lets go when the upload ahead sends nothing for SENDING_MS (a stalled channel holds nobody back)', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
    try {
      const turns = new UploadTurns();
      const [stalled, other] = [turns.turn(), turns.turn()];
      stalled.sent(0);
      let waited: boolean | undefined;
      void other.wait(10_000).then((result) => (waited = result));
      await vi.advanceTimersByTimeAsync(SENDING_MS - 50);
      expect(waited).toBeUndefined();
      await vi.advanceTimersByTimeAsync(100);
      expect(waited).toBe(true);
    } finally {
      vi.useRealTimers();
    }
  });

  it('wakes an upload held back as soon as the one ahead moves on to a piece due later', async () => {
    const turns = new UploadTurns();
    const [busy, waiting] = [turns.turn(), turns.turn()];
    busy.sent(1000);
    let waited: boolean | undefined;
    void waiting.wait(3000).then((result) => (waited = result));
    await Promise.resolve();
    expect(waited).toBeUndefined();
    busy.sent(8000);
    await vi.waitFor(() => expect(waited).toBe(true));
  });

  it('a peer that says everything is due now goes first only within its share of the recent chunks (MAX_FIRST_SHARE), and past it only before prefetches', async () => {
    const turns = new UploadTurns(() => 0);
    const [claimer, other] = [turns.turn(), turns.turn()];
    const waits = async (turn: typeof other, due: number) => {
      let waited: boolean | undefined;
      void turn.wait(due).then((result) => (waited = result));
      await Promise.resolve();
      return waited === undefined;
    };
    claimer.sent(0);
    expect(await waits(other, 1000), 'within its share: the upload due first goes first').toBe(true);
    // It was sent all of the last 200 chunks, more than MAX_FIRST_SHARE of the recent ones (about 64,
    // 1 MiB): its claims hold back no upload a player waits for (due within URGENT_WITHIN_MS) ...
    for (let chunk = 0; chunk < 200; chunk++) claimer.sent(0);
    expect(await waits(turns.turn(), URGENT_WITHIN_MS)).toBe(false);
    // ... but still a prefetch due later: the line sends it once nothing is due before it.
    expect(await waits(turns.turn(), URGENT_WITHIN_MS + 1)).toBe(true);
    // Once the others were sent a few chunks its share is back under the bound, and it goes first again.
    for (let chunk = 0; chunk < 10; chunk++) other.sent(1000);
    claimer.sent(0);
    expect(await waits(turns.turn(), 1000)).toBe(true);
  });
});
