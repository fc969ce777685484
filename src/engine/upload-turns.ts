import { untilSettled } from './wake-ups.js';

/**
 * Time (ms) after its last chunk that a peer's upload still counts as being sent (see
 * UploadTurns): a sender refills its short queue when half of it has drained, about every 130 ms
 * on a 1 Mbit/s line with the smallest queue (32 KiB, send-pacer.ts), and once a second under the
 * lowest upload backoff (16 KiB/s). An upload that sent nothing for longer waits for something else
 * (a store read, a stalled channel) and holds no other back.
 */
export const SENDING_MS = 500;
/**
 * Largest share of the page's recent uploads (chunks, see SHARE_DECAY) a peer may have and still
 * go before others' urgent uploads due later. Urgency is what the asker says (a hostile peer may
 * say "now" of everything), so it orders those only within this share: past it, the peer's uploads
 * hold back only the others' prefetches (see URGENT_WITHIN_MS) and share the line with the rest as
 * the connections' congestion control shares it, so the others keep at least a tenth of the line
 * for what their players wait for, whatever a peer claims. An honest viewer with no other
 * source needs its video's rate of the line: 83% of a 2 Mbit/s home line for a 1.3 Mbit/s video
 * (WAN benchmark; with 3/4 the second viewer, behind such a line, handed 7-11 pieces to the origin
 * in two runs, against 4-5 without the bound or with 9/10).
 */
export const MAX_FIRST_SHARE = 0.9;
/**
 * Time (ms) before it is due within which an upload counts as one a player waits for: past
 * MAX_FIRST_SHARE a peer's uploads still go before others' due later than this (prefetches), and
 * share the line only with the others' urgent ones. A player's request is due within the SW's plain
 * peer deadline (4 s, PEER_DEADLINE_MS), later only when its buffer spares the wait; a prefetch
 * 4-10 s ahead. With the share bound alone, a 1 Mbit/s home line sending a 1.3 Mbit/s video to the
 * one viewer behind it gave the viewers further back a tenth of it for prefetches due 7-10 s later,
 * pieces the viewer between received moments later and could send them (uplinks benchmark, first
 * viewer's upload beyond what the second viewer received: 0.3-0.6 MB of 6 MB in three runs of five;
 * with this over 0.05 MB in four of eighteen, each time pieces of the video's last three segments
 * that only the first viewer held).
 */
export const URGENT_WITHIN_MS = 4000;
/**
 * Weight a peer's share keeps at each chunk any peer of the page is sent: the share counts about
 * the last 64 chunks (1 MiB, 5 s of a 2 Mbit/s line), so a peer asking one piece at a time (idle
 * in between) keeps its share.
 */
const SHARE_DECAY = 1 - 1 / 64;

/** One peer's place in its page's UploadTurns (the page's swarm gives each peer one). */
export interface UploadTurn {
  /**
   * Resolves once no other peer of the page is sending an upload due before `due` (ms,
   * performance.now() time): true when it had to wait, so the caller picks its most urgent upload
   * again (a cancel or a more urgent request may have come meanwhile).
   */
  wait(due: number): Promise<boolean>;
  /** A chunk of an upload due at `due` went into the channel. */
  sent(due: number): void;
  /** This peer has nothing left to send (its uploads are done or cancelled, or it closed). */
  idle(): void;
}

/**
 * The most urgent upload first, across all the peers a page uploads to. Each connection to a peer
 * has its own send queue and congestion control, so on a home uplink shared by three peers'
 * transfers each got a third of the line whatever its deadline: a 256 KiB piece a player waited
 * for took 6 s on a 1 Mbit/s line instead of 2, ran past its deadline and went to the origin while
 * the line sent prefetches due seconds later (uplinks benchmark). Here a peer puts no further chunk
 * of an upload into its channel while another peer's upload due earlier is being sent; the line then
 * finishes pieces in the order they are due, and a piece waits for what is due before it, not for
 * everything. A peer that asks for everything urgently goes before the others' urgent uploads only
 * within MAX_FIRST_SHARE of the line; every upload still keeps the per-peer bounds
 * (MAX_QUEUED_UPLOADS, the control message budget).
 *
 * @example
 * const turn = turns.turn(); // per peer
 * if (await turn.wait(upload.due)) continue; // then send one chunk
 * turn.sent(upload.due);
 */
export class UploadTurns {
  /** Per peer (its turn), the due time of the upload it sent a chunk of last, and when. */
  readonly #sending = new Map<object, { due: number; at: number }>();
  /** Peers waiting for their turn: woken when an upload is done, or the next one is due later. */
  readonly #waiters = new Set<() => void>();
  /** Chunks sent to all peers so far: the clock of the shares. */
  #chunks = 0;
  /** Per peer (its turn), its share of the recent chunks when `#chunks` was `at` (see MAX_FIRST_SHARE). */
  readonly #shares = new WeakMap<object, { share: number; at: number }>();
  readonly #now: () => number;

  constructor(now: () => number = () => performance.now()) {
    this.#now = now;
  }

  /** A place for one more peer. */
  turn(): UploadTurn {
    const key = {};
    return {
      wait: (due) => this.#wait(key, due),
      sent: (due) => {
        const before = this.#sending.get(key);
        this.#sending.set(key, { due, at: this.#now() });
        this.#shares.set(key, { share: this.#shareOf(key) * SHARE_DECAY + 1 - SHARE_DECAY, at: ++this.#chunks });
        if (before && due > before.due) this.#wake();
      },
      idle: () => {
        if (this.#sending.delete(key)) this.#wake();
      },
    };
  }

  /** A peer's share of the recent chunks (see MAX_FIRST_SHARE). */
  #shareOf(key: object): number {
    const kept = this.#shares.get(key);
    return kept ? kept.share * SHARE_DECAY ** (this.#chunks - kept.at) : 0;
  }

  /** Time (ms) until no other peer's upload due before `due` counts as being sent; 0 when none does. */
  #blockedMs(key: object, due: number): number {
    const now = this.#now();
    // Past its share a peer holds back only the others' prefetches (see MAX_FIRST_SHARE).
    const urgent = due - now <= URGENT_WITHIN_MS;
    let blockedMs = 0;
    for (const [other, sending] of this.#sending) {
      if (other === key || sending.due >= due || (urgent && this.#shareOf(other) > MAX_FIRST_SHARE)) continue;
      blockedMs = Math.max(blockedMs, SENDING_MS - (now - sending.at));
    }
    return blockedMs;
  }

  async #wait(key: object, due: number): Promise<boolean> {
    // The peer moves on to this upload: what it sent before (a piece due earlier, finished or
    // cancelled) holds no other back any more.
    const mine = this.#sending.get(key);
    if (mine && mine.due !== due) {
      const later = due > mine.due;
      mine.due = due;
      if (later) this.#wake();
    }
    let waited = false;
    for (let blockedMs = this.#blockedMs(key, due); blockedMs > 0; blockedMs = this.#blockedMs(key, due)) {
      waited = true;
      // Past it, the upload ahead counts as stalled (see SENDING_MS): look again.
      await untilSettled(this.#waiters, () => true, blockedMs);
    }
    return waited;
  }

  #wake(): void {
    for (const wake of [...this.#waiters]) wake();
  }
}
