import { describe, expect, it } from 'vitest';
import { LinePacer, START_RATE_BPS } from '../../src/engine/line-pacer.js';

/** A pacer on a clock the test moves, and a report helper: `queueingMs` above a base of 40 ms. */
function pacerOnClock() {
  let now = 0;
  const pacer = new LinePacer(() => now);
  const advance = (ms: number) => (now += ms);
  /** `peer` got `bytesPerSecond` over the last 100 ms with the queue at `queueingMs`. */
  const report = (peer: string, queueingMs: number, bytesPerSecond: number, heldBack = true) => pacer.report(peer, 40 + queueingMs, (bytesPerSecond * 100) / 1000, 100, heldBack);
  /**
   * `peer`'s next three reports, 0.1 s apart, each with the queue at `queueingMs` (the pace holding
   * nothing back): enough for a cut out of the pacer's start too, where it takes the least of three.
   */
  const held = (peer: string, queueingMs: number, bytesPerSecond: number) => {
    for (let i = 0; i < 3; i++) {
      if (i > 0) advance(100);
      report(peer, queueingMs, bytesPerSecond, false);
    }
  };
  return { pacer, advance, report, held };
}

describe('LinePacer', () => {
  it('starts at 2 Mbit/s and doubles every 0.1 s while the line shows no queue and the pace holds uploads back', () => {
    const { pacer, advance, report } = pacerOnClock();
    expect(pacer.rate).toBe(START_RATE_BPS);
    report('a', 0, pacer.rate);
    for (let step = 0; step < 3; step++) {
      advance(100);
      report('a', 0, pacer.rate);
    }
    expect(pacer.rate).toBeCloseTo(8 * START_RATE_BPS, 6);
    // Reports from several peers within the same 0.1 s double it once.
    advance(50);
    report('a', 0, pacer.rate);
    advance(50);
    report('b', 0, pacer.rate);
    report('a', 0, pacer.rate);
    expect(pacer.rate).toBeCloseTo(16 * START_RATE_BPS, 6);
  });

  it('cuts to just under what the receivers got once the queue passes the target, and waits before cutting again', () => {
    const { pacer, advance, report, held } = pacerOnClock();
    report('a', 0, 200_000);
    advance(100);
    held('a', 60, 200_000); // 60 ms of queue: the line carries 200 kB/s (cut at the first report, in the start)
    expect(pacer.rate).toBeCloseTo(0.9 * 200_000, 6);
    const cut = pacer.rate;
    advance(100);
    report('a', 200, 60_000); // the queue built before the cut still drains: no second cut yet
    expect(pacer.rate).toBe(cut);
    advance(300);
    report('a', 150, 60_000);
    // What it received, smoothed over its reports (200, 200, 200, 60, 60 kB/s): 95 kB/s; the
    // queue (60 ms, the least of the last three reports) takes no more than the tenth.
    expect(pacer.rate).toBeCloseTo(0.9 * 95_000, 6);
  });

  it('cuts deeper the longer the queue, so that it drains within a second', () => {
    const { pacer, advance, report, held } = pacerOnClock();
    report('a', 0, 200_000);
    advance(100);
    held('a', 300, 200_000); // 300 ms of queue: 0.7 of what the line carries drains it in a second
    expect(pacer.rate).toBeCloseTo(0.7 * 200_000, 6);
  });

  it('keeps half of what the line delivered however long the queue: a delay of seconds is not one a cut drains', () => {
    const { pacer, advance, report, held } = pacerOnClock();
    report('a', 0, 200_000);
    advance(100);
    held('a', 300, 200_000); // the first cut: 0.7 of the line
    expect(pacer.rate).toBeCloseTo(0.7 * 200_000, 6);
    // Then 1.8 s (the transport resending an overflow, or a busy receiver), in every report the
    // filter keeps, past the least time between two cuts (0.4 s).
    for (let i = 0; i < 2; i++) {
      advance(400);
      held('a', 1800, 200_000);
    }
    expect(pacer.rate).toBeCloseTo(0.5 * 200_000, 6);
  });

  it('out of its start, one late report is a loss the transport resent, not a queue: no cut until three say so', () => {
    const { pacer, advance, report, held } = pacerOnClock();
    report('a', 0, 200_000, false);
    advance(100);
    held('a', 60, 200_000); // the first cut ends the start
    for (let i = 0; i < 3; i++) {
      advance(100);
      report('a', 0, 200_000, false);
    }
    const before = pacer.rate;
    for (const queueingMs of [300, 0, 400, 0, 120, 150]) {
      advance(100);
      report('a', queueingMs, 200_000, false); // 300 and 400: every chunk of the report held behind a resent one
      expect(pacer.rate).toBe(before);
    }
    advance(100);
    report('a', 130, 200_000, false); // three in a row over the target: a queue
    expect(pacer.rate).toBeLessThan(before);
  });

  it('in its start, a queue is answered at once: the rate doubles every report', () => {
    const { pacer, advance, report } = pacerOnClock();
    report('a', 0, 200_000);
    advance(100);
    report('a', 120, 200_000);
    expect(pacer.rate).toBeCloseTo(0.88 * 200_000, 6);
  });

  it('in its start, one receiver that got under half of what was sent over a report ends the start before the next doubling', () => {
    const { pacer, advance, report } = pacerOnClock();
    pacer.report('a', 40, 0, 0, true); // its first chunk's delay alone
    advance(100);
    report('a', 0, 105_000); // a 1 Mbit/s line while the pace sent at 2 Mbit/s: no queue shown yet
    expect(pacer.rate).toBeCloseTo(0.9 * 105_000, 6);
    advance(100);
    report('a', 0, 105_000); // out of the start: grows 10% in 0.1 s, no longer doubles
    expect(pacer.rate).toBeCloseTo(1.1 * 0.9 * 105_000, 6);
  });

  it('in its start, a receiver that gets what was sent, or two that share it, do not end it', () => {
    const { pacer, advance, report } = pacerOnClock();
    pacer.report('a', 40, 0, 0, true);
    advance(100);
    report('a', 0, START_RATE_BPS);
    expect(pacer.rate).toBeCloseTo(2 * START_RATE_BPS, 6);
    pacer.report('b', 40, 0, 0, true);
    advance(100);
    report('a', 0, START_RATE_BPS); // half of the 4 Mbit/s each
    report('b', 0, START_RATE_BPS);
    expect(pacer.rate).toBeCloseTo(4 * START_RATE_BPS, 6);
    advance(100);
    report('a', 0, START_RATE_BPS, false); // less to send than the pace allows: says nothing of the line
    expect(pacer.rate).toBeCloseTo(4 * START_RATE_BPS, 6);
  });

  it('takes at most three quarters of the rate in one cut: a report that undercounts the line does not stop uploads', () => {
    const { pacer, advance, report, held } = pacerOnClock();
    report('a', 0, 10_000, false);
    advance(100);
    held('a', 200, 10_000);
    expect(pacer.rate).toBe(START_RATE_BPS / 4);
  });

  it('grows only while its pace holds uploads back, slowly near the target, and only probes past what the line carried', () => {
    const { pacer, advance, report, held } = pacerOnClock();
    report('a', 0, 125_000);
    advance(100);
    held('a', 60, 125_000); // the line carried 125 kB/s
    const cut = pacer.rate;
    expect(cut).toBeCloseTo(0.9 * 125_000, 6);
    advance(500);
    report('a', 0, 50_000, false); // less to send than the pace allows: the line was not probed
    expect(pacer.rate).toBe(cut);
    advance(300);
    report('a', 20, 110_000); // the filter's least of 60, 0, 20 ms: far under the target, +30% in 0.3 s
    const regrown = pacer.rate;
    expect(regrown).toBeCloseTo(cut * 1.3, -1);
    advance(100);
    report('a', 30, 110_000); // least of 0, 20, 30 ms: far under it again, but past the 125 kB/s the line carried: +1%
    expect(pacer.rate).toBeCloseTo(regrown * 1.01, -1);
    advance(100);
    report('a', 30, 110_000); // least of 20, 30, 30 ms: near the target, and probing: +1%
    expect(pacer.rate).toBeCloseTo(regrown * 1.01 * 1.01, -1);
    const near = pacer.rate;
    advance(100);
    report('a', 30, 110_000); // 30 ms in all three: over half the target, held
    expect(pacer.rate).toBe(near);
  });

  it('the least queueing among the peers being sent to decides: one reporting a huge delay slows nobody', () => {
    const { pacer, advance, report } = pacerOnClock();
    // Each opens with the delay of its first chunk alone (see Peer), as receivers do.
    pacer.report('honest', 40, 0, 0, true);
    pacer.report('hostile', 40, 0, 0, true);
    for (let t = 0; t < 300; t += 100) {
      report('honest', 0, 100_000);
      report('hostile', t === 0 ? 0 : 5000, 100_000); // a low first delay, then 5 s of "queue"
      advance(100);
    }
    const grown = pacer.rate;
    expect(grown).toBeGreaterThan(START_RATE_BPS);
    // Its reports go stale once the honest peer stops reporting: alone, it is believed.
    advance(600);
    report('hostile', 5000, 100_000);
    expect(pacer.rate).toBeLessThan(grown);
  });

  it('measures each receiver against its own base delay (their clocks differ from ours by a constant)', () => {
    let now = 0;
    const pacer = new LinePacer(() => now);
    // One receiver's clock is 3 s behind ours, the other's 7 s ahead: neither sees a queue. Each
    // opens with the delay of its first chunk alone (see Peer), as receivers do.
    pacer.report('behind', -3000 + 20, 0, 0, true);
    pacer.report('ahead', 7000 + 25, 0, 0, true);
    for (let t = 0; t < 500; t += 100) {
      pacer.report('behind', -3000 + 20, 10_000, 100, true);
      pacer.report('ahead', 7000 + 25, 10_000, 100, true);
      now += 100;
    }
    expect(pacer.rate).toBeGreaterThan(START_RATE_BPS);
    // The queue rises to 100 ms for both: a cut once both say so.
    pacer.report('behind', -3000 + 120, 10_000, 100, true);
    const peak = pacer.rate;
    pacer.report('ahead', 7000 + 125, 10_000, 100, true);
    expect(pacer.rate).toBeLessThan(peak);
  });

  it('forgets a peer that left, and ignores reports it cannot read', () => {
    const { pacer, advance, report, held } = pacerOnClock();
    report('a', 0, 200_000);
    report('b', 0, 200_000);
    advance(100);
    report('a', 0, 200_000);
    const before = pacer.rate;
    pacer.forget('a');
    held('b', 500, 200_000); // b alone now: believed
    expect(pacer.rate).toBeLessThan(before);
    const rate = pacer.rate;
    advance(500);
    pacer.report('b', Number.NaN, 1000, 100, true);
    pacer.report('b', 40, -5, 100, true);
    expect(pacer.rate).toBe(rate);
  });
});
