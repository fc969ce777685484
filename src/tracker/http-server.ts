import http from 'node:http';
import type { HttpReply } from './transport.js';

/** A route: the whole reply to one request (`authorization` is its Authorization header, if any). */
export type HttpRoute = (method: string, url: string, authorization: string | undefined) => HttpReply | Promise<HttpReply>;

/**
 * A `node:http` server answering every request with `route`, shared by the node transport's public
 * port and the operator's admin port. A throwing route answers 500 and never escapes the request
 * listener (that would end the process); Slowloris bounds (ms): headers within 10 s, the whole
 * request within 30 s, checked every second; a malformed request destroys its socket.
 */
export function createHttpServer(route: HttpRoute): http.Server {
  // Node checks the two deadlines only every connectionsCheckingInterval (default 30 s), which let a
  // client trickling its headers hold a socket for up to 40 s instead of 10 s.
  const server = http.createServer({ connectionsCheckingInterval: 1000 }, (req, res) => {
    new Promise<HttpReply>((resolve) => resolve(route(req.method ?? 'GET', req.url ?? '/', req.headers.authorization))).then(
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
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  server.on('clientError', (_error, socket) => socket.destroy());
  return server;
}
