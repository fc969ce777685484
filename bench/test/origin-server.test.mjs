// The benchmark origin's counters are what the delivery table is made of: check them against
// real requests. Part of npm test (vitest's unit project).
import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll as after, beforeAll as before, test } from 'vitest';
import { fileURLToPath } from 'node:url';
import { startProcess } from '../lib/processes.mjs';

const originScript = fileURLToPath(new URL('../lib/origin-server.mjs', import.meta.url));
/** Small pieces so a 100 000-byte file spans several: 16 KiB. */
const PIECE = 16 * 1024;
const SIZE = 100_000;
let origin;
let url;

before(async () => {
  const dir = await mkdtemp(join(tmpdir(), 'bench-origin-'));
  await writeFile(join(dir, 'file.bin'), Buffer.alloc(SIZE, 7));
  origin = await startProcess(process.execPath, [originScript, '--root', dir, '--piece-size', String(PIECE), '--rate', '2000000'], {
    readyPattern: /http:\/\/127\.0\.0\.1:\d+/,
  });
  url = origin.ready[0];
});
after(() => origin?.stop());

const get = (path, viewer, range) =>
  fetch(`${url}${path}`, { headers: { 'User-Agent': `test peerfetch-viewer/${viewer}`, ...(range ? { Range: range } : {}) } });

test('answers ranges and counts body bytes per viewer and per piece', async () => {
  const full = await get('/file.bin', 'alice');
  assert.equal(full.status, 200);
  assert.equal((await full.arrayBuffer()).byteLength, SIZE);
  const part = await get('/file.bin', 'alice', `bytes=${PIECE}-${2 * PIECE - 1}`);
  assert.equal(part.status, 206);
  assert.equal(part.headers.get('content-range'), `bytes ${PIECE}-${2 * PIECE - 1}/${SIZE}`);
  assert.equal((await part.arrayBuffer()).byteLength, PIECE);
  const tail = await get('/file.bin', 'bob', 'bytes=-10');
  assert.equal((await tail.arrayBuffer()).byteLength, 10);
  assert.equal((await get('/file.bin', 'bob', `bytes=${SIZE}-`)).status, 416);

  const stats = await (await fetch(`${url}/__bench/stats`)).json();
  assert.equal(stats.byViewer.alice['/file.bin'], SIZE + PIECE);
  assert.equal(stats.byViewer.bob['/file.bin'], 10);
  // Piece 1 went to alice twice (the full body and the range), every other piece once.
  assert.equal(stats.pieces.alice['/file.bin'][1], 2 * PIECE);
  assert.equal(stats.pieces.alice['/file.bin'][0], PIECE);
  assert.equal(stats.pieces.bob['/file.bin'][Math.floor((SIZE - 10) / PIECE)], 10);
  assert.deepEqual(
    stats.requests.filter((r) => r.viewer === 'alice').map((r) => r.range),
    [null, `bytes=${PIECE}-${2 * PIECE - 1}`],
  );
});
