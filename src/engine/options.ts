import { PeerfetchError } from '../shared/errors.js';

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
  /**
   * ICE servers for WebRTC: STUN URLs, or `{ urls, username, credential }` (TURN needs both).
   * Default: those the tracker hands out (the peerfetch tracker's own STUN service, and TURN with
   * short-lived credentials when its operator configured one); a tracker that hands out none
   * (any other WebTorrent tracker) means host candidates only. No third party is contacted that
   * the site did not name. `[]` turns STUN and TURN off.
   */
  iceServers?: Array<string | RTCIceServer>;
  /**
   * How peers reached only through a TURN relay are used. Every relayed byte crosses the TURN
   * server twice (in and out), paid by the operator. `'ahead'` (default): for pieces ahead of the
   * playhead only, fetched with time to spare, never for a piece the player waits for (the origin
   * serves those, so a relayed transfer is never raced by an origin fetch of the same bytes);
   * `'all'`: like any peer; `'never'`: TURN is not used and relayed connections are closed.
   */
  relay?: RelayPolicy;
  /** Logs the engine's decisions (ICE servers, connections, piece sources, fallbacks) with console.debug. Default false. */
  debug?: boolean;
  /** `false` turns peer-to-peer off: the SW still answers from the local store and the origin. Default `true`. */
  p2p?: boolean;
  /** Cap on stored piece bytes (LRU eviction above it). Default 512 MiB, or half the origin's quota if less. */
  storeCapBytes?: number;
  /** Cap on upload to all peers together, bytes per second; 0 uploads nothing (peers are told this page holds nothing). Default none. */
  uploadLimit?: number;
}

/** See {@link PeerfetchOptions.relay}. */
export type RelayPolicy = 'all' | 'ahead' | 'never';
const RELAY_POLICIES: readonly RelayPolicy[] = ['all', 'ahead', 'never'];

export interface ResolvedOptions {
  trackers: string[];
  manifest: string;
  sw: string;
  swarm: string;
  /** The site's ICE servers; undefined: each tracker's own. */
  iceServers: RTCIceServer[] | undefined;
  relay: RelayPolicy;
  debug: boolean;
  p2p: boolean;
  storeCapBytes: number | undefined;
  uploadLimit: number | undefined;
}

const list = (value: string | string[] | undefined): string[] =>
  (Array.isArray(value) ? value : (value ?? '').split(','))
    .map((item) => item.trim())
    .filter((item) => item.length > 0);

const invalid = (message: string): PeerfetchError => new PeerfetchError('option-invalid', message);

/** `name` is the option and its script-tag attribute, e.g. `storeCapBytes (data-store-cap-bytes)`. */
function positiveInteger(name: string, value: number | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!Number.isSafeInteger(value) || value <= 0) throw invalid(`${name} must be a positive whole number, got ${String(value)}`);
  return value;
}

function trackerUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw invalid(`tracker ${JSON.stringify(url)} is not a URL`);
  }
  if (parsed.protocol !== 'ws:' && parsed.protocol !== 'wss:') throw invalid(`tracker ${url} must be a ws: or wss: URL`);
  return parsed.href;
}

/**
 * One ICE server as RTCPeerConnection takes it. A TURN server without credentials would make
 * every RTCPeerConnection constructor throw (so P2P silently never works): refused here instead.
 */
