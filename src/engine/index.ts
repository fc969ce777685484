import { Peerfetch } from './peerfetch.js';
import type { PeerfetchOptions } from './options.js';

export { Peerfetch, type PeerfetchEventMap } from './peerfetch.js';
export type { PeerfetchOptions } from './options.js';
export type { PeerfetchStats } from './stats.js';
export { PeerfetchError, type PeerfetchErrorCode } from '../shared/errors.js';

/**
 * Starts peerfetch on this page: registers the service worker, loads the manifest and joins
 * the page's swarm.
 *
 * @example
 * import { start } from 'peerfetch';
 * const peerfetch = start({ tracker: 'wss://tracker.example.com' });
 * await peerfetch.ready;
 */
export function start(options: PeerfetchOptions = {}): Peerfetch {
  return new Peerfetch(options);
}
