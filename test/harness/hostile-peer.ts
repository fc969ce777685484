import nodeDataChannel, { type DataChannel, type PeerConnection } from 'node-datachannel';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import WebSocket from 'ws';
import { decodePeerMessage, encodePeerMessage } from '../../src/shared/peer-codec.js';
import { CHUNK_SIZE, PEER_PROTOCOL_VERSION, type PeerMessage } from '../../src/shared/peer-messages.js';
import { parseManifest, type Manifest, type ManifestAsset } from '../../src/shared/manifest.js';
import { pieceCount, pieceSpan } from '../../src/shared/piece-math.js';
import { swarmInfoHash } from '../../src/shared/swarm-id.js';
import type { PieceRuns } from '../../src/shared/holdings.js';

/**
 * A hostile member of a peerfetch swarm, outside the browser: it speaks the real tracker protocol
 * (WebSocket, the WebTorrent announce/offer/answer relay) and the real peer protocol (peerfetch's
 * own codec) over real WebRTC data channels (node-datachannel, libdatachannel), so a test controls
 * every byte it sends and when. What it does with requests is its `behaviour`.
 *
 * It binds its ICE sockets to an address of its own on the namespace's loopback device (see
 * addHostileAddress): Chromium gathers no candidates on loopback devices, so its pages keep
 * 10.77.0.x and the hostile peer is the only one reached at that address, as a hostile host on the
 * internet has an address of its own (the engine remembers bans and slow peers by address).
 */

/** What a hostile peer does on each channel; every hook is optional. */
export interface HostileBehaviour {
  /** What the hello claims: every piece of every asset (default), or nothing. */
  claims?: 'all' | 'none';
  /** Called once the channel is open and both hellos were exchanged (theirs may come later). */
  onOpen?(session: HostileSession): void;
  onRequest?(request: Extract<PeerMessage, { type: 'request' }>, session: HostileSession): void;
  onCancel?(id: number, session: HostileSession): void;
}

/**
 * Adds `address` (e.g. 10.78.0.1, outside the namespace's 10.77.0.0/24) to the loopback device of
 * this network namespace, for hostile peers to bind to; removeHostileAddress takes it away again.
 */
export function addHostileAddress(address: string): void {
  const show = spawnSync('ip', ['-o', 'addr', 'show', 'dev', 'lo'], { encoding: 'utf8', env: withSbin() });
  if (show.stdout?.includes(` ${address}/`)) return;
  const add = spawnSync('ip', ['addr', 'add', `${address}/32`, 'dev', 'lo'], { encoding: 'utf8', env: withSbin() });
  if (add.status !== 0) throw new Error(`cannot add ${address} to lo: ${add.error?.message ?? add.stderr}`);
}

export function removeHostileAddress(address: string): void {
  spawnSync('ip', ['addr', 'del', `${address}/32`, 'dev', 'lo'], { env: withSbin() });
}

const withSbin = () => ({ ...process.env, PATH: `${process.env.PATH ?? ''}:/usr/sbin:/sbin` });

/** One open data channel to one page. */
export class HostileSession {
  readonly remoteId: string;
  /** The hostile peer's id when this session opened. */
  readonly peerId: string;
  readonly #channel: DataChannel;
  readonly #peer: HostilePeer;
  /** Every message this page sent us, decoded. */
  readonly received: PeerMessage[] = [];
  closed = false;

  constructor(peer: HostilePeer, remoteId: string, channel: DataChannel) {
    this.#peer = peer;
    this.remoteId = remoteId;
    this.peerId = peer.peerId;
    this.#channel = channel;
  }

  get manifest(): Manifest {
    return this.#peer.manifest;
  }

  /** Sends one peer message (encoded with peerfetch's codec); false once the channel is gone. */
  send(message: PeerMessage): boolean {
    return this.sendFrame(encodePeerMessage(message));
  }

