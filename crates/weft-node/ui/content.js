// The Content tab: share a file (uploaded as the raw body of
// POST /v1/blobs?name=...), fetch by ticket or hash (POST /v1/fetches, then
// GET /v1/fetches/{id} every 500 ms with a per-peer plot), and the local
// store (GET /v1/blobs) with pin, unpin, remove and gateway links.

import { del, get, post, upload, url } from './api.js';
import { LineChart, PALETTE } from './plot.js';
import {
  $, ask, clearError, copyText, el, fillTable, formatBytes, formatDuration, formatRate, setText,
  showError, toast,
} from './util.js';

const FETCH_POLL_MS = 500;
const DONE_STATES = new Set(['complete', 'failed', 'cancelled']);

let listKey = '';
let peerChart = null;
let activeFetch = null; // {id, hash, timer, history: Map(peer -> [[t, bytes]]), colors}

export function init({ onChanged }) {
  $('#share-form').addEventListener('submit', (e) => {
    e.preventDefault();
    share(onChanged);
  });
  $('#share-file').addEventListener('change', () => {
    clearError('#share-error');
    const file = $('#share-file').files[0];
    setText('#share-status', file ? `${file.name} (${formatBytes(file.size)})` : '');
  });
  // Dropping a file anywhere on the pick area picks it.
  const drop = $('#share-drop');
  drop.addEventListener('dragover', (e) => {
    e.preventDefault();
    drop.classList.add('dragging');
  });
  drop.addEventListener('dragleave', () => drop.classList.remove('dragging'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('dragging');
    if (!e.dataTransfer || !e.dataTransfer.files.length) return;
    $('#share-file').files = e.dataTransfer.files;
    $('#share-file').dispatchEvent(new Event('change'));
  });
  $('#share-copy-hash').addEventListener('click', (e) => copyText($('#share-hash').textContent, e.currentTarget));
  $('#share-copy-ticket').addEventListener('click', (e) => copyText($('#share-ticket').textContent, e.currentTarget));

  $('#fetch-form').addEventListener('submit', (e) => {
    e.preventDefault();
    startFetch(onChanged);
  });
  $('#fetch-cancel').addEventListener('click', cancelFetch);

  $('#content-list').addEventListener('click', (e) => listAction(e, onChanged));

  peerChart = new LineChart($('#fetch-peers-plot'), {
    yFormat: (v) => formatBytes(v),
    xFormat: (x) => `${x.toFixed(x < 10 ? 1 : 0)}s`,
    binary: true,
    emptyText: 'waiting for the first bytes…',
  });
}

// ---------------------------------------------------------------- share

async function share(onChanged) {
  clearError('#share-error');
  const file = $('#share-file').files[0];
  if (!file) {
    showError('#share-error', new Error('Pick a file to share first.'));
    return;
  }
  const button = $('#share-button');
  const bar = $('#share-progress');
  button.disabled = true;
  bar.hidden = false;
  bar.max = Math.max(1, file.size);
  bar.value = 0;
  setText('#share-status', `uploading ${file.name}…`);
  try {
    const added = await upload(`/v1/blobs?name=${encodeURIComponent(file.name)}`, file, (sent, total) => {
      bar.max = Math.max(1, total);
      bar.value = sent;
      setText('#share-status', sent >= total ? 'hashing and storing…' : `${formatBytes(sent)} of ${formatBytes(total)}`);
    });
    setText('#share-name', added.name || file.name);
    setText('#share-size', formatBytes(added.size));
    setText('#share-hash', added.hash);
    setText('#share-ticket', added.ticket);
    $('#share-link').href = `/blob/${added.hash}`;
    $('#share-result').hidden = false;
    $('#share-result').dataset.hash = added.hash;
    setText('#share-status', '');
    toast(`Shared ${added.name || file.name}`);
    onChanged();
  } catch (err) {
    showError('#share-error', err);
    setText('#share-status', '');
  } finally {
    button.disabled = false;
    bar.hidden = true;
  }
}

// ---------------------------------------------------------------- fetch

async function startFetch(onChanged) {
  clearError('#fetch-error');
  const target = $('#fetch-ticket').value.trim();
  if (!target) {
    showError('#fetch-error', new Error('Paste a ticket (weft1…) or a 64-character hash.'));
    return;
  }
  const body = /^[0-9a-fA-F]{64}$/.test(target) ? { hash: target.toLowerCase() } : { ticket: target };
  const button = $('#fetch-button');
  button.disabled = true;
  try {
    const started = await post('/v1/fetches', body);
    stopPolling();
    activeFetch = { id: started.id, hash: started.hash, timer: null, history: new Map(), colors: new Map() };
    const box = $('#fetch-progress');
    box.hidden = false;
    box.dataset.state = 'searching';
    box.dataset.fetchId = String(started.id);
    $('#fetch-done').hidden = true;
    $('#fetch-bad-peers').hidden = true;
    setText('#fetch-hash', started.hash);
    $('#fetch-hash').title = started.hash;
    $('#fetch-cancel').hidden = false;
    peerChart.setSeries([]);
    fillTable($('#fetch-peers-list'), [], 'No peer has sent anything yet.');
    pollFetch(onChanged);
  } catch (err) {
    showError('#fetch-error', err);
  } finally {
    button.disabled = false;
  }
}

