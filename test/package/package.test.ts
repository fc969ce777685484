/**
 * The npm package as a user gets it: the repository's tracked files copied without dist/ (a fresh
 * clone), `npm pack` there (its prepack builds dist/), the tarball installed into a scratch project
 * with the registry out of reach (`npm install --offline`: the package has no install-time
 * dependencies), and every entry point used from there.
 */
import { execFile, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readFile, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import vm from 'node:vm';
import { build } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = path.resolve(import.meta.dirname, '../..');
const NODE_MODULES = path.join(ROOT, 'node_modules');
/**
 * Bound (ms) for one npm or node command: a pack builds everything (about 20 s of CPU here, but
 * over 180 s of wall time measured with the machine's two cores at load 30).
 */
const COMMAND_TIMEOUT_MS = 300_000;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(command: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(command, args, { cwd, timeout: COMMAND_TIMEOUT_MS, env: { ...process.env, ...env }, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** npm of the Node running this test (so a Node 24 run also packs and installs with Node 24). */
function npm(args: string[], cwd: string): Promise<Run> {
  const npmCli = path.join(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'bin', 'npm-cli.js');
  return existsSync(npmCli) ? run(process.execPath, [npmCli, ...args], cwd) : run('npm', args, cwd);
}

/** Runs an ES module in the scratch project, where `peerfetch` resolves to the installed tarball. */
function node(scratch: string, source: string): Promise<Run> {
  return run(process.execPath, ['--input-type=module', '-e', source], scratch);
}

let work: string;
let scratch: string;
let tarballFiles: string[];
let installed: string;

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'peerfetch-package-'));
  const clone = path.join(work, 'clone');
  const tracked = spawnSync('git', ['ls-files', '-z'], { cwd: ROOT, encoding: 'utf8' });
  if (tracked.status !== 0) throw new Error(`git ls-files failed: ${tracked.stderr}`);
  for (const file of tracked.stdout.split('\0').filter(Boolean)) {
    if (!existsSync(path.join(ROOT, file))) continue; // deleted in the working tree
    await mkdir(path.dirname(path.join(clone, file)), { recursive: true });
    await cp(path.join(ROOT, file), path.join(clone, file));
  }
  // The clone's dependencies are the repository's (npm ci already ran there); dist/ is not copied.
  await symlink(NODE_MODULES, path.join(clone, 'node_modules'), 'dir');
  const pack = await npm(['pack', '--json', '--pack-destination', work], clone);
  if (pack.code !== 0) throw new Error(`npm pack failed (${pack.code}): ${pack.stderr.slice(-2000)}`);
  const [packed] = JSON.parse(pack.stdout.slice(pack.stdout.indexOf('['))) as { filename: string; files: { path: string }[] }[];
  tarballFiles = packed!.files.map((file) => file.path).sort();
  const tarball = path.join(work, packed!.filename);

  scratch = path.join(work, 'site');
  await mkdir(scratch);
  await writeFile(path.join(scratch, 'package.json'), JSON.stringify({ name: 'scratch-site', private: true, type: 'module' }));
  const install = await npm(['install', '--offline', '--no-audit', '--no-fund', '--ignore-scripts', tarball], scratch);
  if (install.code !== 0) throw new Error(`npm install of the tarball failed (${install.code}): ${install.stderr.slice(-2000)}`);
  installed = path.join(scratch, 'node_modules', 'peerfetch');
}, COMMAND_TIMEOUT_MS * 2);

afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

/** Makes an optional peer dependency available to the scratch project (the repository's copy). */
async function provide(name: string): Promise<void> {
  const target = path.join(scratch, 'node_modules', name);
  if (existsSync(target)) return;
  await mkdir(path.dirname(target), { recursive: true });
  await symlink(path.join(NODE_MODULES, name), target, 'dir');
}

/**
 * Bundles `entry` of the scratch project for the browser as a site's build would; returns the code
 * and the files it took from node_modules other than peerfetch's (none: peerfetch carries its own).
 */
