/**
 * Whether the path of a service-worker URL names peerfetch's own worker file (`dist/peerfetch-sw.js`, served
 * as `/peerfetch-sw.js` or under another folder; DESIGN.md "Public surface"). Any other file is a
 * site's own worker that hosts peerfetch (`importScripts('/peerfetch-sw.js')` or the module form):
 * peerfetch then registers nothing, forces no `skipWaiting()`/`clients.claim()` and never
 * unregisters it, because its lifecycle is the site's.
 */
export function isOwnWorkerFile(pathname: string): boolean {
  return /\/peerfetch-sw\.js$/.test(pathname);
}
