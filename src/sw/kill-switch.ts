import type { Manifest } from '../shared/manifest.js';
import { isOwnWorkerFile } from '../shared/worker-file.js';

/**
 * Obeys the operator's kill switch (a manifest with `"disabled": true`, one answered 410 Gone, or
 * one missing for long enough: see {@link ManifestAbsence}): returns true when the manifest says
 * so, and unregisters the worker when it is peerfetch's own (a site's worker that imports
 * peerfetch stays; it only stops answering). The caller then passes every request through. The
 * page registers the worker again on its next load, and that worker unregisters again as soon as
 * it has read the manifest: a page view costs one manifest request.
 */
export function killSwitchOn(scope: ServiceWorkerGlobalScope, manifest: Manifest | undefined): boolean {
  if (!manifest?.disabled) return false;
  if (isOwnWorkerFile(scope.location.pathname) && !unregistering) {
    unregistering = scope.registration.unregister().catch(() => false);
  }
  return true;
}
let unregistering: Promise<boolean> | undefined;

/**
 * Manifest answers 404 in a row (count) before its absence counts as the kill switch. One 404 is
 * a deploy in progress or a CDN that has not caught up; several, each after the worker's growing
 * retry wait (10 s doubling to 5 min), are a manifest that is gone.
 */
export const ABSENT_MIN_FAILURES = 3;
/**
 * How long (ms) the manifest must have been answering 404, from the first to the last of them,
 * before its absence counts as the kill switch: one hour. Far longer than a botched deploy takes to
 * notice and roll back, so a temporary 404 never unregisters visitors' workers (which would cost
 * them a fresh install once it is back); short enough that a site that removed peerfetch, manifest
 * and all, without setting `disabled`, stops paying for the worker within a visitor's next session
 * or two. The count and the start survive worker restarts (see {@link AbsenceRecords}).
 */
export const ABSENT_MIN_MS = 60 * 60 * 1000;

/** A run of 404 answers for the manifest: when the first came, and how many in a row. */
export interface ManifestAbsence {
  since: number;
  failures: number;
}

/**
 * The next state after one manifest load: a 404 extends the run (or starts one), a manifest
 * (or a 410, which acts at once) ends it, and anything else (offline, a 5xx, a timeout, a
 * manifest that fails to parse) says nothing about whether the file exists and leaves it as it was.
 */
export function nextAbsence(previous: ManifestAbsence | undefined, outcome: 'missing' | 'present' | 'unknown', now: number): ManifestAbsence | undefined {
  if (outcome === 'present') return undefined;
  if (outcome === 'unknown') return previous;
  // A clock that went backwards (a changed system time) starts the run again rather than counting from the future.
  if (!previous || previous.since > now) return { since: now, failures: 1 };
  return { since: previous.since, failures: previous.failures + 1 };
}

/** Whether a run of 404s is long enough to act as the kill switch. */
export function absentForGood(absence: ManifestAbsence | undefined, now: number): boolean {
  return absence !== undefined && absence.failures >= ABSENT_MIN_FAILURES && now - absence.since >= ABSENT_MIN_MS;
}

/** Where the run of 404s is kept across worker restarts (a worker lives seconds to minutes), per manifest URL. */
export interface AbsenceRecords {
  get(manifestUrl: string): Promise<ManifestAbsence | undefined>;
  set(manifestUrl: string, absence: ManifestAbsence | undefined): Promise<void>;
}

/** Cache Storage name of the absence records: readable by the worker, and by tests from a page of the origin. */
export const ABSENCE_CACHE = 'peerfetch-manifest-absence';

/**
 * Absence records in Cache Storage (one small JSON response per manifest URL): available in every
 * worker, and it needs no schema of its own in the piece store's database. Storage that fails
 * (quota, private modes) keeps nothing: the absence then never acts, which is the safe side.
 */
export const cacheAbsenceRecords: AbsenceRecords = {
  async get(manifestUrl) {
    try {
      const response = await (await caches.open(ABSENCE_CACHE)).match(manifestUrl);
      const value: unknown = await response?.json();
      const { since, failures } = (value ?? {}) as Record<string, unknown>;
      return typeof since === 'number' && typeof failures === 'number' ? { since, failures } : undefined;
    } catch {
      return undefined;
    }
  },
  async set(manifestUrl, absence) {
    try {
      const cache = await caches.open(ABSENCE_CACHE);
      if (absence) await cache.put(manifestUrl, new Response(JSON.stringify(absence)));
      else await cache.delete(manifestUrl);
    } catch {
      // See above: nothing kept.
    }
  },
};