async function bundleInScratch(entry: string, format: 'esm' | 'iife'): Promise<{ code: string; inputs: string[]; foreign: string[] }> {
  const result = await build({
    entryPoints: [path.join(scratch, entry)],
    absWorkingDir: scratch,
    bundle: true,
    format,
    platform: 'browser',
    write: false,
    metafile: true,
    logLevel: 'silent',
  });
  const inputs = Object.keys(result.metafile.inputs);
  const foreign = inputs.filter((input) => input.startsWith('node_modules/') && !input.startsWith('node_modules/peerfetch/'));
  return { code: result.outputFiles[0]!.text, inputs, foreign };
}

/** Type-checks `lines` as the scratch project's `file` (strict, bundler resolution, plus `options`); returns tsc's exit code and output. */
async function typecheckInScratch(file: string, lines: string[], options: Record<string, unknown>): Promise<{ code: number; output: string }> {
  await writeFile(path.join(scratch, file), [...lines, ''].join('\n'));
  const config = `tsconfig.${path.parse(file).name}.json`;
  const compilerOptions = { target: 'es2022', module: 'esnext', moduleResolution: 'bundler', strict: true, noEmit: true, ...options };
  await writeFile(path.join(scratch, config), JSON.stringify({ compilerOptions, files: [file] }));
  const tsc = await run(process.execPath, [path.join(NODE_MODULES, 'typescript', 'bin', 'tsc'), '-p', config], scratch);
  return { code: tsc.code, output: tsc.stdout + tsc.stderr };
}