function stopPolling() {
  if (activeFetch && activeFetch.timer) clearTimeout(activeFetch.timer);
}

async function pollFetch(onChanged) {
  const current = activeFetch;
  if (!current) return;
  let status;
  try {
    status = await get(url('/v1/fetches', current.id));
  } catch (err) {
    if (current !== activeFetch) return;
    showError('#fetch-error', err);
    if (err.status === 404 || err.status === 401) {
      $('#fetch-cancel').hidden = true;
      return;
    }
    current.timer = setTimeout(() => pollFetch(onChanged), FETCH_POLL_MS * 4);
    return;
  }
  if (current !== activeFetch) return;
  clearError('#fetch-error');
  renderFetch(current, status);
  if (DONE_STATES.has(status.state)) {
    $('#fetch-cancel').hidden = true;
    if (status.state === 'complete') onChanged();
    return;
  }
  current.timer = setTimeout(() => pollFetch(onChanged), FETCH_POLL_MS);
}

function renderFetch(current, s) {
  const box = $('#fetch-progress');
  box.dataset.state = s.state;
  const state = $('#fetch-state');
  state.textContent = s.state;
  state.dataset.state = s.state;

  const total = s.total ?? null;
  const bar = $('#fetch-bar');
  if (total) {
    bar.max = total;
    bar.value = Math.min(s.bytes_done, total);
  } else if (s.state === 'complete') {
    bar.max = 1;
    bar.value = 1;
  } else {
    bar.removeAttribute('value'); // indeterminate while the size is unknown
  }
  const percent = total ? (100 * s.bytes_done) / total : s.state === 'complete' ? 100 : null;
  setText('#fetch-percent', percent === null ? '' : `${percent.toFixed(1)}%`);
  setText('#fetch-bytes', `${formatBytes(s.bytes_done)} of ${total === null ? '?' : formatBytes(total)}`);
  setText('#fetch-rate', DONE_STATES.has(s.state) ? `${formatRate(averageRate(s))} average` : formatRate(s.rate));
  setText('#fetch-peers', `${s.peers} peer${s.peers === 1 ? '' : 's'}`);
  const left = total && s.rate > 0 ? (total - s.bytes_done) / s.rate : null;
  setText('#fetch-eta', DONE_STATES.has(s.state) ? `took ${formatDuration(s.elapsed_s)}` : left === null ? 'ETA —' : `ETA ${formatDuration(left)}`);

  if (s.files_total > 1) setText('#fetch-bytes', `${formatBytes(s.bytes_done)} of ${total === null ? '?' : formatBytes(total)}, ${s.files_done}/${s.files_total} files`);

  const done = $('#fetch-done');
  if (s.state === 'complete') {
    done.replaceChildren(
      'Complete, every chunk verified. ',
      el('a', { href: `/blob/${s.hash || current.hash}`, target: '_blank', rel: 'noopener', text: 'Open on the gateway' }),
      s.out ? ` · saved to ${s.out}` : '',
    );
    done.className = 'success';
    done.hidden = false;
  } else if (s.state === 'failed' || s.state === 'cancelled') {
    done.textContent = s.error ? `${s.state}: ${s.error}` : s.state;
    done.className = 'error';
    done.hidden = false;
  } else {
    done.hidden = true;
  }

  const bad = $('#fetch-bad-peers');
  if (s.bad_peers && s.bad_peers.length) {
    bad.textContent = `Dropped for sending bad data: ${s.bad_peers.join(', ')}`;
    bad.hidden = false;
  } else {
    bad.hidden = true;
  }

  peerChart.options.emptyText =
    s.state === 'complete' ? 'nothing to download: every byte was already here' : DONE_STATES.has(s.state) ? 'no peer sent anything' : 'waiting for the first bytes…';
  renderPeers(current, s);
}

function averageRate(s) {
  return s.elapsed_s > 0 ? s.bytes_received / s.elapsed_s : 0;
}

