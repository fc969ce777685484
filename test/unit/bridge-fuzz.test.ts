import { afterEach, describe, expect, it, vi } from 'vitest';
import { hostileValues, randomBridgeValue, spoilMessage, validForwardParts, validPageToWorker, validPieceAnswers, validWorkerToPage } from '../harness/bridge-inputs.js';
import {
  BRIDGE_VERSION,
  MAX_DIRECT_MEDIA_URLS,
  MAX_MESSAGE_URL_LENGTH,
  asForwardPart,
  asPageToWorker,
  asPieceAnswer,
  asWorkerToPage,
} from '../../src/shared/bridge-messages.js';
import { MAX_PIECE_SIZE } from '../../src/shared/manifest.js';
import { isIndex } from '../../src/shared/piece-math.js';
import { DirectMedia } from '../../src/sw/direct-media.js';
import { EngineBridge } from '../../src/sw/engine-bridge.js';
import { fuzzSeed, randomTools, seededRandom } from '../harness/seeded-random.js';

// The page <-> worker messages under hostile input: every field of every message is checked, a
// message that fails is dropped (never thrown into the worker or the page) and counted, and what
// a page can make the worker keep is bounded. Random inputs come from a seeded PRNG: replay a
// failure with PEERFETCH_FUZZ_SEED=<the seed in the test name>.

const seed = fuzzSeed();
const ASSET = '0123456789abcdef';
/** Random inputs per parser: a few thousand run in well under a second. */
const FUZZ_RUNS = 5000;

const WORDS = [ASSET, 'https://site.example/v.mp4', 'piece', 'engine-ready', 'prefetch'];
const VALID_PAGE_TO_WORKER = validPageToWorker(ASSET, 'https://site.example/a.mp4');
const VALID_WORKER_TO_PAGE = validWorkerToPage(ASSET);
const VALID_PIECE_ANSWERS = validPieceAnswers();
const randomValue = (tools: ReturnType<typeof randomTools>) => randomBridgeValue(tools, WORDS);
const mutate = (tools: ReturnType<typeof randomTools>, valid: Record<string, unknown>) => spoilMessage(tools, valid, WORDS);

/** What an accepted message must satisfy whatever the input was: the checks the receivers rely on. */
function assertWellFormed(message: Record<string, unknown>): void {
  for (const field of ['piece', 'bytes', 'version']) if (field in message) expect(isIndex(message[field]), `${field} of ${JSON.stringify(message)}`).toBe(true);
  if ('asset' in message) expect(message.asset).toMatch(/^[0-9a-f]{16}$/);
  if ('deadlineMs' in message) expect(Number.isFinite(message.deadlineMs) && (message.deadlineMs as number) >= 0).toBe(true);
  if ('latencyMs' in message) expect(Number.isFinite(message.latencyMs) && (message.latencyMs as number) >= 0).toBe(true);
  if ('urls' in message) {
    const urls = message.urls as unknown[];
    expect(urls.length).toBeLessThanOrEqual(MAX_DIRECT_MEDIA_URLS);
    for (const url of urls) expect(typeof url === 'string' && url.length <= MAX_MESSAGE_URL_LENGTH).toBe(true);
  }
  for (const field of ['data', 'partial']) {
    if (field in message) expect((message[field] as ArrayBuffer).byteLength).toBeLessThanOrEqual(MAX_PIECE_SIZE);
  }
}

const PARSERS = [
  ['asPageToWorker', asPageToWorker, VALID_PAGE_TO_WORKER],
  ['asWorkerToPage', asWorkerToPage, VALID_WORKER_TO_PAGE],
  ['asPieceAnswer', asPieceAnswer, VALID_PIECE_ANSWERS],
  ['asForwardPart', asForwardPart, validForwardParts()],
] as const;

