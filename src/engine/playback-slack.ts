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

/**
 * Time (ms) the origin is assumed to take before the first bytes of a piece arrive: the SW's
 * request and the response's headers, a round trip or two, plus the wait of the request in a
 * home router's queue when the uplink is busy with uploads (up to 400 ms in the WAN benchmark's
 * homes, see test/harness/topology.mjs).
 */
export const ORIGIN_FIRST_BYTE_MS = 400;
/**
 * Rate (bytes/s) the origin is assumed to send a piece at: 3 Mbit/s, the cap per connection of
 * the benchmark's origin. A real CDN is usually faster; assuming it slower only makes the engine
 * wait for peers longer before it hands a piece to the origin.
 */
export const ORIGIN_ASSUMED_BPS = 375_000;

/** Time (ms) the origin is expected to take to send `bytes` of a piece (see ORIGIN_ASSUMED_BPS). */
export function originMs(bytes: number): number {
  return ORIGIN_FIRST_BYTE_MS + (Math.max(0, bytes) * 1000) / ORIGIN_ASSUMED_BPS;
}

/**
 * Whether a piece the player reads next is better finished by the origin now than by the peer
 * sending it, which is expected to be done in `peerMs`: it is when the peer would be done after
 * the origin (`originMsForRest`, for what is still missing) and so late that the buffer
 * (`bufferMs` of play time, undefined when nothing plays) would then hold less than the origin
 * needs. Waiting any longer, a peer that slips a little more could no longer be rescued in time.
 * A peer expected faster than the origin is always waited for, however short the buffer: with a
 * rule on the buffer alone (waiting only for what it held beyond 2 s, commit a1396ea) a player
 * just started, with 1-2 s buffered, sent every piece to the origin while a peer on the same LAN
 * was delivering it in 50 ms, and a second visitor got the video from both.
 *
 * @example
 * finishFromOrigin(2000, 1100, 2500) // true: 0.5 s left at the peer's end, the origin needs 1.1 s
 * finishFromOrigin(1000, 1100, 2500) // false: the peer is faster than the origin
 * finishFromOrigin(1500, 1100, 6000) // false: 4.5 s left when the peer is done
 */
export function finishFromOrigin(peerMs: number, originMsForRest: number, bufferMs: number | undefined): boolean {
  if (bufferMs === undefined) return false;
  return peerMs > originMsForRest && bufferMs - peerMs < originMsForRest;
}

/**
 * Whether a piece the player reads next goes to the origin although its peer was expected to beat
 * the origin (see finishFromOrigin): the peer's line has sent nothing for `silentMs`, longer than
 * it was expected to take for the whole rest (`peerMs`) and than one check's span (`checkMs`), so
 * the estimate has failed; and by the next check the buffer would no longer cover the origin's
 * time for the rest. A transport pause shows as such a silence (a capped home line after a fresh
 * connection's first burst: 0.5-1.4 s of nothing with a 256 KiB piece 0.3 s from done, and the
 * player stalled 0.2-0.8 s at 1.93 s of video in six 2-viewer runs of seven at 1.5x the bitrate).
 * Only at the buffer's last chance: the same rule with the silence counted at any buffer handed
 * away pieces a line paused for a few seconds would still have sent in time.
 *
 * @example
 * silentAtLastChance(600, 300, 500, 700, 250) // true: the line 0.6 s silent, 0.7 s buffered
 * silentAtLastChance(600, 300, 500, 3000, 250) // false: the buffer can wait for the line
 * silentAtLastChance(200, 300, 500, 700, 250) // false: silent less long than the rest should take
 */
export function silentAtLastChance(silentMs: number, peerMs: number, originMsForRest: number, bufferMs: number | undefined, checkMs: number): boolean {
  if (bufferMs === undefined) return false;
  return silentMs >= Math.max(peerMs, checkMs) && bufferMs - checkMs < originMsForRest;
}

/** What this needs of a media element (HTMLMediaElement has it; tests pass plain objects). */
export interface PlayingMedia {
  paused: boolean;
  ended: boolean;
  /** What has been played so far: nothing before the first frame. */
  played: { length: number };
  currentTime: number;
  playbackRate: number;
  buffered: { length: number; start(index: number): number; end(index: number): number };
}

/**
 * Play time (ms) the page's playing media have buffered ahead of their playheads, the least of
 * them (0 while one stalls, or after a seek the buffer does not cover); undefined when nothing
 * plays (before the first frame, paused, ended): pieces then get the SW's plain deadline.
 */
export function bufferedAheadMs(media: Iterable<PlayingMedia>): number | undefined {
  let least: number | undefined;
  for (const element of media) {
    // Before its first frame an autoplaying element is not paused and has nothing buffered yet:
    // it says nothing about how long a piece may take (the first piece has its own deadline).
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
 * Whether a media element of the page is starting: asked to play (not paused, not ended) and no
 * frame shown yet. Its player waits for every piece it asks for now, not only the first of a
 * response (hls.js needs a segment's last piece as much as its first before it appends any).
 */
export function awaitingFirstFrame(media: Iterable<PlayingMedia>): boolean {
  for (const element of media) if (!element.paused && !element.ended && element.played.length === 0) return true;
  return false;
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

/**
 * Time (ms) a piece the player reads next may still wait for peers while its player plays on the
 * `bufferMs` it has buffered, so that the origin, asked after the wait, still delivers the piece
 * (`bytes`, see originMs) before that buffer runs out; 0 when it cannot wait at all, Infinity when
 * nothing plays (the SW's deadline alone bounds the wait then). A live player that joined with the
 * stream plays one segment behind the edge with about a second buffered when a new segment appears:
 * its waits for the member fetching the segment from the origin were each a rebuffer (live
 * benchmark, 8 viewers: pieces sent to the origin after waiting 0.7-1 s with 0.3-1.1 s buffered).
 *
 * @example
 * originSlackMs(5000, 262_144) // 3900.95: the origin needs 1.1 s of the 5 s
 * originSlackMs(1000, 262_144) // 0: the origin alone already takes longer
 */
export function originSlackMs(bufferMs: number | undefined, bytes: number): number {
  return bufferMs === undefined ? Infinity : Math.max(0, bufferMs - originMs(bytes));
}
