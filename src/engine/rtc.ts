/**
 * Non-trickle WebRTC setup, as the WebTorrent tracker protocol needs: an offer or answer is
 * sent once, with all its ICE candidates, so we wait for gathering to finish before sending.
 */

/**
 * Longest wait (ms) for ICE gathering before the offer or answer goes out with the candidates
 * gathered so far. Measured in Chromium here (`node bench/ice-gathering.mjs`, 10 runs each):
 * host candidates only, and with a reachable STUN server (the tracker's), and with STUN + TURN,
 * gathering completes in about 130 ms (max 184 ms); with a STUN server whose datagrams are dropped
 * it takes 39.9 s, Chromium's whole retransmission schedule (sends at 0, 0.25, 0.75, 1.75, 3.75 s
 * ... doubling up to 8 s). 2 s lets a server one 250 ms round trip away answer even after three
 * requests in a row were lost, and caps what an unreachable STUN or TURN server (a firewall, a
 * third-party tracker's absent service) costs each offer at 2 s instead of 40 s.
 */
export const ICE_GATHERING_TIMEOUT_MS = 2000;
/** Data channel label; peers of any label are accepted, this one only names ours in browser tools. */
export const CHANNEL_LABEL = 'peerfetch';

/**
 * Messages that arrive before a Peer takes over a channel. The answering side gets its channel
 * from the `datachannel` event and the other side may send its hello the moment the channel
 * opens; an RTCDataChannel drops messages that arrive while no listener is attached, so each
 * channel is listened to from its first moment and the Peer replays what came early.
 */
const earlyMessages = new WeakMap<RTCDataChannel, { messages: unknown[]; listener: (event: MessageEvent) => void }>();

function captureEarlyMessages(channel: RTCDataChannel): RTCDataChannel {
  channel.binaryType = 'arraybuffer';
  const messages: unknown[] = [];
  const listener = (event: MessageEvent) => messages.push(event.data);
  channel.addEventListener('message', listener);
  earlyMessages.set(channel, { messages, listener });
  return channel;
}

/** Stops buffering `channel` and returns what arrived so far, oldest first. */
export function takeEarlyMessages(channel: RTCDataChannel): unknown[] {
  const early = earlyMessages.get(channel);
  if (!early) return [];
  channel.removeEventListener('message', early.listener);
  earlyMessages.delete(channel);
  return early.messages;
}

/** Resolves once ICE gathering completed (false) or the bound passed first (true: timed out). */
function gatheringComplete(connection: RTCPeerConnection): Promise<boolean> {
  if (connection.iceGatheringState === 'complete') return Promise.resolve(false);
  return new Promise((resolve) => {
    const timer = setTimeout(() => done(true), ICE_GATHERING_TIMEOUT_MS);
    function done(timedOut: boolean) {
      clearTimeout(timer);
      connection.removeEventListener('icegatheringstatechange', onChange);
      resolve(timedOut);
    }
    function onChange() {
      if (connection.iceGatheringState === 'complete') done(false);
    }
    connection.addEventListener('icegatheringstatechange', onChange);
  });
}

/** What gathering produced for one offer or answer: the engine's evidence when no peer is reachable. */
export interface Gathering {
  /** The bound passed before gathering completed (the description went out with what it had). */
  timedOut: boolean;
  /** Candidate types in the description, e.g. ['host', 'srflx']. */
  candidateTypes: string[];
}

function gatheringOf(sdp: string, timedOut: boolean): Gathering {
  return { timedOut, candidateTypes: [...new Set([...sdp.matchAll(/ typ (\w+)/g)].map((match) => match[1]!))] };
}

export interface PendingOffer {
  connection: RTCPeerConnection;
  channel: RTCDataChannel;
  offer: RTCSessionDescriptionInit;
  gathering: Gathering;
}

/** Creates a connection with one ordered data channel and a complete offer for it. */
export async function createOffer(config: RTCConfiguration): Promise<PendingOffer> {
  const connection = new RTCPeerConnection(config);
  try {
    const channel = captureEarlyMessages(connection.createDataChannel(CHANNEL_LABEL, { ordered: true }));
    await connection.setLocalDescription(await connection.createOffer());
    const timedOut = await gatheringComplete(connection);
    const { type, sdp } = connection.localDescription!;
    return { connection, channel, offer: { type, sdp }, gathering: gatheringOf(sdp, timedOut) };
  } catch (error) {
    connection.close();
    throw error;
  }
}

/** Answers a remote offer; the data channel arrives later, through `channel`. */
export async function acceptOffer(
  config: RTCConfiguration,
  offer: RTCSessionDescriptionInit,
): Promise<{ connection: RTCPeerConnection; answer: RTCSessionDescriptionInit; channel: Promise<RTCDataChannel>; gathering: Gathering }> {
  const connection = new RTCPeerConnection(config);
  const channel = new Promise<RTCDataChannel>((resolve) => {
    connection.addEventListener('datachannel', (event) => resolve(captureEarlyMessages(event.channel)), { once: true });
  });
  try {
    await connection.setRemoteDescription(offer);
    await connection.setLocalDescription(await connection.createAnswer());
    const timedOut = await gatheringComplete(connection);
    const { type, sdp } = connection.localDescription!;
    return { connection, answer: { type, sdp }, channel, gathering: gatheringOf(sdp, timedOut) };
  } catch (error) {
    connection.close();
    throw error;
  }
}

/** Resolves when `channel` is open; rejects if it closes first or does not open within `timeoutMs`. */
export function channelOpen(channel: RTCDataChannel, timeoutMs: number): Promise<RTCDataChannel> {
  if (channel.readyState === 'open') return Promise.resolve(channel);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => finish(new Error('data channel did not open in time')), timeoutMs);
    function finish(error?: Error) {
      clearTimeout(timer);
      channel.removeEventListener('open', onOpen);
      channel.removeEventListener('close', onClose);
      if (error) reject(error);
      else resolve(channel);
    }
    const onOpen = () => finish();
    const onClose = () => finish(new Error('data channel closed before opening'));
    channel.addEventListener('open', onOpen);
    channel.addEventListener('close', onClose);
  });
}
