/// <reference lib="webworker" />
// The classic-script worker, `dist/peerfetch-sw.js`. Served as `/peerfetch-sw.js` it is
// peerfetch's own worker, which the page registers. Imported at the top of a site's worker
// (`importScripts('/peerfetch-sw.js')`) it answers manifest assets only and leaves the worker's
// lifecycle (skipWaiting, clients.claim, updates) and every other request to the site.
import { isOwnWorkerFile } from '../shared/worker-file.js';
import { startPeerfetchWorker } from './peerfetch-worker.js';

declare const self: ServiceWorkerGlobalScope;

// Settings come from the worker's URL: the page passes them when it registers its own worker.
const peerfetch = startPeerfetchWorker(self);

if (isOwnWorkerFile(self.location.pathname)) {
  // Activation is on a first visit's startup path: it waits for nothing but skipWaiting. The
  // manifest loads in the meantime, and requests that come before it wait for it.
  self.addEventListener('install', (event) => {
    event.waitUntil(self.skipWaiting());
  });
  self.addEventListener('activate', (event) => {
    event.waitUntil(self.clients.claim().then(() => peerfetch.greetPages()));
  });
}

// respondWith() also ends the event's dispatch (Service Workers spec: it sets the stop immediate
// propagation flag), so a site's listeners, added after this one, never see peerfetch's requests.
self.addEventListener('fetch', (event) => {
  const answer = peerfetch.route(event);
  if (answer) event.respondWith(answer);
});
