import type * as Uws from '@trufflesuite/uws-js-unofficial';
import { loadNativeServer, type NativeServer } from './native-package.js';
import { plainAddress, STATUS_TEXT, type ClientInfo, type ClientSocket, type HttpReply, type Transport, type TransportHandler, type TransportLimits } from './transport.js';


/** How uWS reports a frame over its maxPayloadLength: it drops the TCP connection (code 1006). */
const UWS_TOO_BIG = 'Received too big message';
const CLOSE_ABNORMAL = 1006;
/**
 * How far over maxFrameBytes a frame may be and still be read, to be refused with 1009 and a reason
 * (a client a little over, with many large offers, learns why); anything bigger is cut off by uWS
 * at once. uWS may buffer up to maxFrameBytes + this per connection for an incomplete frame.
 */
const OVERSIZE_MARGIN_BYTES = 16 * 1024;

/** What to run on: the native server, or the Node transport and why (when the native one was wanted). */
export type TransportChoice = { kind: 'native'; uws: typeof Uws; packageName: string } | { kind: 'node'; nativeUnavailable?: string };

/**
 * Picks the transport for the `transport` option: 'node' never loads the binary; 'auto' falls back
 * to the Node transport with the reason; 'native' without a loadable binary is a start-up error.
 */
export function chooseTransport(requested: 'auto' | 'native' | 'node', load: () => NativeServer | Error = loadNativeServer): TransportChoice {
  if (requested === 'node') return { kind: 'node' };
  const native = load();
  // The binary's exports are uWebSockets.js's API, which the trufflesuite package's declarations describe.
  if (!(native instanceof Error)) return { kind: 'native', uws: native.uws as typeof Uws, packageName: native.packageName };
  if (requested === 'native') throw new Error(`the native transport is not available: ${native.message}; use transport 'node' or 'auto'`);
  return { kind: 'node', nativeUnavailable: native.message };
}

/**
 * uWS's per-socket user data. uWS copies the own properties of the object given at the upgrade
 * onto its WebSocket object (and getUserData() returns that), so methods cannot live on it: it
 * carries a reference to the tracker's handle instead.
 */
interface UserData<C> {
  socket: NativeClientSocket<C>;
}

/**
 * Frames for other clients wait until the end of the current event-loop turn, then go out corked:
 * one TCP send per client per turn, however many frames it got. Under load a turn handles many
 * announces of one swarm, whose offers land on the same few peers, and a send system call costs more
 * than everything else the tracker does for a frame. The wait is never longer than the turn itself.
 */
class Outbox {
  private pending: Array<NativeClientSocket<unknown>> = [];

  add(socket: NativeClientSocket<unknown>): void {
    if (this.pending.push(socket) === 1) setImmediate(() => this.flush());
  }

  private flush(): void {
    const sockets = this.pending;
    this.pending = [];
    for (const socket of sockets) socket.flush();
  }
}

/** The tracker's handle on one connection. */
class NativeClientSocket<C> implements ClientSocket {
  ws: Uws.WebSocket<UserData<C>> | undefined;
  conn: C | undefined;
  info: ClientInfo | undefined;
  /** Frames queued in this turn (see Outbox), and their length in UTF-16 units (≈ bytes). */
  private queued: string[] | undefined;
  private queuedLength = 0;

  constructor(
    info: ClientInfo,
    private readonly outbox: Outbox,
  ) {
    this.info = info;
  }

  get isOpen(): boolean {
    return this.ws !== undefined;
  }

  send(frame: string): void {
    if (this.ws === undefined) return;
    this.queuedLength += frame.length;
    if (this.queued) this.queued.push(frame);
    else {
      this.queued = [frame];
      this.outbox.add(this as NativeClientSocket<unknown>);
    }
  }

  /** Sends the queued frames in one corked write. */
  flush(): void {
    const frames = this.queued;
    const ws = this.ws;
    this.queued = undefined;
    this.queuedLength = 0;
    if (!frames || !ws) return;
    // send() returns 2 when a frame is dropped over maxBackpressure: the tracker checks
    // bufferedAmount() before sending and handles slow clients itself.
    if (frames.length === 1) ws.send(frames[0]!, false);
    else ws.cork(() => {
      for (const frame of frames) ws.send(frame, false);
    });
  }

  bufferedAmount(): number {
    return (this.ws?.getBufferedAmount() ?? 0) + this.queuedLength;
  }

  close(code: number, reason: string): void {
    this.flush(); // a failure reason queued just before the close goes out first
    this.ws?.end(code, reason);
  }

  terminate(): void {
    this.queued = undefined;
    this.queuedLength = 0;
    this.ws?.close();
  }

  ping(): void {
    this.ws?.ping();
  }
}

