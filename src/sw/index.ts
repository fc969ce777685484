/// <reference lib="webworker" />
// peerfetch service worker: answers requests for manifest assets piece by piece from the local
// store, from peers (through a page engine) or from the origin. Anything it is unsure about
// passes through untouched, and no failure on the P2P path ever fails a request.
import { findAsset, type ManifestAsset } from '../shared/manifest.js';
import { IdbPieceStore } from '../store/idb-piece-store.js';
import type { PieceStore } from '../store/piece-store.js';
import { assetResponse } from './asset-response.js';
import { DirectMedia } from './direct-media.js';
import { EngineBridge } from './engine-bridge.js';
import { ManifestSource } from './manifest-source.js';
import { couldBeMedia } from './media-request.js';
import { killSwitchOn } from './kill-switch.js';
import { fetchPieceFromOrigin, originAllowsFetch } from './origin-fetch.js';
import { PieceSources } from './piece-loader.js';

declare const self: ServiceWorkerGlobalScope;

const params = new URL(self.location.href).searchParams;
const manifests = new ManifestSource(new URL(params.get('manifest') ?? '/peerfetch-manifest.json', self.location.href).href);
const bridge = new EngineBridge(self);
let storeOpening: Promise<PieceStore | undefined> | undefined;
let sources: Promise<PieceSources> | undefined;
/** Per asset id, whether the SW may fetch it itself (CORS); decided once so every request is answered alike. */
const fetchable = new Map<string, Promise<boolean>>();

/**
 * Longest wait (ms) of a request for the manifest when the SW has none yet: a manifest that
 * does not come must not hold the page's media back; the request then goes to the network.
 */
const MANIFEST_WAIT_MS = 3000;
/** Per page, media URLs whose elements began loading on the network (see DirectMedia). */
const directMedia = new DirectMedia();
/** URLs answered by the network because no manifest was there in time. */
const passedThrough = new Set<string>();

/** Request destinations that are never media assets: decided without waiting for the manifest. */
const NEVER_ASSETS = new Set(['document', 'iframe', 'frame', 'script', 'style', 'font', 'worker', 'sharedworker', 'serviceworker', 'manifest', 'report', 'xslt']);

/** The site's storeCapBytes, which the page passes in the SW's URL; absent: the store's default. */
const capParam = Number(params.get('store-cap-bytes'));
const storeCapBytes = Number.isSafeInteger(capParam) && capParam > 0 ? capParam : undefined;

function openStore(): Promise<PieceStore | undefined> {
  storeOpening ??= IdbPieceStore.open({ capBytes: storeCapBytes }).catch(() => undefined);
  return storeOpening;
}

function pieceSources(): Promise<PieceSources> {
  sources ??= openStore().then(
    (store) =>
      new PieceSources({
        store,
        fromPeers: (clientId, asset, piece, options) => bridge.requestPiece(clientId, asset.id, piece, options),
        fromOrigin: fetchPieceFromOrigin,
        notify: (clientId, message) => void bridge.notify(clientId, message),
        onStaleManifest: () => manifests.invalidate(),
      }),
  );
  return sources;
}

// Activation is on a first visit's startup path: it waits for nothing but skipWaiting. The
// manifest loads in the meantime (below), and requests that come before it wait for it.
self.addEventListener('install', (event) => {
  event.waitUntil(self.skipWaiting());
});

self.addEventListener('activate', (event) => {
  event.waitUntil(self.clients.claim().then(() => bridge.greetPages()));
});

self.addEventListener('message', (event) => {
  const received = bridge.onMessage(event);
  if (!received) return;
  const { message, clientId } = received;
  if (message.type === 'media-direct') return directMedia.add(clientId, message.urls);
  if (message.type === 'media-takeover') {
    directMedia.delete(clientId, message.url);
    return event.ports[0]?.postMessage({ type: 'media-takeover-ready' });
  }
  const asset = manifests.current()?.assets.find((candidate) => candidate.id === message.asset);
  if (!asset || message.piece >= asset.pieces.length) return;
  event.waitUntil(pieceSources().then((loaded) => loaded.prefetch(asset, message.piece, clientId)));
});

// A restarted SW has lost its list of ready engines: ask the pages again.
void bridge.greetPages();
void manifests.load().then((manifest) => killSwitchOn(self, manifest));

self.addEventListener('fetch', (event) => {
  const { request } = event;
  if (request.method !== 'GET' || request.mode === 'navigate' || NEVER_ASSETS.has(request.destination)) return;
  if (request.url === manifests.url) return;
  // Elements that began loading before this SW controlled the page stay on the network.
  if (directMedia.has(event.clientId, request.url)) return;
  const manifest = manifests.current();
  if (killSwitchOn(self, manifest)) return;
  if (manifest && !passedThrough.has(request.url)) {
    const asset = findAsset(manifest, request.url);
    if (asset) event.respondWith(respond(event, asset));
    return;
  }
  // No manifest yet (the SW just started): a request that could be media waits for it, briefly,
  // then is answered or passed through; anything else passes through at once. A URL passed
  // through once stays passed through, so one media resource is never assembled from responses
  // of both kinds.
  if (passedThrough.has(request.url) || !couldBeMedia(request)) return;
  event.respondWith(
    Promise.race([manifests.load(), new Promise<undefined>((resolve) => setTimeout(resolve, MANIFEST_WAIT_MS))]).then((loaded) => {
      const asset = loaded && findAsset(loaded, request.url);
      if (asset) return respond(event, asset);
      if (!loaded) passedThrough.add(request.url);
      return fetch(request);
    }),
  );
});

async function respond(event: FetchEvent, asset: ManifestAsset): Promise<Response> {
  const { request } = event;
  const clientId = event.clientId || event.resultingClientId;
  try {
    let allowed = fetchable.get(asset.id);
    if (!allowed) fetchable.set(asset.id, (allowed = originAllowsFetch(asset, self.location.origin)));
    if (!(await allowed)) return fetch(request);
    const loadPiece = (await pieceSources()).loaderFor(asset, clientId);
    return assetResponse(asset, request.headers.get('range'), loadPiece, (bytes) => {
      void bridge.notify(clientId, { type: 'bytes-served', bytes });
    });
  } catch {
    return fetch(request);
  }
}
