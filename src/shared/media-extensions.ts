/**
 * File extensions of video, audio and media segments: what peerfetch is for. The manifest builder
 * lists only these by default, and a service worker that has no manifest yet waits for one only
 * for requests of these (anything else cannot be worth delaying).
 */
export const MEDIA_EXTENSIONS: ReadonlySet<string> = new Set([
  // Video containers and segments (.ts in a public folder is an MPEG-TS segment, not TypeScript).
  'mp4', 'm4v', 'cmfv', 'm4s', 'webm', 'mkv', 'mov', 'ts', 'm2ts',
  // Audio.
  'aac', 'm4a', 'cmfa', 'mp3', 'ogg', 'oga', 'ogv', 'opus', 'flac', 'wav',
]);

/** Lower-case extension of the last segment of a URL path or file name, without the dot ('' when there is none). */
export function pathExtension(path: string): string {
  const name = path.slice(path.lastIndexOf('/') + 1);
  const dot = name.lastIndexOf('.');
  return dot <= 0 ? '' : name.slice(dot + 1).toLowerCase();
}

/** Whether a URL path or file name has a media extension. */
export function isMediaPath(path: string): boolean {
  return MEDIA_EXTENSIONS.has(pathExtension(path));
}
