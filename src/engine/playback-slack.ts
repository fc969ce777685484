/**
 * Buffer (ms of play time) a playing player must keep when a piece it reads ahead waits for
 * peers: if the peers fail at the deadline, the origin still has this long to deliver the piece
 * (a 256 KiB piece takes under a second from an origin at 3 Mbit/s), with room for a second try.
 */
export const PLAYBACK_RESERVE_MS = 4000;

/**
 * Buffer (ms of play time) a playing live player must keep when a piece of a live stream waits for
 * peers: one segment's play time. If the peers fail at the deadline, the origin sends the rest of
 * the segment within it (a 2 s segment at 1.2 Mbit/s is 300 KB, 0.8 s at 3 Mbit/s). Smaller than
 * PLAYBACK_RESERVE_MS because a live player sits a few segments behind the edge and never has more
 * buffered (hls.js: 4-6 s when a new segment appears), so the on-demand reserve would leave it no
 * more than the plain live deadline.
 */
export function liveReserveMs(segmentMs: number): number {
  return Math.min(PLAYBACK_RESERVE_MS, segmentMs);
}

/** What this needs of a media element (HTMLMediaElement has it; tests pass plain objects). */
export interface PlayingMedia {
  paused: boolean;
  ended: boolean;
  currentTime: number;
  playbackRate: number;
  buffered: { length: number; start(index: number): number; end(index: number): number };
}

/**
 * Play time (ms) the page's playing media have buffered ahead of their playheads, the least of
 * them; undefined when nothing plays (before the start, paused, after a seek the buffer does not
 * cover: the player then waits for what it asks, and pieces get the SW's plain deadline).
 */
export function bufferedAheadMs(media: Iterable<PlayingMedia>): number | undefined {
  let least: number | undefined;
  for (const element of media) {
    if (element.paused || element.ended) continue;
    const now = element.currentTime;
    let ahead = 0;
    for (let i = 0; i < element.buffered.length; i++) {
      // MSE buffers leave sub-frame gaps between appends; a range starting just after the playhead counts.
      if (element.buffered.start(i) <= now + 0.1 && element.buffered.end(i) > now) ahead = element.buffered.end(i) - now;
    }
    const ms = (ahead * 1000) / Math.max(element.playbackRate, 0.1);
    least = least === undefined ? ms : Math.min(least, ms);
  }
  return least;
}

/**
 * The deadline (ms) for a piece the SW allows up to `maxMs` for: what the player's buffer spares
 * beyond the reserve (`reserveMs`; a live stream's is liveReserveMs), never less than the SW's plain
 * `deadlineMs`.
 *
 * @example
 * playbackDeadlineMs(4000, 8000, 20_000) // 8000: 20 s buffered, 16 s to spare, capped
 * playbackDeadlineMs(4000, 8000, 6_000)  // 4000: only 2 s to spare, the plain deadline
 */
export function playbackDeadlineMs(deadlineMs: number, maxMs: number | undefined, aheadMs: number | undefined, reserveMs = PLAYBACK_RESERVE_MS): number {
  if (maxMs === undefined || aheadMs === undefined) return deadlineMs;
  return Math.round(Math.min(maxMs, Math.max(deadlineMs, aheadMs - reserveMs)));
}
