// The hostile member of the "hostile" scenario: the test suite's hostile peer
// (test/harness/hostile-peer.ts: the real tracker and peer protocols over real WebRTC, from an
// address of its own), bundled with esbuild for plain Node, playing the attacker that costs honest
// viewers most without ever sending a byte that could get it banned: it claims every piece of
// every asset, answers no request, floods `have` messages, and comes back under a fresh peer id
// every few seconds.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

/** Where the hostile member's WebRTC sockets live: an address of its own in the benchmark's namespace (see hostile-peer.ts). */
export const HOSTILE_ADDRESS = '10.78.0.1';
/** How often (ms) it leaves and comes back under a fresh id: several times per viewer's play, each time a "new" peer. */
const REJOIN_MS = 10_000;
/** `have` messages per burst, and bursts per second (ms apart): far beyond any honest peer's. */
const HAVE_BURST = 500;
const HAVE_BURST_MS = 100;

/**
 * Starts the hostile member of `pageUrl`'s swarm; returns `stop()`. `site` maps URL paths to files
 * (site.dir and site.mapped of bench/lib/site.mjs).
 */
export async function startHostileMember({ root, runDir, trackerUrl, pageUrl, manifestUrl, site, log }) {
  const { build } = await import('esbuild');
  const outfile = join(runDir, 'hostile-peer.mjs');
  await build({
    entryPoints: [join(root, 'test', 'harness', 'hostile-peer.ts')],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    outfile,
    // Resolved from the repository's node_modules when the bundle runs.
    external: ['node-datachannel', 'ws'],
    nodePaths: [join(root, 'node_modules')],
    logLevel: 'error',
  });
  const hostile = await import(pathToFileURL(outfile).href);
  hostile.addHostileAddress(HOSTILE_ADDRESS);
  const files = new Map();
  const file = (path) => {
    if (!files.has(path)) {
      const onDisk = site.mapped[path] ?? join(site.dir, path);
      try {
        files.set(path, new Uint8Array(readFileSync(onDisk)));
      } catch {
        files.set(path, undefined);
      }
    }
    return files.get(path);
  };
  let bursts = 0;
  const behaviour = {
    claims: 'all',
    onOpen(session) {
      const timer = setInterval(() => {
        if (session.closed) return clearInterval(timer);
        if (session.bufferedAmount > 256 * 1024) return;
        bursts++;
        for (let i = 0; i < HAVE_BURST; i++) {
          const asset = session.manifest.assets[i % session.manifest.assets.length];
          session.send({ type: 'have', asset: asset.id, piece: i % asset.pieces.length });
        }
      }, HAVE_BURST_MS);
    },
  };
  const peer = await hostile.HostilePeer.start({ trackerUrl, pageUrl, manifestUrl, file, behaviour, address: HOSTILE_ADDRESS });
  let stopped = false;
  const rejoin = setInterval(() => {
    if (!stopped) peer.rejoin().catch((error) => log(`  hostile member: rejoin failed: ${error.message}`));
  }, REJOIN_MS);
  return {
    stop() {
      stopped = true;
      clearInterval(rejoin);
      peer.stop();
      hostile.removeHostileAddress(HOSTILE_ADDRESS);
      const requests = peer.sessions.reduce((sum, session) => sum + session.received.filter((message) => message.type === 'request').length, 0);
      return { ids: peer.ids.length, sessions: peer.sessions.length, requests, haveBursts: bursts };
    },
  };
}
