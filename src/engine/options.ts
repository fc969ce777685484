/** Options of `start()`; the script tag's `data-` attributes map onto these one to one. */
export interface PeerfetchOptions {
  /** WebSocket tracker URL(s) speaking the WebTorrent tracker protocol. Default: none (no P2P, store and origin only). */
  tracker?: string | string[];
  /** URL of the manifest that `peerfetch manifest` wrote. Default `/peerfetch-manifest.json`. */
  manifest?: string;
  /** URL of the service worker file, served at the site root. Default `/peerfetch-sw.js`. */
  sw?: string;
  /** Swarm key: pages with the same key share pieces. Default: the page's origin + path. */
  swarm?: string;
  /** STUN/TURN URLs for WebRTC. Default none: nothing is contacted that the site did not name. */
  iceServers?: string[];
  /** `false` turns peer-to-peer off: the SW still answers from the local store and the origin. Default `true`. */
  p2p?: boolean;
  /** Cap on stored piece bytes (LRU eviction above it). Default 512 MiB, or half the origin's quota if less. */
  storeCapBytes?: number;
  /** Cap on upload to all peers together, bytes per second. Default none. */
  uploadLimit?: number;
}

export interface ResolvedOptions {
  trackers: string[];
  manifest: string;
  sw: string;
  swarm: string;
  iceServers: string[];
  p2p: boolean;
  storeCapBytes: number | undefined;
}

const list = (value: string | string[] | undefined): string[] =>
  (Array.isArray(value) ? value : (value ?? '').split(','))
    .map((item) => item.trim())
    .filter((item) => item.length > 0);

/** Fills defaults and resolves URLs against the page. */
export function resolveOptions(options: PeerfetchOptions, location: Location): ResolvedOptions {
  return {
    trackers: list(options.tracker),
    manifest: new URL(options.manifest ?? '/peerfetch-manifest.json', location.href).href,
    sw: new URL(options.sw ?? '/peerfetch-sw.js', location.href).href,
    swarm: options.swarm ?? location.origin + location.pathname,
    iceServers: list(options.iceServers),
    p2p: options.p2p ?? true,
    storeCapBytes: options.storeCapBytes,
  };
}

/** Reads the script tag's `data-` attributes. */
export function optionsFromScript(script: HTMLOrSVGScriptElement | null): PeerfetchOptions {
  const data = script instanceof HTMLScriptElement ? script.dataset : {};
  const options: PeerfetchOptions = {};
  if (data.tracker) options.tracker = data.tracker;
  if (data.manifest) options.manifest = data.manifest;
  if (data.sw) options.sw = data.sw;
  if (data.swarm) options.swarm = data.swarm;
  if (data.iceServers) options.iceServers = list(data.iceServers);
  if (data.p2p === 'off') options.p2p = false;
  if (data.uploadLimit && Number(data.uploadLimit) > 0) options.uploadLimit = Number(data.uploadLimit);
  return options;
}
