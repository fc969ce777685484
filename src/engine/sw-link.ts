import { Workbox } from 'workbox-window';
import {
  BRIDGE_VERSION,
  MAX_DIRECT_MEDIA_URLS,
  MAX_MESSAGE_URL_LENGTH,
  asForwardPart,
  asWorkerToPage,
  type PageToWorker,
  type PieceAnswer,
  type WorkerToPage,
} from '../shared/bridge-messages.js';
import { PeerfetchError } from '../shared/errors.js';
import { isOwnWorkerFile } from '../shared/worker-file.js';
import { mediaLoadingFromNetwork } from './media-takeover.js';
import { FORWARD_SILENCE_MS, ForwardedPiece } from './forwarded-piece.js';

/** Longest wait (ms) for peerfetch's newly installed own SW to take control of this page (it claims clients on activate). */
const CONTROL_TIMEOUT_MS = 10_000;

/**
 * Longest wait (ms) for the SW to confirm a takeover (a round trip is ~0.15 ms): without the
 * confirmation the element stays on the network rather than risk a mixed resource.
 */
const TAKEOVER_ANSWER_MS = 2000;

/**
 * Whether a service worker has controlled this page since its navigation, so that every request of
 * its elements went through a worker. A navigation that a worker handled has a non-zero
 * `workerStart` (Navigation Timing 2); one that no worker handled, in a page claimed later, has 0
 * (both checked in Chromium by test/browser/site-worker.test.ts).
 */
function controlledSinceNavigation(): boolean {
  if (!navigator.serviceWorker.controller) return false;
  const [navigation] = performance.getEntriesByType('navigation') as PerformanceNavigationTiming[];
  return navigation === undefined || navigation.workerStart > 0;
}

/** Turns a SW piece request into an answer; owned by the orchestrator. */
export type PieceRequestHandler = (
  request: Extract<WorkerToPage, { type: 'piece-request' }>,
  signal: AbortSignal,
) => Promise<PieceAnswer>;

/**
 * The page's side of the SW <-> page bridge: registers peerfetch's own service worker
 * (workbox-window) or waits for the site's, until it controls the page; tells it an engine is
 * ready, and answers its piece requests.
 */
export class SwLink {
  readonly #onRequest: PieceRequestHandler;
  readonly #onNotice: (message: WorkerToPage) => void;
  readonly #listener = (event: MessageEvent) => this.#onMessage(event);
  /** Messages from the SW that failed validation and were dropped (a worker of another deploy). */
  droppedMessages = 0;
  #active = false;
  #listening = false;

  constructor(onRequest: PieceRequestHandler, onNotice: (message: WorkerToPage) => void) {
    this.#onRequest = onRequest;
    this.#onNotice = onNotice;
  }

  /**
   * Resolves once `swUrl` controls this page. peerfetch's own worker (`…/peerfetch-sw.js`) is
   * registered here; it reads its settings from its URL (it has no other way to get them before a
   * page talks to it), and changing one installs it again, with the new value. Any other URL is the
   * site's own worker hosting peerfetch: the site registers and updates it, so nothing is
   * registered here and its registration is never replaced (see {@link #siteWorkerControls}).
   */
  async register(swUrl: string, settings: { manifest: string; storeCapBytes: number | undefined }): Promise<void> {
    if (!('serviceWorker' in navigator)) {
      throw new PeerfetchError('bridge-invalid', 'service workers are not available on this page');
    }
    const own = isOwnWorkerFile(new URL(swUrl).pathname);
    // peerfetch's own worker cannot control the page before this script registers it; a site's
    // worker may have claimed it already, after the page's elements began loading from the network.
    const controlledAtStart = own ? Boolean(navigator.serviceWorker.controller) : controlledSinceNavigation();
    if (own) await this.#ownWorkerControls(swUrl, settings);
    else await this.#siteWorkerControls();
    if (!controlledAtStart) {
      // Elements that began loading before the SW controlled the page stay on the network until
      // they are taken over (see media-takeover.ts).
      this.directMedia = mediaLoadingFromNetwork();
      // Within the bridge's bounds, which the SW enforces by dropping the whole message.
      const urls = this.directMedia.map((media) => media.currentSrc).filter((url) => url.length <= MAX_MESSAGE_URL_LENGTH);
      this.#post({ type: 'media-direct', urls: urls.slice(0, MAX_DIRECT_MEDIA_URLS) });
    }
  }

