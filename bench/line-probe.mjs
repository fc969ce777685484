#!/usr/bin/env node
// What one WebRTC data channel carries across a capped home uplink, by how much the sender keeps
// queued in it: the ceiling under every figure of the WAN and uplinks benchmarks. Two homes behind
// NAT routers (test/harness/topology.mjs), a STUN server (coturn) on the internet between them, one
// Chromium per home; the first home's page sends 16 KiB messages (the peer protocol's chunk) for
// `--seconds` while it keeps at most QUEUE bytes in the channel (`bufferedAmount`), refilling at
// half of it (`bufferedamountlow`), as src/engine/peer.ts does with the pacer's target. No peerfetch
// code runs: this is Chromium's SCTP over a tbf-capped line with random loss.
//
//   node bench/line-probe.mjs [--kbit 2000] [--loss 0,1] [--queues 32768,1048576] [--seconds 20] [--pace 115]
//
// `--pace K`: the sender also sends no faster than K kB/s (a schedule from its first message), as
// the engine's uploads go at the pace of the page's line (src/engine/line-pacer.ts); 0, the
// default, sends as fast as the channel takes the messages.
//
// Prints one line per loss and queue: the payload the receiver got while the sender sent (kB/s) and
// its slowest second, what crossed the line (the router's count), what Chromium's transport sent
// (DTLS packets: payload, headers and SCTP retransmissions), how often the page's refill found the
// channel's queue already empty (the line may have idled), and the path's round trip (Chromium's
// candidate pair, once a second: the router's queue shows here).
// As root it re-executes itself in a private network namespace (test/harness/netns.mjs).
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { launchChromium } from './lib/browser.mjs';
import { startProcess } from './lib/processes.mjs';
import { coturnCommand, COTURN_READY_PATTERN } from '../test/harness/coturn.mjs';
import { runInPrivateNetwork } from '../test/harness/netns.mjs';
import { buildTopology, TURN_ADDRESS } from '../test/harness/topology.mjs';

const here = fileURLToPath(import.meta.url);
const { values } = parseArgs({
  options: {
    kbit: { type: 'string', default: '2000' },
    loss: { type: 'string', default: '0,1' },
    queues: { type: 'string', default: '32768,1048576' },
    seconds: { type: 'string', default: '20' },
    pace: { type: 'string', default: '0' },
  },
});
const list = (text, name) => {
  const numbers = text.split(',').map(Number);
  if (numbers.length === 0 || numbers.some((n) => !Number.isFinite(n) || n < 0)) throw new Error(`--${name} must be comma-separated non-negative numbers, got ${text}`);
  return numbers;
};
const KBIT = Number(values.kbit);
const LOSSES = list(values.loss, 'loss');
const QUEUES = list(values.queues, 'queues');
const SECONDS = Number(values.seconds);
/** Bytes per second the sender keeps to, or 0 for none (see --pace). */
const PACE_BPS = Number(values.pace) * 1000;
if (!(KBIT > 0)) throw new Error(`--kbit must be a positive number, got ${values.kbit}`);
if (!(SECONDS >= 5 && SECONDS <= 300)) throw new Error(`--seconds must be 5..300, got ${values.seconds}`);
if (!(PACE_BPS >= 0)) throw new Error(`--pace must be a non-negative number of kB/s, got ${values.pace}`);
if (QUEUES.some((queue) => queue < 16 * 1024)) throw new Error('--queues must be at least one 16 KiB message each');
/** Bytes per message: the peer protocol's chunk (src/shared/peer-messages.ts CHUNK_SIZE). */
const MESSAGE_BYTES = 16 * 1024;
/** Download cap of each home (kbit/s), as in the WAN benchmark: the receiver's line is never the limit. */
const DOWNLINK_KBIT = 20_000;
const STUN_PORT = 3478;

await runInPrivateNetwork(here, main);

async function main() {
  const topology = buildTopology({ homes: [{ uplinkKbit: KBIT, downlinkKbit: DOWNLINK_KBIT }, { uplinkKbit: KBIT, downlinkKbit: DOWNLINK_KBIT }] });
  const [command, args] = coturnCommand({ address: TURN_ADDRESS, port: STUN_PORT });
  const stun = await startProcess(command, args, { readyPattern: COTURN_READY_PATTERN, name: 'coturn (STUN)' });
  const [sender, receiver] = await Promise.all(topology.homes.map((home) => launchChromium({ executablePath: home.visitors[0].executablePath })));
  try {
    console.log(`line probe: ${KBIT} kbit/s uplink (tbf), ${MESSAGE_BYTES / 1024} KiB messages, ${SECONDS} s per case${PACE_BPS ? `, sent at ${PACE_BPS / 1000} kB/s at most` : ''}`);
    for (const loss of LOSSES) {
      for (const home of topology.homes) home.shape({ lossPercent: loss });
      for (const queue of QUEUES) console.log(await probe(topology, sender, receiver, loss, queue));
    }
  } finally {
    await Promise.allSettled([sender.close(), receiver.close(), stun.stop()]);
    topology.destroy();
  }
}

