// p2p-media-loader v2 with hls.js, bundled by esbuild with the `p2pml:core-as-bundle` export
// condition. Default settings except the two that would leave the machine: the announce
// trackers (default: public trackers) are our local tracker, and the STUN servers (default:
// public STUN) are none on the LAN, where host candidates are all a private network needs, or the
// run's own STUN server in the WAN scenario (`ice` in the query string), the one peerfetch gets too.
import Hls from 'hls.js';
import { HlsJsP2PEngine } from 'p2p-media-loader-hlsjs';

const query = new URLSearchParams(location.search);
const tracker = query.get('tracker');
const iceServers = query.get('ice') ? [{ urls: query.get('ice') }] : [];
const video = document.createElement('video');
video.muted = true;
video.autoplay = true;
window.__bench.attach(video);
document.body.append(video);

const HlsWithP2P = HlsJsP2PEngine.injectMixin(Hls);
const hls = new HlsWithP2P({
  // The same hls.js settings as every other system's page (see hlsConfig in bench/lib/probe.js).
  ...window.__bench.hlsConfig,
  p2p: {
    core: { announceTrackers: [tracker], rtcConfig: { iceServers } },
    onHlsJsCreated(instance) {
      // http / p2p: bytes received per source; p2pSegments: bytes of segments completed from peers (used).
      const bySource = { http: 0, p2p: 0, p2pSegments: 0 };
      window.__bench.set('p2pml', bySource);
      instance.p2pEngine.addEventListener('onChunkDownloaded', (bytes, source) => {
        bySource[source] = (bySource[source] ?? 0) + bytes;
      });
      instance.p2pEngine.addEventListener('onSegmentLoaded', (details) => {
        if (details.downloadSource === 'p2p') bySource.p2pSegments += details.bytesLength;
      });
    },
  },
});
hls.on(Hls.Events.ERROR, (_event, data) => {
  if (data.fatal) window.__bench.error(`hls.js fatal ${data.type}: ${data.details}`);
});
window.__bench.watchHls(hls, Hls.Events, video);
// `src`: another playlist (the live scenario's); the VOD rendition by default.
hls.loadSource(query.get('src') ?? '/hls/index.m3u8');
hls.attachMedia(video);
video.play().catch((error) => window.__bench.error(`play(): ${error.message}`));
