import { createRequire } from 'node:module';

/** uWebSockets.js's binary for this platform and Node ABI, as the tracker's native transport loads it. */
export function loadUws() {
  const require = createRequire(import.meta.url);
  return require(`@trufflesuite/uws-js-unofficial/binaries/uws_${process.platform}_${process.arch}_${process.versions.modules}.node`);
}
