import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { BRIDGE_VERSION } from '../../src/shared/bridge-messages.js';
import { parseManifest } from '../../src/shared/manifest.js';
import { randomBridgeValue, spoilMessage, validPageToWorker, validPieceAnswers } from '../harness/bridge-inputs.js';
import { assertNoPageErrors, useChromium, waitFor } from '../harness/browser.js';
import { fuzzSeed, randomTools, seededRandom } from '../harness/seeded-random.js';
import { fetchInPage, sha256, useTestSite } from './test-site.js';

// The real worker under a hostile page: a page of the site posts a few thousand random, spoilt
// and flooding messages to peerfetch's service worker over the real channel, and answers every
// piece request the worker sends it with garbage (wrong kinds, forged bytes of the right length,
// forged partial pieces). The worker must take none of it: it still answers the video
// byte-exact, and no error escapes it. Replay a failure with PEERFETCH_FUZZ_SEED=<seed>.

const chromium = useChromium();
const seed = fuzzSeed();
const VIDEO_PATH = '/media/video.mp4';
const PIECE_BYTES = 64 * 1024;
/** Messages posted to the worker: a few thousand, as the brief of the fuzz asks; about a second of posting. */
const MESSAGES = 3000;
/** Garbage answers cycled through for the worker's piece requests. */
const ANSWERS = 200;

const fixture = useTestSite({ video: { name: 'data-path', seconds: 12, kbps: 1500 }, pieceSize: '64KiB' });

/** A page that only registers peerfetch's worker: the test's own script is the page's "engine". */
const BARE_PAGE = `<!doctype html><meta charset="utf-8"><title>bare</title>
<script>window.registered = navigator.serviceWorker.register('/peerfetch-sw.js');</script>`;

let assetId: string;

beforeAll(async () => {
  await writeFile(join(fixture.site.dir, 'bare.html'), BARE_PAGE);
  const json: unknown = JSON.parse(await readFile(join(fixture.site.dir, 'peerfetch-manifest.json'), 'utf8'));
  const manifest = await parseManifest(json, `${fixture.originUrl}/peerfetch-manifest.json`);
  assetId = manifest.assets.find((asset) => asset.href.endsWith(VIDEO_PATH))!.id;
});

/**
 * Values as page.evaluate can carry them: JSON with markers for what JSON cannot hold (NaN,
 * infinities, undefined, ArrayBuffers and typed arrays with their bytes), turned back in the page.
 */
type Wire = unknown;
/** Buffers larger than a piece sent in the whole run (count): each is a 16 MiB copy in the page and the worker. */
const OVERSIZED_BUFFERS = 5;
let oversizedLeft = OVERSIZED_BUFFERS;
function toWire(value: unknown): Wire {
  if (typeof value === 'number' && !Number.isFinite(value)) return { $number: String(value) };
  if (value === undefined) return { $undefined: true };
  if (value instanceof ArrayBuffer) {
    // Bytes up to 4 KiB are carried as they are; larger buffers arrive zero-filled (still not the piece).
    const length = value.byteLength > PIECE_BYTES && oversizedLeft-- <= 0 ? 16 : value.byteLength;
    return { $buffer: Array.from(new Uint8Array(value, 0, Math.min(length, 4096))), length };
  }
  if (ArrayBuffer.isView(value)) return { $bytes: Array.from(new Uint8Array(value.buffer, value.byteOffset, value.byteLength)) };
  if (Array.isArray(value)) return value.map(toWire);
  if (typeof value === 'object' && value !== null) return { $object: Object.entries(value).map(([key, entry]) => [key, toWire(entry)]) };
  return value;
}

