import { PeerfetchError } from '../shared/errors.js';
import { decodePeerMessage, encodePeerMessage } from '../shared/peer-codec.js';
import { CHUNK_SIZE, PEER_PROTOCOL_VERSION, type PeerMessage } from '../shared/peer-messages.js';
import { Bitfield } from '../shared/bitfield.js';
import { takeEarlyMessages } from './rtc.js';

/**
 * Bytes queued in the data channel above which uploads wait for `bufferedamountlow`. Chromium
 * kills a channel whose queue reaches 16 MiB (measured); 1 MiB keeps the pipe full at the
 * 5–12 MB/s a channel carries here while staying far from that.
 */
const SEND_HIGH_WATER_BYTES = 1024 * 1024;
const SEND_LOW_WATER_BYTES = 256 * 1024;
/**
 * Download rate (bytes/s) assumed for a peer before a piece from it was measured: the low end of
 * what a data channel carries here (5–12 MB/s measured), so new peers are neither shunned nor preferred.
 */
const ASSUMED_THROUGHPUT_BPS = 2_000_000;
/** Weight of the newest measurement in the throughput moving average. */
const THROUGHPUT_SMOOTHING = 0.3;
/**
 * A request given up after this long (ms) measures the peer: what it delivered meanwhile is its
 * rate right now. Shorter waits say too little (a piece may just be starting).
 */
const STALL_MIN_ELAPSED_MS = 500;
/**
 * How long (ms) a stall measurement overrides the moving average: the peer is not waited for
 * again meanwhile, then gets another chance (its uplink may have recovered).
 */
const STALL_MEMORY_MS = 15_000;
/** Requests from one peer queued at once; more is answered `busy`, so a greedy peer cannot hog us. */
const MAX_QUEUED_UPLOADS = 16;

/** What a Peer needs from the swarm (passed down; a Peer never reaches up). */
export interface PeerHandlers {
  /** Piece count of an asset id, or undefined for an asset we don't know (its haves are ignored). */
  pieceCount(asset: string): number | undefined;
  /** Bytes of a stored piece to upload, or undefined. */
  readPiece(asset: string, piece: number): Promise<Uint8Array | undefined>;
  onHave(peer: Peer): void;
  onUploaded(peer: Peer, bytes: number): void;
  /** Resolves when `bytes` more may be uploaded (the page's upload cap). */
  beforeUpload(bytes: number): Promise<void>;
  onClose(peer: Peer, reason: string): void;
}

interface Download {
  startedAt: number;
  asset: string;
  piece: number;
  buffer: Uint8Array | undefined;
  received: number;
  expectedBytes: number;
  resolve(data: Uint8Array): void;
  reject(error: PeerfetchError): void;
}

/**
 * One connected remote peer: the peerfetch peer protocol over one WebRTC data channel.
 * Downloads are pull-based (`request`), uploads are served one at a time from the store.
 */
export class Peer {
  readonly id: string;
  readonly connection: RTCPeerConnection;
  readonly #channel: RTCDataChannel;
  readonly #handlers: PeerHandlers;
  readonly #have = new Map<string, Bitfield>();
  readonly #downloads = new Map<number, Download>();
  #uploads: PeerMessage[] = [];
  #uploading = false;
  /** Id of the upload being sent, and whether the requester cancelled it meanwhile. */
  #currentUpload: { id: number; cancelled: boolean } | undefined;
  #nextRequestId = 1;
  #closed = false;
  /** Bytes received from / sent to this peer, for per-peer throughput. */
  bytesDownloaded = 0;
  bytesUploaded = 0;
  /** Measured download rate in bytes per second (moving average over completed pieces). */
  throughput = ASSUMED_THROUGHPUT_BPS;
  /** Requests this peer failed (rejected, timed out, closed); lowers its rank. */
  failures = 0;
  /** The rate (bytes/s) of the last request given up on while this peer was serving it, and when. */
  #stall: { rate: number; at: number } | undefined;
  /** Requests in flight to this peer; the scheduler prefers less loaded peers. */
  get inFlight(): number {
    return this.#downloads.size;
  }

  /** Expected seconds until this peer delivers `bytes` more, queued requests included: lower is better. */
  expectedDelay(bytes: number): number {
    return ((this.inFlight + 1) * bytes) / Math.max(this.#currentThroughput(), 1) + this.failures * 0.5;
  }

  /** The moving average, or a recent stall's rate when lower (a congested uplink shows there first). */
  #currentThroughput(): number {
    const stall = this.#stall;
    if (!stall || performance.now() - stall.at > STALL_MEMORY_MS) return this.throughput;
    return Math.min(this.throughput, stall.rate);
  }