  /** Sends raw bytes as one binary message. */
  sendFrame(frame: Uint8Array): boolean {
    if (this.closed || !this.#channel.isOpen()) return false;
    try {
      return this.#channel.sendMessageBinary(Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength));
    } catch {
      return false;
    }
  }

  /** Bytes queued in the channel, not yet on the wire. */
  get bufferedAmount(): number {
    return this.closed ? 0 : this.#channel.bufferedAmount();
  }

  /** The true bytes of `piece` of `asset` (this peer holds the real file, to serve it well or badly). */
  pieceBytes(asset: string, piece: number): Uint8Array {
    return this.#peer.pieceBytes(asset, piece);
  }

  /** Sends the true piece asked for by `request`, from its `from` on, chunk by chunk. */
  serve(request: Extract<PeerMessage, { type: 'request' }>): void {
    const data = this.pieceBytes(request.asset, request.piece);
    for (let offset = request.from ?? 0; offset < data.length; offset += CHUNK_SIZE) {
      this.send({ type: 'chunk', id: request.id, offset, total: data.length, data: data.subarray(offset, offset + CHUNK_SIZE) });
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      this.#channel.close();
    } catch {
      // already closed
    }
  }
}

export interface HostilePeerOptions {
  trackerUrl: string;
  /** The page URL whose swarm to join (its swarm key is origin + path, as the engine's default). */
  pageUrl: string;
  /** The site's manifest URL. */
  manifestUrl: string;
  /** The bytes of the asset at a URL path (e.g. '/media/video.mp4'), or undefined. */
  file(path: string): Uint8Array | undefined;
  behaviour: HostileBehaviour;
  /** Local address its ICE sockets bind to (see addHostileAddress). */
  address: string;
  /** Offers per announce (default 5, as pages make; 0: it only answers the offers of pages that join after it). */
  offers?: number;
}

/** A hostile swarm member; `start()` joins the swarm. */
export class HostilePeer {
  readonly options: HostilePeerOptions;
  manifest!: Manifest;
  #infoHash = '';
  peerId = '';
  #socket: WebSocket | undefined;
  readonly #connections = new Set<PeerConnection>();
  readonly #pendingOffers = new Map<string, { connection: PeerConnection; channel: DataChannel }>();
  /** Open sessions, all ids this peer had. */
  readonly sessions: HostileSession[] = [];
  /** Peer ids this hostile peer has used, oldest first. */
  readonly ids: string[] = [];
  /** Every peer connection made, with the id used and the states it went through ('connected', 'closed', ...). */
  readonly connections: { peerId: string; remoteId: string | undefined; states: string[] }[] = [];
  readonly #sessionsOf = new Map<PeerConnection, HostileSession[]>();
  readonly #recordOf = new Map<PeerConnection, HostilePeer['connections'][number]>();
  #stopped = false;

  constructor(options: HostilePeerOptions) {
    this.options = options;
  }

  static async start(options: HostilePeerOptions): Promise<HostilePeer> {
    const peer = new HostilePeer(options);
    const response = await fetch(options.manifestUrl);
    peer.manifest = await parseManifest(await response.json(), options.manifestUrl);
    const page = new URL(options.pageUrl);
    peer.#infoHash = await swarmInfoHash(page.origin + page.pathname);
    await peer.#join();
    return peer;
  }

  /** Sessions of the current id that are open. */
  get openSessions(): HostileSession[] {
    return this.sessions.filter((session) => !session.closed);
  }

  /** Leaves the swarm and joins it again under a fresh peer id, from the same address. */
  async rejoin(): Promise<void> {
    this.#leave();
    await this.#join();
  }

  stop(): void {
    this.#stopped = true;
    this.#leave();
  }

  pieceBytes(assetId: string, piece: number): Uint8Array {
    const asset = this.#asset(assetId);
    const file = this.options.file(new URL(asset.href).pathname);
    if (!file) throw new Error(`hostile peer has no bytes for ${asset.href}`);
    const span = pieceSpan(piece, asset.size, asset.pieceSize);
    return file.subarray(span.start, span.end);
  }

  #asset(assetId: string): ManifestAsset {
    const asset = this.manifest.assets.find((entry) => entry.id === assetId);
    if (!asset) throw new Error(`unknown asset ${assetId}`);
    return asset;
  }

  #leave(): void {
    this.#socket?.close();
    this.#socket = undefined;
    for (const session of this.sessions) session.close();
    for (const connection of this.#connections) connection.close();
    this.#connections.clear();
    this.#pendingOffers.clear();
  }

