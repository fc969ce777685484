#!/usr/bin/env node
// How long Chromium's ICE gathering takes on this machine, per ICE configuration: the numbers
// behind the engine's gathering bound (ICE_GATHERING_TIMEOUT_MS in src/engine/rtc.ts).
//
//   npm run build && node bench/ice-gathering.mjs [--runs 10] [--only TEXT]
//
// As root it re-executes itself in a private network namespace (test/harness/netns.mjs), starts
// the peerfetch tracker (its STUN service) and coturn there, and SNATs the page's STUN requests
// to the other veth address, so that the STUN server sees another address than the page's own
// and Chromium keeps the server-reflexive candidate (it drops one equal to a host candidate).
// An "unreachable" server is one whose datagrams an iptables rule drops, as a firewall does.
// Prints one line per configuration: median, max and the candidate types gathered.
import { spawnSync } from 'node:child_process';
import { createServer } from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';
import { coturnCommand, COTURN_READY_PATTERN, turnCredentials } from '../test/harness/coturn.mjs';
import { startProcess } from './lib/processes.mjs';
import { runInPrivateNetwork } from '../test/harness/netns.mjs';

const here = fileURLToPath(import.meta.url);
const root = join(dirname(here), '..');
const { values } = parseArgs({ options: { runs: { type: 'string', default: '10' }, only: { type: 'string' } } });
const RUNS = Number(values.runs);
/** Longest wait for one gathering, ms: far beyond any STUN retransmission schedule. */
const CAP_MS = 60_000;
const HOST = '10.77.0.1';
const OTHER = '10.77.0.2';
const TURN_PORT = 3479;
const DEAD_PORT = 3999;
const SECRET = 'gathering-bench';

await runInPrivateNetwork(here, main);

function run(command, args) {
  const result = spawnSync(command, args, { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')}: ${result.stderr}`);
}

async function main() {
  const { startTracker } = await import(join(root, 'dist', 'node', 'tracker.mjs'));
  const tracker = await startTracker({ port: 0, host: HOST, stunPort: 3478 });
  // A tracker on loopback, as the tests run theirs: pages then get stun:127.0.0.1:PORT.
  const loopback = await startTracker({ port: 0 });
  run('iptables', ['-t', 'nat', '-A', 'POSTROUTING', '-p', 'udp', '-s', HOST, '-d', HOST, '--dport', String(tracker.stunPort), '-j', 'SNAT', '--to-source', OTHER]);
  run('iptables', ['-A', 'INPUT', '-p', 'udp', '--dport', String(DEAD_PORT), '-j', 'DROP']);
  const [command, args] = coturnCommand({ address: HOST, port: TURN_PORT, secret: SECRET });
  const turn = await startProcess(command, args, { readyPattern: COTURN_READY_PATTERN, name: 'coturn' });
  const credential = turnCredentials(SECRET);
  const page = createServer((_, res) => res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><title>gathering</title>'));
  await new Promise((resolve) => page.listen(0, HOST, resolve));
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-features=WebRtcHideLocalIpsWithMdns'] });
  const tab = await browser.newPage();
  await tab.goto(`http://${HOST}:${page.address().port}/`);
  const turnServer = { urls: `turn:${HOST}:${TURN_PORT}?transport=udp`, username: credential.username, credential: credential.credential };
  const configs = [
    ['no ICE servers (host only)', { iceServers: [] }],
    ['reachable STUN (tracker)', { iceServers: [{ urls: `stun:${HOST}:${tracker.stunPort}` }] }],
    ['STUN on loopback (127.0.0.1)', { iceServers: [{ urls: `stun:127.0.0.1:${loopback.stunPort}` }] }],
    ['unreachable STUN (dropped)', { iceServers: [{ urls: `stun:${HOST}:${DEAD_PORT}` }] }],
    ['reachable STUN + reachable TURN', { iceServers: [{ urls: `stun:${HOST}:${tracker.stunPort}` }, turnServer] }],
    ['reachable STUN + unreachable TURN', { iceServers: [{ urls: `stun:${HOST}:${tracker.stunPort}` }, { ...turnServer, urls: `turn:${HOST}:${DEAD_PORT}?transport=udp` }] }],
  ];
  for (const [name, config] of configs.filter(([name]) => !values.only || name.includes(values.only))) {
    const times = [];
    const types = new Set();
    for (let i = 0; i < RUNS; i++) {
      const result = await tab.evaluate(async ([config, cap]) => {
        const pc = new RTCPeerConnection(config);
        pc.createDataChannel('x');
        const started = performance.now();
        await pc.setLocalDescription(await pc.createOffer());
        await new Promise((resolve) => {
          const timer = setTimeout(resolve, cap);
          pc.addEventListener('icegatheringstatechange', () => pc.iceGatheringState === 'complete' && (clearTimeout(timer), resolve()));
        });
        const ms = performance.now() - started;
        const types = [...pc.localDescription.sdp.matchAll(/typ (\w+)/g)].map((m) => m[1]);
        pc.close();
        return { ms, types };
      }, [config, CAP_MS]);
      times.push(result.ms);
      for (const type of result.types) types.add(type);
    }
    times.sort((a, b) => a - b);
    const median = times[Math.floor(times.length / 2)];
    console.log(`${name.padEnd(36)} median ${median.toFixed(0).padStart(6)} ms  min ${times[0].toFixed(0).padStart(6)} ms  max ${times.at(-1).toFixed(0).padStart(6)} ms  candidates: ${[...types].sort().join(', ')}  (${RUNS} runs)`);
  }
  await browser.close();
  await turn.stop();
  page.close();
  await tracker.close();
  await loopback.close();
}