describe(`the real worker under a hostile page (seed ${seed})`, () => {
  it('drops thousands of random and hostile messages and garbage piece answers, and still answers the video byte-exact', async () => {
    const tools = randomTools(seededRandom(seed));
    const videoUrl = `${fixture.originUrl}${VIDEO_PATH}`;
    const words = [assetId, videoUrl, 'piece', 'engine-ready', 'prefetch'];
    const valid = validPageToWorker(assetId, videoUrl);
    const messages: Wire[] = [];
    for (let i = 0; i < MESSAGES; i++) {
      const draw = tools.random();
      const message = draw < 0.1 ? tools.pick(valid) : draw < 0.55 ? spoilMessage(tools, tools.pick(valid), words) : randomBridgeValue(tools, words);
      messages.push(toWire(message));
    }
    // Piece answers: garbage of every kind, and forged pieces and partial pieces of plausible sizes.
    const answers: Wire[] = [];
    for (let i = 0; i < ANSWERS; i++) {
      const draw = tools.random();
      if (draw < 0.25) answers.push(toWire({ type: 'piece', data: tools.bytes(PIECE_BYTES).buffer }));
      else if (draw < 0.45) answers.push(toWire({ type: 'piece-miss', reason: 'timeout', partial: tools.bytes(1 + tools.int(PIECE_BYTES - 1)).buffer }));
      else if (draw < 0.75) answers.push(toWire(spoilMessage(tools, tools.pick(validPieceAnswers(PIECE_BYTES)), words)));
      else answers.push(toWire(randomBridgeValue(tools, words)));
    }

    const context = await chromium.viewer('bridge-fuzz');
    const page = await context.newPage();
    await page.goto(`${fixture.originUrl}/bare.html`);
    await page.evaluate(async () => void (await (window as unknown as { registered: Promise<unknown> }).registered));
    await page.waitForFunction(() => navigator.serviceWorker.controller !== null);

    const posted = await page.evaluate(
      async ({ messages, answers, videoUrl, version }) => {
        const fromWire = (value: unknown): unknown => {
          if (Array.isArray(value)) return value.map(fromWire);
          if (typeof value !== 'object' || value === null) return value;
          const record = value as Record<string, unknown>;
          if ('$number' in record) return Number(record.$number);
          if ('$undefined' in record) return undefined;
          if ('$buffer' in record) {
            const buffer = new Uint8Array(record.length as number);
            buffer.set(record.$buffer as number[]);
            return buffer.buffer;
          }
          if ('$bytes' in record) return Uint8Array.from(record.$bytes as number[]);
          return Object.fromEntries((record.$object as [string, unknown][]).map(([key, entry]) => [key, fromWire(entry)]));
        };
        const controller = navigator.serviceWorker.controller!;
        const state = window as unknown as { garbageAnswers: number };
        state.garbageAnswers = 0;
        // The hostile engine: every piece request gets the next garbage answer (some twice, some
        // on a port closed right after).
        navigator.serviceWorker.addEventListener('message', (event) => {
          const port = event.ports[0];
          if ((event.data as { type?: unknown })?.type !== 'piece-request' || !port) return;
          const answer = fromWire(answers[state.garbageAnswers++ % answers.length]);
          try {
            port.postMessage(answer);
            if (state.garbageAnswers % 7 === 0) port.postMessage(answer);
          } catch {
            // Not cloneable: nothing was sent; the worker's deadline ends the request.
          }
          if (state.garbageAnswers % 5 === 0) port.close();
        });
        navigator.serviceWorker.startMessages();
        let sent = 0;
        for (const wire of messages) {
          try {
            controller.postMessage(fromWire(wire));
            sent++;
          } catch {
            // Not cloneable: the page could not send it either.
          }
        }
        // Last, a valid engine-ready (the flood may have said engine-gone), then a takeover of the
        // video URL (the flood may have listed it as loading from the network) whose answer shows
        // the worker has handled every message before it.
        controller.postMessage({ type: 'engine-ready', version });
        const handled = await new Promise<boolean>((resolve) => {
          const channel = new MessageChannel();
          const timer = setTimeout(() => resolve(false), 20_000);
          channel.port1.onmessage = () => {
            clearTimeout(timer);
            resolve(true);
          };
          controller.postMessage({ type: 'media-takeover', url: videoUrl }, [channel.port2]);
        });
        return { sent, handled };
      },
      { messages, answers, videoUrl, version: BRIDGE_VERSION },
    );
    expect(posted.handled, `seed ${seed}: the worker did not answer after the flood`).toBe(true);
    expect(posted.sent).toBeGreaterThan(MESSAGES / 2);

    const whole = await fetchInPage(page, VIDEO_PATH);
    expect(whole.status).toBe(200);
    expect(whole.sha256, `seed ${seed}`).toBe(fixture.site.videoSha256);
    const start = 3 * PIECE_BYTES + 1000;
    const part = await fetchInPage(page, VIDEO_PATH, `bytes=${start}-`);
    expect(part.status).toBe(206);
    expect(part.length).toBe(fixture.site.videoBytes.length - start);
    expect(part.sha256).toBe(sha256(fixture.site.videoBytes.subarray(start)));
    // The worker did ask the hostile engine (so its answers were tested), and took none of them.
    const garbageAnswers = await waitFor(() => page.evaluate(() => (window as unknown as { garbageAnswers: number }).garbageAnswers), {
      what: 'the worker to ask the page engine for pieces',
    });
    expect(garbageAnswers).toBeGreaterThan(0);
    assertNoPageErrors(context);
  });
});
