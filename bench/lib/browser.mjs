// Chromium for the benchmark, with the launch flags docs/contributing.md describes: the same list as
// CHROMIUM_ARGS in src/cli/demo-viewers.ts (used by the demo and test/harness/browser.ts), which is
// TypeScript and so cannot be imported by this plain-Node script; change both together.
import { chromium } from 'playwright-core';

/** Debian's Chromium: `npx playwright install` cannot download browsers on these machines. */
export const CHROMIUM_PATH = process.env.PEERFETCH_CHROMIUM ?? '/usr/bin/chromium';

/**
 * Background networking off (no refused-connection floods on the closed network), mDNS
 * hiding off (ICE candidates stay readable 10.77.0.x addresses), autoplay without a gesture.
 */
export const CHROMIUM_ARGS = [
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

/** Token appended to each viewer's User-Agent; the origin attributes bytes per viewer by it. */
export const VIEWER_UA_TOKEN = 'peerfetch-viewer/';

/**
 * @param {{ executablePath?: string, extraArgs?: string[] }} [options] another executable (a topology
 *   visitor's Chromium inside its network namespace) and flags appended to the list above
 */
export function launchChromium({ executablePath = CHROMIUM_PATH, extraArgs = [] } = {}) {
  return chromium.launch({ executablePath, headless: true, args: [...CHROMIUM_ARGS, ...extraArgs] });
}

/** Chromium's own User-Agent, read once from a throwaway context. */
export async function defaultUserAgent(browser) {
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    return await page.evaluate(() => navigator.userAgent);
  } finally {
    await context.close();
  }
}