  /**
   * A request is given up on (a deadline, a cancel): when the peer was serving it (the oldest
   * outstanding one; uploads are served in order) for long enough, what arrived meanwhile is
   * the peer's rate now.
   */
  #noteGivenUp(id: number, download: Download): void {
    const elapsedMs = performance.now() - download.startedAt;
    const oldest = this.#downloads.keys().next().value;
    if (oldest !== id || elapsedMs < STALL_MIN_ELAPSED_MS) return;
    this.#stall = { rate: (download.received * 1000) / elapsedMs, at: performance.now() };
  }

  constructor(id: string, connection: RTCPeerConnection, channel: RTCDataChannel, handlers: PeerHandlers) {
    this.id = id;
    this.connection = connection;
    this.#channel = channel;
    this.#handlers = handlers;
    channel.binaryType = 'arraybuffer';
    channel.bufferedAmountLowThreshold = SEND_LOW_WATER_BYTES;
    const early = takeEarlyMessages(channel);
    channel.onmessage = (event) => this.#onFrame(event.data);
    // Replayed after the constructor, so the swarm has registered this peer before its hello is handled.
    if (early.length > 0) queueMicrotask(() => early.forEach((data) => this.#onFrame(data)));
    channel.onclose = () => this.close('channel closed');
    channel.onerror = () => this.close('channel error');
    connection.onconnectionstatechange = () => {
      if (connection.connectionState === 'failed' || connection.connectionState === 'closed') this.close('connection lost');
    };
  }

  /** Sends our hello (protocol version and what we hold); must be the first message. */
  hello(have: Record<string, string>): void {
    this.#send({ type: 'hello', version: PEER_PROTOCOL_VERSION, have });
  }

  announceHave(asset: string, piece: number): void {
    this.#send({ type: 'have', asset, piece });
  }

  has(asset: string, piece: number): boolean {
    return this.#have.get(asset)?.has(piece) ?? false;
  }

  /** Requests a whole piece; resolves with its (not yet verified) bytes. Abort to cancel it at the peer too. */
  request(asset: string, piece: number, expectedBytes: number, signal: AbortSignal): Promise<Uint8Array> {
    if (this.#closed) return Promise.reject(new PeerfetchError('peer-closed', 'peer is closed', { peer: this.id }));
    const id = this.#nextRequestId++;
    return new Promise<Uint8Array>((resolve, reject) => {
      const onAbort = () => {
        const download = this.#downloads.get(id);
        if (!download) return;
        this.#noteGivenUp(id, download);
        this.#downloads.delete(id);
        this.#send({ type: 'cancel', id });
        reject(new PeerfetchError('aborted', 'request cancelled', { peer: this.id }));
      };
      signal.addEventListener('abort', onAbort, { once: true });
      const settle = () => signal.removeEventListener('abort', onAbort);
      this.#downloads.set(id, {
        startedAt: performance.now(),
        asset,
        piece,
        buffer: undefined,
        received: 0,
        expectedBytes,
        resolve: (data) => (settle(), resolve(data)),
        reject: (error) => {
          settle();
          if (error.code !== 'aborted') this.failures++;
          reject(error);
        },
      });
      this.#send({ type: 'request', id, asset, piece });
    });
  }

  close(reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const download of this.#downloads.values()) {
      download.reject(new PeerfetchError('peer-closed', `peer closed: ${reason}`, { peer: this.id }));
    }
    this.#downloads.clear();
    this.#uploads = [];
    try {
      this.#channel.close();
      this.connection.close();
    } catch {
      // Already closed by the browser.
    }
    this.#handlers.onClose(this, reason);
  }

  get closed(): boolean {
    return this.#closed;
  }

  #send(message: PeerMessage): void {
    if (this.#closed || this.#channel.readyState !== 'open') return;
    try {
      this.#channel.send(encodePeerMessage(message) as Uint8Array<ArrayBuffer>);
    } catch {
      this.close('send failed');
    }
  }

  #onFrame(data: unknown): void {
    if (!(data instanceof ArrayBuffer)) return this.close('text frame');
    let message: PeerMessage;
    try {
      message = decodePeerMessage(new Uint8Array(data));
    } catch {
      // A peer that speaks garbage is not worth keeping (and may be hostile).
      return this.close('invalid message');
    }
    switch (message.type) {
      case 'hello':
        if (message.version !== PEER_PROTOCOL_VERSION) return this.close('protocol version mismatch');
        for (const [asset, hex] of Object.entries(message.have)) this.#setHave(asset, hex);
        return this.#handlers.onHave(this);
      case 'have': {
        const count = this.#handlers.pieceCount(message.asset);
        if (count === undefined || message.piece >= count) return;
        let bits = this.#have.get(message.asset);
        if (!bits) this.#have.set(message.asset, (bits = new Bitfield(count)));
        bits.set(message.piece);
        return this.#handlers.onHave(this);
      }
      case 'request':
        if (this.#uploads.length >= MAX_QUEUED_UPLOADS) return this.#send({ type: 'reject', id: message.id, reason: 'busy' });
        this.#uploads.push(message);
        return void this.#drainUploads();
      case 'cancel':
        this.#uploads = this.#uploads.filter((queued) => !(queued.type === 'request' && queued.id === message.id));
        if (this.#currentUpload?.id === message.id) this.#currentUpload.cancelled = true;
        return;
      case 'chunk':
        return this.#onChunk(message);
      case 'reject': {
        const download = this.#downloads.get(message.id);
        if (!download) return;
        this.#downloads.delete(message.id);
        return download.reject(new PeerfetchError('peer-closed', `peer rejected the request: ${message.reason}`, { peer: this.id }));
      }
    }
  }

  #setHave(asset: string, hex: string): void {
    const count = this.#handlers.pieceCount(asset);
    if (count === undefined) return;
    const bits = Bitfield.fromHex(hex, count);
    if (bits) this.#have.set(asset, bits);
  }

  #onChunk(chunk: Extract<PeerMessage, { type: 'chunk' }>): void {
    const download = this.#downloads.get(chunk.id);
    if (!download) return; // Cancelled or already done: late chunks are expected, not an error.
    if (chunk.total !== download.expectedBytes) {
      this.#downloads.delete(chunk.id);
      download.reject(new PeerfetchError('codec-invalid', 'peer sent a piece of the wrong size', { peer: this.id }));
      return;
    }
    download.buffer ??= new Uint8Array(chunk.total);
    download.buffer.set(chunk.data, chunk.offset);
    download.received += chunk.data.length;
    this.bytesDownloaded += chunk.data.length;
    if (download.received >= download.expectedBytes) {
      this.#downloads.delete(chunk.id);
      const seconds = Math.max((performance.now() - download.startedAt) / 1000, 0.001);
      const rate = download.expectedBytes / seconds;
      this.throughput = this.throughput * (1 - THROUGHPUT_SMOOTHING) + rate * THROUGHPUT_SMOOTHING;
      download.resolve(download.buffer);
    }
  }

  async #drainUploads(): Promise<void> {
    if (this.#uploading) return;
    this.#uploading = true;
    try {
      for (let next = this.#uploads.shift(); next && !this.#closed; next = this.#uploads.shift()) {
        if (next.type !== 'request') continue;
        const data = await this.#handlers.readPiece(next.asset, next.piece).catch(() => undefined);
        if (!data) {
          this.#send({ type: 'reject', id: next.id, reason: 'not-found' });
          continue;
        }
        await this.#sendPiece(next.id, data);
      }
    } finally {
      this.#uploading = false;
    }
  }

  async #sendPiece(id: number, data: Uint8Array): Promise<void> {
    const upload = (this.#currentUpload = { id, cancelled: false });
    for (let offset = 0; offset < data.length && !this.#closed; offset += CHUNK_SIZE) {
      // A cancel that arrived while we were sending stops the rest of the piece.
      if (upload.cancelled) break;
      if (this.#channel.bufferedAmount > SEND_HIGH_WATER_BYTES) {
        await this.#bufferLow();
        // The wait is where a cancel can arrive: check again before sending more.
        if (upload.cancelled) break;
      }
      const chunk = data.subarray(offset, offset + CHUNK_SIZE);
      await this.#handlers.beforeUpload(chunk.length);
      if (upload.cancelled || this.#closed) break;
      this.#send({ type: 'chunk', id, offset, total: data.length, data: chunk });
      this.bytesUploaded += chunk.length;
      this.#handlers.onUploaded(this, chunk.length);
    }
    this.#currentUpload = undefined;
  }

  #bufferLow(): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        this.#channel.removeEventListener('bufferedamountlow', done);
        this.#channel.removeEventListener('close', done);
        resolve();
      };
      this.#channel.addEventListener('bufferedamountlow', done);
      this.#channel.addEventListener('close', done);
    });
  }
}
