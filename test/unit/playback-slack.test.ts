import { describe, expect, it } from 'vitest';
import {
  awaitingFirstFrame,
  bufferedAheadMs,
  finishFromOrigin,
  liveReserveMs,
  ORIGIN_ASSUMED_BPS,
  ORIGIN_FIRST_BYTE_MS,
  originMs,
  originSlackMs,
  playbackDeadlineMs,
  PLAYBACK_RESERVE_MS,
  silentAtLastChance,
  type PlayingMedia,
} from '../../src/engine/playback-slack.js';

/** A media element's state as the engine reads it: buffered ranges in seconds. */
function media(currentTime: number, ranges: [number, number][], state: Partial<PlayingMedia> = {}): PlayingMedia {
  return {
    paused: false,
    ended: false,
    played: { length: 1 },
    playbackRate: 1,
    currentTime,
    buffered: { length: ranges.length, start: (i) => ranges[i]![0], end: (i) => ranges[i]![1] },
    ...state,
  };
}

describe('bufferedAheadMs', () => {
  it('is the play time buffered past the playhead, in the range that holds it', () => {
    expect(bufferedAheadMs([media(10, [[0, 4], [8, 30], [40, 50]])])).toBe(20_000);
  });

  it('counts a range that starts a hair after the playhead (MSE append gaps)', () => {
    expect(bufferedAheadMs([media(10, [[10.05, 16]])])).toBeCloseTo(6000, 5);
  });

  it('is 0 when the playhead is outside every range (after a seek) and undefined when nothing plays or before the first frame', () => {
    expect(bufferedAheadMs([media(35, [[8, 30]])])).toBe(0);
    expect(bufferedAheadMs([media(10, [[0, 30]], { paused: true }), media(5, [[0, 30]], { ended: true })])).toBeUndefined();
    // Autoplay before the first frame: not paused, nothing played or buffered yet.
    expect(bufferedAheadMs([media(0, [], { played: { length: 0 } })])).toBeUndefined();
    expect(bufferedAheadMs([])).toBeUndefined();
  });

  it('takes the least of several playing elements, in play time at their rate', () => {
    expect(bufferedAheadMs([media(0, [[0, 30]]), media(0, [[0, 12]], { playbackRate: 2 })])).toBe(6000);
  });
});

describe('awaitingFirstFrame', () => {
  it('is true while an element asked to play has shown no frame yet, false once one has, or when none is asked to play', () => {
    expect(awaitingFirstFrame([media(0, [], { played: { length: 0 } })])).toBe(true);
    expect(awaitingFirstFrame([media(10, [[0, 30]]), media(0, [[0, 2]], { played: { length: 0 } })])).toBe(true);
    expect(awaitingFirstFrame([media(10, [[0, 30]])])).toBe(false);
    expect(awaitingFirstFrame([media(0, [], { played: { length: 0 }, paused: true }), media(0, [], { played: { length: 0 }, ended: true })])).toBe(false);
    expect(awaitingFirstFrame([])).toBe(false);
  });
});

describe('playbackDeadlineMs', () => {
  it('gives what the buffer spares beyond the reserve, between the plain deadline and the cap', () => {
    expect(playbackDeadlineMs(4000, 8000, 20_000)).toBe(8000);
    expect(playbackDeadlineMs(4000, 8000, PLAYBACK_RESERVE_MS + 6000)).toBe(6000);
    expect(playbackDeadlineMs(4000, 8000, 5000)).toBe(4000);
  });

  it('a live piece keeps one segment of buffer in reserve, not the on-demand reserve', () => {
    // hls.js at the edge of a stream of 2 s segments: 5 s buffered when a new segment appears.
    expect(liveReserveMs(2000)).toBe(2000);
    expect(playbackDeadlineMs(1000, 2000, 5000, liveReserveMs(2000))).toBe(2000);
    // A short buffer gets the plain live deadline.
    expect(playbackDeadlineMs(1000, 2000, 2500, liveReserveMs(2000))).toBe(1000);
    // The on-demand reserve would leave it the plain live deadline.
    expect(playbackDeadlineMs(1000, 2000, 5000)).toBe(1000);
    // Long segments keep at most the on-demand reserve.
    expect(liveReserveMs(10_000)).toBe(PLAYBACK_RESERVE_MS);
  });

  it('keeps the plain deadline when the SW allows no more or nothing plays', () => {
    expect(playbackDeadlineMs(4000, undefined, 20_000)).toBe(4000);
    expect(playbackDeadlineMs(4000, 8000, undefined)).toBe(4000);
  });
});