function iceServer(server: unknown): RTCIceServer {
  const entry: unknown = typeof server === 'string' ? { urls: server } : server;
  if (typeof entry !== 'object' || entry === null) throw invalid(`ICE server ${JSON.stringify(server)} must be a URL or { urls, username, credential }`);
  const { urls, username, credential } = entry as Partial<RTCIceServer>;
  const urlList: unknown = typeof urls === 'string' ? [urls] : urls;
  if (!Array.isArray(urlList) || urlList.length === 0) throw invalid(`ICE server ${JSON.stringify(server)} has no urls`);
  for (const url of urlList) {
    const scheme = typeof url === 'string' ? /^(stuns?|turns?):/i.exec(url)?.[1]?.toLowerCase() : undefined;
    if (!scheme) throw invalid(`ICE server URL ${JSON.stringify(url)} must start with stun:, stuns:, turn: or turns:`);
    if (scheme.startsWith('turn') && (typeof username !== 'string' || typeof credential !== 'string')) {
      throw invalid(`TURN server ${String(url)} needs a username and a credential: give it as { urls, username, credential }`);
    }
  }
  return entry as RTCIceServer;
}

function relayPolicy(value: RelayPolicy | undefined): RelayPolicy {
  if (value === undefined) return 'ahead';
  if (!RELAY_POLICIES.includes(value)) throw invalid(`relay (data-relay) must be all, ahead or never, got ${JSON.stringify(value)}`);
  return value;
}

/** Fills defaults, resolves URLs against the page, and refuses invalid values with an `option-invalid` error. */
export function resolveOptions(options: PeerfetchOptions, location: Location): ResolvedOptions {
  return {
    trackers: list(options.tracker).map(trackerUrl),
    manifest: new URL(options.manifest ?? '/peerfetch-manifest.json', location.href).href,
    sw: new URL(options.sw ?? '/peerfetch-sw.js', location.href).href,
    swarm: options.swarm ?? location.origin + location.pathname,
    iceServers: options.iceServers?.map(iceServer),
    relay: relayPolicy(options.relay),
    debug: options.debug ?? false,
    p2p: options.p2p ?? true,
    storeCapBytes: positiveInteger('storeCapBytes (data-store-cap-bytes)', options.storeCapBytes),
    // 0 is a limit too: seed nothing.
    uploadLimit: options.uploadLimit === 0 ? 0 : positiveInteger('uploadLimit (data-upload-limit)', options.uploadLimit),
  };
}

/**
 * `data-ice-servers`: a comma-separated list of STUN URLs, or a JSON array of URLs and
 * `{ urls, username, credential }` objects (for TURN). Text that is not valid JSON stays one
 * entry, which resolveOptions refuses by name.
 */
function parseIceServers(text: string): Array<string | RTCIceServer> {
  if (!text.trim().startsWith('[')) return list(text);
  try {
    const parsed: unknown = JSON.parse(text);
    if (Array.isArray(parsed)) return parsed as Array<string | RTCIceServer>;
  } catch {
    // falls through
  }
  return [text];
}

/** A number attribute as written; an empty one is NaN (Number('') would make it 0). */
const attributeNumber = (text: string): number => (text.trim() === '' ? NaN : Number(text));

/**
 * Reads the script tag's `data-` attributes. Never throws: values are passed on as written
 * (a number that is not one becomes NaN) and resolveOptions refuses them with a clear error.
 */
export function optionsFromScript(script: HTMLOrSVGScriptElement | null): PeerfetchOptions {
  const data = script instanceof HTMLScriptElement ? script.dataset : {};
  const options: PeerfetchOptions = {};
  if (data.tracker) options.tracker = data.tracker;
  if (data.manifest) options.manifest = data.manifest;
  if (data.sw) options.sw = data.sw;
  if (data.swarm) options.swarm = data.swarm;
  if (data.iceServers) options.iceServers = parseIceServers(data.iceServers);
  if (data.p2p === 'off') options.p2p = false;
  if (data.relay !== undefined) options.relay = data.relay as RelayPolicy;
  // `data-debug` alone or `data-debug="on"` turns logging on; "off" (or absence) leaves it off.
  if (data.debug !== undefined && data.debug !== 'off') options.debug = true;
  if (data.storeCapBytes !== undefined) options.storeCapBytes = attributeNumber(data.storeCapBytes);
  if (data.uploadLimit !== undefined) options.uploadLimit = attributeNumber(data.uploadLimit);
  return options;
}
