import {
  BRIDGE_VERSION,
  asPageToWorker,
  asPieceAnswer,
  type PageToWorker,
  type PieceAnswer,
  type WorkerToPage,
} from '../shared/bridge-messages.js';
import type { PeerAnswer } from './piece-loader.js';

/**
 * Margin (ms) the SW waits beyond the deadline it gives the engine: the engine answers
 * `piece-miss` at its deadline, and this covers the page's event-loop delay before it does.
 */
const ANSWER_MARGIN_MS = 250;

/**
 * The SW's side of the SW <-> page bridge: which pages run an engine, and asking one of them
 * for a piece from peers. Never rejects because of the page: a missing, slow or failing engine
 * is an `undefined` answer, and the caller goes to the origin.
 */
export class EngineBridge {
  readonly #ready = new Set<string>();
  readonly #scope: ServiceWorkerGlobalScope;
  /**
   * Messages from pages (and answers on piece ports) that failed validation and were dropped:
   * a page of another deploy, or a site's own script posting to this worker.
   */
  droppedMessages = 0;

  constructor(scope: ServiceWorkerGlobalScope) {
    this.#scope = scope;
  }

  /**
   * Handles page -> SW messages: keeps the list of ready engines, and returns the other messages
   * (with the sending page's id) for the caller to carry out.
   */
  onMessage(
    event: ExtendableMessageEvent,
  ): { message: Exclude<PageToWorker, { type: 'engine-ready' | 'engine-gone' }>; clientId: string } | undefined {
    const message = asPageToWorker(event.data);
    const source = event.source;
    if (!message || !(source instanceof Client)) {
      this.droppedMessages++;
      return undefined;
    }
    if (message.type === 'engine-ready') this.#ready.add(source.id);
    else if (message.type === 'engine-gone') this.#ready.delete(source.id);
    else return { message, clientId: source.id };
    return undefined;
  }

  /** After a SW restart the ready list is empty: ask every page to announce its engine again. */
  greetPages(): Promise<void> {
    return this.tellPages({ type: 'worker-hello', version: BRIDGE_VERSION });
  }

  /** Posts `message` to every window this SW controls. */
  async tellPages(message: WorkerToPage): Promise<void> {
    const pages = await this.#scope.clients.matchAll({ type: 'window' });
    for (const page of pages) page.postMessage(message);
  }

  /** Posts a stats message to the page that made a request (if it still exists). */
  async notify(clientId: string, message: WorkerToPage): Promise<void> {
    if (!clientId) return;
    const client = await this.#scope.clients.get(clientId);
    client?.postMessage(message);
  }

  /** The page to ask for `clientId`'s request: that page if its engine is ready, else any ready page. */
  async #pickEngine(clientId: string): Promise<Client | undefined> {
    const order = this.#ready.has(clientId) ? [clientId, ...this.#ready] : [...this.#ready];
    for (const id of order) {
      const client = await this.#scope.clients.get(id);
      if (client) return client;
      this.#ready.delete(id);
    }
    return undefined;
  }

  /**
   * Asks a page engine for a verified piece from peers; undefined when none answers with one in
   * time, or the first bytes of the piece (unverified) when peers delivered only part of it.
   */
  async requestPiece(
    clientId: string,
    asset: string,
    piece: number,
    {
      deadlineMs,
      maxDeadlineMs,
      first,
      signal,
      beforeAsking,
    }: {
      deadlineMs: number;
      maxDeadlineMs?: number;
      first: boolean;
      signal: AbortSignal;
      /** Called with the page that will be asked, before it is: what it must be told first (a catalog asset it does not know). */
      beforeAsking?: (engineId: string) => Promise<void>;
    },
  ): Promise<PeerAnswer | undefined> {
    const engine = await this.#pickEngine(clientId);
    if (!engine || signal.aborted) return undefined;
    // Messages to one page arrive in the order they were posted: what it is told comes before the request.
    await beforeAsking?.(engine.id).catch(() => {});
    // Only the asking page knows how much its player has buffered: another tab's engine gets the plain deadline.
    const longest = engine.id === clientId && maxDeadlineMs !== undefined ? Math.max(deadlineMs, maxDeadlineMs) : deadlineMs;
    const channel = new MessageChannel();
    let timer: ReturnType<typeof setTimeout> | undefined;
    let onAbort = () => {};
    const answer = new Promise<PieceAnswer | undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), longest + ANSWER_MARGIN_MS);
      onAbort = () => resolve(undefined);
      signal.addEventListener('abort', onAbort, { once: true });
      channel.port1.onmessage = (event) => {
        const parsed = asPieceAnswer(event.data);
        if (!parsed) this.droppedMessages++;
        resolve(parsed);
      };
      channel.port1.onmessageerror = () => resolve(undefined);
    });
    const request: WorkerToPage = { type: 'piece-request', version: BRIDGE_VERSION, asset, piece, deadlineMs, first };
    if (longest > deadlineMs) request.maxDeadlineMs = longest;
    engine.postMessage(request, [channel.port2]);
    const result = await answer;
    clearTimeout(timer);
    signal.removeEventListener('abort', onAbort);
    if (!result || result.type !== 'piece') channel.port1.postMessage({ type: 'cancel' });
    channel.port1.close();
    if (result?.type === 'piece-miss' && result.partial && result.partial.byteLength > 0) return { partial: new Uint8Array(result.partial) };
    if (result?.type !== 'piece') return undefined;
    return { data: new Uint8Array(result.data), byOtherPage: engine.id !== clientId };
  }
}