/** The native transport: under 1 KiB of memory per connection, against about 9 KiB with `ws` on Node's sockets. */
export function createNativeTransport<C>(uws: typeof Uws, handler: TransportHandler<C>, limits: TransportLimits): Transport {
  let listenSocket: Uws.us_listen_socket | undefined;
  let accepting = true;
  const outbox = new Outbox();
  const app = uws.App();

  app.ws<UserData<C>>('/*', {
    maxPayloadLength: limits.maxFrameBytes + OVERSIZE_MARGIN_BYTES,
    // The tracker stops sending to a client over maxBufferedBytes, so at most one more turn of
    // frames (each no bigger than the frame it relays) is queued beyond it; uWS's cap is a backstop.
    maxBackpressure: limits.maxBufferedBytes + 4 * (limits.maxFrameBytes + OVERSIZE_MARGIN_BYTES),
    // Idle connections and heartbeats are the tracker's (its sweep), the same on both transports.
    idleTimeout: 0,
    sendPingsAutomatically: false,
    compression: uws.DISABLED,
    upgrade: (res, req, context) => {
      // Headers can only be read here, synchronously, before the handshake completes.
      const info: ClientInfo = {
        remoteAddress: plainAddress(Buffer.from(res.getRemoteAddressAsText()).toString()),
        origin: req.getHeader('origin') || undefined,
        forwardedFor: req.getHeader('x-forwarded-for') || undefined,
      };
      // Like `ws`, accept the first subprotocol a client offers (WebTorrent clients offer none).
      const protocol = req.getHeader('sec-websocket-protocol').split(',')[0]?.trim() ?? '';
      const userData: UserData<C> = { socket: new NativeClientSocket<C>(info, outbox) };
      res.upgrade(userData, req.getHeader('sec-websocket-key'), protocol, req.getHeader('sec-websocket-extensions'), context);
    },
    open: (ws) => {
      const socket = ws.getUserData().socket;
      socket.ws = ws;
      const info = socket.info!;
      socket.info = undefined; // headers are not needed after the handshake
      socket.conn = handler.open(socket, info);
    },
    message: (ws, message, isBinary) => {
      const socket = ws.getUserData().socket;
      if (socket.conn === undefined) return;
      if (message.byteLength > limits.maxFrameBytes) handler.frameTooLarge(socket.conn);
      // The ArrayBuffer is only valid during this call: decode it now (the parse is synchronous).
      else handler.message(socket.conn, isBinary ? undefined : Buffer.from(message).toString());
    },
    pong: (ws) => {
      const socket = ws.getUserData().socket;
      if (socket.conn !== undefined) handler.pong(socket.conn);
    },
    close: (ws, code, message) => {
      const socket = ws.getUserData().socket;
      socket.ws = undefined; // uWS throws on any use of a closed socket
      const conn = socket.conn;
      if (conn === undefined) return;
      // 1006 is never sent by a client (it means "no close frame"), and the tracker's own closes come
      // with its code (end()) or with no text (close()): this pair is uWS cutting off a too-big frame.
      const tooBig = code === CLOSE_ABNORMAL && Buffer.from(message).toString() === UWS_TOO_BIG;
      // uWS calls this from inside end() and close() too; like `ws`, report the close after the
      // tracker's current call, so that code never sees its own connection vanish halfway.
      queueMicrotask(() => {
        if (tooBig) handler.frameTooLarge(conn);
        handler.closed(conn);
      });
    },
  });

  app.any('/*', (res, req) => {
    const method = req.getMethod().toUpperCase();
    const query = req.getQuery();
    const url = query ? `${req.getUrl()}?${query}` : req.getUrl();
    // Headers can only be read synchronously, before the first await.
    const authorization = req.getHeader('authorization') || undefined;
    let aborted = false;
    res.onAborted(() => (aborted = true));
    const write = (reply: HttpReply): void => {
      if (aborted) return;
      // While shutting down, each connection closes after its response (no keep-alive).
      const closeConnection = !accepting;
      res.cork(() => {
        res.writeStatus(`${reply.status} ${STATUS_TEXT[reply.status] ?? ''}`);
        for (const [name, value] of Object.entries(reply.headers)) res.writeHeader(name, value);
        // HEAD gets the length of the GET body (the routes answer no 204, see http-routes.ts).
        if (method === 'HEAD') res.endWithoutBody(Buffer.byteLength(reply.body), closeConnection);
        else res.end(reply.body, closeConnection);
      });
    };
    const failed = (): void => write({ status: 500, headers: {}, body: '' });
    try {
      const reply = handler.http(method, url, authorization);
      if (reply instanceof Promise) reply.then(write, failed);
      else write(reply);
    } catch {
      failed();
    }
  });

  return {
    name: 'native',
    listen: (host, port) =>
      new Promise<number>((resolve, reject) => {
        app.listen(host, port, (socket) => {
          if (!socket) {
            reject(new Error(`cannot listen on ${host}:${port}: the address is in use or not available`));
            return;
          }
          listenSocket = socket;
          resolve(uws.us_socket_local_port(socket as unknown as Uws.us_socket));
        });
      }),
    stopAccepting: () => {
      accepting = false;
      if (listenSocket) uws.us_listen_socket_close(listenSocket);
      listenSocket = undefined;
    },
    // Closes what is left, idle HTTP keep-alive connections included (close() is in uWS 20.30's
    // binary but not in its type declarations).
    dispose: async () => {
      (app as unknown as { close(): void }).close();
    },
  };
}
