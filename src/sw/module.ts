/// <reference lib="webworker" />
// The module form of peerfetch's worker code (`dist/peerfetch-sw.mjs`, `import { startPeerfetch }
// from 'peerfetch/sw-module'`): for a site's module worker (`register('/sw.js', { type: 'module' })`)
// and for workers built by a bundler (Workbox's injectManifest, vite-plugin-pwa). Importing it does
// nothing; startPeerfetch() starts peerfetch in the worker, which the site keeps in charge of its
// lifecycle and of every request that is not a manifest asset.
import { startPeerfetchWorker, type PeerfetchWorkerOptions } from './peerfetch-worker.js';

export type { PeerfetchWorkerOptions } from './peerfetch-worker.js';

/** Workbox's route callbacks receive one object; peerfetch reads only these of its fields. */
export interface RouteRequest {
  request: Request;
  event?: ExtendableEvent;
}

/** peerfetch running in a service worker: the ways a worker hands it requests. */
export interface PeerfetchWorker {
  /**
   * Answers `event` when it is peerfetch's (a manifest asset, or a media request waiting for the
   * manifest), which the worker's later fetch listeners then never see; returns whether it did.
   * Every other request is left untouched for the site's own handlers or the network.
   */
  handleFetch(event: FetchEvent): boolean;
  /** Workbox route match callback: true for the requests that {@link handler} answers. */
  matcher(options: RouteRequest): boolean;
  /** Workbox route handler for the requests {@link matcher} matched. Never rejects. */
  handler(options: RouteRequest): Promise<Response>;
}

declare const self: ServiceWorkerGlobalScope;

let running: PeerfetchWorker | undefined;

/**
 * Starts peerfetch in this service worker and returns the ways to hand it requests: a fetch
 * listener's helper, or a Workbox route. Call it while the worker script is first evaluated (at
 * the top level). It registers nothing and calls neither `skipWaiting()` nor `clients.claim()`:
 * the page names this worker in `data-sw` and uses whatever registration the site made. Calling it
 * again returns the running instance (the first call's options hold).
 *
 * @example
 * // A module worker with its own fetch listener: peerfetch's answer comes first.
 * import { startPeerfetch } from 'peerfetch/sw-module';
 * const peerfetch = startPeerfetch();
 * self.addEventListener('fetch', (event) => {
 *   if (peerfetch.handleFetch(event)) return;
 *   // … the site's own handling
 * });
 *
 * @example
 * // Workbox: register peerfetch's route before any route that could match media.
 * import { registerRoute } from 'workbox-routing';
 * import { startPeerfetch } from 'peerfetch/sw-module';
 * const peerfetch = startPeerfetch();
 * registerRoute(peerfetch.matcher, peerfetch.handler);
 */
export function startPeerfetch(options?: PeerfetchWorkerOptions): PeerfetchWorker {
  if (running) return running;
  const { route } = startPeerfetchWorker(self, options);
  /** Answers decided by the matcher, for the handler Workbox calls next with the same event. */
  const matched = new WeakMap<ExtendableEvent, Promise<Response>>();
  running = {
    handleFetch(event) {
      const answer = route(event);
      // respondWith() also ends the event's dispatch (Service Workers spec: it sets the stop
      // immediate propagation flag), so the site's listeners, added after this one, never see it.
      if (answer) event.respondWith(answer);
      return answer !== undefined;
    },
    matcher({ event }) {
      if (!(event instanceof FetchEvent)) return false;
      const answer = route(event);
      if (answer) matched.set(event, answer);
      return answer !== undefined;
    },
    handler({ event, request }) {
      const answer = event && matched.get(event);
      if (event) matched.delete(event);
      // Called without its matcher (a route composed by the site): decide now.
      return answer ?? (event instanceof FetchEvent ? route(event) : undefined) ?? fetch(request);
    },
  };
  return running;
}
