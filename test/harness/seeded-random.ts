/**
 * Seeded randomness for fuzz tests: a failing run is replayed with `PEERFETCH_FUZZ_SEED=<seed>`,
 * the seed each fuzz test prints in its name and its failure messages.
 */

/** The seed of this run: PEERFETCH_FUZZ_SEED when set, else a new one. */
export function fuzzSeed(): number {
  const given = process.env.PEERFETCH_FUZZ_SEED;
  return given === undefined ? Date.now() % 1_000_000 : Number(given);
}

/** mulberry32: a tiny seeded PRNG returning floats in [0, 1); the same seed gives the same sequence. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Helpers over one PRNG: an integer below `n`, one element of a list, random bytes. */
export function randomTools(random: () => number) {
  const int = (n: number): number => Math.floor(random() * n);
  return {
    random,
    int,
    pick: <T>(items: readonly T[]): T => items[int(items.length)]!,
    bytes: (n: number): Uint8Array => Uint8Array.from({ length: n }, () => int(256)),
  };
}
