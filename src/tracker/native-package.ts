import { createRequire } from 'node:module';
import path from 'node:path';

/**
 * uWebSockets.js, a WebSocket and HTTP server written in C++, from the npm packages that carry its
 * prebuilt binaries inside the tarball (no install script, no download at install time), in the
 * order they are tried. Both are optional peer dependencies: a site that only uses the browser
 * library downloads none of their binaries. Why these two: docs/native-transport.md.
 */
export const NATIVE_PACKAGES = [
  /**
   * uWebSockets.js v20.57.0, the upstream release binaries republished unchanged: Node 20, 22, 24
   * and 25 on Linux (x64, arm64; glibc >= 2.38), macOS and Windows.
   */
  { name: '@btc-vision/uwebsockets.js', binaryDir: (entry: string) => path.dirname(entry) },
  /** uWebSockets.js v20.30.0: Node 16, 18 and 20, and older glibc (Debian 12, RHEL 9). */
  { name: '@trufflesuite/uws-js-unofficial', binaryDir: (entry: string) => path.join(path.dirname(entry), '..', 'binaries') },
] as const;
/** The package README and errors name first. */
export const NATIVE_PACKAGE = NATIVE_PACKAGES[0].name;

/** What `loadNativeServer` returns: the module and the package it came from. */
export interface NativeServer {
  /**
   * The uWebSockets.js module. Typed loosely here so that the package's public declarations need
   * neither optional peer dependency installed; the transport gives it uWebSockets.js's types.
   */
  uws: unknown;
  packageName: string;
}

/**
 * Loads the uWebSockets.js binary for this platform and Node ABI from the first package in
 * NATIVE_PACKAGES that has a working one, directly rather than through the package's entry point
 * (one of them silently swaps in a JavaScript emulation when no binary fits, which would hide from
 * the operator that the tracker runs on the Node transport). Returns an Error with each package's
 * reason when none loads.
 */
export function loadNativeServer(): NativeServer | Error {
  const require = createRequire(import.meta.url);
  const binary = `uws_${process.platform}_${process.arch}_${process.versions.modules}.node`;
  const reasons: string[] = [];
  for (const candidate of NATIVE_PACKAGES) {
    let entry: string;
    try {
      entry = require.resolve(candidate.name);
    } catch {
      reasons.push(`${candidate.name} is not installed`);
      continue;
    }
    try {
      return { uws: require(path.join(candidate.binaryDir(entry), binary)) as unknown, packageName: candidate.name };
    } catch (error) {
      reasons.push(`${candidate.name} has no working binary for Node ${process.version} on ${process.platform}-${process.arch} (${(error as Error).message.split('\n')[0]})`);
    }
  }
  return new Error(reasons.join('; '));
}
