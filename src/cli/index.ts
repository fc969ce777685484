/** Entry point of the `peerfetch` command (built into dist/node/cli.mjs, loaded by bin/peerfetch.js). */
import { runCli } from './run-cli.js';

process.exitCode = await runCli(process.argv.slice(2));
