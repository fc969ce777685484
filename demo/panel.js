// The demo's live panel: this viewer's figures from `peerfetch.getStats()` (redrawn on every
// `stats` event), the swarm's from the tracker's /stats.json, a piece map of the video playing
// and a chart of the offload ratio over time. Every figure cell carries its raw number in
// `data-value`, so tests compare the panel with getStats() exactly.

/** How often the swarm figures are polled from the tracker, in ms (the tracker itself refreshes them from each viewer's report every 10 s). */
const SWARM_POLL_MS = 2000;
/** The chart's time window, in seconds: it grows from 30 s to two minutes, enough to see a viewer join and catch up. */
const CHART_MIN_SECONDS = 30;
const CHART_SECONDS = 120;
/** Chart size in SVG units when it is not laid out (e.g. a hidden tab); otherwise its size in CSS pixels, so text is not stretched. */
const CHART_DEFAULT_SIZE = { width: 320, height: 120 };

const $ = (selector) => document.querySelector(selector);
const svg = (name, attributes) => {
  const element = document.createElementNS('http://www.w3.org/2000/svg', name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, String(value));
  return element;
};

/** `1.23 MB`: decimal units, like the kB/s of the upload cap and of `peerfetch demo --rate`. */
export function formatBytes(bytes) {
  if (bytes < 1000) return `${bytes} B`;
  if (bytes < 1000 * 1000) return `${(bytes / 1000).toFixed(1)} kB`;
  return `${(bytes / 1000 / 1000).toFixed(2)} MB`;
}

export const formatRatio = (ratio) => `${(ratio * 100).toFixed(1)} %`;

/** Sets a figure cell: its text and its raw value. */
function setFigure(cell, value, format) {
  cell.dataset.value = String(value);
  cell.textContent = format(value);
}

/** The tracker's HTTP base and the swarm id (SHA-1 of the swarm key, hex) of this page, from the script tag. */
async function swarmStatsUrl() {
  const script = document.querySelector('script[data-tracker]');
  const key = script?.dataset.swarm ?? `${location.origin}${location.pathname}`;
  const tracker = script?.dataset.tracker.split(',')[0].trim();
  if (!tracker) return undefined;
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-1', new TextEncoder().encode(key)));
  const hex = [...digest].map((byte) => byte.toString(16).padStart(2, '0')).join('');
  return `${tracker.replace(/^ws/, 'http')}/stats.json?info_hash=${hex}`;
}

/**
 * Wires the panel to a peerfetch instance (or to nothing, when peerfetch did not load).
 * Returns `showVideo(matches)`: which assets (by URL path) the piece map shows.
 */
