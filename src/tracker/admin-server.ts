import { createHttpServer } from './http-server.js';
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
  // Its traffic is a scraper's: the admin port takes no Authorization header into account.
  const server = createHttpServer((method, url) => route(method, url));
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
