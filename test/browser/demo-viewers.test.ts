/**
 * `peerfetch demo --viewers N`: the demo starts N headless viewers (each its own browser context)
 * that join the swarm, play the film and share it; they stop with the demo. In the private
 * network namespace: the viewers open WebRTC connections to each other.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_DEMO_RATE_KBPS, startDemo, type RunningDemo } from '../../src/cli/demo.js';
import { MAX_HEADLESS_VIEWERS } from '../../src/cli/demo-viewers.js';
import { assertNoPageErrors, useChromium, waitFor } from '../harness/browser.js';
import { rawRequest } from '../node/http-client.js';

interface SwarmFigures {
  peers: number;
  bytesFromPeers: number;
  offloadRatio: number;
}

const chromium = useChromium({ webrtc: true });
let demo: RunningDemo | undefined;

afterEach(async () => {
  await demo?.close();
  demo = undefined;
});

async function swarm(trackerUrl: string): Promise<SwarmFigures | undefined> {
  const response = await fetch(`${trackerUrl.replace('ws:', 'http:')}/stats.json`);
  const { swarms } = (await response.json()) as { swarms: SwarmFigures[] };
  return swarms[0];
}

describe('peerfetch demo --viewers', () => {
  it('refuses more than the maximum of headless viewers', async () => {
    await expect(startDemo({ port: 0, trackerPort: 0, viewers: MAX_HEADLESS_VIEWERS + 1 })).rejects.toMatchObject({ code: 'option-invalid' });
  });

  it('starts headless viewers that share the film through the swarm, and stops them with the demo', async () => {
    demo = await startDemo({ port: 0, trackerPort: 0, viewers: 2, bytesPerSecond: DEFAULT_DEMO_RATE_KBPS * 1000 });
    expect(demo.warnings).toEqual([]);
    expect(demo.headless?.count).toBe(2);
    // The page tells a person how many headless viewers run.
    const config = (await (await fetch(`${demo.url}demo-config.json`)).json()) as { viewers: string[]; headlessViewers: number };
    expect(config.headlessViewers).toBe(2);
    expect(config.viewers[0]).toBe(demo.url);

    // Both joined one swarm, both fetched from the origin under their own names, and the tracker's
    // swarm figures (reported every 10 s) show bytes that went from one viewer to the other.
    const figures = await waitFor(
      async () => {
        const current = await swarm(demo!.trackerUrl);
        return current && current.peers === 2 && current.bytesFromPeers > 0 ? current : undefined;
      },
      { timeoutMs: 90_000, intervalMs: 500, what: 'two headless viewers sharing pieces' },
    );
    expect(figures.offloadRatio).toBeGreaterThan(0);
    const byViewer = demo.origin.stats().byViewer;
    expect(byViewer['headless-1']).toBeGreaterThan(0);
    expect(byViewer['headless-2']).toBeGreaterThan(0);

    const headless = demo.headless!;
    expect(headless.running).toBe(true);
    await demo.close();
    expect(headless.running).toBe(false);
    await expect(headless.add(demo.url)).rejects.toThrow(/closed/);
  });

  it('the page\'s button adds a headless viewer through the demo server; other sites cannot', async () => {
    demo = await startDemo({ port: 0, trackerPort: 0 });
    expect(demo.headless).toBeUndefined(); // Chromium starts only when a viewer is asked for
    const control = demo.viewerControlUrl!;
    expect(control).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/viewers$/);
    const { host, pathname } = new URL(control);
    // A page of another site (its Origin) may not start browsers here, nor may a GET.
    const foreign = await rawRequest(`http://${host}`, pathname, { method: 'POST', headers: { Origin: 'http://example.com' } });
    expect(foreign.status).toBe(403);
    expect((await rawRequest(`http://${host}`, pathname, { headers: { Origin: new URL(demo.url).origin } })).status).toBe(405);
    expect(demo.headless).toBeUndefined();

    const person = await chromium.viewer('demo-person');
    const page = await person.newPage();
    await page.goto(demo.viewerUrls[1]!); // from another viewer address: a cross-origin POST the server allows
    await page.click('#add-headless');
    await page.waitForFunction(() => document.querySelector('#headless')?.textContent === '+ 1 headless', undefined, { timeout: 60_000 });
    expect(demo.headless?.count).toBe(1);
    // The page and the headless viewer are two members of one swarm.
    await waitFor(async () => (await swarm(demo!.trackerUrl))?.peers === 2, { timeoutMs: 30_000, what: 'the page and the headless viewer in one swarm' });
    assertNoPageErrors(person);
  });
});
