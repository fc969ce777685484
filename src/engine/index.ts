import { Peerfetch } from './peerfetch.js';
import type { PeerfetchOptions } from './options.js';

export { Peerfetch, type PeerfetchEventMap } from './peerfetch.js';
export type { PeerfetchOptions, RelayPolicy } from './options.js';
export type { PeerfetchStats, PeerStats } from './stats.js';
export type { CandidateType } from './peer-path.js';
export type { UnreachableDetail, UnreachableReason } from './reachability.js';
export { PeerfetchError, type PeerfetchErrorCode } from '../shared/errors.js';
export type { TypedEvent } from '../shared/typed-events.js';

declare global {
  interface Window {
    /**
     * The instance the script tag (`dist/peerfetch.js`) started; undefined before it ran or
     * without the script tag. TypeScript sites get this type from any import of 'peerfetch'
     * (`import type {} from 'peerfetch'`) or `/// <reference types="peerfetch" />`.
     */
    peerfetch?: Peerfetch;
  }
}

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
