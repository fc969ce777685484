/// <reference lib="webworker" />
// peerfetch inside a service worker, its own or a site's: answers requests for manifest assets
// piece by piece from the local store, from peers (through a page engine) or from the origin.
// Anything it is unsure about is left alone (the network, or the site's own handlers), and no
// failure on the P2P path ever fails a request.
import { findAsset, findLiveStream, type Manifest, type ManifestAsset } from '../shared/manifest.js';
import { IdbPieceStore } from '../store/idb-piece-store.js';
import type { PieceStore } from '../store/piece-store.js';
import { assetResponse } from './asset-response.js';
import { CatalogSource } from './catalog-source.js';
import { DirectMedia } from './direct-media.js';
import { EngineBridge } from './engine-bridge.js';
import { ManifestSource, type ManifestChange } from './manifest-source.js';
import { couldBeMedia } from './media-request.js';
import { killSwitchOn } from './kill-switch.js';
import { fetchPieceFromOrigin, originAllowsFetch } from './origin-fetch.js';
import { PieceSources } from './piece-loader.js';
import { SignedUrls } from './signed-urls.js';

/** Settings of peerfetch in a service worker; the page's `data-manifest` and `data-store-cap-bytes` must say the same. */
export interface PeerfetchWorkerOptions {
  /** URL of the manifest. Default: the worker URL's `manifest` parameter, else `/peerfetch-manifest.json`. */
  manifest?: string;
  /** Cap on stored piece bytes (LRU eviction above it). Default: the worker URL's `store-cap-bytes` parameter, else the store's default. */
  storeCapBytes?: number;
}

/** peerfetch running in a service worker; the entry points (index.ts, module.ts) hand it the worker's events. */
export interface WorkerCore {
  /**
   * peerfetch's answer to a fetch event, or undefined when the request is not peerfetch's (a
   * manifest asset, or a media request waiting for the manifest); decided at once, without waiting.
   */
  route(event: FetchEvent): Promise<Response> | undefined;
  /** Asks every controlled page to announce its engine (after a claim or a restart). */
  greetPages(): Promise<void>;
}

/**
 * Longest wait (ms) of a request for the manifest when the SW has none yet: a manifest that
 * does not come must not hold the page's media back; the request then goes to the network.
 */
const MANIFEST_WAIT_MS = 3000;
/**
 * Longest wait (ms) of a request for an unlisted file of a live stream for a fresh manifest (one
 * round trip to the origin): the segment is usually just published, and then listed in it.
 */
const LIVE_MANIFEST_WAIT_MS = 1000;
/**
 * URLs the SW remembers passing through (count): media URLs a catalog does not list, or that came
 * before a manifest. Far more than one session requests; past it the oldest is forgotten.
 */
const MAX_PASSED_THROUGH = 4096;
/** Pages whose catalog assets the SW remembers describing (count): more tabs than anyone keeps open. */
const MAX_DESCRIBED_PAGES = 64;
/** Playlists are never assets: a request for one in a live stream's folder is not waited on. */
const PLAYLIST_PATH = /\.(m3u8|mpd)$/i;
/** Request destinations that are never media assets: decided without waiting for the manifest. */
const NEVER_ASSETS = new Set(['document', 'iframe', 'frame', 'script', 'style', 'font', 'worker', 'sharedworker', 'serviceworker', 'manifest', 'report', 'xslt']);

/**
 * Starts peerfetch in the service worker `scope`: loads the manifest and listens for the pages'
 * messages (engines offering peers, prefetches, takeovers). Call it while the worker script is
 * first evaluated (browsers ignore message listeners added later), then hand it fetch events.
 */
