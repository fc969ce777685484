import { describe, expect, it } from 'vitest';
import { contentRange, parseRange } from '../../src/shared/range.js';

describe('parseRange', () => {
  const size = 1000;
  it.each([
    [null, { kind: 'full' }],
    ['bytes=0-', { kind: 'partial', range: { start: 0, end: 999 } }],
    ['bytes=100-', { kind: 'partial', range: { start: 100, end: 999 } }],
    ['bytes=100-199', { kind: 'partial', range: { start: 100, end: 199 } }],
    ['bytes=100-5000', { kind: 'partial', range: { start: 100, end: 999 } }],
    ['bytes=999-999', { kind: 'partial', range: { start: 999, end: 999 } }],
    ['bytes=-100', { kind: 'partial', range: { start: 900, end: 999 } }],
    ['bytes=-5000', { kind: 'partial', range: { start: 0, end: 999 } }],
    ['bytes=1000-', { kind: 'unsatisfiable' }],
    ['bytes=5000-6000', { kind: 'unsatisfiable' }],
    ['bytes=-0', { kind: 'unsatisfiable' }],
    ['bytes=200-100', { kind: 'full' }],
    ['bytes=0-1,5-6', { kind: 'full' }],
    ['items=0-1', { kind: 'full' }],
    ['bytes=-', { kind: 'full' }],
    ['bytes=abc-', { kind: 'full' }],
    [' bytes=10-20 ', { kind: 'partial', range: { start: 10, end: 20 } }],
  ])('%j -> %j', (header, expected) => {
    expect(parseRange(header, size)).toEqual(expected);
  });

  it('treats every range of an empty asset as unsatisfiable', () => {
    expect(parseRange('bytes=0-', 0)).toEqual({ kind: 'unsatisfiable' });
  });

  it('writes Content-Range', () => {
    expect(contentRange({ start: 5, end: 9 }, 10)).toBe('bytes 5-9/10');
  });
});