describe('the packed tarball', () => {
  it('holds the built files, the bin and the docs, and no sources, tests or demo', () => {
    for (const file of [
      'package.json',
      'README.md',
      'LICENSE',
      'bin/peerfetch.js',
      'dist/peerfetch.js',
      'dist/peerfetch-sw.js',
      'dist/peerfetch-sw.mjs',
      'dist/peerfetch.mjs',
      'dist/node/cli.mjs',
      'dist/node/tracker.mjs',
      'dist/node/manifest.mjs',
      'dist/types/engine/index.d.ts',
      'dist/types/sw/module.d.ts',
      'dist/types/tracker/index.d.ts',
      'dist/types/cli/build-manifest.d.ts',
    ]) {
      expect(tarballFiles, file).toContain(file);
    }
    expect(tarballFiles.filter((file) => /^(src|test|bench|demo|deploy)\//.test(file))).toEqual([]);
  });

  it('installs without any other package: the browser libraries are bundled, the tracker packages are optional peers', async () => {
    const manifest = JSON.parse(await readFile(path.join(installed, 'package.json'), 'utf8')) as Record<string, unknown>;
    expect(manifest.dependencies ?? {}).toEqual({});
    expect(Object.keys(manifest.peerDependencies as object).sort()).toEqual(['@btc-vision/uwebsockets.js', '@trufflesuite/uws-js-unofficial', 'ioredis', 'prom-client', 'ws']);
    expect(Object.values(manifest.peerDependenciesMeta as Record<string, { optional: boolean }>).every((meta) => meta.optional)).toBe(true);
    expect(manifest).toMatchObject({ sideEffects: expect.arrayContaining(['./dist/peerfetch.js', './dist/peerfetch-sw.js']), keywords: expect.arrayContaining(['p2p', 'webrtc']) });
    expect((await readdir(path.join(scratch, 'node_modules'))).filter((name) => !name.startsWith('.'))).toEqual(['peerfetch']);
  });
});

describe('entry points of the installed package', () => {
  it("'peerfetch' bundles for the browser with idb and workbox-window inside", async () => {
    await writeFile(path.join(scratch, 'main.js'), "import { start, PeerfetchError } from 'peerfetch';\nglobalThis.peerfetchEntry = { start, PeerfetchError };\n");
    const { code, inputs, foreign } = await bundleInScratch('main.js', 'esm');
    expect(inputs).toContain('node_modules/peerfetch/dist/peerfetch.mjs');
    // Nothing else was pulled in from the site's node_modules: the ESM build carries its dependencies.
    expect(foreign).toEqual([]);
    expect(code).not.toMatch(/\bfrom\s*["'](idb|workbox-window)["']/);
    expect(code).toContain('function start(');
  });

  it.each([
    ['peerfetch/script', 'dist/peerfetch.js'],
    ['peerfetch/sw', 'dist/peerfetch-sw.js'],
  ])('%s resolves to %s, a self-contained classic script', async (specifier, file) => {
    const resolved = await node(scratch, `process.stdout.write(import.meta.resolve(${JSON.stringify(specifier)}))`);
    expect(resolved.stdout).toBe(`file://${path.join(installed, file)}`);
    const source = await readFile(path.join(installed, file), 'utf8');
    // A classic script compiles as a Script (an ES module's import/export would not), and loads nothing else.
    expect(() => new vm.Script(source, { filename: file })).not.toThrow();
    expect(source).not.toMatch(/\bimportScripts\(|\bimport\(/);
  });

  it("'peerfetch/sw-module' is one ES module that a site's worker bundles with nothing else pulled in", async () => {
    const resolved = await node(scratch, "process.stdout.write(import.meta.resolve('peerfetch/sw-module'))");
    expect(resolved.stdout).toBe(`file://${path.join(installed, 'dist/peerfetch-sw.mjs')}`);
    const source = await readFile(path.join(installed, 'dist/peerfetch-sw.mjs'), 'utf8');
    // A module worker may load it as it is: no further files (module workers refuse import()).
    expect(source).not.toMatch(/\bimportScripts\(|\bimport\(|\bimport\s*[{*"']/);
    await writeFile(
      path.join(scratch, 'site-sw.js'),
      "import { startPeerfetch } from 'peerfetch/sw-module';\nconst peerfetch = startPeerfetch();\nself.addEventListener('fetch', (event) => peerfetch.handleFetch(event));\n",
    );
    const { code, inputs, foreign } = await bundleInScratch('site-sw.js', 'iife');
    expect(inputs).toContain('node_modules/peerfetch/dist/peerfetch-sw.mjs');
    expect(foreign).toEqual([]);
    // The bundle is a classic worker script (what Workbox's injectManifest and most bundlers emit).
    expect(() => new vm.Script(code, { filename: 'site-sw.js' })).not.toThrow();
  });

  it("types a site's worker that uses 'peerfetch/sw-module', as a fetch helper and as a Workbox route", async () => {
    await provide('workbox-core');
    await provide('workbox-routing');
    const lines = [
      "import { registerRoute } from 'workbox-routing';",
      "import { startPeerfetch, type PeerfetchWorker } from 'peerfetch/sw-module';",
      'declare const self: ServiceWorkerGlobalScope;',
      "const peerfetch: PeerfetchWorker = startPeerfetch({ manifest: '/media/peerfetch-manifest.json', storeCapBytes: 1e8 });",
      'registerRoute(peerfetch.matcher, peerfetch.handler);',
      "self.addEventListener('fetch', (event) => {",
      '  if (!peerfetch.handleFetch(event)) event.respondWith(fetch(event.request));',
      '});',
      '// @ts-expect-error: the store cap is a number of bytes',
      "startPeerfetch({ storeCapBytes: '100 MB' });",
      'export {};',
    ];
    expect(await typecheckInScratch('worker.ts', lines, { skipLibCheck: true, lib: ['es2022', 'webworker'], types: [] })).toEqual({ code: 0, output: '' });
  });

  it('types window.peerfetch, start() and the tracker for TypeScript users', async () => {
    const lines = [
      "import type {} from 'peerfetch';",
      "import { startTracker } from 'peerfetch/tracker';",
      "import { buildManifest } from 'peerfetch/manifest';",
      'const ratio: number | undefined = window.peerfetch?.getStats().offloadRatio;',
      "window.peerfetch?.addEventListener('peer:connect', (event) => event.detail.peerId.toUpperCase());",
      '// @ts-expect-error: not a peerfetch event',
      "window.peerfetch?.addEventListener('peer:unknown', () => {});",
      'const tracker: Promise<{ url: string; transport: string }> = startTracker({ port: 0 });',
      "const built: Promise<{ warnings: string[] }> = buildManifest('public');",
      'export { ratio, tracker, built };',
    ];
    const options = { lib: ['es2022', 'dom'], types: ['node'], typeRoots: [path.join(NODE_MODULES, '@types')] };
    expect(await typecheckInScratch('site.ts', lines, options)).toEqual({ code: 0, output: '' });
  });

  it("'peerfetch/manifest' hashes a folder", async () => {
    await mkdir(path.join(scratch, 'public', 'media'), { recursive: true });
    await writeFile(path.join(scratch, 'public', 'media', 'film.mp4'), Buffer.alloc(300_000, 3));
    const result = await node(
      scratch,
      "import { buildManifest } from 'peerfetch/manifest';\n" +
        "const { manifest } = await buildManifest('public');\n" +
        'process.stdout.write(JSON.stringify(manifest.assets.map((a) => [a.url, a.size, a.pieces.length])));',
    );
    expect(result.stderr).toBe('');
    expect(JSON.parse(result.stdout)).toEqual([['/media/film.mp4', 300_000, 2]]);
  });

  it("'peerfetch/tracker' names the package to install while neither transport is there, then serves /health, and /metrics once prom-client is there", async () => {
    const start = "import { startTracker } from 'peerfetch/tracker';\n";
    const missing = await node(scratch, `${start}await startTracker({ port: 0, host: '127.0.0.1', transport: 'node' });`);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toContain('npm install ws');

    await provide('ws');
    const health = await node(
      scratch,
      `${start}const tracker = await startTracker({ port: 0, host: '127.0.0.1', transport: 'node', logger: { log() {} } });\n` +
        'const health = await (await fetch(`${tracker.httpUrl}/health`)).json();\n' +
        'await tracker.close();\nprocess.stdout.write(JSON.stringify([tracker.transport, health.transport]));',
    );
    expect(health.stderr).toBe('');
    expect(JSON.parse(health.stdout)).toEqual(['node', 'node']);

    // /metrics names the package it needs, until it is there.
    const scrape =
      `${start}const tracker = await startTracker({ port: 0, host: '127.0.0.1', transport: 'node', logger: { log() {} } });\n` +
      'const metrics = await fetch(`${tracker.httpUrl}/metrics`);\n' +
      'const text = await metrics.text();\nawait tracker.close();\nprocess.stdout.write(JSON.stringify([metrics.status, text]));';
    const without = await node(scratch, scrape);
    expect(without.stderr).toBe('');
    expect(JSON.parse(without.stdout)).toEqual([501, expect.stringContaining('npm install prom-client')]);
    await provide('prom-client');
    const withMetrics = await node(scratch, scrape);
    expect(withMetrics.stderr).toBe('');
    const [status, text] = JSON.parse(withMetrics.stdout) as [number, string];
    expect(status).toBe(200);
    expect(text).toMatch(/^peerfetch_tracker_announce_duration_seconds_count 0$/m);
    expect(text).toMatch(/^nodejs_eventloop_lag_p99_seconds \S+$/m);

    const redis = await node(scratch, `${start}await startTracker({ port: 0, host: '127.0.0.1', transport: 'node', redisUrl: 'redis://127.0.0.1:9', logger: { log() {} } });`);
    expect(redis.code).not.toBe(0);
    expect(redis.stderr).toContain('npm install ioredis');
  });

  it('the CLI runs through npx: its help, a manifest, and the demo is not offered', async () => {
    const help = await run('npx', ['--offline', 'peerfetch', '--help'], scratch);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('manifest <dir>');
    expect(help.stdout).toContain('tracker');
    expect(help.stdout).not.toMatch(/^\s+demo\b/m);

    const demo = await run('npx', ['--offline', 'peerfetch', 'demo'], scratch);
    expect(demo.code).toBe(2);
    expect(demo.stderr).toContain('clone of the peerfetch repository');

    const manifest = await run('npx', ['--offline', 'peerfetch', 'manifest', 'public'], scratch);
    expect(manifest.code).toBe(0);
    const written = JSON.parse(await readFile(path.join(scratch, 'public', 'peerfetch-manifest.json'), 'utf8')) as { assets: { url: string }[] };
    expect(written.assets.map((asset) => asset.url)).toEqual(['/media/film.mp4']);
  });
});
