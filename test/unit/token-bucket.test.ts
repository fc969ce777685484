import { describe, expect, it } from 'vitest';
import { takeTokens } from '../../src/cli/origin-server.js';
import { TokenBucket } from '../../src/shared/token-bucket.js';

/** A clock the test moves by hand. */
function fakeClock(): { now: () => number; advance: (ms: number) => void } {
  let time = 1000;
  return { now: () => time, advance: (ms) => (time += ms) };
}

describe('TokenBucket', () => {
  it('starts full and grants at most its capacity', () => {
    const clock = fakeClock();
    const bucket = new TokenBucket(1000, 500, clock.now);
    expect(bucket.take(10_000)).toBe(500);
    expect(bucket.take(1)).toBe(0);
  });

  it.each([
    { elapsedMs: 100, granted: 100 },
    { elapsedMs: 250, granted: 250 },
    { elapsedMs: 10_000, granted: 500 }, // refill stops at the capacity
  ])('refills rate × time: $elapsedMs ms → $granted B', ({ elapsedMs, granted }) => {
    const clock = fakeClock();
    const bucket = new TokenBucket(1000, 500, clock.now);
    bucket.take(500);
    clock.advance(elapsedMs);
    expect(bucket.take(10_000)).toBe(granted);
  });

  it.each([
    { tokensUsed: 500, want: 100, waitMs: 100 },
    { tokensUsed: 500, want: 10_000, waitMs: 500 }, // capped at the capacity, else it would wait forever
    { tokensUsed: 0, want: 100, waitMs: 0 },
    { tokensUsed: 450, want: 100, waitMs: 50 },
  ])('waitMs after using $tokensUsed for $want B is $waitMs', ({ tokensUsed, want, waitMs }) => {
    const clock = fakeClock();
    const bucket = new TokenBucket(1000, 500, clock.now);
    bucket.take(tokensUsed);
    expect(bucket.waitMs(want)).toBe(waitMs);
  });

  it('grants whole bytes only', () => {
    const clock = fakeClock();
    const bucket = new TokenBucket(3, 10, clock.now);
    bucket.take(10);
    clock.advance(500); // 1.5 tokens
    expect(bucket.take(10)).toBe(1);
    clock.advance(200); // 0.5 + 0.6 = 1.1 tokens
    expect(bucket.take(10)).toBe(1);
  });

  it.each([
    { held: 500, spent: 200, waitMs: 0 },
    { held: 500, spent: 700, waitMs: 200 }, // a debt of 200 at 1000/s
    { held: 0, spent: 2000, waitMs: 2000 }, // more than the capacity: the debt is what it is
  ])('spend($spent) holding $held waits $waitMs ms, and the debt delays what follows', ({ held, spent, waitMs }) => {
    const clock = fakeClock();
    const bucket = new TokenBucket(1000, 500, clock.now, held);
    expect(bucket.spend(spent)).toBe(waitMs);
    clock.advance(waitMs);
    expect(bucket.take(10_000)).toBe(Math.max(0, held - spent)); // a debt is repaid by then, no more
    clock.advance(1);
    expect(bucket.take(10)).toBe(1);
  });

  it('empty() forgets credit from time that passed; a new rate counts from the change on', () => {
    const clock = fakeClock();
    const bucket = new TokenBucket(1000, 500, clock.now, 0);
    clock.advance(300);
    bucket.empty();
    expect(bucket.waitMs(100)).toBe(100);
    clock.advance(100); // 100 tokens at 1000/s
    bucket.rate = 10;
    clock.advance(1000); // + 10 at the new rate
    expect(bucket.take(500)).toBe(110);
  });

  it('reads and sets its level: capped at the capacity, a level below 0 is a debt repaid by the refill', () => {
    const clock = fakeClock();
    const bucket = new TokenBucket(10, 20, clock.now);
    expect(bucket.tokens).toBe(20);
    bucket.setTokens(50);
    expect(bucket.tokens).toBe(20);
    bucket.setTokens(-5);
    expect(bucket.spend(1)).toBe(600); // 6 tokens owed at 10/s
    clock.advance(1000); // + 10
    expect(bucket.tokens).toBe(4);
    expect(bucket.take(10)).toBe(4);
  });

  it('with no rate nothing refills, and waiting is endless', () => {
    const clock = fakeClock();
    const bucket = new TokenBucket(0, 500, clock.now, 0);
    clock.advance(10_000);
    expect(bucket.take(1)).toBe(0);
    expect(bucket.waitMs(1)).toBe(Infinity);
    expect(bucket.spend(1)).toBe(Infinity);
  });

  it('takeTokens rejects when aborted while waiting', async () => {
    const bucket = new TokenBucket(1, 1);
    bucket.take(1);
    const controller = new AbortController();
    const waiting = takeTokens(bucket, 1, 1, controller.signal);
    controller.abort(new Error('gone'));
    await expect(waiting).rejects.toThrow('gone');
  });
});
