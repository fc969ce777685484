import { afterEach, describe, expect, it } from 'vitest';
import { MediaTakeovers, takeoverPieces, type TakeoverComponents } from '../../src/engine/media-takeover.js';
import { parseManifest, type Manifest } from '../../src/shared/manifest.js';

// 10 pieces of 16 KiB (the smallest piece a manifest allows): a 100 s video, 10 s per piece.
const VIDEO = { size: 10 * 16 * 1024, pieceSize: 16 * 1024 };
const URL_OF_VIDEO = 'https://site.example/media/video.mp4';

function manifest(): Promise<Manifest> {
  const pieces = Array.from({ length: 10 }, (_, index) => index.toString(16).padStart(64, '0'));
  return parseManifest(
    { version: 1, assets: [{ url: '/media/video.mp4', size: VIDEO.size, contentType: 'video/mp4', pieceSize: VIDEO.pieceSize, pieces }] },
    'https://site.example/peerfetch-manifest.json',
  );
}

/** A media element loading the video from the network: position and buffered range in seconds. */
function element(currentTime: number, bufferedEnd: number) {
  const media = {
    currentSrc: URL_OF_VIDEO,
    currentTime,
    duration: 100,
    paused: false,
    ended: false,
    playbackRate: 1,
    buffered: { length: 1, start: () => 0, end: () => bufferedEnd },
    reloads: [] as string[],
    set src(url: string) {
      media.currentSrc = url;
      media.reloads.push(url);
    },
    play: () => Promise.resolve(),
  };
  return media;
}

/** Holdings of this page and its peers, and what the takeover asked of them. */
function world({ peers = [] as number[], own = [] as number[], peersDeliver = true } = {}) {
  const stored = new Set(own);
  const fetched: number[] = [];
  const told: string[] = [];
  const components: TakeoverComponents = {
    holds: (_asset, piece) => stored.has(piece),
    peerHolds: (_asset, piece) => peers.includes(piece),
    fetchFromPeers: async (_asset, piece) => {
      fetched.push(piece);
      if (peersDeliver) stored.add(piece);
      return peersDeliver;
    },
    beforeReload: async (url) => {
      told.push(url);
      return true;
    },
  };
  return { components, fetched, told, stored };
}

const running: MediaTakeovers[] = [];
afterEach(() => running.splice(0).forEach((takeovers) => takeovers.stop()));

async function takeovers(media: ReturnType<typeof element>, components: TakeoverComponents): Promise<MediaTakeovers> {
  const instance = new MediaTakeovers([media as unknown as HTMLMediaElement], await manifest(), components);
  running.push(instance);
  await instance.consider();
  return instance;
}

describe('takeoverPieces', () => {
  it('reads again the first piece and those from a keyframe before the playhead to the buffered end; gains from the first piece not loaded', () => {
    // Playhead in piece 3 (its keyframe may be 5 s back, still piece 3), buffered to piece 5 (loaded in part).
    expect(takeoverPieces(VIDEO, { currentTime: 35, duration: 100, bufferedEnd: 55 })).toEqual({ firstUnloaded: 6, reread: [0, 3, 4, 5] });
    // The keyframe 5 s before 72 s is in piece 6.
    expect(takeoverPieces(VIDEO, { currentTime: 72, duration: 100, bufferedEnd: 80 })).toEqual({ firstUnloaded: 9, reread: [0, 6, 7, 8] });
    // Nothing buffered around the playhead: only its own pieces.
    expect(takeoverPieces(VIDEO, { currentTime: 2, duration: 100, bufferedEnd: 0 })).toEqual({ firstUnloaded: 1, reread: [0] });
  });

  it('gains nothing once the whole file is loaded, and knows nothing before the duration', () => {
    expect(takeoverPieces(VIDEO, { currentTime: 20, duration: 100, bufferedEnd: 100 })?.firstUnloaded).toBe(10);
    expect(takeoverPieces(VIDEO, { currentTime: 0, duration: Number.NaN, bufferedEnd: 0 })).toBeUndefined();
  });
});

describe('MediaTakeovers', () => {
  it('leaves the element on the network while no peer holds a piece it has not loaded', async () => {
    const media = element(35, 55);
    // Peers hold only what the element already has.
    const { components, fetched, told } = world({ peers: [0, 1, 2, 3, 4, 5] });
    await takeovers(media, components);
    expect(media.reloads).toEqual([]);
    expect(fetched).toEqual([]);
    expect(told).toEqual([]);
  });

  it('reads the pieces the element would read again from peers, then reloads it where it was', async () => {
    const media = element(35, 55);
    const { components, fetched, told } = world({ peers: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], own: [3] });
    await takeovers(media, components);
    expect(fetched).toEqual([0, 4, 5]);
    expect(told).toEqual([URL_OF_VIDEO]);
    expect(media.reloads).toEqual([`${URL_OF_VIDEO}#peerfetch`]);
    expect(media.currentTime).toBe(35);
  });

  it('does not reload when a piece it would read again cannot come from peers (it would come from the origin)', async () => {
    const media = element(35, 55);
    // A peer ahead of the element that no longer holds the header.
    const noHeader = world({ peers: [1, 2, 3, 4, 5, 6, 7, 8, 9] });
    await takeovers(media, noHeader.components);
    expect(noHeader.fetched).toEqual([]);
    expect(media.reloads).toEqual([]);
    // Peers that hold the pieces but do not deliver them.
    const failing = world({ peers: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], peersDeliver: false });
    await takeovers(media, failing.components);
    expect([...new Set(failing.fetched)]).toEqual([0]);
    expect(media.reloads).toEqual([]);
  });

  it('takes over once a peer comes to hold pieces ahead, and never twice', async () => {
    const media = element(35, 55);
    const peers: number[] = [];
    const { components } = world({ peers });
    const instance = await takeovers(media, components);
    expect(media.reloads).toEqual([]);
    peers.push(0, 1, 2, 3, 4, 5, 6);
    await instance.consider();
    expect(media.reloads).toEqual([`${URL_OF_VIDEO}#peerfetch`]);
    await instance.consider();
    expect(media.reloads).toHaveLength(1);
  });

  it('leaves alone an element that has loaded the whole file or plays something else', async () => {
    const loaded = element(35, 100);
    await takeovers(loaded, world({ peers: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9] }).components);
    expect(loaded.reloads).toEqual([]);
    const other = element(35, 55);
    other.currentSrc = 'https://site.example/media/other.mp4';
    await takeovers(other, world({ peers: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9] }).components);
    expect(other.reloads).toEqual([]);
  });
});
