import { afterEach, describe, expect, it, vi } from 'vitest';
import { EARLY_TAKEOVER_MAX_BYTES, MediaTakeovers, earlyTakeoverPieces, takeoverPieces, type TakeoverComponents } from '../../src/engine/media-takeover.js';
import { parseManifest, type Manifest } from '../../src/shared/manifest.js';

// 10 pieces of 512 KiB: a 100 s video, 10 s per piece. An early takeover allows 2 MiB loaded: 4 pieces.
const VIDEO = { size: 10 * 512 * 1024, pieceSize: 512 * 1024 };
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
    addEventListener: () => {},
  };
  return media;
}

/**
 * Holdings of this page and its peers, and what the takeover asked of them. The origin stores a
 * piece asked of it (through the SW) unless `originDelivers` is false; `peersExpected` is what the
 * tracker said; `clock` is the takeovers' clock (ms).
 */
function world({ peers = [] as number[], own = [] as number[], peersDeliver = true, originDelivers = true, peersExpected = false, seeds = true, clock = { ms: 0 } } = {}) {
  const stored = new Set(own);
  const fetched: number[] = [];
  const fromOrigin: number[] = [];
  const told: string[] = [];
  const readAt: number[] = [];
  const world = {
    readAt,
    fetched,
    fromOrigin,
    told,
    stored,
    instance: undefined as MediaTakeovers | undefined,
    components: {
      holds: (_asset, piece) => stored.has(piece),
      peerHolds: (_asset, piece) => peers.includes(piece),
      fetchFromPeers: async (_asset, piece) => {
        fetched.push(piece);
        if (peersDeliver) stored.add(piece);
        return peersDeliver;
      },
      prefetchFromOrigin: (asset, piece) => {
        fromOrigin.push(piece);
        if (!originDelivers) return;
        // As the SW does: the piece-delivered notice comes later, in another task.
        setTimeout(() => {
          stored.add(piece);
          world.instance?.onStored(asset, piece);
        }, 0);
      },
      peersExpected: () => peersExpected,
      reading: (_asset, piece) => readAt.push(piece),
      seeds: () => seeds,
      now: () => clock.ms,
      beforeReload: async (url) => {
        told.push(url);
        return true;
      },
    } satisfies TakeoverComponents as TakeoverComponents,
  };
  return world;
}

const running: MediaTakeovers[] = [];
afterEach(() => {
  running.splice(0).forEach((takeovers) => takeovers.stop());
  vi.useRealTimers();
});

