// Types of topology.mjs (plain JavaScript so that bench/run.mjs can import it without a build).

/** One home: a NAT router and the visitors behind it. */
export interface HomeSpec {
  /**
   * `cone` (default): MASQUERADE keeps a mapping per local port (endpoint-independent), so
   * server-reflexive candidates work. `symmetric`: MASQUERADE `--random-fully`, a new port per
   * destination, so only TURN connects this home to another.
   */
  nat?: 'cone' | 'symmetric';
  /** Visitors (namespaces, one Chromium each) behind the router. Default 1. */
  visitors?: number;
  /** Upload cap of the home's line in kbit/s (tbf on the router's wan egress). Default: none. */
  uplinkKbit?: number;
  /** Download cap of the home's line in kbit/s (tbf on the internet end's egress). Default: none. */
  downlinkKbit?: number;
  /** Random loss in percent, each direction, on the router's forwarding path (iptables statistic). Default 0. */
  lossPercent?: number;
  /**
   * `open` (default); `blocked`: no UDP leaves the home (TCP only); `turn-only`: UDP only to
   * {@link TURN_ADDRESS}, the TURN server's address.
   */
  udp?: 'open' | 'blocked' | 'turn-only';
}

/** What {@link buildTopology} builds. */
export interface TopologySpec {
  homes: HomeSpec[];
}

/** One visitor: a namespace behind its home's router. */
export interface Visitor {
  /** Its network namespace (`ip netns exec NAME ...`), unique per run. */
  readonly name: string;
  /** Index of its home in `topology.homes`. */
  readonly home: number;
  /** Index within its home. */
  readonly index: number;
  /** Its LAN address, e.g. 192.168.1.2 (what its host ICE candidate carries). */
  readonly address: string;
  /**
   * An executable that runs Chromium inside this visitor's namespace: pass it to
   * playwright-core as `executablePath` (Playwright talks to Chromium over a pipe, which crosses
   * namespaces).
   */
  readonly executablePath: string;
  /** `[command, args]` that run `command args` inside this visitor's namespace (for spawn / startProcess). */
  command(command: string, args?: readonly string[]): [string, string[]];
}

/** One home as built. */
export interface Home {
  readonly index: number;
  /** The router's namespace. */
  readonly router: string;
  /** The router's address on the internet: every visitor of this home appears there (server-reflexive address). */
  readonly wanAddress: string;
  /** The home's LAN, e.g. 192.168.1.0/24. */
  readonly lanPrefix: string;
  readonly nat: 'cone' | 'symmetric';
  readonly udp: 'open' | 'blocked' | 'turn-only';
  /** 0 = not capped. */
  readonly uplinkKbit: number;
  /** 0 = not capped. */
  readonly downlinkKbit: number;
  readonly lossPercent: number;
  readonly visitors: readonly Visitor[];
  /**
   * Changes the line's conditions while the topology runs (e.g. a test with and without a cap):
   * only the fields given change; `null` lifts a cap; `lossPercent: 0` ends the loss.
   *
   * @example
   * topology.homes[0].shape({ uplinkKbit: 2000 });
   * topology.homes[0].shape({ uplinkKbit: null, lossPercent: 0 });
   */
  shape(line: { uplinkKbit?: number | null; downlinkKbit?: number | null; lossPercent?: number }): void;
  /** Bytes that crossed the home's line so far, counted at the router's wan interface: `up` = sent to the internet, `down` = received. */
  lineBytes(): { up: number; down: number };
}

/** A built topology. Call destroy() when done (it also runs on process exit and SIGINT/SIGTERM). */
export interface Topology {
  readonly internet: {
    /** Where the servers listen (tracker, origin, page host): 198.18.0.1. */
    readonly address: string;
    /** Where the TURN server listens: 198.18.0.2. */
    readonly turnAddress: string;
    /** The internet's bridge in the caller's namespace. */
    readonly bridge: string;
  };
  readonly homes: readonly Home[];
  /** Every visitor, home by home. */
  readonly visitors: readonly Visitor[];
  /** Kills what still runs in the topology's namespaces and removes them. Idempotent. */
  destroy(): void;
}

/** 198.18.0.1: the servers' address on the internet. */
export const INTERNET_ADDRESS: string;
/** 198.18.0.2: the TURN server's address on the internet. */
export const TURN_ADDRESS: string;

/** True when this process may build a topology: root on Linux inside the private namespace of `npm test` / `npm run bench`. */
export function canBuildTopology(): boolean;

/**
 * Builds homes behind NAT routers, visitors behind them and an internet (the caller's namespace)
 * for the servers. Throws a clear Error on a bad description or a failed step (after removing
 * what it built).
 *
 * @example
 * const topology = buildTopology({ homes: [{ nat: 'cone' }, { nat: 'symmetric', uplinkKbit: 2000, lossPercent: 1 }] });
 * try {
 *   const browser = await chromium.launch({ executablePath: topology.visitors[0].executablePath, args: [...CHROMIUM_ARGS] });
 * } finally {
 *   topology.destroy();
 * }
 */
export function buildTopology(spec: TopologySpec): Topology;

/** Checks a topology description and fills in its defaults (0 = no cap, no loss). */
export function normalizeHomes(spec: TopologySpec): Required<HomeSpec>[];

/** `tc` arguments of a tbf rate cap of `kbit` kbit/s on `device`. */
export function tbfArgs(device: string, kbit: number): string[];

/** The Chromium flag that makes pages at these http:// origins secure contexts (service workers), e.g. `http://198.18.0.1:8080`. */
export function secureOriginArgs(origins: readonly string[]): string[];
