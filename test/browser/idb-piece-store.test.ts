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
