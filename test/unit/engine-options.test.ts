import { describe, expect, it } from 'vitest';
import { resolveOptions, type PeerfetchOptions } from '../../src/engine/options.js';
import { isPeerfetchError } from '../../src/shared/errors.js';
import { isOwnWorkerFile } from '../../src/shared/worker-file.js';

const page = new URL('https://video.example/watch/film') as unknown as Location;

/** The error message resolveOptions gives for these options, or undefined when they are valid. */
function refusal(options: PeerfetchOptions): string | undefined {
  try {
    resolveOptions(options, page);
    return undefined;
  } catch (error) {
    if (!isPeerfetchError(error, 'option-invalid')) throw error;
    return error.message;
  }
}

describe('engine options', () => {
  it('fills the defaults from the page', () => {
    expect(resolveOptions({}, page)).toEqual({
      trackers: [],
      manifest: 'https://video.example/peerfetch-manifest.json',
      sw: 'https://video.example/peerfetch-sw.js',
      swarm: 'https://video.example/watch/film',
      iceServers: undefined,
      relay: 'ahead',
      debug: false,
      p2p: true,
      storeCapBytes: undefined,
      uploadLimit: undefined,
    });
  });

  it('takes an upload limit of 0: seed nothing', () => {
    expect(resolveOptions({ uploadLimit: 0 }, page).uploadLimit).toBe(0);
  });

  it('takes STUN URLs as strings and TURN servers with credentials', () => {
    const turn = { urls: ['turns:turn.example:443', 'turn:turn.example:3478'], username: 'u', credential: 'c' };
    expect(resolveOptions({ iceServers: ['stun:stun.example:3478', turn], tracker: 'wss://t.example, ws://127.0.0.1:8000' }, page)).toMatchObject({
      iceServers: [{ urls: 'stun:stun.example:3478' }, turn],
      trackers: ['wss://t.example/', 'ws://127.0.0.1:8000/'],
    });
  });

  it.each<[string, PeerfetchOptions, RegExp]>([
    ['a TURN URL without credentials', { iceServers: ['turn:turn.example'] }, /TURN server turn:turn\.example needs a username and a credential/],
    ['a TURN object without a credential', { iceServers: [{ urls: 'turns:turn.example', username: 'u' }] }, /needs a username and a credential/],
    ['an ICE URL of another scheme', { iceServers: ['https://stun.example'] }, /must start with stun:, stuns:, turn: or turns:/],
    ['an ICE server with no urls', { iceServers: [{ urls: [] }] }, /has no urls/],
    ['an ICE server that is a number', { iceServers: [42 as unknown as string] }, /must be a URL or \{ urls, username, credential \}/],
    ['an unknown relay policy', { relay: 'sometimes' as 'all' }, /relay \(data-relay\) must be all, ahead or never, got "sometimes"/],
    ['an http tracker', { tracker: 'http://t.example/announce' }, /must be a ws: or wss: URL/],
    ['a tracker that is not a URL', { tracker: 'tracker' }, /"tracker" is not a URL/],
    ['a fractional store cap', { storeCapBytes: 1.5 }, /storeCapBytes \(data-store-cap-bytes\) must be a positive whole number, got 1\.5/],
    ['a negative upload limit', { uploadLimit: -1 }, /uploadLimit \(data-upload-limit\) must be a positive whole number, got -1/],
  ])('refuses %s with option-invalid', (_name, options, message) => {
    expect(refusal(options)).toMatch(message);
  });
});

describe("data-sw: peerfetch's own worker or the site's", () => {
  it.each([
    ['/peerfetch-sw.js', true],
    ['/static/peerfetch-sw.js', true],
    ['/sw.js', false],
    ['/service-worker.js', false],
    ['/my-peerfetch-sw.js', false],
    ['/peerfetch-sw.mjs', false],
    ['/peerfetch-sw.js/', false],
  ])("%s is peerfetch's own: %s", (url, own) => {
    expect(isOwnWorkerFile(url)).toBe(own);
  });
});
