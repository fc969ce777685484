import { loadNativeServer } from '../../dist/node/tracker.mjs';

/**
 * uWebSockets.js's binary for this platform and Node ABI, loaded as the tracker's native transport
 * loads it (the same packages, in the same order). Throws when none loads.
 */
export function loadUws() {
  const native = loadNativeServer();
  if (native instanceof Error) throw native;
  return native.uws;
}

/** The npm package the native binary comes from (for the benchmark report). */
export function uwsPackage() {
  const native = loadNativeServer();
  return native instanceof Error ? undefined : native.packageName;
}