describe('silentAtLastChance', () => {
  const rest = originMs(50_000); // about 0.53 s
  const check = 250;

  it('leaves a line that went silent for longer than the rest should take once the next check would be too late for the origin', () => {
    // The start stall at 1.93 s: 0.3 s expected for the rest, nothing for 0.6 s, 0.7 s buffered.
    expect(silentAtLastChance(600, 300, rest, 700, check)).toBe(true);
    expect(silentAtLastChance(300, 300, rest, rest + check - 1, check)).toBe(true);
  });

  it('waits while the buffer can wait, however long the silence (a line paused for seconds came back in time)', () => {
    expect(silentAtLastChance(3000, 300, rest, 4000, check)).toBe(false);
    expect(silentAtLastChance(600, 300, rest, rest + check, check)).toBe(false);
  });

  it('waits for a line silent for less than the rest should take, or for less than a check (chunks come in bursts)', () => {
    expect(silentAtLastChance(299, 300, rest, 0, check)).toBe(false);
    expect(silentAtLastChance(check - 1, 10, rest, 0, check)).toBe(false);
  });

  it('never applies while nothing plays (the SW deadline bounds the wait then)', () => {
    expect(silentAtLastChance(5000, 300, rest, undefined, check)).toBe(false);
  });
});

describe('finishFromOrigin', () => {
  const wholePiece = originMs(256 * 1024);

  it('expects the origin to take its first-byte time plus the bytes at its assumed rate', () => {
    expect(originMs(0)).toBe(ORIGIN_FIRST_BYTE_MS);
    expect(originMs(ORIGIN_ASSUMED_BPS)).toBe(ORIGIN_FIRST_BYTE_MS + 1000);
    expect(originMs(128 * 1024)).toBeLessThan(wholePiece);
  });

  it('always waits for a peer expected faster than the origin, however short the buffer (a LAN peer at start-up)', () => {
    // A 256 KiB piece at 5 MB/s: about 50 ms; with 1 s buffered, or while the player stalls.
    expect(finishFromOrigin(60, wholePiece, 1000)).toBe(false);
    expect(finishFromOrigin(60, wholePiece, 0)).toBe(false);
    expect(finishFromOrigin(wholePiece - 1, wholePiece, 0)).toBe(false);
  });

  it('waits for a slow peer while the buffer leaves the origin time to rescue the piece after it', () => {
    // A 2 Mbit/s home line, 1.8 s for the rest, 6 s buffered: 4.2 s left when it is done.
    expect(finishFromOrigin(1800, wholePiece, 6000)).toBe(false);
    expect(finishFromOrigin(1800, wholePiece, 1800 + wholePiece)).toBe(false);
  });

  it('leaves a slow peer when the buffer would then hold less than the origin needs (WAN: 2-2.8 s buffered, a piece queued on the only line ahead)', () => {
    expect(finishFromOrigin(1800, wholePiece, 1800 + wholePiece - 1)).toBe(true);
    expect(finishFromOrigin(3000, wholePiece, 2500)).toBe(true);
    // Stalled: anything slower than the origin goes to it.
    expect(finishFromOrigin(wholePiece + 1, wholePiece, 0)).toBe(true);
    // Only the rest is missing: the origin's share is smaller, the peer is left later.
    expect(finishFromOrigin(900, originMs(64 * 1024), 2000)).toBe(false);
  });

  it('never leaves a peer when nothing plays (before the first frame, paused)', () => {
    expect(finishFromOrigin(10_000, wholePiece, undefined)).toBe(false);
  });
});

describe('originSlackMs', () => {
  it('is the buffer less what the origin takes for the piece, never below 0, and unbounded when nothing plays', () => {
    expect(originSlackMs(5000, 262_144)).toBe(5000 - originMs(262_144));
    expect(originSlackMs(1000, 262_144)).toBe(0);
    expect(originSlackMs(0, 1)).toBe(0);
    expect(originSlackMs(undefined, 262_144)).toBe(Infinity);
  });
});
