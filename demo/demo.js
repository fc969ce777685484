// The demo page's code: a video that starts once peerfetch is ready, and a panel of its stats.
// Plain browser JavaScript, no build step: this file is served as it is.

/** The demo video; its pieces are listed in /peerfetch-manifest.json, so peerfetch serves it. */
const VIDEO_URL = '/media/film.mp4';
/**
 * How long to wait for `peerfetch.ready` before playing without it, in ms. The first visit
 * installs the service worker (well under a second here); a site never waits long for P2P.
 */
const READY_TIMEOUT_MS = 4000;

const peerfetch = window.peerfetch; // set by /peerfetch.js (undefined if it failed to load)
const mode = document.getElementById('mode');

// 127.0.0.1 and 127.0.0.2 are distinct origins on one machine: point the link at the other one.
const other = location.hostname === '127.0.0.2' ? '127.0.0.1' : '127.0.0.2';
document.getElementById('second-viewer').href = `${location.protocol}//${other}:${location.port}/`;

// Create the <video> only once peerfetch is ready, i.e. once its service worker controls the page:
// requests made before that go straight to the origin. If ready never comes, play anyway.
function whenReady() {
  if (!peerfetch) return Promise.resolve('peerfetch did not load: plain playback');
  const timeout = new Promise((resolve) =>
    setTimeout(resolve, READY_TIMEOUT_MS, 'peerfetch not ready in time: plain playback'));
  const ready = peerfetch.ready.then(
    () => 'peerfetch ready: pieces come from peers, the local store or the origin',
    (error) => `peerfetch failed (${error}): plain playback`,
  );
  return Promise.race([ready, timeout]);
}

whenReady().then((status) => {
  mode.textContent = status;
  const video = document.createElement('video');
  video.src = VIDEO_URL;
  video.controls = true;
  video.muted = true; // muted videos may autoplay (Chromium's autoplay policy)
  video.autoplay = true;
  video.playsInline = true;
  document.getElementById('player').append(video);
});

// The stats panel: redraw on every `stats` event from getStats().
const formatBytes = (bytes) =>
  bytes < 1024 * 1024 ? `${(bytes / 1024).toFixed(1)} KiB` : `${(bytes / 1024 / 1024).toFixed(2)} MiB`;

function drawStats() {
  const stats = peerfetch.getStats();
  for (const cell of document.querySelectorAll('[data-stat]')) {
    const name = cell.dataset.stat;
    const value = stats[name] ?? 0;
    cell.textContent =
      name === 'offloadRatio' ? `${(value * 100).toFixed(1)} %` : name === 'peers' ? String(value) : formatBytes(value);
  }
}

if (peerfetch) {
  peerfetch.addEventListener('stats', drawStats);
  drawStats();
}
