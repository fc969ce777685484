import { afterAll, afterEach, beforeAll } from 'vitest';
import { chromium, type Browser, type BrowserContext, type BrowserContextOptions, type Page } from 'playwright-core';
import { requirePrivateNetwork } from './network.js';

/** Debian's Chromium: `npx playwright install` cannot download browsers on these machines (docs/contributing.md, "Chromium"). */
export const CHROMIUM_PATH = process.env.PEERFETCH_CHROMIUM ?? '/usr/bin/chromium';

/**
 * Launch flags measured to work here (docs/contributing.md, "Chromium"), one list for the demo's headless viewers and
 * the tests: the background-networking flags stop Chromium flooding the closed network with
 * refused connections; disabling WebRtcHideLocalIpsWithMdns keeps ICE candidates as plain
 * 10.77.0.x addresses and multicast off.
 */
export { CHROMIUM_ARGS } from '../../src/cli/demo-viewers.js';
import { CHROMIUM_ARGS } from '../../src/cli/demo-viewers.js';

/** Token appended to each viewer's User-Agent; the origin server attributes bytes per viewer by it. */
export const VIEWER_UA_TOKEN = 'peerfetch-viewer/';

/** Options of {@link launchChromium}. */
export interface LaunchChromiumOptions {
  /** Another executable, e.g. a topology visitor's `executablePath` (Chromium inside its network namespace). Default {@link CHROMIUM_PATH}. */
  executablePath?: string;
  /** Flags appended to the TESTING.md list (e.g. `secureOriginArgs(...)` of test/harness/topology.mjs). */
  extraArgs?: readonly string[];
}

/**
 * Launches Debian's Chromium with the flags of docs/contributing.md ("Chromium"). Close it in afterAll
 * (or use {@link useChromium}, which does).
 *
 * @example
 * const browser = await launchChromium();
 * afterAll(() => browser.close());
 */
export async function launchChromium(options: LaunchChromiumOptions = {}): Promise<Browser> {
  return chromium.launch({
    executablePath: options.executablePath ?? CHROMIUM_PATH,
    headless: true,
    // Appended after Playwright's own switches, so our --disable-features is the one Chromium reads.
    args: [...CHROMIUM_ARGS, ...(options.extraArgs ?? [])],
  });
}

const defaultUserAgents = new WeakMap<Browser, Promise<string>>();

/** Chromium's own User-Agent for this browser (read once from a throwaway context). */
export function defaultUserAgent(browser: Browser): Promise<string> {
  let ua = defaultUserAgents.get(browser);
  if (!ua) {
    ua = (async () => {
      const context = await browser.newContext();
      try {
        const page = await context.newPage();
        return await page.evaluate(() => navigator.userAgent);
      } finally {
        await context.close();
      }
    })();
    defaultUserAgents.set(browser, ua);
  }
  return ua;
}

/**
 * A fresh visitor: a new BrowserContext (own storage, own service worker) whose
 * User-Agent is Chromium's default plus ` peerfetch-viewer/<name>`. Requests from its
 * pages and from its service worker carry that token. Problems (uncaught errors,
 * console errors, crashes) in any of its pages and workers are recorded: see {@link viewerProblems}.
 *
 * @example
 * const alice = await newViewer(browser, 'alice');
 * const page = await alice.newPage();
 */
export async function newViewer(browser: Browser, name: string, options: BrowserContextOptions = {}): Promise<BrowserContext> {
  if (!/^[\w.-]+$/.test(name)) throw new Error(`viewer name must be a User-Agent token ([A-Za-z0-9_.-]), got ${JSON.stringify(name)}`);
  const userAgent = `${await defaultUserAgent(browser)} ${VIEWER_UA_TOKEN}${name}`;
  const context = await browser.newContext({ ...options, userAgent });
  recordProblems(context);
  return context;
}

/** One recorded problem of a page or worker. */
export interface PageProblem {
  /** `pageerror`: an uncaught exception or unhandled rejection; `console`: console.error; `crash`: the renderer died. */
  kind: 'pageerror' | 'console' | 'crash';
  /** The error text (with stack when there is one). */
  text: string;
  /** The page or worker URL, when known. */
  url: string;
}

const contextProblems = new WeakMap<BrowserContext, PageProblem[]>();

/**
 * Starts recording uncaught errors, console errors (pages and workers) and renderer crashes
 * of every page in `context`; returns the live list. Idempotent. {@link newViewer} calls it;
 * call it yourself for contexts made otherwise (e.g. `launchPersistentContext`).
 */
