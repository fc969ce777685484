import { afterEach, describe, expect, it, vi } from 'vitest';
import { FORWARD_SILENCE_MS } from '../../src/engine/forwarded-piece.js';
import { SwLink } from '../../src/engine/sw-link.js';
import { asPageToWorker, type ForwardPart } from '../../src/shared/bridge-messages.js';
import { sha256Hex } from '../../src/shared/integrity.js';

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

describe('SwLink forwards', () => {
  afterEach(() => {
    vi.unstubAllGlobals();
    vi.useRealTimers();
  });

  /** A page link whose controller keeps what the page posted, and the port it transferred. */
  function linked() {
    const posted: { message: unknown; port: MessagePort }[] = [];
    const controller = { postMessage: (message: unknown, transfer: MessagePort[]) => posted.push({ message, port: transfer[0]! }) };
    vi.stubGlobal('navigator', { serviceWorker: { controller } });
    return { link: new SwLink(async () => ({ type: 'piece-miss', reason: 'not-ready' }), () => {}), posted };
  }
  const send = (port: MessagePort, part: ForwardPart) => port.postMessage(part);

  it("asks the SW for an arriving piece's bytes on a port of its own, and takes them as they come", async () => {
    const { link, posted } = linked();
    const bytes = Uint8Array.from({ length: 1000 }, (_, i) => i % 251);
    const forwarded = link.forward('0123456789abcdef', 2, bytes.length, await sha256Hex(bytes));
    expect(asPageToWorker(posted[0]!.message)).toEqual({ type: 'forward', asset: '0123456789abcdef', piece: 2 });
    send(posted[0]!.port, { type: 'forward-bytes', data: bytes.slice(0, 600).buffer });
    await vi.waitFor(() => expect(forwarded.received).toBe(600));
    send(posted[0]!.port, { type: 'forward-bytes', data: bytes.slice(600).buffer });
    // Verified against its hash here, the whole piece may go out.
    await vi.waitFor(() => expect(forwarded.available).toBe(bytes.length));
    expect(forwarded.bytes).toEqual(bytes);
    posted[0]!.port.close();
  });

  it('fails the piece when the SW says so, or says nothing for a while (a worker that does not know the message)', async () => {
    const { link, posted } = linked();
    const refused = link.forward('0123456789abcdef', 2, 1000, '00'.repeat(32));
    send(posted[0]!.port, { type: 'forward-failed' });
    await vi.waitFor(() => expect(refused.failed).toBe(true));
    posted[0]!.port.close();

    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const unanswered = link.forward('0123456789abcdef', 3, 1000, '00'.repeat(32));
    vi.advanceTimersByTime(FORWARD_SILENCE_MS - 1);
    expect(unanswered.failed).toBe(false);
    vi.advanceTimersByTime(1);
    expect(unanswered.failed).toBe(true);
    posted[1]!.port.close();
  });

  it('fails at once while no SW controls the page', () => {
    vi.stubGlobal('navigator', { serviceWorker: { controller: null } });
    const link = new SwLink(async () => ({ type: 'piece-miss', reason: 'not-ready' }), () => {});
    expect(link.forward('0123456789abcdef', 2, 1000, '00'.repeat(32)).failed).toBe(true);
  });
});
