import { createRequire } from 'node:module';
import { createHttpServer } from './http-server.js';
import type { WebSocket, RawData } from 'ws';
import { plainAddress, type ClientSocket, type Transport, type TransportHandler, type TransportLimits } from './transport.js';

/** The package the Node transport runs on: an optional peer dependency, so sites that only use the browser files do not install it. */
export const WS_PACKAGE = 'ws';

/**
 * Loads `ws` when the Node transport is created (not when the tracker module is imported: a tracker
 * on the native transport does not need it). Throws an Error that says what to install.
 */
export function loadWs(): typeof import('ws') {
  try {
    return createRequire(import.meta.url)(WS_PACKAGE) as typeof import('ws');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'MODULE_NOT_FOUND') throw error;
    throw new Error(`the node transport needs the ${WS_PACKAGE} package, which is not installed: npm install ${WS_PACKAGE}`);
  }
}

class NodeClientSocket implements ClientSocket {
  constructor(private readonly ws: WebSocket) {}

  get isOpen(): boolean {
    return this.ws.readyState === this.ws.OPEN;
  }

  send(frame: string): void {
    if (this.isOpen) this.ws.send(frame);
  }

  bufferedAmount(): number {
    return this.ws.bufferedAmount;
  }

  close(code: number, reason: string): void {
    if (this.isOpen) this.ws.close(code, reason);
  }

  terminate(): void {
    this.ws.terminate();
  }

  ping(): void {
    if (this.isOpen) this.ws.ping();
  }
}

function textOf(data: RawData): string {
  // ws hands text frames over as one Buffer (binaryType 'nodebuffer'); decode it without copying.
  if (Buffer.isBuffer(data)) return data.toString();
  return Array.isArray(data) ? Buffer.concat(data).toString() : Buffer.from(data).toString();
}

/**
 * The transport that runs wherever Node runs: `ws` on a `node:http` server. A connection costs
 * 7–9 KiB of memory here (Node's socket and stream objects), over ten times the native transport's.
 */
export function createNodeTransport<C>(handler: TransportHandler<C>, limits: TransportLimits): Transport {
  const { WebSocketServer } = loadWs();
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: limits.maxFrameBytes,
    // Compression costs ~300 KB of zlib state per socket and CPU per frame; SDP is small.
    perMessageDeflate: false,
    clientTracking: false,
  });
  let accepting = true;
  const server = createHttpServer((method, url, authorization) => handler.http(method, url, authorization));
  server.on('upgrade', (req, socket, head) => {
    socket.on('error', () => socket.destroy());
    if (!accepting) {
      socket.destroy();
      return;
    }
    const forwarded = req.headers['x-forwarded-for'];
    const info = {
      remoteAddress: plainAddress(req.socket.remoteAddress ?? '?'),
      origin: req.headers.origin,
      forwardedFor: Array.isArray(forwarded) ? forwarded[0] : forwarded,
    };
    wss.handleUpgrade(req, socket, head, (ws) => {
      const conn = handler.open(new NodeClientSocket(ws), info);
      if (conn === undefined) {
        ws.on('error', () => {});
        return;
      }
      ws.on('message', (data, isBinary) => handler.message(conn, isBinary ? undefined : textOf(data)));
      ws.on('pong', () => handler.pong(conn));
      ws.on('error', (error: Error & { code?: string }) => {
        // ws reports an oversized frame as an error and closes the socket with 1009 itself.
        if (error.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') handler.frameTooLarge(conn);
        else handler.clientError(conn, `${error.code ?? 'error'}: ${error.message}`);
      });
      ws.on('close', () => handler.closed(conn));
    });
  });

  return {
    name: 'node',
    listen: (host, port) =>
      new Promise<number>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          server.off('error', reject);
          server.on('error', (error) => handler.serverError(String(error)));
          const address = server.address();
          resolve(typeof address === 'object' && address ? address.port : port);
        });
      }),
    stopAccepting: () => {
      accepting = false;
      server.close();
      server.closeIdleConnections();
    },
    dispose: async () => {
      server.closeAllConnections();
      wss.close();
    },
  };
}
