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
