#!/usr/bin/env node
// The CLI is built from src/cli into dist/node (npm run build); this file only loads it.
import '../dist/node/cli.mjs';
