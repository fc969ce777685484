import { Workbox } from 'workbox-window';
import {
  BRIDGE_VERSION,
  MAX_DIRECT_MEDIA_URLS,
  MAX_MESSAGE_URL_LENGTH,
  asWorkerToPage,
  type PageToWorker,
  type PieceAnswer,
  type WorkerToPage,
} from '../shared/bridge-messages.js';
import { PeerfetchError } from '../shared/errors.js';
import { mediaLoadingFromNetwork } from './media-takeover.js';

/** Longest wait (ms) for a newly installed SW to take control of this page (it claims clients on activate). */
const CONTROL_TIMEOUT_MS = 10_000;

/**
 * Longest wait (ms) for the SW to confirm a takeover (a round trip is ~0.15 ms): without the
 * confirmation the element stays on the network rather than risk a mixed resource.
 */
const TAKEOVER_ANSWER_MS = 2000;

/** Turns a SW piece request into an answer; owned by the orchestrator. */
export type PieceRequestHandler = (
  request: Extract<WorkerToPage, { type: 'piece-request' }>,
  signal: AbortSignal,
) => Promise<PieceAnswer>;

/**
 * The page's side of the SW <-> page bridge: registers the service worker (workbox-window),
 * waits until it controls the page, tells it an engine is ready, and answers its piece requests.
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
   * Registers `swUrl` and resolves once it controls this page. The SW reads its settings from
   * its URL (it has no other way to get them before a page talks to it); changing one installs
   * the SW again, with the new value.
   */
  async register(swUrl: string, settings: { manifest: string; storeCapBytes: number | undefined }): Promise<void> {
    if (!('serviceWorker' in navigator)) {
      throw new PeerfetchError('bridge-invalid', 'service workers are not available on this page');
    }
    const url = new URL(swUrl);
    url.searchParams.set('manifest', settings.manifest);
    if (settings.storeCapBytes !== undefined) url.searchParams.set('store-cap-bytes', String(settings.storeCapBytes));
    const controlledAtStart = Boolean(navigator.serviceWorker.controller);
    const workbox = new Workbox(url.href);
    // At once, not after the page's load event (workbox-window's default): on a first visit every
    // millisecond before the SW controls the page is media loaded without it.
    await workbox.register({ immediate: true });
    if (!navigator.serviceWorker.controller) {
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
    if (!controlledAtStart) {
      // Elements that began loading before the SW controlled the page stay on the network until
      // they are taken over (see media-takeover.ts).
      this.directMedia = mediaLoadingFromNetwork();
      // Within the bridge's bounds, which the SW enforces by dropping the whole message.
      const urls = this.directMedia.map((media) => media.currentSrc).filter((url) => url.length <= MAX_MESSAGE_URL_LENGTH);
      this.#post({ type: 'media-direct', urls: urls.slice(0, MAX_DIRECT_MEDIA_URLS) });
    }
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
