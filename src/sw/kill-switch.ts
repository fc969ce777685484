import type { Manifest } from '../shared/manifest.js';

/** peerfetch's own worker file (DESIGN.md "Public surface"); a site's worker that imports peerfetch has another name. */
const OWN_WORKER_FILE = /\/peerfetch-sw\.js$/;

/**
 * Obeys the operator's kill switch (a manifest with `"disabled": true`, or one answered 410 Gone):
 * returns true when the manifest says so, and unregisters the worker when it is peerfetch's own
 * (a site's worker that imports peerfetch stays; it only stops answering). The caller then passes
 * every request through. The page registers the worker again on its next load, and that worker
 * unregisters again as soon as it has read the manifest: a page view costs one manifest request.
 */
export function killSwitchOn(scope: ServiceWorkerGlobalScope, manifest: Manifest | undefined): boolean {
  if (!manifest?.disabled) return false;
  if (OWN_WORKER_FILE.test(scope.location.pathname) && !unregistering) {
    unregistering = scope.registration.unregister().catch(() => false);
  }
  return true;
}
let unregistering: Promise<boolean> | undefined;
