/**
 * The ICE servers a page takes from its tracker when the site named none.
 *
 * How the page learns them: from a `peerfetch` field in the tracker's announce replies, not from
 * an HTTP endpoint on the tracker. The reasons:
 * - The WebSocket is open anyway; an HTTP fetch would be a second request, and against a
 *   third-party tracker (no such endpoint, no CORS headers) it would fail with an error in the
 *   site's console on every page view. A reply without the field simply means "nothing".
 * - The tracker adds the field only for announces that carry peerfetch's own `peerfetch` counters,
 *   so stock WebTorrent clients get the replies they always got, and other trackers ignore the
 *   unknown field in ours.
 * - TURN credentials are renewed in-band: the tracker puts a fresh one into the next reply once
 *   the last is half used up (the page announces every few seconds), so a page open for days
 *   needs no timer and no second channel, and credentials go only to clients the tracker admitted
 *   (origin allow-list, rate limits).
 * The cost is one round trip at start: the first announce goes out without offers and the offers
 * follow the reply, since an offer is non-trickle and carries the candidates its ICE servers gave.
 *
 * The tracker says the port of its STUN service; the host is the one the page reached the tracker
 * by, which the tracker itself cannot know behind a proxy.
 */

/** Longest TURN URL list / field accepted from a tracker: a hostile tracker cannot make us parse megabytes. */
const MAX_TURN_URLS = 8;
const MAX_FIELD_CHARS = 512;

/** What one announce reply handed out; undefined fields were absent (or invalid, and ignored). */
export interface TrackerIce {
  stun?: RTCIceServer;
  turn?: RTCIceServer;
}

const text = (value: unknown): value is string => typeof value === 'string' && value.length > 0 && value.length <= MAX_FIELD_CHARS;

/**
 * Reads the `peerfetch` field of an announce reply from the tracker at `trackerUrl`. Never throws:
 * whatever is not exactly the expected shape is ignored, as the rest of a tracker's input is.
 */
export function parseTrackerIce(field: unknown, trackerUrl: string): TrackerIce {
  if (typeof field !== 'object' || field === null) return {};
  const { stunPort, turn } = field as Record<string, unknown>;
  const ice: TrackerIce = {};
  if (typeof stunPort === 'number' && Number.isInteger(stunPort) && stunPort > 0 && stunPort <= 0xffff) {
    // URL.hostname keeps IPv6 literals in brackets, as a stun: URL needs them.
    ice.stun = { urls: `stun:${new URL(trackerUrl).hostname}:${stunPort}` };
  }
  if (typeof turn === 'object' && turn !== null) {
    const { urls, username, credential } = turn as Record<string, unknown>;
    const list = Array.isArray(urls) ? urls.slice(0, MAX_TURN_URLS).filter((url): url is string => text(url) && /^turns?:[^\s]+$/i.test(url)) : [];
    if (list.length > 0 && text(username) && text(credential)) ice.turn = { urls: list, username, credential };
  }
  return ice;
}
