/**
 * The little of a DASH MPD (ISO/IEC 23009-1) that a live manifest needs: the files its
 * SegmentTemplates name through a SegmentTimeline (what ffmpeg's dash muxer writes by default),
 * in play order, how long they play, and whether the presentation is over. A pure function over
 * text; an MPD of another shape (SegmentList, SegmentBase, a template without a timeline) names
 * no segments here, and its files then simply come from the origin.
 */
import type { LivePlaylist, PlaylistSegment } from './hls-playlist.js';

function attributes(tag: string): Map<string, string> {
  const found = new Map<string, string>();
  for (const match of tag.matchAll(/([\w:]+)\s*=\s*"([^"]*)"/g)) found.set(match[1]!, match[2]!);
  return found;
}

/** ISO 8601 duration as MPDs write it (`PT2.0S`, `PT1M4.5S`, `P1DT2H`) in ms; undefined when not one. */
export function isoDurationMs(text: string | undefined): number | undefined {
  const match = text === undefined ? null : /^P(?:(\d+(?:\.\d+)?)D)?(?:T(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?)?$/.exec(text);
  if (!match) return undefined;
  const [, days, hours, minutes, seconds] = match.map((part) => Number(part ?? 0));
  return (((days! * 24 + hours!) * 60 + minutes!) * 60 + seconds!) * 1000;
}

/** Fills a SegmentTemplate's identifiers (ISO/IEC 23009-1 §5.3.9.4.4), with their `%0Nd` widths. */
function fill(template: string, values: Record<string, string | number>): string {
  return template.replace(/\$(\w*)(?:%0(\d+)d)?\$/g, (whole, name: string, width: string | undefined) => {
    if (name === '') return '$';
    const value = values[name];
    if (value === undefined) return whole;
    return width === undefined ? String(value) : String(value).padStart(Number(width), '0');
  });
}

/** The SegmentTemplate (with its timeline) inside `xml`, or undefined. */
function segmentTemplate(xml: string): { attributes: Map<string, string>; timeline: Map<string, string>[] | undefined } | undefined {
  const open = /<SegmentTemplate\b([^>]*?)(\/?)>/.exec(xml);
  if (!open) return undefined;
  const attributesOf = attributes(open[1]!);
  if (open[2] === '/') return { attributes: attributesOf, timeline: undefined };
  const body = xml.slice(open.index + open[0].length, xml.indexOf('</SegmentTemplate>', open.index));
  const timeline = /<SegmentTimeline\b/.test(body) ? [...body.matchAll(/<S\b([^>]*?)\/?>/g)].map((s) => attributes(s[1]!)) : undefined;
  return { attributes: attributesOf, timeline };
}

/**
 * Parses an MPD's text. Returns undefined for text that is not an MPD (for example one read
 * while another program was still writing it).
 *
 * @example
 * parseDashMpd(await readFile('.live.mpd', 'utf8'))?.segments.map((segment) => segment.uri)
 */
export function parseDashMpd(text: string): LivePlaylist | undefined {
  const mpd = /<MPD\b([^>]*)>/.exec(text);
  if (!mpd || !text.includes('</MPD>')) return undefined;
  const mpdAttributes = attributes(mpd[1]!);
  const segments: PlaylistSegment[] = [];
  const seen = new Set<string>();
  let windowMs = 0;
  let longestMs = isoDurationMs(mpdAttributes.get('maxSegmentDuration')) ?? 0;
  const add = (uri: string, durationMs: number, sequence: number) => {
    if (seen.has(uri)) return;
    seen.add(uri);
    segments.push({ uri, durationMs, sequence });
  };
  for (const adaptation of text.matchAll(/<AdaptationSet\b[\s\S]*?<\/AdaptationSet>/g)) {
    const setXml = adaptation[0];
    const setTemplate = segmentTemplate(setXml.replace(/<Representation\b[\s\S]*?<\/Representation>/g, ''));
    for (const representation of setXml.matchAll(/<Representation\b([^>]*)>([\s\S]*?)<\/Representation>/g)) {
      const representationAttributes = attributes(representation[1]!);
      const template = segmentTemplate(representation[2]!) ?? setTemplate;
      if (!template?.timeline) continue;
      const values = { RepresentationID: representationAttributes.get('id') ?? '', Bandwidth: representationAttributes.get('bandwidth') ?? '' };
      const timescale = Number(template.attributes.get('timescale') ?? 1);
      let number = Number(template.attributes.get('startNumber') ?? 1);
      const initialization = template.attributes.get('initialization');
      const media = template.attributes.get('media');
      if (!media || !(timescale > 0) || !Number.isSafeInteger(number)) continue;
      if (initialization) add(fill(initialization, values), 0, number);
      let time = 0;
      let representationMs = 0;
      for (const s of template.timeline) {
        if (s.has('t')) time = Number(s.get('t'));
        const duration = Number(s.get('d'));
        const repeat = Number(s.get('r') ?? 0);
        // A negative r (repeat until the next S or the period's end) names segments this parser cannot count: stop.
        if (!(duration > 0) || !Number.isSafeInteger(repeat) || repeat < 0) break;
        for (let i = 0; i <= repeat; i++) {
          const durationMs = (duration / timescale) * 1000;
          add(fill(media, { ...values, Number: number, Time: time }), durationMs, number);
          longestMs = Math.max(longestMs, durationMs);
          representationMs += durationMs;
          number++;
          time += duration;
        }
      }
      windowMs = Math.max(windowMs, representationMs);
    }
  }
  return {
    targetDurationMs: longestMs,
    segments,
    windowMs,
    ended: mpdAttributes.get('type') !== 'dynamic',
    multivariant: false,
  };
}
