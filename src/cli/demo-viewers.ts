/**
 * Headless viewers for `peerfetch demo --viewers N`: one headless Chromium, one browser context
 * per viewer (so each has its own service worker, IndexedDB and presence in the swarm), each
 * playing the demo page. A person alone on one machine can watch the swarm's offload rise.
 */
import { existsSync } from 'node:fs';
import type { Browser, BrowserContext } from 'playwright-core';

/** At most this many headless viewers: each is a renderer of ~100 MB and a share of the CPU. */
export const MAX_HEADLESS_VIEWERS = 8;

/**
 * Chromium switches measured to work for headless viewers (TESTING.md): the background-networking
 * switches stop Chromium calling home, WebRtcHideLocalIpsWithMdns keeps ICE candidates as plain
 * addresses (no multicast), and the autoplay policy lets the muted film start by itself.
 */
const CHROMIUM_ARGS: readonly string[] = [
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