export function recordProblems(context: BrowserContext): PageProblem[] {
  const existing = contextProblems.get(context);
  if (existing) return existing;
  const problems: PageProblem[] = [];
  contextProblems.set(context, problems);
  context.on('weberror', (error) => {
    problems.push({ kind: 'pageerror', text: String(error.error()?.stack ?? error.error()), url: error.page()?.url() ?? '' });
  });
  context.on('console', (message) => {
    if (message.type() !== 'error') return;
    const source = message.location().url;
    // Chromium requests /favicon.ico by itself; a test origin without one is not a page problem.
    if (/\/favicon\.ico$/.test(source) && message.text().startsWith('Failed to load resource')) return;
    const where = message.page()?.url() ?? message.worker()?.url() ?? source;
    problems.push({ kind: 'console', text: source && source !== where ? `${message.text()} (${source})` : message.text(), url: where });
  });
  context.on('page', (page) => {
    page.on('crash', () => problems.push({ kind: 'crash', text: 'page crashed', url: page.url() }));
  });
  for (const page of context.pages()) {
    page.on('crash', () => problems.push({ kind: 'crash', text: 'page crashed', url: page.url() }));
  }
  return problems;
}

/** The problems recorded so far in a context created by {@link newViewer} (live array). */
export function viewerProblems(context: BrowserContext): PageProblem[] {
  const problems = contextProblems.get(context);
  if (!problems) throw new Error('viewerProblems: this context was not created by newViewer() nor passed to recordProblems()');
  return problems;
}

/**
 * Throws if the viewer recorded an uncaught error, a console error or a crash, except
 * those whose text matches one of `ignore` (for expected noise like a refused tracker).
 *
 * @example
 * assertNoPageErrors(alice, [/WebSocket connection to .* failed/]);
 */
export function assertNoPageErrors(context: BrowserContext, ignore: readonly RegExp[] = []): void {
  const problems = viewerProblems(context).filter((p) => !ignore.some((re) => re.test(p.text)));
  if (problems.length === 0) return;
  const lines = problems.map((p) => `  [${p.kind}] ${p.url}: ${p.text}`);
  throw new Error(`page problems (${problems.length}):\n${lines.join('\n')}`);
}

/** Options of {@link useChromium}. */
export interface UseChromiumOptions {
  /** The file opens WebRTC connections: fail every test unless inside the private network namespace. */
  webrtc?: boolean;
}

/** The handle {@link useChromium} returns. */
export interface ChromiumFixture {
  /** The shared browser of this test file (available from beforeAll on). */
  readonly browser: Browser;
  /** A new viewer ({@link newViewer}) that is closed after the current test, even when it fails. */
  viewer(name: string, options?: BrowserContextOptions): Promise<BrowserContext>;
}

/**
 * Registers beforeAll/afterEach/afterAll hooks in the calling test file: one Chromium per
 * file, viewers closed after each test, the browser closed after the file, whatever the
 * outcome.
 *
 * @example
 * const chromium = useChromium({ webrtc: true });
 * it('plays', async () => {
 *   const alice = await chromium.viewer('alice');
 * });
 */
export function useChromium(options: UseChromiumOptions = {}): ChromiumFixture {
  let browser: Browser | undefined;
  let contexts: BrowserContext[] = [];
  beforeAll(async () => {
    if (options.webrtc) requirePrivateNetwork();
    browser = await launchChromium();
  });
  afterEach(async () => {
    const closing = contexts;
    contexts = [];
    await Promise.allSettled(closing.map((c) => c.close()));
  });
  afterAll(async () => {
    await Promise.allSettled(contexts.map((c) => c.close()));
    contexts = [];
    await browser?.close();
    browser = undefined;
  });
  return {
    get browser(): Browser {
      if (!browser) throw new Error('useChromium: the browser is available only inside tests and hooks after beforeAll');
      return browser;
    },
    async viewer(name, contextOptions) {
      if (!browser) throw new Error('useChromium: the browser is available only inside tests and hooks after beforeAll');
      const context = await newViewer(browser, name, contextOptions);
      contexts.push(context);
      return context;
    },
  };
}

/**
 * Polls `check` until it returns a truthy value, every `intervalMs` (default 50), for at
 * most `timeoutMs` (default 30 000); returns that value or throws with `what`. Use it
 * instead of sleeps.
 *
 * @example
 * await waitFor(() => origin.bytesFor('bob') > 0, { what: 'bob fetched from the origin' });
 */
export async function waitFor<T>(
  check: () => T | Promise<T>,
  options: { timeoutMs?: number; intervalMs?: number; what?: string } = {},
): Promise<NonNullable<T>> {
  const deadline = Date.now() + (options.timeoutMs ?? 30_000);
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value as NonNullable<T>;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline) {
      const why = lastError instanceof Error ? ` (last error: ${lastError.message})` : '';
      throw new Error(`timed out waiting for ${options.what ?? 'condition'}${why}`);
    }
    await new Promise((resolve) => setTimeout(resolve, options.intervalMs ?? 50));
  }
}

export type { Browser, BrowserContext, Page };
