import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { HINT_RELOAD_INTERVAL_MS, ManifestHints } from '../../src/engine/manifest-hints.js';

// Manifest reloads asked for by peers that name assets our manifest does not list, on a fake clock:
// at a live edge every peer names each new segment, and one reload must answer all of them.

/** A page whose reloads are recorded and settle when the test says; `known` is what its manifest lists. */
function page() {
  const known = new Set<string>(['seg-1']);
  const reloads: { at: number; settle: (lists: string[]) => void }[] = [];
  const hints = new ManifestHints({
    isKnown: (asset) => known.has(asset),
    reload: () =>
      new Promise<void>((resolve) => {
        reloads.push({
          at: Date.now(),
          settle: (lists) => {
            for (const asset of lists) known.add(asset);
            resolve();
          },
        });
      }),
  });
  return { known, reloads, hints };
}

/** Lets promise callbacks (the reload settling) run. */
const settled = () => vi.advanceTimersByTimeAsync(0);

describe('ManifestHints', () => {
  beforeEach(() => {
    vi.useFakeTimers();
    vi.setSystemTime(1_000_000);
  });
  afterEach(() => vi.useRealTimers());

  it('reloads at once for a first hint, and not again for peers naming the segment that reload listed', async () => {
    const { reloads, hints } = page();
    hints.hint('seg-2');
    expect(reloads).toHaveLength(1);
    // Six more peers name the same new segment while the fetch is under way.
    for (let peer = 0; peer < 6; peer++) hints.hint('seg-2');
    await vi.advanceTimersByTimeAsync(100);
    reloads[0]!.settle(['seg-2']);
    await settled();
    await vi.advanceTimersByTimeAsync(HINT_RELOAD_INTERVAL_MS * 4);
    expect(reloads).toHaveLength(1);
  });

  it('drops a hint that a version applied meanwhile (the worker\'s) already lists', async () => {
    const { known, reloads, hints } = page();
    hints.hint('seg-2');
    reloads[0]!.settle(['seg-2']);
    await settled();
    // Within the interval: the next hint waits for it to end, and the worker's version lists it by then.
    hints.hint('seg-3');
    known.add('seg-3');
    await vi.advanceTimersByTimeAsync(HINT_RELOAD_INTERVAL_MS);
    expect(reloads).toHaveLength(1);
  });

  it('reloads again, after the interval, for an asset the reload under way did not list', async () => {
    const { reloads, hints } = page();
    hints.hint('seg-2');
    hints.hint('seg-3');
    // The fetch returns a manifest written before seg-3 was.
    reloads[0]!.settle(['seg-2']);
    await settled();
    expect(reloads).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(HINT_RELOAD_INTERVAL_MS);
    expect(reloads).toHaveLength(2);
    expect(reloads[1]!.at - reloads[0]!.at).toBeGreaterThanOrEqual(HINT_RELOAD_INTERVAL_MS);
  });

  it('costs a peer naming made-up assets one reload per interval, one at a time', async () => {
    const { reloads, hints } = page();
    for (let i = 0; i < 40; i++) {
      hints.hint(`made-up-${i}`);
      await vi.advanceTimersByTimeAsync(25);
      reloads.at(-1)!.settle([]);
      await settled();
    }
    // 40 hints over 1 s.
    expect(reloads.length).toBeLessThanOrEqual(1 + Math.ceil(1000 / HINT_RELOAD_INTERVAL_MS));
    expect(reloads.length).toBeGreaterThanOrEqual(2);
  });

  it('stops reloading once stopped', async () => {
    const { reloads, hints } = page();
    hints.hint('seg-2');
    hints.hint('seg-3');
    hints.stop();
    reloads[0]!.settle([]);
    await settled();
    await vi.advanceTimersByTimeAsync(HINT_RELOAD_INTERVAL_MS * 2);
    hints.hint('seg-4');
    expect(reloads).toHaveLength(1);
  });
});