async function takeovers(media: ReturnType<typeof element>, components: TakeoverComponents | ReturnType<typeof world>): Promise<MediaTakeovers> {
  const instance = new MediaTakeovers([media as unknown as HTMLMediaElement], await manifest(), 'components' in components ? components.components : components);
  if ('components' in components) components.instance = instance;
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

describe('earlyTakeoverPieces', () => {
  it('resumes from the first piece and those from a keyframe before the playhead to 2 s past it', () => {
    // Just started: everything is in the first piece.
    expect(earlyTakeoverPieces(VIDEO, { currentTime: 2, duration: 100, bufferedEnd: 5 })).toEqual([0]);
    // Playhead at 12 s (keyframe at 7 s, piece 0), 2 s ahead in piece 1; loaded into piece 2.
    expect(earlyTakeoverPieces(VIDEO, { currentTime: 12, duration: 100, bufferedEnd: 25 })).toEqual([0, 1]);
    // Loaded up to 4 pieces, exactly the bound: the keyframe 5 s back is in piece 3.
    expect(4 * VIDEO.pieceSize).toBe(EARLY_TAKEOVER_MAX_BYTES);
    expect(earlyTakeoverPieces(VIDEO, { currentTime: 38, duration: 100, bufferedEnd: 38 })).toEqual([0, 3, 4]);
  });

  it('is no longer possible once the element loaded more than the bound, or before the duration is known', () => {
    // 6 pieces loaded (3 MiB): the reload would have the origin send too much again.
    expect(earlyTakeoverPieces(VIDEO, { currentTime: 35, duration: 100, bufferedEnd: 55 })).toBeUndefined();
    expect(earlyTakeoverPieces(VIDEO, { currentTime: 20, duration: 100, bufferedEnd: 100 })).toBeUndefined();
    expect(earlyTakeoverPieces(VIDEO, { currentTime: 0, duration: Number.NaN, bufferedEnd: 0 })).toBeUndefined();
  });
});

describe('MediaTakeovers', () => {
  it('leaves the element on the network when it loaded more than an early takeover allows and no peer holds a piece it has not loaded', async () => {
    const media = element(35, 55);
    // Peers hold only what the element already has.
    const { components, fetched, told, readAt } = world({ peers: [0, 1, 2, 3, 4, 5] });
    await takeovers(media, components);
    expect(media.reloads).toEqual([]);
    expect(fetched).toEqual([]);
    expect(told).toEqual([]);
    // Peers are told (at each check) where it loads from the network next, piece 6: they tell a
    // page what they hold of a video only once it said it reads it.
    expect([...new Set(readAt)]).toEqual([6]);
  });

  it('takes a viewer alone in the swarm over early: the pieces to resume from come from the origin into the store, then the reload', async () => {
    const media = element(12, 25);
    const alone = world();
    await takeovers(media, alone);
    expect(alone.fromOrigin).toEqual([0, 1]);
    expect(alone.told).toEqual([URL_OF_VIDEO]);
    expect(media.reloads).toEqual([`${URL_OF_VIDEO}#peerfetch`]);
    expect(media.currentTime).toBe(12);
  });

  it('does not take over early a viewer that uploads nothing, but still when peers hold pieces it has not loaded', async () => {
    const media = element(12, 25);
    // Upload limit 0: its pieces would reach nobody.
    const leech = world({ seeds: false });
    await takeovers(media, leech);
    expect(leech.fromOrigin).toEqual([]);
    expect(media.reloads).toEqual([]);
    // It pays (peers hold what it lacks): the takeover goes ahead, its pieces read again from peers.
    const gaining = world({ seeds: false, peers: [0, 1, 2, 3, 4] });
    await takeovers(media, gaining);
    expect(gaining.fetched).toEqual([0, 1, 2]);
    expect(media.reloads).toEqual([`${URL_OF_VIDEO}#peerfetch`]);
  });

  it('reads the pieces to resume from from peers where they hold them, even with nothing ahead to gain', async () => {
    const media = element(12, 25);
    // Peers hold only what the element already has: nothing to gain, but the origin need not send them again.
    const early = world({ peers: [0, 1, 2] });
    await takeovers(media, early);
    expect(early.fetched).toEqual([0, 1]);
    expect(early.fromOrigin).toEqual([]);
    expect(media.reloads).toEqual([`${URL_OF_VIDEO}#peerfetch`]);
  });

  it('does not take over early when the origin does not deliver the pieces to resume from', async () => {
    vi.useFakeTimers();
    const media = element(12, 25);
    const failing = world({ originDelivers: false });
    const instance = new MediaTakeovers([media as unknown as HTMLMediaElement], await manifest(), failing.components);
    running.push(instance);
    // Past the wait for the pieces (8 s): the attempt gave up, and the checks every second try again.
    await vi.advanceTimersByTimeAsync(9000);
    expect(failing.fromOrigin.slice(0, 2)).toEqual([0, 1]);
    expect(failing.fromOrigin.length).toBeGreaterThan(2);
    expect(media.reloads).toEqual([]);
  });

  it('waits up to 2 s for the peers the tracker reported before an early takeover', async () => {
    const media = element(12, 25);
    const clock = { ms: 0 };
    const expecting = world({ peersExpected: true, clock });
    const instance = await takeovers(media, expecting);
    expect(expecting.fromOrigin).toEqual([]);
    expect(media.reloads).toEqual([]);
    clock.ms = 1999;
    await instance.consider();
    expect(media.reloads).toEqual([]);
    clock.ms = 2000;
    await instance.consider();
    expect(expecting.fromOrigin).toEqual([0, 1]);
    expect(media.reloads).toEqual([`${URL_OF_VIDEO}#peerfetch`]);
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
