#!/usr/bin/env node
// The CLI is built from src/cli into dist/node (npm run build); this file only loads it.
import { existsSync } from 'node:fs';

const cli = new URL('../dist/node/cli.mjs', import.meta.url);
if (!existsSync(cli)) {
  process.stderr.write('peerfetch: the CLI is not built yet: run `npm run build` in the peerfetch package first.\n');
  process.exit(1);
}
await import(cli.href);
