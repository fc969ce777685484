import type http from 'node:http';
import { renderPrometheus } from './metrics.js';
import { fromHex } from './tracker-messages.js';
import type { TrackerServer } from './tracker-server.js';

const HEX_40 = /^[0-9a-f]{40}$/i;

function json(res: http.ServerResponse, status: number, body: unknown, cors: boolean): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': 'application/json; charset=utf-8',
    'Cache-Control': 'no-store',
    ...(cors ? { 'Access-Control-Allow-Origin': '*' } : {}),
  });
  res.end(text);
}

/**
 * Plain HTTP on the tracker's port: `/health` (liveness for load balancers), `/stats.json` (read by
 * the demo page from another origin, hence `Access-Control-Allow-Origin: *`; `?info_hash=<hex>`
 * narrows it to one swarm, summed over all instances when Redis is used) and `/metrics`
 * (Prometheus text format). Anything else is 404; the tracker itself lives on WebSocket upgrades.
 */
export function handleHttpRequest(server: TrackerServer, req: http.IncomingMessage, res: http.ServerResponse): void {
  const url = new URL(req.url ?? '/', 'http://tracker.invalid');
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    if (req.method === 'OPTIONS' && url.pathname === '/stats.json') {
      res.writeHead(204, { 'Access-Control-Allow-Origin': '*', 'Access-Control-Allow-Methods': 'GET' });
      res.end();
      return;
    }
    res.writeHead(405, { Allow: 'GET, HEAD' });
    res.end();
    return;
  }
  switch (url.pathname) {
    case '/health':
      if (server.isClosing) json(res, 503, { status: 'closing' }, false);
      else json(res, 200, { status: 'ok', ...server.gauges() }, false);
      return;
    case '/stats.json': {
      const hash = url.searchParams.get('info_hash');
      if (hash === null) {
        json(res, 200, server.stats(), true);
        return;
      }
      if (!HEX_40.test(hash)) {
        json(res, 400, { error: 'info_hash must be 40 hex characters' }, true);
        return;
      }
      server.swarmStats(fromHex(hash.toLowerCase())).then(
        (swarm) => json(res, 200, { ...server.stats(), swarms: [swarm] }, true),
        () => json(res, 500, { error: 'stats unavailable' }, true),
      );
      return;
    }
    case '/metrics': {
      const body = renderPrometheus(server.metrics, {
        ...server.gauges(),
        rssBytes: process.memoryUsage.rss(),
        uptimeSec: server.uptimeSec(),
      });
      res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8', 'Cache-Control': 'no-store' });
      res.end(body);
      return;
    }
    default:
      res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' });
      res.end('not found: this is a peerfetch tracker (WebSocket); see /health, /stats.json, /metrics\n');
  }
}
