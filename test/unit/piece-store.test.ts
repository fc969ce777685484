import { describe, expect, it } from 'vitest';
import { MemoryPieceStore } from '../../src/store/piece-store.js';
import { pieceStoreContract } from '../contract/piece-store-contract.js';

describe('MemoryPieceStore (piece store contract)', () => {
  for (const [name, run] of Object.entries(pieceStoreContract)) {
    it(name, async () => {
      expect(await run(async (capBytes) => new MemoryPieceStore(capBytes))).toEqual([]);
    });
  }
});
