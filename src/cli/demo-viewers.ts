/**
 * Headless viewers for `peerfetch demo --viewers N`: one headless Chromium, one browser context
 * per viewer (so each has its own service worker, IndexedDB and presence in the swarm), each
 * playing the demo page. A person alone on one machine can watch the swarm's offload rise.
 */
import { existsSync } from 'node:fs';
import { createServer } from 'node:http';
import type { Browser, BrowserContext } from 'playwright-core';

/** At most this many headless viewers: each is a renderer of ~100 MB and a share of the CPU. */
export const MAX_HEADLESS_VIEWERS = 8;

/**
 * Chromium switches measured to work for headless viewers (docs/contributing.md, "Chromium"): the background-networking
 * switches stop Chromium calling home, WebRtcHideLocalIpsWithMdns keeps ICE candidates as plain
 * addresses (no multicast), and the autoplay policy lets the muted film start by itself.
 */
export const CHROMIUM_ARGS: readonly string[] = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-features=WebRtcHideLocalIpsWithMdns',
  '--autoplay-policy=no-user-gesture-required',
];

/** User-Agent token that names a viewer in the origin's byte counters (/__peerfetch/origin-stats). */
const VIEWER_UA_TOKEN = 'peerfetch-viewer/';

/** Where Chromium is: PEERFETCH_CHROMIUM, else Debian's /usr/bin/chromium; undefined when absent. */
export function findChromium(): string | undefined {
  const candidate = process.env.PEERFETCH_CHROMIUM ?? '/usr/bin/chromium';
  return existsSync(candidate) ? candidate : undefined;
}

/** Running headless viewers. */
export interface HeadlessViewers {
  /** Viewers started so far (their pages may still be loading). */
  readonly count: number;
  /** False once the browser is gone (closed, or it died). */
  readonly running: boolean;
  /** Starts one more viewer on `url`; refuses beyond {@link MAX_HEADLESS_VIEWERS}. */
  add(url: string): Promise<void>;
  /** Closes every viewer and the browser. Idempotent. */
  close(): Promise<void>;
}

/**
 * Launches Chromium for headless viewers; add them with `add(url)`.
 * playwright-core is a development dependency, there after `npm install` in a checkout.
 *
 * @example
 * const viewers = await launchHeadlessViewers('/usr/bin/chromium');
 * await viewers.add('http://127.0.0.1:8080/');
 * await viewers.close();
 */
export async function launchHeadlessViewers(executablePath: string): Promise<HeadlessViewers> {
  // A specifier in a variable keeps the bundler from inlining playwright-core into dist/node.
  const moduleName = 'playwright-core';
  let playwright: typeof import('playwright-core');
  try {
    playwright = (await import(moduleName)) as typeof import('playwright-core');
  } catch {
    throw new Error('headless viewers need playwright-core: run npm install in the peerfetch checkout');
  }
  const browser: Browser = await playwright.chromium.launch({ executablePath, headless: true, args: [...CHROMIUM_ARGS] });
  const contexts: BrowserContext[] = [];
  let userAgent: string | undefined;
  let closing: Promise<void> | undefined;
  return {
    get count() {
      return contexts.length;
    },
    get running() {
      return browser.isConnected();
    },
    async add(url) {
      if (closing) throw new Error('the headless viewers are closed');
      if (contexts.length >= MAX_HEADLESS_VIEWERS) throw new Error(`at most ${MAX_HEADLESS_VIEWERS} headless viewers`);
      // Chromium's own User-Agent plus a token, so the origin counts each viewer's bytes apart.
      userAgent ??= await defaultUserAgent(browser);
      const name = `headless-${contexts.length + 1}`;
      const context = await browser.newContext({
        userAgent: `${userAgent} ${VIEWER_UA_TOKEN}${name}`,
        viewport: { width: 1280, height: 800 },
      });
      contexts.push(context);
      const page = await context.newPage();
      await page.goto(url);
    },
    close() {
      closing ??= (async () => {
        await Promise.allSettled(contexts.map((context) => context.close()));
        await browser.close();
      })();
      return closing;
    },
  };
}

async function defaultUserAgent(browser: Browser): Promise<string> {
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    return await page.evaluate<string>('navigator.userAgent');
  } finally {
    await context.close();
  }
}

/** Options of {@link serveViewerControl}. */
export interface ViewerControlOptions {
  /** Address to listen on (port 0: a free one). */
  host: string;
  /** Origins of the demo pages (e.g. `http://127.0.0.2:8080`): the only pages allowed to add viewers. */
  allowedOrigins: () => string[];
  /** Starts one more headless viewer; resolves with the number running. */
  add: () => Promise<number>;
}

/** A running control endpoint. */
export interface ViewerControl {
  /** `http://HOST:PORT/viewers`: POST adds a headless viewer. */
  url: string;
  close(): Promise<void>;
}

/**
 * The demo page's "add a headless viewer" button talks to this endpoint: `POST /viewers`.
 * It is a POST from an allowed Origin only, so no other site open in the person's browser can
 * start browsers on their machine (a cross-site POST carries its Origin; a GET would not).
 *
 * @example
 * const control = await serveViewerControl({ host: '127.0.0.1', allowedOrigins: () => [page], add });
 */
export async function serveViewerControl(options: ViewerControlOptions): Promise<ViewerControl> {
  const server = createServer((request, response) => {
    const origin = request.headers.origin;
    const allowed = origin !== undefined && options.allowedOrigins().includes(origin);
    const reply = (status: number, body: unknown): void => {
      response.statusCode = status;
      response.setHeader('Content-Type', 'application/json; charset=utf-8');
      response.setHeader('Cache-Control', 'no-store');
      if (allowed) response.setHeader('Access-Control-Allow-Origin', origin);
      response.setHeader('Vary', 'Origin');
      response.end(JSON.stringify(body));
    };
    const path = new URL(request.url ?? '/', 'http://control.invalid').pathname;
    if (path !== '/viewers') return reply(404, { error: 'not found' });
    if (request.method !== 'POST') {
      response.setHeader('Allow', 'POST');
      return reply(405, { error: 'POST adds a headless viewer' });
    }
    if (!allowed) return reply(403, { error: 'only the demo pages may add viewers' });
    options.add().then(
      (headlessViewers) => reply(200, { headlessViewers }),
      (error: unknown) => reply(409, { error: error instanceof Error ? error.message : String(error) }),
    );
  });
  server.on('clientError', (_error, socket) => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as { port: number };
  let closing: Promise<void> | undefined;
  return {
    url: `http://${options.host}:${port}/viewers`,
    close: () => {
      closing ??= new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}
