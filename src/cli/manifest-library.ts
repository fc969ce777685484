/** `peerfetch/manifest`: the manifest builder as a library, for sites and packagers written in Node. */
export * from './build-manifest.js';
export { watchManifest, type ManifestWatcher, type WatchManifestOptions } from './live-manifest.js';
