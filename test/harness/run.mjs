#!/usr/bin/env node
// `npm test` after the build: runs vitest, inside a private network namespace when it can.
//
// WebRTC in Chromium never uses 127.0.0.1 and on the host network would use the machine's
// outward interface (docs/contributing.md), so as root on Linux this script re-executes itself under
// `unshare --net` and builds a closed network there: lo up, a veth pair with both ends inside
// (10.77.0.1/24, 10.77.0.2/24) and a default route via 10.77.0.2 (without a default route
// Chromium gathers no ICE candidates at all). Everything the tests start (servers, Chromium)
// then lives in that namespace and cannot reach any other machine.
//
// Environment:
//   PEERFETCH_NETNS=1              set inside the namespace (tests check it via requirePrivateNetwork()).
//   PEERFETCH_NO_NETNS=1           never create the namespace (WebRTC tests then refuse to run).
//   PEERFETCH_ALLOW_HOST_WEBRTC=1  developer laptop: let WebRTC tests run on the host network.
// Extra arguments go to `vitest run` unchanged, e.g. `npm test -- test/unit`.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { canUnshare, enterPrivateNetwork, isFreshNamespace, reexecInPrivateNetwork, runForwardingSignals } from './netns.mjs';

const here = fileURLToPath(import.meta.url);
const root = join(dirname(here), '..', '..');
const args = process.argv.slice(2);

function log(message) {
  process.stderr.write(`[peerfetch test] ${message}\n`);
}

async function runVitest(env) {
  const require = createRequire(join(root, 'package.json'));
  const vitestBin = join(dirname(require.resolve('vitest/package.json')), 'vitest.mjs');
  const code = await runForwardingSignals(process.execPath, [vitestBin, 'run', ...args], { env, cwd: root });
  log(`vitest exited with code ${code}`);
  return code;
}

async function main() {
  if (isFreshNamespace()) {
    // We are the re-executed runner, alone in a fresh network namespace.
    let network;
    try {
      network = enterPrivateNetwork();
    } catch (error) {
      log(error.message);
      return 2;
    }
    log(`running inside a private network namespace (${network})`);
    return runVitest(process.env);
  }
  if (process.env.PEERFETCH_NETNS !== '1' && process.env.PEERFETCH_NO_NETNS !== '1' && canUnshare()) return reexecInPrivateNetwork(here, args);
  if (process.env.PEERFETCH_NETNS !== '1') {
    log(
      process.env.PEERFETCH_ALLOW_HOST_WEBRTC === '1'
        ? 'no private network namespace; PEERFETCH_ALLOW_HOST_WEBRTC=1, so WebRTC tests use the host network'
        : 'no private network namespace (needs root and unshare on Linux); WebRTC tests will refuse to run',
    );
  }
  return runVitest(process.env);
}

process.exitCode = await main();
