import { copyFile, mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import type { Page } from 'playwright-core';
import { waitFor } from '../harness/browser.js';
import { ensureTestVideo, HLS_SEGMENT_SECONDS, liveSourceVideo, startLiveSource, type LiveSource, type LiveSourceOptions } from '../harness/media.js';
import { startProcess, type RunningProcess } from '../harness/processes.js';
import { createTestSite, startOrigin, startTracker, type TestSite } from './test-site.js';
import { parseDashMpd } from '../../src/cli/dash-mpd.js';
import { parseHlsPlaylist } from '../../src/cli/hls-playlist.js';

/**
 * Segments (count) the published playlist lists when startRunningStream resolves: a running
 * stream, so that hls.js started then begins three segments behind the edge with 4-6 s buffered
 * whenever a new segment appears, as for any viewer who joins after the stream's first seconds.
 * A player started on the first playlist (one segment) plays about one segment behind the edge
 * with under a second buffered at each new segment: its pieces cannot wait for the member
 * fetching them for the swarm (engine/playback-slack.ts, originSlackMs), and the viewer whose
 * playlist reloads come first after each publication rightly takes every piece from the origin
 * (live HLS test, engine log at load 9: seg-00001 to seg-00005 from the origin, "no-peer" with
 * 0.5-0.8 s buffered, 0 B from peers). Whether players met one segment or three depended on how
 * long a busy machine took to start them (at load 16 hls.js's first playlist listed three).
 */
export const RUNNING_STREAM_SEGMENTS = 3;

/** A test site with a live stream: ffmpeg writing in real time, `peerfetch manifest --watch`, origin and tracker. */
export interface LiveSiteFixture {
  readonly site: TestSite;
  /** The live source, once started. */
  readonly source: LiveSource;
  /**
   * Starts the live source (once; later calls wait for the same start) and resolves when its
   * first playlist is published. Tests start it once their viewers are open: on a loaded machine
   * opening them takes long, and a stream started earlier could be over before they play.
   */
  startSource(): Promise<void>;
  /**
   * Starts the live source (see startSource) and resolves once its published playlist lists
   * RUNNING_STREAM_SEGMENTS segments: players started then join a running stream.
   */
  startRunningStream(): Promise<void>;
  readonly originUrl: string;
  readonly trackerUrl: string;
  /** URL path of the published playlist (`/live/index.m3u8`, `/dash/live.mpd`). */
  readonly playlist: string;
}

/**
 * Registers beforeAll/afterAll hooks: a test site (with the players' scripts at its root), the
 * watcher, origin and tracker, and a live source of `options.format` for the site's `folder`
 * (see startSource). One source per test file: a live test needs real time.
 */
export function useLiveSite(folder: string, options: LiveSourceOptions): LiveSiteFixture {
  let site: TestSite | undefined;
  let source: LiveSource | undefined;
  let starting: Promise<void> | undefined;
  let processes: RunningProcess[] = [];
  let originUrl = '';
  let trackerUrl = '';
  const published = options.format === 'hls' ? 'index.m3u8' : 'live.mpd';
  beforeAll(async () => {
    site = await createTestSite(await ensureTestVideo({ name: 'live-page', seconds: 2, kbps: 200 }), '64KiB');
    await copyFile('node_modules/hls.js/dist/hls.min.js', join(site.dir, 'hls.min.js'));
    await copyFile('node_modules/dashjs/dist/modern/umd/dash.all.min.js', join(site.dir, 'dash.all.min.js'));
    await mkdir(join(site.dir, folder));
    const watcher = await startProcess('node', ['bin/peerfetch.js', 'manifest', site.dir, '--watch', '--piece-size', '64KiB'], {
      readyPattern: /watching/,
      name: 'peerfetch manifest --watch',
    });
    const origin = await startOrigin(site.dir);
    const tracker = await startTracker();
    processes = [watcher, origin.origin, tracker.tracker];
    ({ originUrl } = origin);
    ({ trackerUrl } = tracker);
    // Encoded ahead (cached), so that starting the source takes no time.
    await ensureTestVideo(liveSourceVideo(options));
  });
  afterAll(async () => {
    await Promise.allSettled([source?.stop(), ...processes.map((process) => process.stop())]);
  });
  const ready = <T>(value: T | undefined): T => {
    if (value === undefined) throw new Error('useLiveSite: available only inside tests, after beforeAll');
    return value;
  };
  const startSource = () => {
    starting ??= (async () => {
      const dir = ready(site).dir;
      source = await startLiveSource(join(dir, folder), options);
      await waitFor(() => readFile(join(dir, folder, published), 'utf8').catch(() => ''), { what: 'the first published playlist' });
    })();
    return starting;
  };
  /** Play time (ms) of the segments the published playlist lists now; 0 before it is readable. */
  const publishedWindowMs = async () => {
    const text = await readFile(join(ready(site).dir, folder, published), 'utf8').catch(() => '');
    return (options.format === 'hls' ? parseHlsPlaylist : parseDashMpd)(text)?.windowMs ?? 0;
  };
  return {
    get site() {
      return ready(site);
    },
    get source() {
      return ready(source);
    },
    startSource,
    async startRunningStream() {
      await startSource();
      const segmentMs = HLS_SEGMENT_SECONDS * 1000;
      let windowMs = 0;
      await waitFor(async () => (windowMs = await publishedWindowMs()) >= RUNNING_STREAM_SEGMENTS * segmentMs, {
        timeoutMs: (RUNNING_STREAM_SEGMENTS + 2) * segmentMs + 10_000,
        what: `the published playlist to list ${RUNNING_STREAM_SEGMENTS} segments`,
      }).catch((error: Error) => {
        throw new Error(`${error.message}; it last listed ${windowMs} ms`);
      });
    },
    get originUrl() {
      return originUrl;
    },
    get trackerUrl() {
      return trackerUrl;
    },
    playlist: `/${folder}/${published}`,
  };
}

/** What {@link watchPlayback} records in the page, as `window.live`. */
export interface PlaybackFigures {
  /** Buffer underruns after the first frame played (`waiting` with nothing buffered ahead). */
  rebuffers: number;
  /** Seconds of media played since the first frame. */
  played: number;
  /** Wall clock minus the program date time of the frame on screen (ms), sampled once a second (HLS only). */
  latencies: number[];
  ended: boolean;
  /** A fatal player error, if any. */
  fatal?: string;
}

/**
 * Creates a muted, playing <video> and records its figures in `window.live`; returns nothing,
 * the page's player script attaches to `window.liveVideo`.
 */
export async function watchPlayback(page: Page): Promise<void> {
  await page.evaluate(() => {
    const w = window as unknown as { live: PlaybackFigures; liveVideo: HTMLVideoElement };
    const live: PlaybackFigures = (w.live = { rebuffers: 0, played: 0, latencies: [], ended: false });
    const video = (w.liveVideo = document.createElement('video'));
    video.muted = true;
    document.body.append(video);
    let startedAt: number | undefined;
    video.addEventListener('playing', () => (startedAt ??= video.currentTime));
    video.addEventListener('timeupdate', () => {
      if (startedAt !== undefined) live.played = Math.max(live.played, video.currentTime - startedAt);
    });
    video.addEventListener('waiting', () => {
      if (startedAt === undefined) return;
      // A rebuffer is a stall with nothing buffered ahead: the bytes were late. A stall with
      // data ahead (a decoder or main-thread hiccup on a busy machine, the player stepping over
      // a hole at a segment border) happens alike without peerfetch and says nothing about delivery.
      const { buffered, currentTime } = video;
      let ahead = 0;
      for (let i = 0; i < buffered.length; i++) if (buffered.start(i) <= currentTime + 0.1) ahead = Math.max(ahead, buffered.end(i) - currentTime);
      if (ahead < 0.1) live.rebuffers++;
    });
    video.addEventListener('ended', () => (live.ended = true));
  });
}

export function playbackFigures(page: Page): Promise<PlaybackFigures> {
  return page.evaluate(() => (window as unknown as { live: PlaybackFigures }).live);
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? NaN;
}
