import { findAsset, type Manifest, type ManifestAsset } from '../shared/manifest.js';

/**
 * Fragment given to a taken-over element's URL. Chromium keys the media data it keeps by URL
 * (fragment included) and CORS mode, and refuses SW-built bytes for data that began with a
 * network response: reloading the same URL reuses that data and fails (measured, Chromium 156:
 * `PIPELINE_ERROR_READ` right after the reload), while the same URL with a fragment is a new
 * resource that the SW answers from its first byte. Not a media fragment (`#t=`), so the
 * element starts where it is told to.
 */
export const TAKEOVER_FRAGMENT = 'peerfetch';

/**
 * The page's media elements that are loading a URL from the network: a first visit's player
 * that started while the page was parsed, before the SW controlled the page. Elements playing
 * a MediaSource (hls.js, Shaka: `blob:` URLs) fetch each segment on their own and need nothing.
 */
export function mediaLoadingFromNetwork(root: ParentNode = document): HTMLMediaElement[] {
  return [...root.querySelectorAll<HTMLMediaElement>('video, audio')].filter(
    (media) => media.networkState !== HTMLMediaElement.NETWORK_EMPTY && /^https?:/.test(media.currentSrc),
  );
}

/**
 * Reloads a media element that loads a manifest asset from the network as a new resource that
 * the SW answers (store, peers, origin), where it was: same position, same play/pause state,
 * same rate. Returns false for elements that play something else.
 *
 * What it costs, measured on a first visit (Chromium 156, 1.2 Mbit/s MP4 from an origin capped at
 * 3 Mbit/s): Chromium reads a progressive MP4 through one open-ended Range request and never
 * issues another one while it plays (the whole 9 MB file came through the first request; it
 * pauses reading when its buffer is full and resumes on the same connection), so without a
 * reload not one later byte goes through the SW. The reload shows as one short wait of the
 * element (`emptied`, `waiting`, then `playing`).
 */
export async function takeOver(
  media: HTMLMediaElement,
  manifest: Manifest,
  beforeReload: (url: string) => Promise<boolean>,
): Promise<boolean> {
  const url = media.currentSrc.split('#', 1)[0]!;
  const asset = findAsset(manifest, url);
  if (!asset || fullyLoaded(media)) return false;
  if (!(await beforeReload(url))) return false;
  await warm(asset, url, media);
  // The element may have moved on (the site changed its source) while the SW answered.
  if (media.currentSrc.split('#', 1)[0] !== url) return false;
  const position = media.currentTime;
  const playing = !media.paused;
  const rate = media.playbackRate;
  media.src = `${url}#${TAKEOVER_FRAGMENT}`;
  // Before the metadata is in, this sets the position the element starts at once it is.
  media.currentTime = position;
  media.playbackRate = rate;
  if (playing) await media.play().catch(() => {});
  return true;
}

/** Whether the element already has every byte it will play: a reload would gain nothing. */
function fullyLoaded(media: HTMLMediaElement): boolean {
  if (media.ended) return true;
  const { buffered, duration } = media;
  if (!Number.isFinite(duration) || buffered.length === 0) return false;
  // Chromium's buffered ranges end within a frame of the duration when the whole file is in.
  return buffered.start(0) <= media.currentTime && buffered.end(buffered.length - 1) >= duration - 0.1 && buffered.length === 1;
}

/**
 * Seconds of media after the playhead that are read through the SW before the reload, so that
 * the reloaded element finds them in the local store: the reload waits on the store instead of
 * on a first piece from peers (up to FIRST_PIECE_DEADLINE_MS) or the origin. 6 s is the time the
 * warm-up itself may take (TAKEOVER_WARM_MS) plus the few seconds Chromium reads before it plays.
 */
const WARM_AHEAD_SECONDS = 6;
/** Longest warm-up (ms): past it the element is reloaded anyway (it then waits on the SW's usual sources). */
const TAKEOVER_WARM_MS = 3000;

/**
 * Reads `url` (the element's, with a signed URL's query) through the SW (which keeps what it delivers): the first piece, where the reloaded element
 * reads its header, and the bytes around the playhead, estimated from the element's duration at
 * an even bitrate. Never rejects.
 */
async function warm(asset: ManifestAsset, url: string, media: HTMLMediaElement): Promise<void> {
  const ranges: Array<[number, number]> = [[0, Math.min(asset.size, asset.pieceSize) - 1]];
  if (Number.isFinite(media.duration) && media.duration > 0) {
    const bytesPerSecond = asset.size / media.duration;
    const start = Math.floor(media.currentTime * bytesPerSecond);
    const end = Math.min(asset.size, Math.ceil((media.currentTime + WARM_AHEAD_SECONDS) * bytesPerSecond)) - 1;
    if (end >= start && start >= asset.pieceSize) ranges.push([start, end]);
    else if (end >= asset.pieceSize) ranges[0] = [0, end];
  }
  const signal = AbortSignal.timeout(TAKEOVER_WARM_MS);
  await Promise.all(
    ranges.map(async ([start, end]) => {
      try {
        const response = await fetch(url, { headers: { Range: `bytes=${start}-${end}` }, signal });
        await response.arrayBuffer();
      } catch {
        // Timed out or failed: the reload then takes what the SW has.
      }
    }),
  );
}