export function startPeerfetchWorker(scope: ServiceWorkerGlobalScope, options: PeerfetchWorkerOptions = {}): WorkerCore {
  const params = new URL(scope.location.href).searchParams;
  const manifests = new ManifestSource(new URL(options.manifest ?? params.get('manifest') ?? '/peerfetch-manifest.json', scope.location.href).href, { onChange: onManifestChange });
  const bridge = new EngineBridge(scope);
  let storeOpening: Promise<PieceStore | undefined> | undefined;
  let sources: Promise<PieceSources> | undefined;
  /** Per asset id, whether the SW may fetch it itself (CORS); decided once so every request is answered alike. */
  const fetchable = new Map<string, Promise<boolean>>();
  /** The URLs (with a signed URL's token) pages requested assets at, for the worker's own origin requests. */
  const signedUrls = new SignedUrls();
  /** Per page, media URLs whose elements began loading on the network (see DirectMedia). */
  const directMedia = new DirectMedia();
  /** URLs answered by the network because no manifest was there in time, or the catalog did not list them. */
  const passedThrough = new Set<string>();
  /** The catalog of the current manifest, if it has one (see shared/catalog.ts); a new one per catalog folder. */
  let catalog: CatalogSource | undefined;
  /** Per page, the catalog assets described to it (see describeTo). */
  const described = new Map<string, Set<string>>();
  const capParam = Number(params.get('store-cap-bytes'));
  const storeCapBytes = options.storeCapBytes ?? (Number.isSafeInteger(capParam) && capParam > 0 ? capParam : undefined);

  function openStore(): Promise<PieceStore | undefined> {
    storeOpening ??= IdbPieceStore.open({ capBytes: storeCapBytes }).catch(() => undefined);
    return storeOpening;
  }

  /** The catalog source for `manifest`: the current one while the manifest names the same catalog folder. */
  function catalogOf(manifest: Manifest | undefined): CatalogSource | undefined {
    const named = manifest?.catalog;
    if (!manifest || !named) return (catalog = undefined);
    if (catalog?.catalog.shardsHref !== named.shardsHref || catalog.catalog.piecesHref !== named.piecesHref) {
      catalog = new CatalogSource({ ...manifest, catalog: named }, manifests.url);
    }
    return catalog;
  }

  /**
   * Tells the page `clientId` about a catalog asset before the SW asks it for pieces of it or
   * answers its `resolve` (a page knows catalog assets only from its worker); once per page.
   */
  async function describeTo(clientId: string, asset: ManifestAsset): Promise<void> {
    const json = catalog?.describe(asset);
    if (!json || !clientId) return;
    let told = described.get(clientId);
    if (told?.has(asset.id)) return;
    if (!told) {
      described.set(clientId, (told = new Set()));
      // Pages come and go: forget the oldest page when many were told.
      if (described.size > MAX_DESCRIBED_PAGES) described.delete(described.keys().next().value!);
    }
    told.add(asset.id);
    await bridge.notify(clientId, { type: 'asset', url: manifests.url, asset: json });
  }

  /** A new manifest (a live stream moved): forget what was kept about assets that left it, and tell the pages. */
  function onManifestChange({ manifest, json, url }: ManifestChange): void {
    const kept = new Set([...manifest.assets.map((asset) => asset.id), ...(catalogOf(manifest)?.ids() ?? [])]);
    for (const id of fetchable.keys()) if (!kept.has(id)) fetchable.delete(id);
    void sources?.then((loaded) => loaded.forget(kept));
    void bridge.tellPages({ type: 'manifest', url, manifest: json });
  }

  function pieceSources(): Promise<PieceSources> {
    sources ??= openStore().then(
      (store) =>
        new PieceSources({
          store,
          fromPeers: (clientId, asset, piece, options) =>
            bridge.requestPiece(clientId, asset.id, piece, { ...options, beforeAsking: (engineId) => describeTo(engineId, asset) }),
          fromOrigin: (asset, piece, signal, from) => fetchPieceFromOrigin(asset, piece, signal, { from, url: signedUrls.originUrl(asset) }),
          notify: (clientId, message) => void bridge.notify(clientId, message),
          onStaleManifest: () => manifests.invalidate(),
        }),
    );
    return sources;
  }

  /** Carries out a page's prefetch of a piece it was assigned to fetch from the origin for the swarm. */
  async function prefetchPiece(assetId: string, piece: number, clientId: string): Promise<void> {
    const find = (manifest: Manifest | undefined) => manifest?.assets.find((candidate) => candidate.id === assetId) ?? catalogOf(manifest)?.byId(assetId);
    // A worker just installed on a first visit may be asked before its manifest is in (a takeover
    // of a player already in the page asks at once): it waits for it rather than drop the prefetch.
    let asset = find(manifests.current() ?? (await manifests.load()));
    // The page learnt of a new live segment before this SW did (peers announced it): catch up.
    if (!asset && manifests.current()?.live.some((stream) => !stream.ended)) asset = find(await manifests.loadSince(Date.now()));
    if (!asset || piece >= asset.pieces.length) return;
    await (await pieceSources()).prefetch(asset, piece, clientId);
  }

  async function respond(event: FetchEvent, asset: ManifestAsset): Promise<Response> {
    const { request } = event;
    const clientId = event.clientId || event.resultingClientId;
    signedUrls.remember(asset, request.url, manifests.current()?.ignoreQuery);
    try {
      let allowed = fetchable.get(asset.id);
      if (!allowed) fetchable.set(asset.id, (allowed = originAllowsFetch(asset, scope.location.origin, { url: signedUrls.originUrl(asset) })));
      if (!(await allowed)) return fetch(request);
      // A catalog asset is described to the page before any notice about its pieces (its stats, its seeding).
      await describeTo(clientId, asset);
      const loadPiece = (await pieceSources()).loaderFor(asset, clientId);
      return assetResponse(
        asset,
        request.headers.get('range'),
        loadPiece,
        (bytes) => void bridge.notify(clientId, { type: 'bytes-served', bytes }),
        // A one-piece answer needs no stopping; a whole one stops when a new version is installed.
        newVersionWaiting() ? { short: true } : { stop: yieldToNewVersion.signal },
      );
    } catch {
      return fetch(request);
    }
  }

  /**
   * A new version of this worker installed and waiting to take over (the site deployed one).
   * Chromium activates a waiting worker, even one told to skip waiting, only once the active one
   * has nothing in progress, and a response body still open counts, read or not (measured,
   * Chromium 156: a v2 told to skip waiting stayed `installed` until the player's 1.8 MB response
   * from v1 ended, 6 s later; for a long video that the player reads slowly it would wait up to
   * Chromium's 5 min lame-duck limit). So
   * peerfetch yields: the bodies open when a new version is installed fail at once (the player
   * asks again from where it stopped), and while it waits, requests are answered one piece at a
   * time, so that it takes over between two of them.
   */
  let yieldToNewVersion = new AbortController();
  const registration = scope.registration as ServiceWorkerRegistration | undefined;
  registration?.addEventListener('updatefound', () => {
    const installing = registration.installing;
    installing?.addEventListener('statechange', () => {
      if (installing.state !== 'installed') return;
      yieldToNewVersion.abort();
      yieldToNewVersion = new AbortController();
    });
  });
  const newVersionWaiting = () => Boolean(registration?.waiting);

  function route(event: FetchEvent): Promise<Response> | undefined {
    const { request } = event;
    if (request.method !== 'GET' || request.mode === 'navigate' || NEVER_ASSETS.has(request.destination)) return undefined;
    if (request.url === manifests.url) return undefined;
    // Elements that began loading before this SW controlled the page stay on the network.
    if (directMedia.has(event.clientId, request.url)) return undefined;
    const manifest = manifests.current();
    if (killSwitchOn(scope, manifest)) return undefined;
    if (manifest && !passedThrough.has(request.url)) {
      const source = catalogOf(manifest);
      const asset = findAsset(manifest, request.url) ?? source?.peek(request.url);
      if (asset) {
        manifests.revalidate();
        return respond(event, asset);
      }
      const stream = findLiveStream(manifest, request.url);
      const catalogued = source && !stream ? fromCatalog(event, source) : undefined;
      if (catalogued) return catalogued;
      if (!stream || stream.ended) return void manifests.refreshIfWatched();
      const requestedAt = Date.now();
      // The player reloads the playlist: the stream may have moved, and the manifest with it. The
      // playlist itself is left alone.
      if (request.url.split(/[?#]/, 1)[0] === stream.playlistHref) return void manifests.loadSince(requestedAt);
      if (PLAYLIST_PATH.test(new URL(request.url).pathname)) return undefined;
      // A file of a live stream the manifest does not list yet: its segment was published after our
      // last load. The manifest is written before the playlist naming it, so one fetched now lists it.
      return Promise.race([manifests.loadSince(requestedAt), new Promise<undefined>((resolve) => setTimeout(resolve, LIVE_MANIFEST_WAIT_MS))]).then((loaded) => {
        const listed = loaded && findAsset(loaded, request.url);
        return listed ? respond(event, listed) : fetch(request);
      });
    }
    // No manifest yet (the SW just started): a request that could be media waits for it, briefly,
    // then is answered or passed through; anything else passes through at once. A URL passed
    // through once stays passed through, so one media resource is never assembled from responses
    // of both kinds.
    if (passedThrough.has(request.url) || !couldBeMedia(request)) return undefined;
    return Promise.race([manifests.load(), new Promise<undefined>((resolve) => setTimeout(resolve, MANIFEST_WAIT_MS))]).then((loaded) => {
      const asset = loaded && findAsset(loaded, request.url);
      if (asset) return respond(event, asset);
      const source = catalogOf(loaded);
      if (source) return fromCatalog(event, source) ?? fetch(request);
      if (!loaded) passThrough(request.url);
      return fetch(request);
    });
  }

  /**
   * A request the manifest does not list while it names a catalog: a request that could be media
   * waits (at most MANIFEST_WAIT_MS) for the catalog's answer, and is answered by peerfetch or
   * passed through for good. Anything else (images, API calls) is never looked up: each lookup
   * may cost a shard fetch, and a page makes many such requests.
   */
  function fromCatalog(event: FetchEvent, source: CatalogSource): Promise<Response> | undefined {
    const { request } = event;
    if (!couldBeMedia(request)) return undefined;
    return Promise.race([source.resolve(request.url), new Promise<undefined>((resolve) => setTimeout(resolve, MANIFEST_WAIT_MS))]).then((asset) => {
      if (asset) {
        manifests.revalidate();
        return respond(event, asset);
      }
      passThrough(request.url);
      return fetch(request);
    });
  }

  /** Answers `url` from the network from now on (see passedThrough), forgetting the oldest past MAX_PASSED_THROUGH. */
  function passThrough(url: string): void {
    passedThrough.add(url);
    if (passedThrough.size > MAX_PASSED_THROUGH) passedThrough.delete(passedThrough.values().next().value!);
  }

  scope.addEventListener('message', (event) => {
    const received = bridge.onMessage(event);
    if (!received) return;
    const { message, clientId } = received;
    if (message.type === 'media-direct') return directMedia.add(clientId, message.urls);
    if (message.type === 'media-takeover') {
      directMedia.delete(clientId, message.url);
      return event.ports[0]?.postMessage({ type: 'media-takeover-ready' });
    }
    if (message.type === 'resolve') {
      const source = catalogOf(manifests.current());
      const resolving = source?.resolve(message.url).then((asset) => asset && describeTo(clientId, asset));
      // Like a prefetch, it must not hold a waiting new version back (see yieldToNewVersion).
      if (resolving && !newVersionWaiting()) event.waitUntil(resolving);
      return;
    }
    if (message.type === 'prefetch-stop') return void sources?.then((loaded) => loaded.stopPrefetch(message.asset, message.piece));
    if (message.type === 'forward') {
      const port = event.ports[0];
      if (!port) return;
      const forwarding = pieceSources().then((loaded) => loaded.forward(message.asset, message.piece, port));
      if (!newVersionWaiting()) event.waitUntil(forwarding);
      return;
    }
    const prefetching = prefetchPiece(message.asset, message.piece, clientId);
    // A prefetch holding its event open would hold a waiting new version back too (see yieldToNewVersion).
    if (!newVersionWaiting()) event.waitUntil(prefetching);
  });

  // A restarted SW has lost its list of ready engines: ask the pages again.
  void bridge.greetPages();
  void manifests.load().then((manifest) => killSwitchOn(scope, manifest));

  return { route, greetPages: () => bridge.greetPages() };
}