export function createPanel(peerfetch) {
  let matches = () => false;
  /** Offload samples for the chart: `{ t (ms), local, swarm }`, oldest first. */
  const history = [];
  let swarmRatio;

  function draw(stats) {
    for (const cell of document.querySelectorAll('[data-stat]')) {
      const name = cell.dataset.stat;
      setFigure(cell, stats[name], name === 'offloadRatio' ? formatRatio : name === 'peers' ? String : formatBytes);
    }
    drawPeers(stats.peerList);
    drawPieces(stats.assets);
    history.push({ t: Date.now(), local: stats.offloadRatio, swarm: swarmRatio });
    while (history.length > 0 && history[0].t < Date.now() - CHART_SECONDS * 1000) history.shift();
    drawChart();
  }

  function drawPeers(peerList) {
    const rows = peerList.map((peer) => {
      const row = document.createElement('tr');
      row.dataset.peer = peer.id;
      const cells = [
        [peer.id.slice(-6), undefined],
        [formatBytes(peer.bytesDownloaded), peer.bytesDownloaded],
        [formatBytes(peer.bytesUploaded), peer.bytesUploaded],
        // The engine's measured download rate from this peer; nothing measured before its first piece.
        [peer.bytesDownloaded > 0 ? `${formatBytes(peer.throughput)}/s` : '–', peer.throughput],
      ];
      for (const [text, value] of cells) {
        const cell = document.createElement('td');
        cell.textContent = text;
        if (value !== undefined) cell.dataset.value = String(value);
        row.append(cell);
      }
      row.cells[0].title = peer.id;
      return row;
    });
    if (rows.length === 0) {
      rows.push(Object.assign(document.createElement('tr'), { className: 'empty', innerHTML: '<td colspan="4">No peers yet: open another viewer</td>' }));
    }
    $('#peer-rows').replaceChildren(...rows);
  }

  /** One cell per piece of the video playing, coloured by `sources` ('.', 'o', 'p', 's'); a gap between HLS segments. */
  function drawPieces(assets) {
    const shown = assets.filter((asset) => matches(new URL(asset.url, location.href).pathname));
    const counts = { o: 0, p: 0, s: 0, '.': 0 };
    $('#piece-map').replaceChildren(
      ...shown.map((asset) => {
        const group = document.createElement('span');
        group.className = 'asset';
        group.title = new URL(asset.url, location.href).pathname;
        group.style.setProperty('--pieces', String(asset.pieces));
        for (const code of asset.sources) {
          counts[code] += 1;
          const cell = document.createElement('i');
          cell.className = code === '.' ? 'src-none' : `src-${code}`;
          group.append(cell);
        }
        return group;
      }),
    );
    const total = counts.o + counts.p + counts.s + counts['.'];
    $('#piece-summary').textContent = total === 0 ? '' :
      `${total} pieces: ${counts.p} from peers, ${counts.o} from the origin, ${counts.s} stored before, ${counts['.']} not yet loaded`;
  }

  function drawChart() {
    const chart = $('#chart');
    const box = chart.getBoundingClientRect();
    const { width, height } = box.width > 0 ? box : CHART_DEFAULT_SIZE;
    chart.setAttribute('viewBox', `0 0 ${width} ${height}`);
    const now = Date.now();
    const span = Math.max(CHART_MIN_SECONDS * 1000, now - (history[0]?.t ?? now));
    const x = (t) => width - ((now - t) / span) * width;
    const y = (ratio) => height - 4 - ratio * (height - 8);
    const label = (ratio) => (ratio === 1 ? y(ratio) + 11 : y(ratio) - 3); // inside the chart, never clipped
    const children = [];
    for (const ratio of [0, 0.5, 1]) {
      children.push(svg('line', { x1: 0, x2: width, y1: y(ratio), y2: y(ratio), class: 'grid' }));
      children.push(Object.assign(svg('text', { x: 2, y: label(ratio), class: 'axis' }), { textContent: `${ratio * 100} %` }));
    }
    const local = history.map((sample) => `${x(sample.t).toFixed(1)},${y(sample.local).toFixed(1)}`);
    if (local.length > 0) {
      const area = `M${x(history[0].t).toFixed(1)},${y(0)} L${local.join(' L')} L${x(history.at(-1).t).toFixed(1)},${y(0)} Z`;
      children.push(svg('path', { d: area, class: 'area-local' }));
      children.push(svg('polyline', { points: local.join(' '), class: 'line-local' }));
    }
    const swarm = history.filter((sample) => sample.swarm !== undefined);
    if (swarm.length > 0) {
      children.push(svg('polyline', { points: swarm.map((s) => `${x(s.t).toFixed(1)},${y(s.swarm).toFixed(1)}`).join(' '), class: 'line-swarm' }));
    }
    chart.replaceChildren(...children);
  }

  async function pollSwarm(url) {
    try {
      const response = await fetch(url, { cache: 'no-store' });
      const [swarm] = (await response.json()).swarms ?? [];
      if (swarm) {
        swarmRatio = swarm.offloadRatio;
        setFigure($('[data-swarm-stat="offloadRatio"]'), swarm.offloadRatio, formatRatio);
        setFigure($('[data-swarm-stat="peers"]'), swarm.peers, String);
        setFigure($('[data-swarm-stat="bytesFromPeers"]'), swarm.bytesFromPeers, formatBytes);
      }
    } catch {
      // Tracker down: the swarm figures stay as they were; this viewer's own figures go on.
    }
  }

  if (peerfetch) {
    peerfetch.addEventListener('stats', ({ detail }) => draw(detail));
    draw(peerfetch.getStats());
    swarmStatsUrl().then((url) => {
      if (!url) return;
      void pollSwarm(url);
      setInterval(() => pollSwarm(url), SWARM_POLL_MS);
    });
  }

  return {
    showVideo(next) {
      matches = next;
      if (peerfetch) drawPieces(peerfetch.getStats().assets);
    },
  };
}
