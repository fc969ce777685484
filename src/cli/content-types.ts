import { pathExtension } from '../shared/media-extensions.js';

/**
 * File extension → Content-Type, shared by the manifest builder (the SW answers asset requests
 * with the manifest's contentType, so a wrong type here breaks playback) and the origin server.
 * Deliberately small: media, images, fonts and archives that are worth sharing between viewers,
 * plus the page files the origin serves.
 */
const ASSET_TYPES: Record<string, string> = {
  // Video containers and segments.
  mp4: 'video/mp4',
  m4v: 'video/mp4',
  cmfv: 'video/mp4',
  // fMP4 media segments (DASH/HLS); IANA registers video/iso.segment for them.
  m4s: 'video/iso.segment',
  webm: 'video/webm',
  mkv: 'video/x-matroska',
  mov: 'video/quicktime',
  // .ts in a site's public folder is an HLS MPEG-TS segment, not TypeScript.
  ts: 'video/mp2t',
  m2ts: 'video/mp2t',
  // Audio.
  aac: 'audio/aac',
  m4a: 'audio/mp4',
  cmfa: 'audio/mp4',
  mp3: 'audio/mpeg',
  ogg: 'audio/ogg',
  oga: 'audio/ogg',
  opus: 'audio/ogg',
  flac: 'audio/flac',
  wav: 'audio/wav',
  // Images.
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
  png: 'image/png',
  webp: 'image/webp',
  gif: 'image/gif',
  avif: 'image/avif',
  svg: 'image/svg+xml',
  ico: 'image/x-icon',
  // Fonts, text tracks, binaries.
  woff: 'font/woff',
  woff2: 'font/woff2',
  ttf: 'font/ttf',
  otf: 'font/otf',
  vtt: 'text/vtt',
  pdf: 'application/pdf',
  wasm: 'application/wasm',
  zip: 'application/zip',
  gz: 'application/gzip',
  tar: 'application/x-tar',
  bin: 'application/octet-stream',
};

/** Page code, documents and playlists: served by the origin, never listed as assets. */
const PAGE_TYPES: Record<string, string> = {
  html: 'text/html; charset=utf-8',
  htm: 'text/html; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
  mjs: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
  json: 'application/json; charset=utf-8',
  map: 'application/json; charset=utf-8',
  txt: 'text/plain; charset=utf-8',
  xml: 'application/xml; charset=utf-8',
  webmanifest: 'application/manifest+json; charset=utf-8',
  m3u8: 'application/vnd.apple.mpegurl',
  mpd: 'application/dash+xml',
};

/** Extensions of playlists: they must stay untouched (players re-fetch them; they are tiny). */
export const PLAYLIST_EXTENSIONS: ReadonlySet<string> = new Set(['m3u8', 'mpd']);
/** Extensions of page code and documents: small, often rewritten, not worth a swarm. */
export const PAGE_EXTENSIONS: ReadonlySet<string> = new Set(
  Object.keys(PAGE_TYPES).filter((extension) => !PLAYLIST_EXTENSIONS.has(extension)),
);

export const FALLBACK_CONTENT_TYPE = 'application/octet-stream';

/** Content-Type of an asset file, or undefined when the extension is not in the asset table. */
export function assetContentType(fileName: string): string | undefined {
  return ASSET_TYPES[pathExtension(fileName)];
}

/**
 * Content-Type the origin server sends for `fileName`.
 *
 * @example
 * contentTypeFor('/media/film.mp4') // 'video/mp4'
 */
export function contentTypeFor(fileName: string): string {
  const extension = pathExtension(fileName);
  return ASSET_TYPES[extension] ?? PAGE_TYPES[extension] ?? FALLBACK_CONTENT_TYPE;
}