describe('bridge message parsers', () => {
  it.each(PARSERS)('%s accepts every valid message as it is', (_name, parse, valid) => {
    for (const message of valid) expect(parse(message)).toEqual(message);
  });

  it.each([
    ['a NaN piece', { type: 'prefetch', asset: ASSET, piece: NaN }],
    ['a negative piece', { type: 'prefetch', asset: ASSET, piece: -1 }],
    ['a fractional piece', { type: 'prefetch', asset: ASSET, piece: 1.5 }],
    ['an infinite piece', { type: 'prefetch', asset: ASSET, piece: Infinity }],
    ['a piece past 2^53', { type: 'prefetch', asset: ASSET, piece: 2 ** 60 }],
    ['a piece as a string', { type: 'prefetch', asset: ASSET, piece: '3' }],
    ['an asset that is not a content id', { type: 'prefetch', asset: '../x', piece: 1 }],
    ['an engine-ready without a version', { type: 'engine-ready' }],
    ['too many direct URLs', { type: 'media-direct', urls: Array.from({ length: MAX_DIRECT_MEDIA_URLS + 1 }, (_, i) => `https://s.example/${i}.mp4`) }],
    ['a direct URL too long', { type: 'media-direct', urls: [`https://s.example/${'a'.repeat(MAX_MESSAGE_URL_LENGTH)}`] }],
    ['a direct URL that is not a string', { type: 'media-direct', urls: [42] }],
    ['a takeover of an empty URL', { type: 'media-takeover', url: '' }],
  ])('asPageToWorker drops %s', (_name, message) => {
    expect(asPageToWorker(message)).toBeUndefined();
  });

  it.each([
    ['a piece request with a NaN deadline', { type: 'piece-request', version: 1, asset: ASSET, piece: 0, deadlineMs: NaN, first: false }],
    ['a piece request with a deadline of a day', { type: 'piece-request', version: 1, asset: ASSET, piece: 0, deadlineMs: 86_400_000, first: false }],
    ['a piece request with a negative piece', { type: 'piece-request', version: 1, asset: ASSET, piece: -1, deadlineMs: 10, first: false }],
    ['a piece request without first', { type: 'piece-request', version: 1, asset: ASSET, piece: 0, deadlineMs: 10 }],
    ['a piece request allowing less than its deadline', { type: 'piece-request', version: 1, asset: ASSET, piece: 0, deadlineMs: 4000, maxDeadlineMs: 1000, first: false }],
    ['a piece request allowing a day', { type: 'piece-request', version: 1, asset: ASSET, piece: 0, deadlineMs: 4000, maxDeadlineMs: 86_400_000, first: false }],
    ['a delivery from an unknown source', { type: 'piece-delivered', asset: ASSET, piece: 0, source: 'moon', bytes: 1, stored: true }],
    ['a delivery of negative bytes', { type: 'piece-delivered', asset: ASSET, piece: 0, source: 'origin', bytes: -5, stored: true }],
    ['a delivery with an infinite latency', { type: 'piece-delivered', asset: ASSET, piece: 0, source: 'origin', bytes: 5, stored: true, latencyMs: Infinity }],
    ['bytes served as NaN', { type: 'bytes-served', bytes: NaN }],
    ['a manifest notice without a manifest', { type: 'manifest', url: 'https://s.example/m.json' }],
  ])('asWorkerToPage drops %s', (_name, message) => {
    expect(asWorkerToPage(message)).toBeUndefined();
  });

  it('asWorkerToPage keeps the longest deadline a piece request allows', () => {
    const request = { type: 'piece-request', version: 1, asset: ASSET, piece: 3, deadlineMs: 4000, maxDeadlineMs: 8000, first: false };
    expect(asWorkerToPage(request)).toEqual(request);
  });

  it.each([
    ['a piece that is not an ArrayBuffer', { type: 'piece', data: new Uint8Array(4) }],
    ['a piece larger than any piece', { type: 'piece', data: new ArrayBuffer(MAX_PIECE_SIZE + 1) }],
    ['a miss with an unknown reason', { type: 'piece-miss', reason: 'bored' }],
    ['a miss with a partial that is not an ArrayBuffer', { type: 'piece-miss', reason: 'timeout', partial: 'abc' }],
  ])('asPieceAnswer drops %s', (_name, message) => {
    expect(asPieceAnswer(message)).toBeUndefined();
  });

  it.each([
    ['bytes that are not an ArrayBuffer', { type: 'forward-bytes', data: new Uint8Array(4) }],
    ['bytes larger than any piece', { type: 'forward-bytes', data: new ArrayBuffer(MAX_PIECE_SIZE + 1) }],
    ['a part of an unknown type', { type: 'forward-done' }],
  ])('asForwardPart drops %s', (_name, message) => {
    expect(asForwardPart(message)).toBeUndefined();
  });

  it.each(PARSERS)(`%s never throws on random input, and what it accepts is well formed (seed ${seed})`, (name, parse, valid) => {
    const tools = randomTools(seededRandom(seed));
    let accepted = 0;
    for (let run = 0; run < FUZZ_RUNS; run++) {
      const draw = tools.random();
      const input = draw < 0.2 ? { ...tools.pick(valid) } : draw < 0.6 ? mutate(tools, tools.pick(valid)) : randomValue(tools);
      let parsed: unknown;
      expect(() => (parsed = parse(input)), `${name}, seed ${seed}, run ${run}`).not.toThrow();
      if (parsed === undefined) continue;
      accepted++;
      assertWellFormed(parsed as Record<string, unknown>);
      // The parsed message is a fresh object with only the message's own fields: parsing it again gives the same.
      expect(parse(parsed)).toEqual(parsed);
    }
    // Valid messages (a fifth of the inputs, and mutations that kept a message valid) went through the checks above.
    expect(accepted).toBeGreaterThan(FUZZ_RUNS / 10);
  });
});

/** A window client as the SW sees it; EngineBridge tells a page's message from others by `instanceof Client`. */
class FakeClient {
  readonly posted: unknown[] = [];
  onPost: ((message: unknown, ports: MessagePort[]) => void) | undefined;
  constructor(readonly id: string) {}
  postMessage(message: unknown, ports: MessagePort[] = []): void {
    this.posted.push(message);
    this.onPost?.(message, ports);
  }
}

