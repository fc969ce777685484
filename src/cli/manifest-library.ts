/** `peerfetch/manifest`: the manifest builder as a library, for sites and packagers written in Node. */
export * from './build-manifest.js';
export { watchManifest, type ManifestWatcher, type WatchManifestOptions } from './live-manifest.js';
export { CATALOG_FOLDER_NAME, INLINE_MANIFEST_MAX_BYTES, readCatalog, wantsCatalog, writeCatalog, type CatalogMode } from './catalog-writer.js';
