import { describe, expect, it, vi } from 'vitest';
import { UploadLimiter } from '../../src/engine/upload-limiter.js';

describe('UploadLimiter', () => {
  it('lets everything through without a cap', async () => {
    const limiter = new UploadLimiter(() => 0);
    await limiter.take(10_000_000);
    expect(limiter.bytesPerSecond).toBeUndefined();
  });

  it('holds uploads back to the cap, in order', async () => {
    vi.useFakeTimers();
    try {
      let now = 0;
      const limiter = new UploadLimiter(() => now);
      limiter.bytesPerSecond = 1000;
      const done: number[] = [];
      void limiter.take(500).then(() => done.push(1));
      void limiter.take(500).then(() => done.push(2));
      await vi.advanceTimersByTimeAsync(0);
      // The bucket starts empty: 500 bytes need half a second.
      expect(done).toEqual([]);
      now = 500;
      await vi.advanceTimersByTimeAsync(500);
      expect(done).toEqual([1]);
      now = 1000;
      await vi.advanceTimersByTimeAsync(500);
      expect(done).toEqual([1, 2]);
    } finally {
      vi.useRealTimers();
    }
  });

  it('treats zero, negative and infinite caps as no cap', () => {
    const limiter = new UploadLimiter(() => 0);
    for (const value of [0, -5, Infinity, Number.NaN]) {
      limiter.bytesPerSecond = value;
      expect(limiter.bytesPerSecond).toBeUndefined();
    }
  });
});
