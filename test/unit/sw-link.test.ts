import { afterEach, describe, expect, it, vi } from 'vitest';
import { SwLink } from '../../src/engine/sw-link.js';
import { asPageToWorker } from '../../src/shared/bridge-messages.js';

// What the page's side of the bridge posts to the controlling SW for the swarm's origin fetches:
// a prefetch, and its stop when a peer says it fetches the piece itself. Each message must pass
// the SW's own validation as the kind it is meant to be (the SW drops anything else silently).

describe('SwLink origin prefetches', () => {
  afterEach(() => vi.unstubAllGlobals());

  it('asks the controlling SW to fetch a piece for the swarm, and to stop that fetch, as messages the SW accepts', () => {
    const posted: unknown[] = [];
    vi.stubGlobal('navigator', { serviceWorker: { controller: { postMessage: (message: unknown) => posted.push(message) } } });
    const link = new SwLink(async () => ({ type: 'piece-miss', reason: 'not-ready' }), () => {});

    link.prefetch('0123456789abcdef', 3);
    link.stopPrefetch('0123456789abcdef', 3);

    expect(posted.map((message) => asPageToWorker(message))).toEqual([
      { type: 'prefetch', asset: '0123456789abcdef', piece: 3 },
      { type: 'prefetch-stop', asset: '0123456789abcdef', piece: 3 },
    ]);
  });

  it('sends nothing, and does not throw, while no SW controls the page', () => {
    vi.stubGlobal('navigator', { serviceWorker: { controller: null } });
    const link = new SwLink(async () => ({ type: 'piece-miss', reason: 'not-ready' }), () => {});
    expect(() => {
      link.prefetch('0123456789abcdef', 3);
      link.stopPrefetch('0123456789abcdef', 3);
    }).not.toThrow();
  });
});