/** One case: a fresh connection between the two homes, `queue` bytes kept in the channel, `loss` percent each way. */
async function probe(topology, sender, receiver, loss, queue) {
  const [sendContext, receiveContext] = await Promise.all([sender.newContext(), receiver.newContext()]);
  try {
    const [from, to] = await Promise.all([sendContext.newPage(), receiveContext.newPage()]);
    const iceServers = [{ urls: `stun:${TURN_ADDRESS}:${STUN_PORT}` }];
    const offer = await from.evaluate(openSender, iceServers);
    const answer = await to.evaluate(openReceiver, { iceServers, offer });
    await from.evaluate(acceptAnswer, answer);
    const lineBefore = topology.homes[0].lineBytes().up;
    const sent = await from.evaluate(send, { queue, messageBytes: MESSAGE_BYTES, seconds: SECONDS, paceBps: PACE_BPS });
    const line = topology.homes[0].lineBytes().up - lineBefore;
    // Only the seconds the sender sent: what it left queued arrives later and is not the line's rate.
    const perSecond = (await to.evaluate(received)).slice(0, SECONDS);
    const payload = perSecond.reduce((sum, bytes) => sum + bytes, 0);
    const kBps = (bytes) => (bytes / SECONDS / 1000).toFixed(1);
    const rtts = [...sent.rttsMs].sort((a, b) => a - b);
    return (
      `loss ${loss}%, queue ${queue} B: payload ${kBps(payload)} kB/s (slowest second ${(Math.min(...perSecond) / 1000).toFixed(0)} kB), ` +
      `line ${kBps(line)} kB/s, transport ${kBps(sent.transportBytes)} kB/s (${((sent.transportBytes / Math.max(payload, 1) - 1) * 100).toFixed(0)}% over the payload); ` +
      `refills that found the queue empty ${sent.emptyRefills}/${sent.refills}; rtt median ${rtts[Math.floor(rtts.length / 2)] ?? '?'} ms, max ${rtts.at(-1) ?? '?'} ms`
    );
  } finally {
    await Promise.allSettled([sendContext.close(), receiveContext.close()]);
  }
}

// The functions below run in the pages (page.evaluate serialises them), so each names its own helpers.

async function openSender(iceServers) {
  const connection = new RTCPeerConnection({ iceServers });
  const channel = connection.createDataChannel('probe');
  Object.assign(window, { probe: { connection, channel } });
  await connection.setLocalDescription(await connection.createOffer());
  await new Promise((resolve) => {
    if (connection.iceGatheringState === 'complete') return resolve();
    connection.addEventListener('icegatheringstatechange', () => connection.iceGatheringState === 'complete' && resolve());
  });
  return connection.localDescription.toJSON();
}

async function openReceiver({ iceServers, offer }) {
  const connection = new RTCPeerConnection({ iceServers });
  const state = { perSecond: [], firstAt: undefined };
  connection.ondatachannel = ({ channel }) => {
    channel.binaryType = 'arraybuffer';
    channel.onmessage = ({ data }) => {
      const now = performance.now();
      state.firstAt ??= now;
      const second = Math.floor((now - state.firstAt) / 1000);
      while (state.perSecond.length <= second) state.perSecond.push(0);
      state.perSecond[second] += data.byteLength;
    };
  };
  Object.assign(window, { probe: { connection, state } });
  await connection.setRemoteDescription(offer);
  await connection.setLocalDescription(await connection.createAnswer());
  await new Promise((resolve) => {
    if (connection.iceGatheringState === 'complete') return resolve();
    connection.addEventListener('icegatheringstatechange', () => connection.iceGatheringState === 'complete' && resolve());
  });
  return connection.localDescription.toJSON();
}

async function acceptAnswer(answer) {
  const { connection, channel } = window.probe;
  await connection.setRemoteDescription(answer);
  if (channel.readyState !== 'open') await new Promise((resolve) => channel.addEventListener('open', resolve, { once: true }));
}

async function send({ queue, messageBytes, seconds, paceBps }) {
  const { connection, channel } = window.probe;
  const counters = async () => {
    let transportBytes = 0;
    let rttMs;
    (await connection.getStats()).forEach((report) => {
      if (report.type === 'transport') transportBytes += report.bytesSent ?? 0;
      if (report.type === 'candidate-pair' && report.nominated && report.currentRoundTripTime !== undefined) rttMs = Math.round(report.currentRoundTripTime * 1000);
    });
    return { transportBytes, rttMs };
  };
  const before = await counters();
  const rttsMs = [];
  const sampler = setInterval(async () => {
    const { rttMs } = await counters();
    if (rttMs !== undefined) rttsMs.push(rttMs);
  }, 1000);
  const message = new Uint8Array(messageBytes);
  channel.bufferedAmountLowThreshold = Math.floor(queue / 2);
  let refills = 0;
  let emptyRefills = 0;
  const startedAt = performance.now();
  const endAt = startedAt + seconds * 1000;
  let messagesSent = 0;
  while (performance.now() < endAt) {
    if (channel.bufferedAmount > queue) {
      await new Promise((resolve) => channel.addEventListener('bufferedamountlow', resolve, { once: true }));
      refills++;
      if (channel.bufferedAmount === 0) emptyRefills++;
      continue;
    }
    // Paced: the next message waits for its time on the schedule (what a late timer lost, the next messages make up).
    const dueAt = paceBps > 0 ? startedAt + ((messagesSent * messageBytes) / paceBps) * 1000 : 0;
    if (dueAt > performance.now()) await new Promise((resolve) => setTimeout(resolve, dueAt - performance.now()));
    channel.send(message);
    messagesSent++;
  }
  clearInterval(sampler);
  const after = await counters();
  return { transportBytes: after.transportBytes - before.transportBytes, rttsMs, refills, emptyRefills };
}

/** Bytes received per second since the first message. */
async function received() {
  return window.probe.state.perSecond;
}
