/**
 * The network layer under the tracker: WebSocket connections and plain HTTP requests on one port.
 * The tracker's logic (tracker-server.ts) only sees this interface, so the same code runs on the
 * native transport (uWebSockets.js: about a tenth of the memory per connection of `ws` on a Node socket)
 * and on the Node transport (`ws` over `node:http`), which works wherever Node does.
 */

/** One client's WebSocket, as the tracker uses it. */
export interface ClientSocket {
  /** False once the connection closed; every other call is then a no-op. */
  readonly isOpen: boolean;
  /** Queues one text frame. */
  send(frame: string): void;
  /** Bytes queued for this client and not yet taken by the kernel. */
  bufferedAmount(): number;
  /** Sends a close frame with a code and a short reason (at most 123 bytes), then closes. */
  close(code: number, reason: string): void;
  /** Closes at once, without a close frame (a dead or hostile peer). */
  terminate(): void;
  ping(): void;
}

/** What the tracker learns about a client at its WebSocket handshake. */
export interface ClientInfo {
  /** The TCP peer address; IPv4-mapped IPv6 addresses are given as plain IPv4. */
  remoteAddress: string;
  /** The `Origin` header, if any. */
  origin: string | undefined;
  /** The `X-Forwarded-For` header, if any. */
  forwardedFor: string | undefined;
}

/** A whole HTTP response: the tracker's routes are small JSON and text documents. */
export interface HttpReply {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** The tracker's side of a transport: called for every connection event and HTTP request. */
export interface TransportHandler<C> {
  /** A handshake completed. Returns the connection's state, or undefined after closing a refused socket. */
  open(socket: ClientSocket, info: ClientInfo): C | undefined;
  /** A text frame (`text`), or a binary frame (`text` undefined: the protocol has none). */
  message(conn: C, text: string | undefined): void;
  pong(conn: C): void;
  /** The client sent a frame over maxFrameBytes: the handler closes the connection (1009) if it is still open. */
  frameTooLarge(conn: C): void;
  /** The client broke the WebSocket protocol (invalid UTF-8, a bad frame); the transport closes the connection. */
  clientError(conn: C, message: string): void;
  /** The connection is gone. Always called after the call that closed it (close(), terminate()) returned. */
  closed(conn: C): void;
  /** A plain HTTP request; `authorization` is its Authorization header, if any. */
  http(method: string, url: string, authorization: string | undefined): HttpReply | Promise<HttpReply>;
  /** A failure of the listening server itself (not of one client). */
  serverError(message: string): void;
}

export interface TransportLimits {
  /** Largest accepted frame, in bytes. */
  maxFrameBytes: number;
  /** Bytes the tracker lets queue to one client before it drops frames (the native transport sizes its own cap from it). */
  maxBufferedBytes: number;
}

export interface Transport {
  /** 'native' (uWebSockets.js) or 'node' (`ws` over `node:http`). */
  readonly name: TransportName;
  /** Binds; resolves with the port (useful with port 0). Rejects when the address is taken. */
  listen(host: string, port: number): Promise<number>;
  /** Stops accepting connections and HTTP requests; open WebSockets stay for the tracker to close. */
  stopAccepting(): void;
  /** Releases what is left (idle HTTP keep-alive sockets) once every WebSocket is closed. */
  dispose(): Promise<void>;
}

export type TransportName = 'native' | 'node';

/** Status lines for the codes the tracker's HTTP routes use. */
export const STATUS_TEXT: Record<number, string> = {
  200: 'OK',
  401: 'Unauthorized',
  400: 'Bad Request',
  404: 'Not Found',
  405: 'Method Not Allowed',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

/** `::ffff:1.2.3.4` → `1.2.3.4`, so per-IP limits and locality see one form of an IPv4 client. */
export function plainAddress(address: string): string {
  return address.startsWith('::ffff:') ? address.slice(7) : address;
}
