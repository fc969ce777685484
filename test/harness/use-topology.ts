import { afterAll, afterEach, beforeAll } from 'vitest';
import { launchChromium, newViewer, type Browser, type BrowserContext } from './browser.js';
import { requirePrivateNetwork } from './network.js';
import { buildTopology, secureOriginArgs, type Topology, type TopologySpec, type Visitor } from './topology.mjs';

/** The handle {@link useTopology} returns. */
export interface TopologyFixture {
  /** The built topology (available from beforeAll on). */
  readonly topology: Topology;
  /**
   * A fresh viewer (browser context, see newViewer) in the Chromium process of `visitor`, which
   * runs inside the visitor's namespace; closed after the current test. The process is launched on
   * first use with the fixture's secure origins and kept for the file.
   */
  viewer(visitor: Visitor, name: string): Promise<BrowserContext>;
}

/**
 * Registers hooks that build `spec` (test/harness/topology.mjs) before the file's tests and remove
 * it after them, with one Chromium process per visitor that is used. `secureOrigins` returns the
 * http:// origins (pages on the topology's internet address) that must be secure contexts so their
 * service worker registers; it is read when a visitor's Chromium starts, so a server started in a
 * later beforeAll can name its URL.
 *
 * @example
 * const net = useTopology({ homes: [{ nat: 'cone' }, { nat: 'cone' }] }, () => [originUrl]);
 * it('connects', async () => {
 *   const alice = await net.viewer(net.topology.visitors[0], 'alice');
 * });
 */
export function useTopology(spec: TopologySpec, secureOrigins: () => string[]): TopologyFixture {
  let topology: Topology | undefined;
  const browsers = new Map<string, Promise<Browser>>();
  let contexts: BrowserContext[] = [];
  beforeAll(() => {
    requirePrivateNetwork();
    topology = buildTopology(spec);
  });
  afterEach(async () => {
    const closing = contexts;
    contexts = [];
    await Promise.allSettled(closing.map((context) => context.close()));
  });
  afterAll(async () => {
    await Promise.allSettled([...browsers.values()].map(async (browser) => (await browser).close()));
    browsers.clear();
    topology?.destroy();
    topology = undefined;
  });
  const built = (): Topology => {
    if (!topology) throw new Error('useTopology: the topology exists only inside tests and hooks after beforeAll');
    return topology;
  };
  return {
    get topology() {
      return built();
    },
    async viewer(visitor, name) {
      built();
      let browser = browsers.get(visitor.name);
      if (!browser) {
        browser = launchChromium({ executablePath: visitor.executablePath, extraArgs: secureOriginArgs(secureOrigins()) });
        browsers.set(visitor.name, browser);
      }
      const context = await newViewer(await browser, name);
      contexts.push(context);
      return context;
    },
  };
}
