import { hexToBinary } from '../shared/hex.js';
import type { TrackerServer } from './tracker-server.js';
import type { HttpReply } from './transport.js';


function json(status: number, body: unknown, cors: boolean): HttpReply {
  return {
    status,
    headers: {
      'Content-Type': 'application/json; charset=utf-8',
      'Cache-Control': 'no-store',
      ...(cors ? { 'Access-Control-Allow-Origin': '*' } : {}),
    },
    body: JSON.stringify(body),
  };
}

/**
 * Who is asking: 'admin' (the admin port, or the admin token) sees everything; 'open' (no admin
 * port or token configured) also gets /metrics; 'token-required' and 'admin-port' get the public
 * routes only.
 */
export type HttpAccess = 'admin' | 'open' | 'token-required' | 'admin-port';

/**
 * Plain HTTP on the tracker's port: `/health` (liveness for load balancers), `/stats.json` (read by
 * the demo page from another origin, hence `Access-Control-Allow-Origin: *`; `?info_hash=<hex>`
 * narrows it to one swarm, summed over all instances when Redis is used) and `/metrics`
 * (Prometheus text format). Anything else is 404; the tracker itself lives on WebSocket upgrades.
 * Which pages are being watched is the operator's business: without admin access, /stats.json
 * lists the swarms' figures without their ids (a caller who names an id gets that swarm).
 */
export function routeHttpRequest(server: TrackerServer, method: string, rawUrl: string, access: HttpAccess): HttpReply | Promise<HttpReply> {
  let url: URL;
  try {
    url = new URL(rawUrl, 'http://tracker.invalid');
  } catch {
    return { status: 400, headers: { 'Content-Type': 'text/plain; charset=utf-8' }, body: 'bad request target\n' };
  }
  if (method !== 'GET' && method !== 'HEAD') {
    if (method === 'OPTIONS' && url.pathname === '/stats.json') {
      // 200 with an empty body rather than 204: a 204 may carry no Content-Length at all, which
      // uWebSockets.js 20.30 cannot send.
      return { status: 200, headers: { 'Access-Control-Allow-Origin': '*', 'Access-Control-Allow-Methods': 'GET' }, body: '' };
    }
    return { status: 405, headers: { Allow: 'GET, HEAD' }, body: '' };
  }
  switch (url.pathname) {
    case '/health':
      if (server.isClosing) return json(503, { status: 'closing' }, false);
      // stunPort: the UDP port answering STUN (null when off); turn: whether pages get TURN credentials.
      return json(200, { status: 'ok', transport: server.transport.name, transportPackage: server.transportPackage, ...server.gauges(), stunPort: server.stun?.port ?? null, turn: server.options.turnUrls.length > 0 }, false);
    case '/stats.json': {
      const hash = url.searchParams.get('info_hash');
      const withIds = access === 'admin';
      if (hash === null) return json(200, server.stats(withIds), true);
      const infoHash = hash.length === 40 ? hexToBinary(hash) : undefined;
      if (infoHash === undefined) return json(400, { error: 'info_hash must be 40 hex characters' }, true);
      return server.swarmStats(infoHash).then(
        (swarm) => json(200, { ...server.stats(withIds), swarms: [swarm] }, true),
        () => json(500, { error: 'stats unavailable' }, true),
      );
    }
    case '/metrics': {
      if (access === 'token-required') {
        return { status: 401, headers: { 'WWW-Authenticate': 'Bearer realm="peerfetch tracker"', 'Content-Type': 'text/plain; charset=utf-8' }, body: 'the admin token is required: Authorization: Bearer TOKEN\n' };
      }
      if (access === 'admin-port') return { status: 404, headers: { 'Content-Type': 'text/plain; charset=utf-8' }, body: 'not found: /metrics is served on the admin address\n' };
      const exporter = server.metricsExporter;
      if (!exporter) return { status: 501, headers: { 'Content-Type': 'text/plain; charset=utf-8' }, body: `${server.metricsUnavailable}\n` };
      return exporter.render().catch(() => ({ status: 500, headers: { 'Content-Type': 'text/plain; charset=utf-8' }, body: 'metrics unavailable\n' }));
    }
    default:
      return { status: 404, headers: { 'Content-Type': 'text/plain; charset=utf-8' }, body: 'not found: this is a peerfetch tracker (WebSocket); see /health, /stats.json, /metrics\n' };
  }
}
