import { afterEach, describe, expect, it, vi } from 'vitest';
import { ABSENT_MIN_FAILURES, ABSENT_MIN_MS, absentForGood, nextAbsence, type AbsenceRecords, type ManifestAbsence } from '../../src/sw/kill-switch.js';
import { ManifestSource } from '../../src/sw/manifest-source.js';

// The worker's manifest: a manifest that stays missing (404) for long enough acts as the kill
// switch, decided on a clock the test moves (no sleeping for an hour), with the run of 404s kept
// across worker restarts; and a reload asked for while reloads are throttled still happens.

const URL = 'https://site.example/peerfetch-manifest.json';
const MINUTE = 60_000;
const MANIFEST = JSON.stringify({ version: 1, assets: [] });

afterEach(() => {
  vi.unstubAllGlobals();
  vi.useRealTimers();
});

describe('absence of the manifest as a kill switch (pure decision)', () => {
  it.each<[string, Array<['missing' | 'present' | 'unknown', number]>, boolean]>([
    ['one 404', [['missing', 0]], false],
    [`${ABSENT_MIN_FAILURES} 404s within a minute`, [['missing', 0], ['missing', 0.5 * MINUTE], ['missing', MINUTE]], false],
    ['404s for two hours, but only two of them', [['missing', 0], ['missing', 120 * MINUTE]], false],
    ['three 404s over an hour', [['missing', 0], ['missing', 30 * MINUTE], ['missing', 60 * MINUTE]], true],
    ['offline and 5xx loads between the 404s count for nothing', [['missing', 0], ['unknown', 10 * MINUTE], ['missing', 30 * MINUTE], ['unknown', 40 * MINUTE], ['missing', 61 * MINUTE]], true],
    ['a manifest between the 404s starts the run again', [['missing', 0], ['missing', 30 * MINUTE], ['present', 31 * MINUTE], ['missing', 62 * MINUTE], ['missing', 90 * MINUTE]], false],
    ['a clock that went backwards starts the run again', [['missing', 100 * MINUTE], ['missing', 0], ['missing', 30 * MINUTE], ['missing', 59 * MINUTE]], false],
  ])('%s -> kill switch %s', (_name, loads, expected) => {
    let absence: ManifestAbsence | undefined;
    let now = 0;
    for (const [outcome, at] of loads) {
      now = at;
      absence = nextAbsence(absence, outcome, now);
    }
    expect(absentForGood(absence, now)).toBe(expected);
  });
});

/** Absence records in memory, shared by the "workers" of one test (Cache Storage in the browser). */
function memoryRecords(): AbsenceRecords & { map: Map<string, ManifestAbsence> } {
  const map = new Map<string, ManifestAbsence>();
  return {
    map,
    get: async (url) => map.get(url),
    set: async (url, absence) => void (absence ? map.set(url, absence) : map.delete(url)),
  };
}

/** The origin's manifest answers, changed by the test; every fetch of the manifest is counted. */
function stubOrigin() {
  const origin = { status: 404, offline: false, fetches: 0 };
  vi.stubGlobal('fetch', async () => {
    origin.fetches++;
    if (origin.offline) throw new TypeError('Failed to fetch');
    return new Response(origin.status === 200 ? MANIFEST : null, { status: origin.status });
  });
  return origin;
}

describe('ManifestSource: a manifest missing for long enough', () => {
  it('turns into the kill switch after ABSENT_MIN_FAILURES 404s over ABSENT_MIN_MS, across worker restarts, and not before', async () => {
    const origin = stubOrigin();
    const records = memoryRecords();
    let now = 1_000_000;
    const worker = () => new ManifestSource(URL, { absence: records, now: () => now });

    // First visit: the worker's one load gets a 404.
    expect(await worker().load()).toBeUndefined();
    // Later visits, each a fresh worker: offline and a 503 say nothing either way.
    now += 20 * MINUTE;
    origin.offline = true;
    expect(await worker().load()).toBeUndefined();
    origin.offline = false;
    origin.status = 503;
    expect(await worker().load()).toBeUndefined();
    origin.status = 404;
    now += 20 * MINUTE;
    expect(await worker().load()).toBeUndefined();
    expect(records.map.get(URL)).toEqual({ since: 1_000_000, failures: 2 });
    // A third 404, but before the hour is over: still nothing.
    now += 10 * MINUTE;
    const beforeTheHour = worker();
    expect(await beforeTheHour.load()).toBeUndefined();
    // Past the hour, the next 404 is the kill switch (the same worker, after its retry wait).
    now += ABSENT_MIN_MS;
    expect(await beforeTheHour.load()).toMatchObject({ disabled: true, assets: [] });
    expect(origin.fetches).toBe(6);
  });

  it('a manifest that comes back ends the run: the hour starts again from the next 404', async () => {
    const origin = stubOrigin();
    const records = memoryRecords();
    let now = 0;
    const worker = () => new ManifestSource(URL, { absence: records, now: () => now });
    for (let i = 0; i < ABSENT_MIN_FAILURES; i++) {
      await worker().load();
      now += 25 * MINUTE;
    }
    origin.status = 200;
    expect((await worker().load())?.disabled).toBeUndefined();
    expect(records.map.has(URL)).toBe(false);
    origin.status = 404;
    now += ABSENT_MIN_MS;
    expect(await worker().load()).toBeUndefined();
    expect(records.map.get(URL)).toEqual({ since: now, failures: 1 });
  });

  it('a 410 is the kill switch at once', async () => {
    const origin = stubOrigin();
    origin.status = 410;
    expect(await new ManifestSource(URL, { absence: memoryRecords() }).load()).toMatchObject({ disabled: true });
  });
});

describe('ManifestSource: reloads after a mismatch', () => {
  it('a reload asked for within the throttle interval happens once the interval is over', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const origin = stubOrigin();
    origin.status = 200;
    let now = 0;
    const source = new ManifestSource(URL, { absence: memoryRecords(), now: () => now });
    await source.load();
    expect(origin.fetches).toBe(1);
    now = 2000;
    source.invalidate();
    source.invalidate(); // asked twice: one reload
    expect(origin.fetches).toBe(1);
    now = 10_000;
    await vi.advanceTimersByTimeAsync(8000);
    expect(origin.fetches).toBe(2);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(origin.fetches).toBe(2);
  });

  it('a manifest older than a minute is fetched again when an asset is requested, not more often', async () => {
    const origin = stubOrigin();
    origin.status = 200;
    let now = 0;
    const source = new ManifestSource(URL, { absence: memoryRecords(), now: () => now });
    await source.load();
    now = 30_000;
    source.revalidate();
    expect(origin.fetches).toBe(1);
    now = 61_000;
    source.revalidate();
    source.revalidate();
    await vi.waitFor(() => expect(origin.fetches).toBe(2));
    now = 90_000;
    source.revalidate();
    expect(origin.fetches).toBe(2);
  });
});