function workerScope(clients: FakeClient[]): ServiceWorkerGlobalScope {
  return {
    clients: {
      matchAll: async () => clients,
      get: async (id: string) => clients.find((client) => client.id === id),
    },
  } as unknown as ServiceWorkerGlobalScope;
}

const messageFrom = (source: FakeClient | undefined, data: unknown, ports: MessagePort[] = []) =>
  ({ data, source, ports, waitUntil() {} }) as unknown as ExtendableMessageEvent;

describe(`EngineBridge under hostile pages (seed ${seed})`, () => {
  vi.stubGlobal('Client', FakeClient);
  afterEach(() => vi.useRealTimers());

  it('drops and counts every message that fails validation, and never throws', () => {
    const tools = randomTools(seededRandom(seed));
    const page = new FakeClient('page-1');
    const bridge = new EngineBridge(workerScope([page]));
    let handedOn = 0;
    let dropped = 0;
    for (let run = 0; run < FUZZ_RUNS; run++) {
      const data = tools.random() < 0.5 ? mutate(tools, tools.pick(VALID_PAGE_TO_WORKER)) : randomValue(tools);
      const valid = asPageToWorker(data) !== undefined;
      let result: unknown;
      expect(() => (result = bridge.onMessage(messageFrom(page, data))), `seed ${seed}, run ${run}`).not.toThrow();
      if (result) handedOn++;
      if (!valid) dropped++;
    }
    // A message without a page behind it (another worker, a message port) is dropped too.
    bridge.onMessage(messageFrom(undefined, { type: 'engine-gone' }));
    expect(bridge.droppedMessages).toBe(dropped + 1);
    expect(handedOn).toBeGreaterThan(0);
  });

  it('a page that answers piece requests with garbage gets no bytes into a response: every answer is a verified-shape piece, a partial or nothing', async () => {
    const tools = randomTools(seededRandom(seed + 1));
    const page = new FakeClient('page-1');
    const bridge = new EngineBridge(workerScope([page]));
    bridge.onMessage(messageFrom(page, { type: 'engine-ready', version: BRIDGE_VERSION }));
    let invalidAnswers = 0;
    page.onPost = (_message, [port]) => {
      // Some requests get no answer at all (the deadline ends them), some two, some a closed port.
      const answers = tools.int(3);
      for (let i = 0; i < answers; i++) {
        let answer = tools.random() < 0.5 ? mutate(tools, tools.pick(VALID_PIECE_ANSWERS)) : randomValue(tools);
        // The 16 MiB buffer is left to the parser tests: 300 copies of it would hold the event loop past the deadlines.
        if (typeof answer === 'object' && answer !== null && Object.values(answer).some((value) => value instanceof ArrayBuffer && value.byteLength > 1024 * 1024)) answer = { type: 'piece', data: 'not a buffer' };
        if (i === 0 && asPieceAnswer(answer) === undefined) invalidAnswers++;
        try {
          port!.postMessage(answer);
        } catch {
          // Not cloneable (a getter-bearing object): the page could not have sent it either.
          if (i === 0) invalidAnswers--;
          break;
        }
      }
      if (tools.random() < 0.2) port!.close();
    };
    const outcomes = { piece: 0, partial: 0, none: 0 };
    const answers = await Promise.all(
      Array.from({ length: 300 }, (_, run) => bridge.requestPiece('page-1', ASSET, run, { deadlineMs: 2000, first: false, signal: new AbortController().signal })),
    );
    for (const answer of answers) {
      if (answer === undefined) outcomes.none++;
      else if ('data' in answer) {
        expect(answer.data).toBeInstanceOf(Uint8Array);
        outcomes.piece++;
      } else {
        expect(answer.partial.length).toBeGreaterThan(0);
        outcomes.partial++;
      }
    }
    // Every request ended (none hung past its deadline), and invalid answers were counted (those
    // that arrived before their request's deadline: a busy event loop may let the deadline win).
    expect(outcomes.piece + outcomes.partial + outcomes.none).toBe(300);
    expect(invalidAnswers).toBeGreaterThan(0);
    expect(bridge.droppedMessages).toBeGreaterThan(0);
  });
});

describe('DirectMedia', () => {
  it('keeps at most MAX_DIRECT_MEDIA_URLS URLs per page, whatever a page sends', () => {
    const direct = new DirectMedia();
    for (let batch = 0; batch < 100; batch++) {
      direct.add('page-1', Array.from({ length: MAX_DIRECT_MEDIA_URLS }, (_, i) => `https://s.example/${batch}/${i}.mp4`));
    }
    // The newest batch is kept whole; every older URL was pushed out.
    expect(direct.has('page-1', `https://s.example/99/0.mp4`)).toBe(true);
    expect(direct.has('page-1', `https://s.example/99/${MAX_DIRECT_MEDIA_URLS - 1}.mp4`)).toBe(true);
    expect(direct.has('page-1', `https://s.example/98/${MAX_DIRECT_MEDIA_URLS - 1}.mp4`)).toBe(false);
    expect(direct.has('page-1', 'https://s.example/0/0.mp4')).toBe(false);
  });
});
