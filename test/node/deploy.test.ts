/**
 * The operator files in deploy/: the systemd unit as systemd itself parses it, and the container
 * recipe's pieces that can be checked without a container engine (this machine has none running).
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { TRACKER_USAGE } from '../../src/tracker/cli.js';
import { envNameOf } from '../../src/shared/command-line.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const UNIT = path.join(ROOT, 'deploy', 'peerfetch-tracker.service');

describe('deploy/peerfetch-tracker.service', () => {
  it('passes systemd-analyze verify with no warning', () => {
    const verify = spawnSync('systemd-analyze', ['verify', UNIT], { encoding: 'utf8' });
    if (verify.error) throw new Error(`systemd-analyze is needed for this test (Debian: the systemd package): ${verify.error.message}`);
    // Unknown keys and unparsable values are only warnings on stderr (exit 0): both must be empty.
    expect(verify.stderr).toBe('');
    expect(verify.status).toBe(0);
  });

  it('sets only environment variables that `peerfetch tracker` reads, and runs its command', async () => {
    const unit = await readFile(UNIT, 'utf8');
    const flags = [...TRACKER_USAGE.matchAll(/^ {2}--([a-z-]+)/gm)].map((match) => match[1]!);
    const known = new Set(flags.map(envNameOf));
    const set = [...unit.matchAll(/^Environment=(.*)$/gm)].flatMap((match) => match[1]!.split(/\s+/).map((pair) => pair.split('=')[0]!));
    expect(set.length).toBeGreaterThan(0);
    for (const name of set) expect(known, name).toContain(name);
    expect(unit).toMatch(/^ExecStart=\S+ \/opt\/peerfetch\/node_modules\/peerfetch\/bin\/peerfetch\.js tracker$/m);
  });
});

describe('deploy/Dockerfile', () => {
  it('installs the packed tarball with the tracker packages and starts the tracker on its variables', async () => {
    const dockerfile = await readFile(path.join(ROOT, 'deploy', 'Dockerfile'), 'utf8');
    const manifest = JSON.parse(await readFile(path.join(ROOT, 'package.json'), 'utf8')) as { devDependencies: Record<string, string> };
    // The versions it installs are the ones the tests run against.
    for (const name of ['ws', '@btc-vision/uwebsockets.js', 'ioredis', 'prom-client']) expect(dockerfile).toContain(`${name}@${manifest.devDependencies[name]}`);
    const entry = /^ENTRYPOINT (\[.*\])$/m.exec(dockerfile);
    expect(JSON.parse(entry![1]!)).toEqual(['node', 'node_modules/peerfetch/bin/peerfetch.js', 'tracker']);
    const env = /^ENV (.*)$/m.exec(dockerfile)![1]!.split(/\s+/).map((pair) => pair.split('=')[0]!);
    const flags = [...TRACKER_USAGE.matchAll(/^ {2}--([a-z-]+)/gm)].map((match) => envNameOf(match[1]!));
    for (const name of env.filter((name) => name.startsWith('PEERFETCH_'))) expect(flags).toContain(name);
    expect(existsSync(path.join(ROOT, 'bin', 'peerfetch.js'))).toBe(true);
  });
});