  async #ownWorkerControls(swUrl: string, settings: { manifest: string; storeCapBytes: number | undefined }): Promise<void> {
    const url = new URL(swUrl);
    url.searchParams.set('manifest', settings.manifest);
    if (settings.storeCapBytes !== undefined) url.searchParams.set('store-cap-bytes', String(settings.storeCapBytes));
    const workbox = new Workbox(url.href);
    // At once, not after the page's load event (workbox-window's default): on a first visit every
    // millisecond before the SW controls the page is media loaded without it.
    await workbox.register({ immediate: true });
    if (navigator.serviceWorker.controller) return;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new PeerfetchError('bridge-invalid', 'the service worker did not take control of the page')),
        CONTROL_TIMEOUT_MS,
      );
      navigator.serviceWorker.addEventListener(
        'controllerchange',
        () => {
          clearTimeout(timer);
          resolve();
        },
        { once: true },
      );
    });
  }

  /**
   * The site's worker: waits, without a time limit, until it controls this page. When that happens
   * is the site's decision: at once on a return visit; on a first visit once its worker is active,
   * if it claims its pages (Workbox's `clientsClaim()`), otherwise not before the next page load,
   * which is then the first one peerfetch serves. A worker that updates (a new version takes
   * control) needs nothing here: the engine announces itself to each new controller.
   */
  async #siteWorkerControls(): Promise<void> {
    if (navigator.serviceWorker.controller) return;
    await new Promise<void>((resolve) => navigator.serviceWorker.addEventListener('controllerchange', () => resolve(), { once: true }));
  }

  /** Media elements that were loading from the network when the SW took control (a first visit). */
  directMedia: HTMLMediaElement[] = [];

  /** Tells the SW that the page reloads its element of `url` as a new resource; resolves once the SW knows. */
  takeover(url: string): Promise<boolean> {
    const controller = navigator.serviceWorker.controller;
    if (!controller) return Promise.resolve(false);
    return new Promise<boolean>((resolve) => {
      const channel = new MessageChannel();
      const timer = setTimeout(() => resolve(false), TAKEOVER_ANSWER_MS);
      channel.port1.onmessage = () => {
        clearTimeout(timer);
        channel.port1.close();
        resolve(true);
      };
      controller.postMessage({ type: 'media-takeover', url } satisfies PageToWorker, [channel.port2]);
    });
  }

  /** Starts receiving the SW's notices (stats of this page's requests). */
  listen(): void {
    if (this.#listening) return;
    this.#listening = true;
    navigator.serviceWorker.addEventListener('message', this.#listener);
    // Messages from the SW are queued until startMessages() when listening with addEventListener.
    navigator.serviceWorker.startMessages();
  }

  /**
   * Offers this page's engine to the SW for piece requests (of every tab of the site); re-offers
   * it whenever the controller changes. Only the tab that leads the swarm does this.
   */
  activate(): void {
    this.listen();
    if (this.#active) return;
    this.#active = true;
    navigator.serviceWorker.addEventListener('controllerchange', this.#announce);
    this.#announce();
  }

  /** Withdraws this page's engine (P2P turned off, or leadership given up) but keeps receiving notices. */
  retire(): void {
    if (!this.#active) return;
    this.#post({ type: 'engine-gone' });
    this.#active = false;
    navigator.serviceWorker.removeEventListener('controllerchange', this.#announce);
  }

  /** Stops everything: no more requests, no more notices. */
  deactivate(): void {
    if (this.#active) this.#post({ type: 'engine-gone' });
    this.#active = false;
    this.#listening = false;
    navigator.serviceWorker.removeEventListener('message', this.#listener);
    navigator.serviceWorker.removeEventListener('controllerchange', this.#announce);
  }

  /** Asks the SW to fetch a piece from the origin into the store, for the swarm. */
  prefetch(asset: string, piece: number): void {
    this.#post({ type: 'prefetch', asset, piece });
  }

  /** Asks the SW to stop that fetch (a peer fetches the piece), unless a response reads it. */
  stopPrefetch(asset: string, piece: number): void {
    this.#post({ type: 'prefetch-stop', asset, piece });
  }

  /**
   * The bytes of a piece the SW is fetching from the origin (its `piece-arriving`), as they arrive,
   * for peers that ask for it now (see ForwardedPiece). Fails when the SW says so, or sends nothing
   * for FORWARD_SILENCE_MS (a worker of another deploy that does not know `forward`).
   */
  forward(asset: string, piece: number, size: number, sha256: string): ForwardedPiece {
    const forwarded = new ForwardedPiece(size, sha256);
    const controller = navigator.serviceWorker.controller;
    if (!controller) {
      forwarded.fail();
      return forwarded;
    }
    const channel = new MessageChannel();
    let silence = setTimeout(() => forwarded.fail(), FORWARD_SILENCE_MS);
    const end = () => {
      clearTimeout(silence);
      channel.port1.close();
    };
    channel.port1.onmessage = (event) => {
      const part = asForwardPart(event.data);
      if (part?.type !== 'forward-bytes') {
        forwarded.fail();
        return end();
      }
      forwarded.append(new Uint8Array(part.data));
      clearTimeout(silence);
      if (forwarded.received === size || forwarded.failed) return end();
      silence = setTimeout(() => (forwarded.fail(), end()), FORWARD_SILENCE_MS);
    };
    controller.postMessage({ type: 'forward', asset, piece } satisfies PageToWorker, [channel.port2]);
    return forwarded;
  }

  /** Asks the SW to load the catalog asset at `url` and describe it to this page (see the bridge's `resolve`). */
  resolve(url: string): void {
    if (url.length <= MAX_MESSAGE_URL_LENGTH) this.#post({ type: 'resolve', url });
  }

  readonly #announce = () => this.#post({ type: 'engine-ready', version: BRIDGE_VERSION });

  #post(message: PageToWorker): void {
    navigator.serviceWorker.controller?.postMessage(message);
  }

  #onMessage(event: MessageEvent): void {
    const message = asWorkerToPage(event.data);
    if (!message) {
      this.droppedMessages++;
      return;
    }
    if (message.type === 'worker-hello') return this.#active ? this.#announce() : undefined;
    if (message.type !== 'piece-request') return this.#onNotice(message);
    const port = event.ports[0];
    if (!port) return;
    if (!this.#active) return port.postMessage({ type: 'piece-miss', reason: 'not-ready' } satisfies PieceAnswer);
    const abort = new AbortController();
    port.onmessage = (cancel) => {
      if ((cancel.data as { type?: unknown })?.type === 'cancel') abort.abort();
    };
    void this.#onRequest(message, abort.signal)
      .catch((): PieceAnswer => ({ type: 'piece-miss', reason: 'not-ready' }))
      .then((answer) => {
        if (answer.type === 'piece') port.postMessage(answer, [answer.data]);
        else port.postMessage(answer, answer.partial ? [answer.partial] : []);
        port.close();
      });
  }
}
