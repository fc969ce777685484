import { isMediaPath } from '../shared/media-extensions.js';

/**
 * Whether `request` could be for a media asset, judged without the manifest: a request of a
 * <video> or <audio> element, or a script's fetch (hls.js, dash.js) of a file with a media
 * extension. A worker that has no manifest yet makes only these wait for it: an image, a font or
 * an API call of the site never waits on peerfetch.
 */
export function couldBeMedia(request: Request): boolean {
  if (request.destination === 'video' || request.destination === 'audio') return true;
  if (request.destination !== '') return false;
  return isMediaPath(new URL(request.url).pathname);
}
