// One function returning the list of builds (page script, ESM, service worker as a classic script
// and as a module, Node tracker and CLI), followed by a gzip size report checked against each
// browser bundle's budget.
import { builtinModules } from 'node:module';
import { gzipSync } from 'node:zlib';
import { readFileSync } from 'node:fs';
import esbuild from 'rollup-plugin-esbuild';
import { nodeResolve } from '@rollup/plugin-node-resolve';

/** Gzipped size budgets in bytes (issue #4): what a site pays on every page view. */
const BUDGETS = {
  // 25 KB, plus catalogs and the compact hello (issue #11 item 3: holdings in runs, playing positions,
  // catalog assets from the worker: about 1.8 KB), plus following a live stream's edge (issue #12:
  // a peer telling its peers of a new segment, older manifest versions refused, live waits for the
  // assigned member: about 0.45 KB), plus handing a piece to the origin before its deadline when
  // the peer sending it would be too late for the player's buffer (issue #15 item 1: about 0.45 KB),
  // plus the early takeover of a first visit's player (issue #11 item 1: pieces to resume from put
  // in the store before the reload, about 0.3 KB), plus the hello deadline and the owner fetches
  // held for a connected peer's hello (issue #10: about 0.1 KB), plus viewer privacy (issue #13
  // item 7: holdings told per stream and peer, requests refused outside them, hellos asked for and
  // answered: about 0.8 KB, 29.4 KB in all), plus owners agreed on in a swarm not fully connected
  // and live waits bounded by the player's buffer (issue #12: about 0.1 KB), plus prefetches that
  // ask the holders furthest behind in a stream and hand-overs that mark no stall (issue #10 item 5:
  // about 0.3 KB), plus uploads to several peers in turns and the kept bytes of downloads that ended
  // part way (issue #15 items 1-2: about 0.45 KB), plus a stream's segments known by their names and
  // whole files kept apart (issue #11 item 4: about 0.1 KB), plus the wait on a fresh peer that is
  // sending the piece (issue #15: about 0.07 KB), plus that wait cut once the peer stops sending
  // (issue #13 item 4: about 0.05 KB; 30.50 KB built), plus the first piece of a stream asked of
  // peers that connected moments ago, after their holdings (issue #4 item 8, startup: about 0.14 KB),
  // plus a player with a buffer to spare waiting for the viewer ahead of it that is fetching the
  // piece (issue #15: about 0.25 KB; 30.85 KB built), plus prefetches that tell the peer when their
  // player needs the piece, from its buffer and pace, and urgency that orders a page's uploads only
  // within a peer's share of its line (issue #10 item 5: about 0.34 KB; 31.24 KB built), plus
  // prefetches due in the order the player reads their pieces, so that a fresh peer's line finishes
  // one and earns trust (issue #15: about 0.1 KB; 31.34 KB built), plus a holder that said hello and
  // not yet where it reads ranked furthest ahead of prefetches (issue #10 item 5: about 0.03 KB; 31.40 KB built),
  // plus a live piece asked for while a manifest version is applied waiting until the scheduler
  // knows its segment (issue #12: about 0.05 KB; 31.43 KB built), plus the player's request taking
  // a verified piece before its store write (issue #12 item 3: about 0.09 KB; 31.53 KB built), plus a
  // piece the player asks for taken from a trusted holder at once instead of through a fresh peer
  // that has sent nothing yet (issue #10 item 5: about 0.04 KB; 31.57 KB built), plus a viewer that
  // cannot wait for a live piece's owner saying it fetches the piece itself, with its review fixes
  // (issue #12: paid for by dropping protocol 2's hex bitfields; 31.58 KB built), plus live pieces
  // offered to peers while they arrive from the origin, their bytes passed on as they come, and the
  // bytes so sent in getStats() (issue #12 item 2: about 0.85 KB; 32.44 KB built), plus prefetches
  // of a piece the viewer ahead is fetching left to that viewer whenever the player reaches the
  // piece later than the plain deadline, not only with a buffer to spare (issue #10 item 5: about
  // 0.01 KB; 32.45 KB built), plus the wait of a playing player on a fresh peer that has not
  // started its piece bounded by what its buffer leaves the origin (issue #10 item 5: about 0.02 KB;
  // 32.47 KB built), plus a prefetch due no later than the later pieces of its stream in flight
  // (issue #15: about 0.05 KB; 32.48 KB built), plus a joining viewer's prefetches waiting, at most
  // 0.5 s, for the peers the tracker reported before they take a line (issue #10 item 5: about
  // 0.16 KB; 32.67 KB built), plus a piece's owner still waited for while its player reads up to
  // three pieces past it (the flash crowd's duplicate origin fetches: about 0.02 KB; 32.69 KB built),
  // plus a piece handed to the origin at the buffer's last chance when its line has gone silent for
  // longer than the rest should take, the line's transfer carried on for the store (issue #15's
  // start stall: about 0.16 KB; 32.85 KB built), plus a request given up with nothing received
  // measuring its line only from the line's last completed piece (the fresh seeder's pause: about
  // 0.05 KB; 32.90 KB built), plus uploads paced to what the page's uplink carries, from the
  // one-way delays its peers report (protocol 4: a send time on each chunk, `received` reports;
  // issue #15 item 2: about 0.89 KB; 33.79 KB built), plus the pace's filter of a receiver's
  // reports, its cut that drains the queue and its slow probe past the line (about 0.08 KB;
  // 33.87 KB built), plus a receiver's delay reported alone after a silence and the cut's least
  // share (about 0.02 KB; 33.89 KB built), plus the pace's start ended by a lone receiver that got
  // under half of what was sent (about 0.09 KB; 33.98 KB built), with the budget raised by 0.1 KB;
  // plus an on-demand player's origin fetch of another member's piece told to that member (about
  // 0.03 KB; 34.01 KB built), plus an upload past its first share of a line still holding back
  // others' prefetches (about 0.01 KB; 34.02 KB built).
  'dist/peerfetch.js': 34_100,
  // 10 KB, plus what following a live stream's manifest added (issue #12: about 0.6 KB), plus the
  // hardening of issue #13 (every bridge message checked field by field, responses of one version
  // of a file, the kill switch by absence: about 0.5 KB), with the rest of a KB for what follows.
  // Catalogs (issue #11 item 3: shards and piece lists loaded when an asset is first requested,
  // about 1.7 KB) and a site's worker update never held back (about 0.3 KB) on top, then a live
  // piece's origin bytes passed to its page as they arrive, for peers (issue #12 item 2: about 0.2 KB).
  'dist/peerfetch-sw.js': 14.2 * 1000,
  // The same worker code as an ES module (a site's module or bundled worker), plus its fetch-helper
  // and Workbox-route wrappers: the classic file's budget.
  'dist/peerfetch-sw.mjs': 14.2 * 1000,
};

