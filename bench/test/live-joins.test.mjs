// The live scenario's join schedule and the playlist reading it is timed from. Part of npm test (vitest's unit project).
import assert from 'node:assert/strict';
import { test } from 'vitest';
import { LIVE, liveJoin, newestSegmentNumber } from '../lib/runs.mjs';

test('live viewers join spread over the first seconds, each at its own phase of the segment cycle', () => {
  for (const viewers of [4, 8]) {
    const joins = Array.from({ length: viewers }, (_, index) => liveJoin(index, viewers));
    const phases = joins.map((join) => join.afterMs);
    // Viewer i of n at i/n of a 2 s segment after its playlist: n distinct phases, none a segment or more.
    assert.deepEqual(phases, Array.from({ length: viewers }, (_, index) => (index * 2000) / viewers));
    // In join order, all within the spread.
    const at = joins.map((join) => join.segments * 2000 + join.afterMs);
    assert.deepEqual([...at].sort((a, b) => a - b), at);
    assert.ok(at.at(-1) < LIVE.joinSpreadMs, `last join at ${at.at(-1)} ms`);
  }
});

test('the newest segment of a live playlist is its last listed', () => {
  const playlist = [
    '#EXTM3U', '#EXT-X-TARGETDURATION:2', '#EXT-X-MEDIA-SEQUENCE:9',
    '#EXTINF:2.000000,', '#EXT-X-PROGRAM-DATE-TIME:2026-12-05T21:30:01.995+0000', 'seg-00009.ts',
    '#EXTINF:2.000000,', '#EXT-X-PROGRAM-DATE-TIME:2026-12-05T21:30:03.995+0000', 'seg-00010.ts', '',
  ].join('\n');
  assert.equal(newestSegmentNumber(playlist), 10);
  assert.equal(newestSegmentNumber(`${playlist}#EXT-X-ENDLIST\n`), 10);
  assert.equal(newestSegmentNumber('#EXTM3U\n#EXT-X-TARGETDURATION:2\n'), undefined);
});
