import http from 'node:http';
import type { HttpReply } from './transport.js';

/** The operator's HTTP listener (see TrackerOptions.adminPort). */
export interface AdminServer {
  readonly port: number;
  close(): Promise<void>;
}

/**
 * A plain `node:http` listener for the operator's routes (/stats.json with every swarm, /metrics),
 * apart from the public port: bound to a private address, it needs no token and no proxy rule to
 * keep viewers out. Its traffic is a scraper's, so Node's sockets cost nothing worth a native path.
 */
export function startAdminServer(host: string, port: number, route: (method: string, url: string) => HttpReply | Promise<HttpReply>): Promise<AdminServer> {
  const server = http.createServer((req, res) => {
    // A throwing route answers 500, never escapes the listener (that would end the process).
    new Promise<HttpReply>((resolve) => resolve(route(req.method ?? 'GET', req.url ?? '/'))).then(
      (reply) => {
        res.writeHead(reply.status, reply.headers);
        res.end(req.method === 'HEAD' ? undefined : reply.body);
      },
      () => {
        res.writeHead(500);
        res.end();
      },
    );
  });
  // Slowloris bounds (ms), as on the public port.
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  server.on('clientError', (_error, socket) => socket.destroy());
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      const address = server.address();
      resolve({
        port: typeof address === 'object' && address ? address.port : port,
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            server.closeAllConnections();
          }),
      });
    });
  });
}
