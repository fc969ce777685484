import { BRIDGE_VERSION, MAX_DIRECT_MEDIA_URLS, MAX_MESSAGE_URL_LENGTH } from '../../src/shared/bridge-messages.js';
import { MAX_PIECE_SIZE } from '../../src/shared/manifest.js';
import type { randomTools } from './seeded-random.js';

// Inputs for fuzzing the page <-> worker bridge (test/unit/bridge-fuzz.test.ts and the browser
// test against the real worker): valid messages, values that break naive checks, random values
// and valid messages with one field spoiled.

type Tools = ReturnType<typeof randomTools>;

/** Values that break naive checks: not integers, not finite, not numbers, too large, wrong kinds. */
export function hostileValues(): readonly unknown[] {
  // Made once: one 16 MiB buffer, not one per pick.
  hostile ??= [
    NaN, -1, -0.5, 1.5, Infinity, -Infinity, 2 ** 53, 2 ** 60, 1e300, '3', '', null, undefined, true, [], {}, [1],
    'x'.repeat(MAX_MESSAGE_URL_LENGTH + 1), '../../etc/passwd', 'ABCDEF0123456789', '0123456789abcde', '0123456789abcdef0',
    new ArrayBuffer(MAX_PIECE_SIZE + 1), new Uint8Array(4), Object.create(null),
  ];
  return hostile;
}
let hostile: unknown[] | undefined;

export function validPageToWorker(asset: string, url: string): Record<string, unknown>[] {
  return [
    { type: 'engine-ready', version: BRIDGE_VERSION },
    { type: 'engine-gone' },
    { type: 'prefetch', asset, piece: 3 },
    { type: 'forward', asset, piece: 3 },
    { type: 'media-direct', urls: [url, 'https://cdn.example/b.mp4'] },
    { type: 'media-takeover', url },
  ];
}

export function validWorkerToPage(asset: string): Record<string, unknown>[] {
  return [
    { type: 'worker-hello', version: BRIDGE_VERSION },
    { type: 'piece-request', version: BRIDGE_VERSION, asset, piece: 0, deadlineMs: 4000, first: true },
    { type: 'piece-delivered', asset, piece: 2, source: 'origin', bytes: 65536, stored: true, latencyMs: 12.5 },
    { type: 'piece-delivered', asset, piece: 2, source: 'store', bytes: 65536, stored: false },
    { type: 'bytes-served', bytes: 1000 },
    { type: 'piece-arriving', asset, piece: 1 },
    { type: 'manifest', url: 'https://site.example/peerfetch-manifest.json', manifest: { version: 1, assets: [] } },
  ];
}

export function validPieceAnswers(pieceBytes = 16): Record<string, unknown>[] {
  return [
    { type: 'piece', data: new ArrayBuffer(pieceBytes) },
    { type: 'piece-miss', reason: 'no-peer' },
    { type: 'piece-miss', reason: 'timeout', partial: new ArrayBuffer(Math.max(1, pieceBytes >> 1)) },
  ];
}

/** Parts of a forwarded piece, SW -> page on the port of a `forward`. */
export function validForwardParts(pieceBytes = 16): Record<string, unknown>[] {
  return [{ type: 'forward-bytes', data: new ArrayBuffer(pieceBytes) }, { type: 'forward-failed' }];
}

const MESSAGE_TYPES = ['engine-ready', 'engine-gone', 'prefetch', 'media-direct', 'media-takeover', 'worker-hello', 'piece-request', 'piece-delivered', 'bytes-served', 'manifest', 'piece', 'piece-miss', 'cancel', 'forward', 'piece-arriving', 'forward-bytes', 'forward-failed'];
const FIELDS = ['type', 'asset', 'piece', 'urls', 'url', 'version', '__proto__', 'data', 'partial', 'reason'];

/** A random value, sometimes shaped like a bridge message; `words` are strings worth trying (asset ids, URLs). */
export function randomBridgeValue(tools: Tools, words: readonly string[], depth = 0): unknown {
  const { int, pick, random, bytes } = tools;
  switch (int(depth > 2 ? 7 : 11)) {
    case 0: return pick(hostileValues());
    case 1: return (random() - 0.5) * 10 ** int(20);
    case 2: return int(1000);
    case 3: return Array.from(bytes(int(24)), (b) => String.fromCharCode(b)).join('');
    case 4: return random() < 0.5;
    case 5: return new ArrayBuffer(int(64));
    case 6: return pick(words);
    case 7: return Array.from({ length: int(6) }, () => randomBridgeValue(tools, words, depth + 1));
    case 8: return Object.fromEntries(Array.from({ length: int(6) }, () => [pick(FIELDS), randomBridgeValue(tools, words, depth + 1)]));
    case 9: return { type: 'media-direct', urls: Array.from({ length: int(MAX_DIRECT_MEDIA_URLS + 2) }, () => `https://flood.example/${int(1e9)}.mp4`) };
    default: return { type: pick(MESSAGE_TYPES), ...(randomBridgeValue(tools, words, depth + 1) as object) };
  }
}

/** A valid message with one field replaced by a random or hostile value, or removed. */
export function spoilMessage(tools: Tools, valid: Record<string, unknown>, words: readonly string[]): Record<string, unknown> {
  const message = { ...valid };
  const key = tools.pick(Object.keys(message));
  if (tools.random() < 0.1) delete message[key];
  else message[key] = tools.random() < 0.5 ? tools.pick(hostileValues()) : randomBridgeValue(tools, words);
  return message;
}
