// Types of coturn.mjs (plain JavaScript so that bench/run.mjs can import it without a build).

/** What coturn prints once it serves (use it as startProcess's readyPattern). */
export const COTURN_READY_PATTERN: RegExp;

/**
 * `[command, args]` of a coturn server on `address:port`: STUN only without `secret`, TURN with
 * short-lived credentials ({@link turnCredentials}) with it. Private peer addresses are refused.
 *
 * @example
 * const [command, args] = coturnCommand({ address: TURN_ADDRESS, secret });
 * const turn = await startProcess(command, args, { readyPattern: COTURN_READY_PATTERN, name: 'coturn' });
 */
export function coturnCommand(options: { address: string; port?: number; secret?: string; realm?: string }): [string, string[]];

/** Credentials coturn accepts with `--use-auth-secret --static-auth-secret secret`, valid `ttlSeconds` (default 3600) from `now`. */
export function turnCredentials(secret: string, options?: { ttlSeconds?: number; user?: string; now?: number }): { username: string; credential: string };
