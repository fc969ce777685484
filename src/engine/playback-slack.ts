/**
 * Buffer (ms of play time) a playing player must keep when a piece it reads ahead waits for
 * peers: if the peers fail at the deadline, the origin still has this long to deliver the piece
 * (a 256 KiB piece takes under a second from an origin at 3 Mbit/s), with room for a second try.
 */
export const PLAYBACK_RESERVE_MS = 4000;
/**
 * Play time (ms) left to the origin when the player's buffer is short (under the reserve and the
 * plain deadline together): peers get only what the buffer holds beyond it, none when it is empty
 * (a stall). The origin sends a 256 KiB piece in 0.7 s at 3 Mbit/s; on a home uplink busy with
 * uploads the request and its acknowledgements also wait in the router's queue (up to 400 ms in
 * the uplinks benchmark). Without this, a piece got the plain 4 s however little was buffered,
 * and a viewer reading from one slow line ahead of it ran dry while it waited.
 */
export const ORIGIN_RESCUE_MS = 2000;

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
  /** What has been played so far: nothing before the start. */
  played: { length: number };
  ended: boolean;
  currentTime: number;
  playbackRate: number;
  buffered: { length: number; start(index: number): number; end(index: number): number };
}

/**
 * Play time (ms) the page's playing media have buffered ahead of their playheads, the least of
 * them (0 while one stalls, or after a seek the buffer does not cover); undefined when nothing
 * plays (before the start, paused, ended: pieces then get the SW's plain deadline).
 */
export function bufferedAheadMs(media: Iterable<PlayingMedia>): number | undefined {
  let least: number | undefined;
  for (const element of media) {
    // Before its first frame an autoplaying element is not paused, and has nothing buffered yet.
    if (element.paused || element.ended || element.played.length === 0) continue;
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
 * beyond the reserve (`reserveMs`; a live stream's is liveReserveMs); the SW's plain `deadlineMs`
 * when that is less, as long as the buffer holds it and ORIGIN_RESCUE_MS more; less (down to 0)
 * when the buffer is shorter.
 *
 * @example
 * playbackDeadlineMs(4000, 8000, 20_000) // 8000: 20 s buffered, 16 s to spare, capped
 * playbackDeadlineMs(4000, 8000, 7_000)  // 4000: only 3 s to spare, the plain deadline
 * playbackDeadlineMs(4000, 8000, 3_000)  // 1000: 3 s buffered, 2 s of it left to the origin
 */
export function playbackDeadlineMs(deadlineMs: number, maxMs: number | undefined, aheadMs: number | undefined, reserveMs = PLAYBACK_RESERVE_MS): number {
  if (maxMs === undefined || aheadMs === undefined) return deadlineMs;
  const shortBuffer = Math.max(0, Math.min(deadlineMs, aheadMs - ORIGIN_RESCUE_MS));
  return Math.round(Math.min(maxMs, Math.max(shortBuffer, aheadMs - reserveMs)));
}
