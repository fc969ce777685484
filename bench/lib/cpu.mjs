// CPU time of what a benchmark run started (Chromium's processes, the tracker, origin, watcher and
// ffmpeg: every descendant of this Node process), by process kind and thread, read from /proc.
// CPU seconds do not depend on how busy the rest of the machine is, unlike startup times and
// stalls: they tell where a system's cost goes even on a shared machine.
import { readdirSync, readFileSync } from 'node:fs';

/** Clock ticks per second of /proc's utime and stime (USER_HZ, 100 on Linux x86-64). */
const TICKS_PER_SECOND = 100;

const read = (path) => {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null; // the process or thread ended meanwhile
  }
};

/** Fields of /proc/<pid>/stat after the command name (which may hold spaces and parentheses). */
function statFields(text) {
  return text.slice(text.lastIndexOf(')') + 2).split(' ');
}

/** What a process is: Chromium's browser, renderer, GPU or utility (named by its service), or the command it runs. */
function processKind(pid) {
  // Chromium's child processes rewrite their title: their cmdline is one string, arguments separated by spaces.
  const argv = (read(`/proc/${pid}/cmdline`) ?? '').split(/[\0 ]/).filter(Boolean);
  const type = argv.find((arg) => arg.startsWith('--type='))?.slice('--type='.length);
  if (/chrom/i.test(argv[0] ?? '')) {
    if (!type) return 'chromium browser';
    if (type === 'utility') return `chromium ${argv.find((arg) => arg.startsWith('--utility-sub-type='))?.split('=')[1].split('.')[0] ?? 'utility'}`;
    return `chromium ${type}`;
  }
  // `node …/peerfetch.js tracker`, `node …/origin-server.mjs`, ffmpeg.
  const script = argv.slice(1).find((arg) => /\.m?js$/.test(arg));
  const name = (argv[0] ?? '?').split('/').pop();
  return script ? `${name} ${script.split('/').pop()}${argv.includes('tracker') ? ' tracker' : argv.includes('--watch') ? ' manifest --watch' : ''}` : name;
}

/** Pids of every descendant of `rootPid`, itself excluded. */
function descendants(rootPid) {
  const children = new Map();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = read(`/proc/${entry}/stat`);
    if (!stat) continue;
    const parent = Number(statFields(stat)[1]);
    if (!children.has(parent)) children.set(parent, []);
    children.get(parent).push(Number(entry));
  }
  const found = [];
  const queue = [rootPid];
  while (queue.length) for (const child of children.get(queue.shift()) ?? []) found.push(child), queue.push(child);
  return found;
}

/**
 * CPU ticks so far of every thread of every descendant process, keyed `pid/tid`.
 * @returns {Map<string, { pid: number, kind: string, thread: string, ticks: number }>}
 */
export function cpuSnapshot(rootPid = process.pid) {
  const threads = new Map();
  for (const pid of descendants(rootPid)) {
    const kind = processKind(pid);
    let tids = [];
    try {
      tids = readdirSync(`/proc/${pid}/task`);
    } catch {
      continue;
    }
    for (const tid of tids) {
      const stat = read(`/proc/${pid}/task/${tid}/stat`);
      if (!stat) continue;
      const fields = statFields(stat);
      // utime and stime are fields 14 and 15 of stat(5), 11 and 12 after the command name.
      const ticks = Number(fields[11]) + Number(fields[12]);
      const thread = (read(`/proc/${pid}/task/${tid}/comm`) ?? '?').trim().replace(/\d+$/, '');
      threads.set(`${pid}/${tid}`, { pid, kind, thread, ticks });
    }
  }
  return threads;
}

/**
 * CPU seconds between two snapshots: in total, per process kind, per kind and thread name, and per
 * renderer process (a viewer's page and service worker share its renderer). A thread that ended
 * between the two is not counted.
 */
export function cpuBetween(before, after) {
  const byKind = {};
  const byThread = {};
  const renderers = {};
  let total = 0;
  for (const [key, { pid, kind, thread, ticks }] of after) {
    const seconds = (ticks - (before.get(key)?.ticks ?? 0)) / TICKS_PER_SECOND;
    if (seconds <= 0) continue;
    total += seconds;
    byKind[kind] = (byKind[kind] ?? 0) + seconds;
    const threadKey = `${kind}: ${thread}`;
    byThread[threadKey] = (byThread[threadKey] ?? 0) + seconds;
    if (kind === 'chromium renderer') renderers[pid] = (renderers[pid] ?? 0) + seconds;
  }
  const round = (record) => Object.fromEntries(Object.entries(record).sort((a, b) => b[1] - a[1]).map(([key, seconds]) => [key, Number(seconds.toFixed(2))]));
  // Renderers by pid: an object's integer keys keep ascending order whatever the insertion order, so sorted as a list.
  const busiestFirst = Object.values(renderers).sort((a, b) => b - a).map((seconds) => Number(seconds.toFixed(2)));
  return { totalSeconds: Number(total.toFixed(2)), byKind: round(byKind), byThread: round(byThread), renderers: busiestFirst };
}
