import type { PieceStore } from '../../src/store/piece-store.js';

/**
 * The behaviour every PieceStore implementation must have, written once and run against each
 * (MemoryPieceStore in Node, IdbPieceStore in real Chromium). Each case gets a fresh store with a
 * cap of 4 pieces of 1 KiB and returns a list of failures (empty = passed), so the same code runs
 * in a page, where vitest's `expect` is not available.
 */
export type StoreFactory = (capBytes: number, now: () => number) => Promise<PieceStore>;

const KIB = 1024;
const piece = (fill: number, size = KIB) => new Uint8Array(size).fill(fill);

export const pieceStoreContract: Record<string, (open: StoreFactory) => Promise<string[]>> = {
  async 'stores and returns pieces byte for byte, and lists them per asset'(open) {
    const store = await open(4 * KIB, () => 1);
    const failures: string[] = [];
    await store.put({ asset: 'a', piece: 2, data: piece(7) });
    await store.put({ asset: 'a', piece: 0, data: piece(5, 100) });
    await store.put({ asset: 'b', piece: 1, data: piece(9) });
    const got = await store.get('a', 2);
    if (!got || got.length !== KIB || got.some((byte) => byte !== 7)) failures.push('get returned other bytes');
    if ((await store.get('a', 1)) !== undefined) failures.push('get of a missing piece is not undefined');
    if (JSON.stringify(await store.list('a')) !== '[0,2]') failures.push(`list(a) = ${JSON.stringify(await store.list('a'))}`);
    if ((await store.size()) !== 2 * KIB + 100) failures.push(`size = ${await store.size()}`);
    const held = JSON.stringify([...(await store.held())].sort());
    if (held !== '[["a",[0,2]],["b",[1]]]') failures.push(`held() = ${held}`);
    store.close();
    return failures;
  },

  async 'evicts the least recently used pieces to stay under its cap'(open) {
    let clock = 0;
    const store = await open(4 * KIB, () => ++clock);
    const failures: string[] = [];
    for (let index = 0; index < 4; index++) await store.put({ asset: 'a', piece: index, data: piece(index) });
    await store.get('a', 0); // piece 0 is now the most recently used
    await store.put({ asset: 'a', piece: 4, data: piece(4) });
    const held = await store.list('a');
    if (JSON.stringify(held) !== '[0,2,3,4]') failures.push(`after eviction held ${JSON.stringify(held)}, expected [0,2,3,4]`);
    if ((await store.size()) > 4 * KIB) failures.push(`size ${await store.size()} over the cap`);
    store.close();
    return failures;
  },

  async 'stays under its cap when pieces are put at the same time'(open) {
    let clock = 0;
    const store = await open(4 * KIB, () => ++clock);
    const failures: string[] = [];
    // Stores put pieces as they arrive, several at once (the SW reads pieces ahead).
    await Promise.all(Array.from({ length: 8 }, (_, index) => store.put({ asset: 'a', piece: index, data: piece(index) })));
    if ((await store.size()) > 4 * KIB) failures.push(`size ${await store.size()} over the cap of ${4 * KIB}`);
    if ((await store.list('a')).length !== 4) failures.push(`held ${JSON.stringify(await store.list('a'))}, expected 4 pieces`);
    store.close();
    return failures;
  },

  async 'ignores a piece larger than the whole cap instead of failing'(open) {
    const store = await open(4 * KIB, () => 1);
    await store.put({ asset: 'a', piece: 0, data: piece(1, 5 * KIB) });
    const failures = (await store.list('a')).length === 0 ? [] : ['an oversized piece was stored'];
    store.close();
    return failures;
  },

  async 'deletes one piece, one asset or everything'(open) {
    const store = await open(8 * KIB, () => 1);
    const failures: string[] = [];
    for (const asset of ['a', 'b']) for (let index = 0; index < 3; index++) await store.put({ asset, piece: index, data: piece(index) });
    await store.delete('a', 1);
    if (JSON.stringify(await store.list('a')) !== '[0,2]') failures.push('delete(asset, piece) removed the wrong pieces');
    await store.delete('a');
    if ((await store.list('a')).length !== 0) failures.push('delete(asset) left pieces');
    if ((await store.list('b')).length !== 3) failures.push('delete(asset) touched another asset');
    await store.delete();
    if ((await store.size()) !== 0) failures.push('delete() left bytes');
    store.close();
    return failures;
  },

  async 'tells its removal listeners which pieces it evicted or deleted'(open) {
    let clock = 0;
    const store = await open(4 * KIB, () => ++clock);
    const failures: string[] = [];
    const heard: string[] = [];
    const stop = store.onRemoved(({ asset, pieces }) => heard.push(`${asset ?? '*'}:${pieces?.join(',') ?? '*'}`));
    for (let index = 0; index < 6; index++) await store.put({ asset: 'a', piece: index, data: piece(index) });
    // Pieces 0 and 1 were evicted, each when there was no room for a newer one.
    if (JSON.stringify(heard) !== '["a:0","a:1"]') failures.push(`evictions heard: ${JSON.stringify(heard)}`);
    await store.delete('a', 3);
    await store.delete('a');
    await store.delete();
    if (JSON.stringify(heard.slice(2)) !== '["a:3","a:*","*:*"]') failures.push(`deletions heard: ${JSON.stringify(heard.slice(2))}`);
    stop();
    await store.delete();
    if (heard.length !== 5) failures.push('a listener that unsubscribed was still called');
    store.close();
    return failures;
  },

  async 'keeps a copy: changing the caller buffer after put changes nothing'(open) {
    const store = await open(4 * KIB, () => 1);
    const data = piece(3);
    await store.put({ asset: 'a', piece: 0, data });
    data.fill(0);
    const got = await store.get('a', 0);
    store.close();
    return got?.[0] === 3 ? [] : ['the store kept a reference to the caller buffer'];
  },
};
