import { describe, expect, it } from 'vitest';
import { bufferedAheadMs, liveReserveMs, playbackDeadlineMs, PLAYBACK_RESERVE_MS, type PlayingMedia } from '../../src/engine/playback-slack.js';

/** A media element's state as the engine reads it: buffered ranges in seconds. */
function media(currentTime: number, ranges: [number, number][], state: Partial<PlayingMedia> = {}): PlayingMedia {
  return {
    paused: false,
    ended: false,
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

  it('is 0 when the playhead is outside every range (after a seek) and undefined when nothing plays', () => {
    expect(bufferedAheadMs([media(35, [[8, 30]])])).toBe(0);
    expect(bufferedAheadMs([media(10, [[0, 30]], { paused: true }), media(5, [[0, 30]], { ended: true })])).toBeUndefined();
    expect(bufferedAheadMs([])).toBeUndefined();
  });

  it('takes the least of several playing elements, in play time at their rate', () => {
    expect(bufferedAheadMs([media(0, [[0, 30]]), media(0, [[0, 12]], { playbackRate: 2 })])).toBe(6000);
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
