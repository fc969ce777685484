import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/**
 * Bundles the tracker CLI entry (TypeScript sources, not dist/) into one .mjs a child `node` can run,
 * so process-level tests need no prior `npm run build`. ws and ioredis stay external (node_modules).
 */
export async function bundleTrackerCli(): Promise<string> {
  const outfile = join(root, 'test', '.cache', `tracker-cli-${process.pid}-${Math.random().toString(36).slice(2)}.mjs`);
  mkdirSync(dirname(outfile), { recursive: true });
  await build({
    entryPoints: [join(root, 'test', 'tracker', 'fixtures', 'tracker-cli.ts')],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    external: ['ws', 'ioredis'],
    outfile,
    logLevel: 'silent',
  });
  return outfile;
}
