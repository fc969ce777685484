import { build } from 'esbuild';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useChromium } from '../harness/browser.js';
import { pieceStoreContract } from '../contract/piece-store-contract.js';

// The same store contract as MemoryPieceStore, run against IdbPieceStore in real Chromium
// (real IndexedDB): the contract module and the store are bundled for the page with esbuild.

const chromium = useChromium();
let server: Server;
let url: string;

beforeAll(async () => {
  const bundle = await build({
    stdin: {
      contents: `
        import { IdbPieceStore } from './src/store/idb-piece-store.ts';
        import { pieceStoreContract } from './test/contract/piece-store-contract.ts';
        let opened = 0;
        window.IdbPieceStore = IdbPieceStore;
        window.runContractCase = async (name) =>
          pieceStoreContract[name]((capBytes, now) => IdbPieceStore.open({ capBytes, now, name: 'contract-' + opened++ }));
      `,
      resolveDir: process.cwd(),
      loader: 'ts',
    },
    bundle: true,
    format: 'iife',
    write: false,
  });
  const script = bundle.outputFiles[0]!.text;
  server = createServer((request, response) => {
    if (request.url === '/store.js') return response.writeHead(200, { 'content-type': 'text/javascript' }).end(script);
    response.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><script src="/store.js"></script>');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
});

afterAll(async () => {
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
});

describe('IdbPieceStore in Chromium (piece store contract)', () => {
  for (const name of Object.keys(pieceStoreContract)) {
    it(name, async () => {
      const context = await chromium.viewer('store');
      const page = await context.newPage();
      await page.goto(url);
      const failures = await page.evaluate((caseName) => (window as unknown as { runContractCase(n: string): Promise<string[]> }).runContractCase(caseName), name);
      expect(failures).toEqual([]);
    });
  }
});

/** Chromium's quota for the test origin, set over CDP: far below the store's cap. */
const QUOTA_BYTES = 2 * 1024 * 1024;
const QUOTA_PIECE_BYTES = 64 * 1024;

describe('IdbPieceStore when the browser refuses a write (real QuotaExceededError)', () => {
  it('frees the least recently used pieces and stores the new one; put never throws', async () => {
    const context = await chromium.viewer('quota');
    const page = await context.newPage();
    await page.goto(url);
    const cdp = await context.newCDPSession(page);
    await cdp.send('Storage.overrideQuotaForOrigin', { origin: new URL(url).origin, quotaSize: QUOTA_BYTES });
    const pieceCount = Math.ceil((2 * QUOTA_BYTES) / QUOTA_PIECE_BYTES);
    const result = await page.evaluate(
      async ({ pieceBytes, pieceCount }) => {
        type Store = { put(p: { asset: string; piece: number; data: Uint8Array }): Promise<void>; get(a: string, p: number): Promise<Uint8Array | undefined>; list(a: string): Promise<number[]>; size(): Promise<number> };
        const { IdbPieceStore } = window as unknown as { IdbPieceStore: { open(o: { capBytes: number; name: string }): Promise<Store> } };
        // The cap alone would keep everything: only the browser's quota can make the store evict.
        const store = await IdbPieceStore.open({ capBytes: 512 * 1024 * 1024, name: 'quota' });
        const putErrors: string[] = [];
        let last = new Uint8Array(0);
        for (let piece = 0; piece < pieceCount; piece++) {
          // Random bytes: IndexedDB compresses values, so patterned data would not reach the quota.
          last = crypto.getRandomValues(new Uint8Array(pieceBytes));
          await store.put({ asset: 'video', piece, data: last }).catch((error: Error) => putErrors.push(`${error.name}: ${error.message}`));
        }
        const held = await store.list('video');
        const newest = await store.get('video', pieceCount - 1);
        return {
          putErrors,
          held,
          size: await store.size(),
          newestIntact: newest !== undefined && newest.length === last.length && newest.every((byte, i) => byte === last[i]),
        };
      },
      { pieceBytes: QUOTA_PIECE_BYTES, pieceCount },
    );
    expect(result.putErrors).toEqual([]);
    // Twice the quota was written under a cap that keeps everything: only the browser's quota errors
    // can have evicted pieces. The oldest went first; the newest is stored and intact.
    expect(result.held.length).toBeGreaterThan(0);
    expect(result.held.length).toBeLessThan(pieceCount);
    expect(result.held).toContain(pieceCount - 1);
    expect(result.held).not.toContain(0);
    expect(result.newestIntact).toBe(true);
    expect(result.size).toBeLessThanOrEqual(QUOTA_BYTES);
  });
});