function sizeReport() {
  return {
    name: 'size-report',
    writeBundle(options) {
      const file = options.file;
      const gzipped = gzipSync(readFileSync(file)).length;
      const budget = BUDGETS[file];
      const line = `${file}: ${gzipped} B gzipped${budget ? ` (budget ${budget} B)` : ''}`;
      console.log(line);
      if (budget && gzipped > budget) this.error(`${file} is over its size budget: ${line}`);
    },
  };
}

const browserPlugins = (minify) => [nodeResolve({ browser: true }), esbuild({ target: 'es2022', minify }), sizeReport()];
// Runtime dependencies stay imports; playwright-core is optional (the demo's headless viewers).
const nodeExternal = [...builtinModules, ...builtinModules.map((m) => `node:${m}`), 'ws', 'ioredis', 'playwright-core'];
const nodePlugins = () => [nodeResolve({ preferBuiltins: true }), esbuild({ target: 'node20' })];

export default () => [
  {
    input: 'src/engine/script-tag.ts',
    output: { file: 'dist/peerfetch.js', format: 'iife', sourcemap: true },
    plugins: browserPlugins(true),
  },
  {
    input: 'src/engine/index.ts',
    output: { file: 'dist/peerfetch.mjs', format: 'es', sourcemap: true },
    plugins: browserPlugins(false),
  },
  {
    input: 'src/sw/index.ts',
    output: { file: 'dist/peerfetch-sw.js', format: 'iife', sourcemap: true },
    plugins: browserPlugins(true),
  },
  {
    // Minified: a module worker may load it as it is, with no bundler in between.
    input: 'src/sw/module.ts',
    output: { file: 'dist/peerfetch-sw.mjs', format: 'es', sourcemap: true },
    plugins: browserPlugins(true),
  },
  {
    input: { tracker: 'src/tracker/index.ts', cli: 'src/cli/index.ts', manifest: 'src/cli/manifest-library.ts' },
    output: { dir: 'dist/node', format: 'es', entryFileNames: '[name].mjs', chunkFileNames: '[name]-[hash].mjs' },
    external: nodeExternal,
    plugins: nodePlugins(),
  },
];
