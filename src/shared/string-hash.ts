/**
 * FNV-1a over a string's UTF-16 code units: cheap and stable in every runtime, so the manifest
 * builder and every worker pick the same catalog shard, and every swarm member computes the same
 * owner for a piece.
 */
export function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash;
}

/**
 * FNV-1a followed by MurmurHash3's 32-bit finalizer (fmix32), so that every input bit moves every
 * output bit: for hashes that are compared with each other (rendezvous hashing), where FNV-1a alone
 * leaves strings that differ only in their last characters close together.
 */
export function mixedHash(text: string): number {
  let hash = fnv1a(text);
  hash ^= hash >>> 16;
  hash = Math.imul(hash, 0x85ebca6b);
  hash ^= hash >>> 13;
  hash = Math.imul(hash, 0xc2b2ae35);
  hash ^= hash >>> 16;
  return hash >>> 0;
}
