/**
 * The little of an HLS playlist (RFC 8216) that a live manifest needs: which files it names, in
 * play order, how long they play, and whether the stream has ended. A pure function over text.
 */

/** One media segment (or the init section of an EXT-X-MAP) named by a playlist. */
export interface PlaylistSegment {
  /** The URI as written (relative to the playlist, or absolute). */
  uri: string;
  /** Play time in ms (EXTINF); 0 for an init section. */
  durationMs: number;
  /** Media sequence number (RFC 8216 §6.3.2); init sections take the number of the segment they precede. */
  sequence: number;
}

/** What a live manifest needs of a playlist, HLS or DASH. */
export interface LivePlaylist {
  /** The longest segment in ms (HLS EXT-X-TARGETDURATION, RFC 8216 §4.3.3.1; DASH maxSegmentDuration). */
  targetDurationMs: number;
  /** Init sections and segments in play order, each file once. */
  segments: PlaylistSegment[];
  /** Sum of the segments' durations (ms): the playlist window. */
  windowMs: number;
  /** No segment will be added (HLS EXT-X-ENDLIST, a static MPD). */
  ended: boolean;
  /** A multivariant (master) playlist: names other playlists, no segments. */
  multivariant: boolean;
}

function attribute(line: string, name: string): string | undefined {
  const match = new RegExp(`(?:^|[:,])${name}=("[^"]*"|[^,]*)`).exec(line);
  return match?.[1]?.replace(/^"|"$/g, '');
}

/**
 * Parses an HLS playlist's text. Returns undefined for text that is not a playlist (no `#EXTM3U`
 * first line), such as one read while another program was still writing it.
 *
 * @example
 * parseHlsPlaylist('#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\nseg-1.ts\n').segments[0].uri // 'seg-1.ts'
 */
export function parseHlsPlaylist(text: string): LivePlaylist | undefined {
  const lines = text.split(/\r?\n/).map((line) => line.trim());
  if (lines[0] !== '#EXTM3U') return undefined;
  let targetDurationMs = 0;
  let sequence = 0;
  let pendingDurationMs: number | undefined;
  let ended = false;
  let multivariant = false;
  const segments: PlaylistSegment[] = [];
  const seen = new Set<string>();
  const add = (uri: string, durationMs: number) => {
    if (seen.has(uri)) return;
    seen.add(uri);
    segments.push({ uri, durationMs, sequence });
  };
  for (const line of lines.slice(1)) {
    if (line === '') continue;
    if (line.startsWith('#EXT-X-TARGETDURATION:')) {
      targetDurationMs = Number(line.slice(line.indexOf(':') + 1)) * 1000;
    } else if (line.startsWith('#EXT-X-MEDIA-SEQUENCE:')) {
      sequence = Number(line.slice(line.indexOf(':') + 1));
    } else if (line.startsWith('#EXTINF:')) {
      pendingDurationMs = Number.parseFloat(line.slice(line.indexOf(':') + 1)) * 1000;
    } else if (line.startsWith('#EXT-X-MAP:')) {
      const uri = attribute(line.slice(line.indexOf(':') + 1), 'URI');
      if (uri) add(uri, 0);
    } else if (line === '#EXT-X-ENDLIST') {
      ended = true;
    } else if (line.startsWith('#EXT-X-STREAM-INF:')) {
      multivariant = true;
    } else if (!line.startsWith('#') && pendingDurationMs !== undefined) {
      add(line, Number.isFinite(pendingDurationMs) ? pendingDurationMs : 0);
      pendingDurationMs = undefined;
      sequence++;
    }
  }
  if (!Number.isFinite(targetDurationMs) || !Number.isSafeInteger(sequence)) return undefined;
  const windowMs = segments.reduce((sum, segment) => sum + segment.durationMs, 0);
  return { targetDurationMs, segments, windowMs, ended, multivariant };
}
