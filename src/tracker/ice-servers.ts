import { createHmac, randomBytes } from 'node:crypto';

/**
 * What the tracker hands a peerfetch page in its announce replies (field `peerfetch`, which other
 * clients ignore): the port of its own STUN service, and TURN with a fresh short-lived credential
 * when the operator configured one. The page builds `stun:<tracker host>:<stunPort>` itself, from
 * the host name it reached the tracker by: behind a proxy the tracker does not know that name.
 */
export interface IceHandout {
  stunPort?: number;
  turn?: { urls: string[]; username: string; credential: string };
}

/** A TURN credential and when it stops working (ms since the epoch). */
export interface TurnCredential {
  username: string;
  credential: string;
  expiresAtMs: number;
}

/**
 * coturn's shared-secret scheme ("TURN REST API", draft-uberti-behave-turn-rest-00; coturn's
 * `use-auth-secret` + `static-auth-secret`): username `<expiry unix seconds>:<id>`, password
 * base64(HMAC-SHA1(secret, username)). The TURN server checks both with the same secret and
 * refuses the credential after the expiry, so a page never holds a long-lived credential.
 * `id` shows up in the TURN server's logs; the tracker uses a random one per connection.
 */
export function turnCredential(secret: string, ttlSec: number, nowMs: number, id: string): TurnCredential {
  const expiry = Math.floor(nowMs / 1000) + Math.round(ttlSec);
  const username = `${expiry}:${id}`;
  const credential = createHmac('sha1', secret).update(username).digest('base64');
  return { username, credential, expiresAtMs: expiry * 1000 };
}

/** An id for TURN usernames: random, so it names a tracker connection and no visitor. */
export function randomTurnId(): string {
  return randomBytes(6).toString('hex');
}
