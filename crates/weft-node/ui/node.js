// The Node tab: identity, uptime, DHT, peers with RTT, and bandwidth.
//
// Bandwidth comes from /metrics (Prometheus text): the counters
// `libp2p_bandwidth_bytes_total{direction=...}` summed by direction. The
// rate is the difference between two samples 2 s apart; the last five
// minutes are kept for the plot.

import { get, request } from './api.js';
import { LineChart } from './plot.js';
import {
  $, clearError, el, fillTable, formatBytes, formatDuration, formatRate, setText, showError, shortId,
} from './util.js';

const HISTORY_S = 300;

const samples = [];
let chart = null;
let lastNode = null;

/** Sums `libp2p_bandwidth_bytes_total` by direction; null when absent. */
export function parseBandwidth(text) {
  let inbound = 0;
  let outbound = 0;
  let found = false;
  for (const line of text.split('\n')) {
    if (!line.startsWith('libp2p_bandwidth_bytes_total')) continue;
    const m = /^libp2p_bandwidth_bytes_total(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const direction = /direction="([^"]*)"/.exec(m[1] || '');
    const value = Number(m[2]);
    if (!direction || !Number.isFinite(value)) continue;
    found = true;
    if (/^in/i.test(direction[1])) inbound += value;
    else if (/^out/i.test(direction[1])) outbound += value;
  }
  return found ? { inbound, outbound } : null;
}

export function init() {
  chart = new LineChart($('#bandwidth-plot'), {
    yFormat: (v) => formatRate(v),
    xFormat: (x, min, max) => {
      const ago = max - x;
      if (ago < 0.05) return 'now';
      return `-${ago.toFixed(max - min < 10 ? 1 : 0)}s`;
    },
    binary: true,
    fill: true,
    window: HISTORY_S,
    emptyText: 'collecting samples…',
  });
}

/** Samples /metrics once (runs every 2 s whatever tab is shown). */
export async function sampleMetrics() {
  const response = await request('GET', '/metrics', { raw: true });
  const totals = parseBandwidth(await response.text()) || { inbound: 0, outbound: 0 };
  const t = performance.now() / 1000;
  const previous = samples[samples.length - 1];
  const sample = { t, inbound: totals.inbound, outbound: totals.outbound, inRate: null, outRate: null };
  if (previous) {
    const dt = t - previous.t;
    if (dt > 0) {
      // A counter that went down means the node restarted: no rate then.
      sample.inRate = Math.max(0, totals.inbound - previous.inbound) / dt;
      sample.outRate = Math.max(0, totals.outbound - previous.outbound) / dt;
    }
  }
  samples.push(sample);
  while (samples.length && samples[0].t < t - HISTORY_S - 10) samples.shift();
  setText('#bw-in-total', `${formatBytes(totals.inbound)} total`);
  setText('#bw-out-total', `${formatBytes(totals.outbound)} total`);
  setText('#bw-in-rate', sample.inRate === null ? '—' : formatRate(sample.inRate));
  setText('#bw-out-rate', sample.outRate === null ? '—' : formatRate(sample.outRate));
  drawBandwidth();
}

export function drawBandwidth() {
  if (!chart) return;
  const rated = samples.filter((s) => s.inRate !== null);
  chart.setSeries([
    { label: 'in', color: 'var(--plot-in)', points: rated.map((s) => [s.t, s.inRate]) },
    { label: 'out', color: 'var(--plot-out)', points: rated.map((s) => [s.t, s.outRate]) },
  ]);
}

/** The node's identity, for the header. */
export function nodeInfo() {
  return lastNode;
}

export async function refresh() {
  const [node, peers, dht] = await Promise.allSettled([
    get('/v1/node'),
    get('/v1/peers'),
    get('/v1/dht'),
  ]);
  const failed = [node, peers, dht].find((r) => r.status === 'rejected');
  if (failed) showError('#node-error', failed.reason);
  else clearError('#node-error');

  if (node.status === 'fulfilled') renderNode(node.value);
  if (dht.status === 'fulfilled') {
    const d = dht.value;
    setText('#dht-size', `${d.size} peer${d.size === 1 ? '' : 's'} in the routing table (${d.mode} mode)`);
  }
  if (peers.status === 'fulfilled') renderPeers(peers.value);
}

function renderNode(node) {
  lastNode = node;
  setText('#node-peer-id', node.peer_id);
  setText('#node-network', node.network);
  setText('#node-genesis', node.genesis);
  setText('#node-version', node.version);
  setText('#node-uptime', formatDuration(node.uptime_s));
  setText('#header-node', `${shortId(node.peer_id, 12, 6)} · ${node.network}`);
  $('#header-node').title = node.peer_id;
  $('#node-addrs').replaceChildren(
    ...(node.listen_addrs || []).map((a) => el('li', { text: a })),
  );
}

function renderPeers(peers) {
  setText('#peers-count', `(${peers.length})`);
  const rows = [...peers]
    .sort((a, b) => a.peer_id.localeCompare(b.peer_id))
    .map((p) =>
      el(
        'tr',
        { dataset: { peer: p.peer_id } },
        el('td', {}, el('code', { class: 'medium', title: p.peer_id, text: p.peer_id })),
        el('td', { text: p.direction }),
        el('td', { class: 'num', text: p.rtt_ms === null || p.rtt_ms === undefined ? '—' : `${p.rtt_ms.toFixed(1)} ms` }),
        el('td', { text: formatDuration(p.connected_s) }),
        el('td', { class: 'small', text: p.agent_version || '—' }),
        el('td', {}, el('code', { class: 'medium', title: (p.addrs || []).join('\n'), text: (p.addrs || [])[0] || '—' })),
      ),
    );
  fillTable($('#peers-list'), rows, 'No peers connected.');
}