  async #join(): Promise<void> {
    this.peerId = `-HX0100-${randomBytes(6).toString('hex')}`;
    this.ids.push(this.peerId);
    const socket = new WebSocket(this.options.trackerUrl, { origin: new URL(this.options.pageUrl).origin });
    this.#socket = socket;
    await new Promise<void>((resolve, reject) => socket.once('open', resolve).once('error', reject));
    socket.on('message', (data) => {
      // A description libdatachannel refuses (or one for a connection closed meanwhile by a rejoin) skips that peer.
      this.#onTrackerMessage(socket, String(data)).catch(() => {});
    });
    const offers = await Promise.all(Array.from({ length: this.options.offers ?? 5 }, () => this.#makeOffer()));
    this.#send(socket, { ...this.#announceBase(), event: 'started', numwant: offers.length, offers });
  }

  #announceBase() {
    return { action: 'announce', info_hash: this.#infoHash, peer_id: this.peerId, uploaded: 0, downloaded: 0, left: 1 };
  }

  #send(socket: WebSocket, message: object): void {
    if (socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
  }

  #newConnection(remoteId?: string): PeerConnection {
    const connection = new nodeDataChannel.PeerConnection(`hostile-${this.peerId}`, { iceServers: [], bindAddress: this.options.address });
    this.#connections.add(connection);
    const record = { peerId: this.peerId, remoteId, states: [] as string[] };
    this.connections.push(record);
    this.#recordOf.set(connection, record);
    connection.onStateChange((state) => {
      record.states.push(state);
      // The page closing the connection ends its sessions even before SCTP says so.
      if (state === 'closed' || state === 'failed' || state === 'disconnected') {
        for (const session of this.#sessionsOf.get(connection) ?? []) session.closed = true;
      }
    });
    return connection;
  }

  /** Resolves with the complete local description (non-trickle, as the WebTorrent protocol needs). */
  #gathered(connection: PeerConnection): Promise<{ type: string; sdp: string }> {
    return new Promise((resolve) => {
      const done = () => resolve(connection.localDescription()!);
      if (connection.gatheringState() === 'complete') return done();
      connection.onGatheringStateChange((state) => state === 'complete' && done());
    });
  }

  async #makeOffer(): Promise<{ offer: { type: string; sdp: string }; offer_id: string }> {
    const connection = this.#newConnection();
    const gathered = this.#gathered(connection);
    const channel = connection.createDataChannel('peerfetch');
    const offerId = randomBytes(10).toString('hex');
    this.#pendingOffers.set(offerId, { connection, channel });
    const offer = await gathered;
    return { offer: { type: 'offer', sdp: offer.sdp }, offer_id: offerId };
  }

  async #onTrackerMessage(socket: WebSocket, raw: string): Promise<void> {
    if (socket !== this.#socket || this.#stopped) return;
    const message = JSON.parse(raw) as Record<string, unknown>;
    const from = typeof message.peer_id === 'string' ? message.peer_id : undefined;
    const offerId = typeof message.offer_id === 'string' ? message.offer_id : undefined;
    if (!from || !offerId || from === this.peerId) return;
    const offer = message.offer as { sdp?: string } | undefined;
    const answer = message.answer as { sdp?: string } | undefined;
    if (typeof offer?.sdp === 'string') {
      const connection = this.#newConnection(from);
      const gathered = this.#gathered(connection);
      connection.onDataChannel((channel) => this.#onChannel(from, connection, channel));
      connection.setRemoteDescription(offer.sdp, 'offer');
      const local = await gathered;
      this.#send(socket, { ...this.#announceBase(), to_peer_id: from, offer_id: offerId, answer: { type: 'answer', sdp: local.sdp } });
    } else if (typeof answer?.sdp === 'string') {
      const pending = this.#pendingOffers.get(offerId);
      if (!pending) return;
      this.#pendingOffers.delete(offerId);
      const record = this.#recordOf.get(pending.connection);
      if (record) record.remoteId = from;
      pending.channel.onOpen(() => this.#onChannel(from, pending.connection, pending.channel));
      pending.connection.setRemoteDescription(answer.sdp, 'answer');
    }
  }

  #onChannel(remoteId: string, connection: PeerConnection, channel: DataChannel): void {
    if (this.#stopped) return;
    const session = new HostileSession(this, remoteId, channel);
    this.sessions.push(session);
    const { behaviour } = this.options;
    channel.onClosed(() => (session.closed = true));
    this.#sessionsOf.set(connection, [...(this.#sessionsOf.get(connection) ?? []), session]);
    channel.onMessage((data) => {
      if (typeof data === 'string') return;
      let message: PeerMessage;
      try {
        message = decodePeerMessage(new Uint8Array(data as Buffer));
      } catch {
        return;
      }
      session.received.push(message);
      if (message.type === 'request') behaviour.onRequest?.(message, session);
      else if (message.type === 'cancel') behaviour.onCancel?.(message.id, session);
    });
    const send = () => {
      const holdings = new Map<string, PieceRuns>();
      if ((behaviour.claims ?? 'all') === 'all') {
        for (const asset of this.manifest.assets) holdings.set(asset.id, Uint32Array.of(0, pieceCount(asset.size, asset.pieceSize)));
      }
      session.send({ type: 'hello', version: PEER_PROTOCOL_VERSION, holdings });
      behaviour.onOpen?.(session);
    };
    if (channel.isOpen()) send();
    else channel.onOpen(send);
  }
}