function renderPeers(current, s) {
  const t = Number(s.elapsed_s) || 0;
  const perPeer = s.per_peer || [];
  for (const p of perPeer) {
    if (!current.colors.has(p.peer_id)) {
      current.colors.set(p.peer_id, PALETTE[current.colors.size % PALETTE.length]);
      // Start each line at zero when the peer first shows up.
      current.history.set(p.peer_id, [[Math.max(0, t - FETCH_POLL_MS / 1000), 0]]);
    }
    const points = current.history.get(p.peer_id);
    const last = points[points.length - 1];
    if (last[0] === t) last[1] = p.bytes;
    else points.push([t, p.bytes]);
    if (points.length > 2000) points.splice(1, points.length - 2000);
  }
  peerChart.setSeries(
    [...current.history.entries()].map(([peer, points]) => ({
      label: peer,
      color: current.colors.get(peer),
      points,
    })),
  );
  const sum = perPeer.reduce((acc, p) => acc + p.bytes, 0);
  const rows = [...perPeer]
    .sort((a, b) => b.bytes - a.bytes)
    .map((p) =>
      el(
        'tr',
        { dataset: { peer: p.peer_id } },
        el('td', {}, swatch(current.colors.get(p.peer_id))),
        el('td', {}, el('code', { class: 'medium', title: p.peer_id, text: p.peer_id })),
        el('td', { class: 'num', text: formatBytes(p.bytes) }),
        el('td', { class: 'num', text: sum ? `${((100 * p.bytes) / sum).toFixed(0)}%` : '—' }),
      ),
    );
  fillTable($('#fetch-peers-list'), rows, 'No peer has sent anything yet.');
}

function swatch(color) {
  const dot = el('span', { class: 'dot' });
  dot.style.background = color; // CSSOM, allowed by the CSP (no inline style attribute)
  return dot;
}

async function cancelFetch() {
  if (!activeFetch) return;
  try {
    await del(url('/v1/fetches', activeFetch.id));
    toast('Fetch cancelled; what was verified is kept for a later resume');
  } catch (err) {
    showError('#fetch-error', err);
  }
}

// ---------------------------------------------------------------- the list

export async function refresh() {
  let list;
  try {
    const [blobs, stats] = await Promise.all([get('/v1/blobs'), get('/v1/blobs/stats').catch(() => null)]);
    list = blobs;
    if (stats) {
      const quota = stats.quota ? ` of ${formatBytes(stats.quota)}` : '';
      setText('#content-stats', `${formatBytes(stats.store_bytes)}${quota} stored · ${formatBytes(stats.bytes_sent)} served`);
    }
    clearError('#content-error');
  } catch (err) {
    showError('#content-error', err);
    return;
  }
  const key = JSON.stringify(list);
  if (key === listKey) return; // unchanged: keep the DOM (and any focus) as is
  listKey = key;
  setText('#content-count', `(${list.length})`);
  fillTable($('#content-list'), list.map(row), 'Nothing here yet: share a file above, or fetch one by ticket.');
}

function row(b) {
  const state = b.complete ? 'complete' : `${b.percent}%`;
  return el(
    'tr',
    { dataset: { hash: b.hash, pinned: String(b.pinned), complete: String(b.complete) } },
    el('td', { class: 'name', text: b.name || '(no name)' }),
    el('td', {}, el('code', { class: 'short', title: b.hash, text: b.hash })),
    el('td', { text: b.kind }),
    el('td', { class: 'num', text: formatBytes(b.size) }),
    el('td', {}, el('span', { class: 'pill', dataset: { state: b.complete ? 'complete' : 'pending' }, text: state })),
    el('td', { text: b.pinned ? 'pinned' : '—' }),
    el(
      'td',
      { class: 'actions' },
      el('a', { href: `/blob/${b.hash}`, target: '_blank', rel: 'noopener', dataset: { open: b.hash }, text: 'Open' }),
      el('button', { type: 'button', class: 'button-small', dataset: { copyHash: b.hash }, text: 'Copy hash' }),
      el('button', { type: 'button', class: 'button-small', dataset: { copyTicket: b.hash }, text: 'Ticket' }),
      b.pinned
        ? el('button', { type: 'button', class: 'button-small', dataset: { unpin: b.hash }, text: 'Unpin' })
        : el('button', { type: 'button', class: 'button-small', dataset: { pin: b.hash }, text: 'Pin' }),
      el('button', { type: 'button', class: 'button-small', dataset: { remove: b.hash }, text: 'Remove' }),
    ),
  );
}

async function listAction(event, onChanged) {
  const button = event.target.closest('button');
  if (!button) return;
  const d = button.dataset;
  clearError('#content-error');
  try {
    if (d.copyHash) {
      await copyText(d.copyHash, button);
    } else if (d.copyTicket) {
      const t = await get(url('/v1/blobs', d.copyTicket, 'ticket'));
      await copyText(t.ticket, button);
      toast('Ticket copied');
    } else if (d.pin || d.unpin) {
      button.disabled = true;
      await post(url('/v1/blobs', d.pin || d.unpin, d.pin ? 'pin' : 'unpin'));
      onChanged();
    } else if (d.remove) {
      const tr = button.closest('tr');
      const name = tr ? tr.querySelector('td.name').textContent : d.remove;
      if (!(await ask(`Remove “${name}” from this node's store? Others who have it keep their copies.`, 'Remove'))) return;
      button.disabled = true;
      await del(url('/v1/blobs', d.remove));
      toast('Removed');
      onChanged();
    }
  } catch (err) {
    showError('#content-error', err);
    button.disabled = false;
  }
}
