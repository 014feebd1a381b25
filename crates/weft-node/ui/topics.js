// The Topics tab: subscriptions and their mesh peers (GET /v1/topics),
// publishing (POST /v1/topics/{topic}/messages {"message"}) and watching a
// topic live (GET /v1/topics/{topic}/events, Server-Sent Events read with
// fetch so the bearer token can be sent).

import { events, get, post, url } from './api.js';
import { $, clearError, el, fillTable, setText, showError } from './util.js';

const MAX_LOG = 200;

let watching = null; // {topic, controller}
let topicsKey = '';

export function init() {
  $('#publish-form').addEventListener('submit', (e) => {
    e.preventDefault();
    publish();
  });
  $('#watch-form').addEventListener('submit', (e) => {
    e.preventDefault();
    if (watching) stopWatching('stopped');
    else watch();
  });
}

/** Accepts the few shapes a topic list may take. */
function normalize(answer) {
  if (answer && !Array.isArray(answer)) {
    answer = answer.subscriptions || answer.topics || [];
  }
  if (!Array.isArray(answer)) return [];
  return answer.map((t) => {
    if (typeof t === 'string') return { topic: t, count: null, peers: [], subscribers: null };
    const topic = t.topic ?? t.name ?? t.id ?? '?';
    const mesh = t.mesh_peers ?? t.mesh ?? t.peers ?? null;
    const peers = Array.isArray(mesh) ? mesh.map(String) : [];
    const count = Array.isArray(mesh) ? mesh.length : typeof mesh === 'number' ? mesh : null;
    const subscribers = typeof t.subscribers === 'number' ? t.subscribers : null;
    return { topic: String(topic), count, peers, subscribers };
  });
}

export async function refresh() {
  let topics;
  try {
    topics = normalize(await get('/v1/topics'));
    clearError('#topics-error');
  } catch (err) {
    showError('#topics-error', err);
    return;
  }
  const key = JSON.stringify(topics);
  if (key === topicsKey) return;
  topicsKey = key;
  const rows = topics.map((t) =>
    el(
      'tr',
      { dataset: { topic: t.topic } },
      el('td', {}, el('code', { text: t.topic })),
      el('td', { class: 'num', text: t.subscribers === null ? '—' : String(t.subscribers) }),
      el('td', { class: 'num', text: t.count === null ? '—' : String(t.count) }),
      el('td', { class: 'small' }, t.peers.length ? el('code', { class: 'medium', title: t.peers.join('\n'), text: t.peers.join(', ') }) : '—'),
    ),
  );
  fillTable($('#topics-list'), rows, 'Not subscribed to any topic.');
}

async function publish() {
  clearError('#publish-error');
  $('#publish-result').hidden = true;
  const topic = $('#publish-topic').value.trim();
  const message = $('#publish-message').value;
  if (!topic) {
    showError('#publish-error', new Error('Name the topic to publish to.'));
    return;
  }
  const button = $('#publish-button');
  button.disabled = true;
  try {
    const answer = await post(url('/v1/topics', topic, 'messages'), { message });
    const detail = answer && typeof answer === 'object'
      ? Object.entries(answer).map(([k, v]) => `${k}: ${typeof v === 'object' ? JSON.stringify(v) : v}`).join(', ')
      : '';
    setText('#publish-result', `Published to ${topic}${detail ? ` (${detail})` : ''}.`);
    $('#publish-result').hidden = false;
    $('#publish-message').value = '';
  } catch (err) {
    showError('#publish-error', err);
  } finally {
    button.disabled = false;
  }
}

async function watch() {
  clearError('#watch-error');
  const topic = $('#watch-topic').value.trim();
  if (!topic) {
    showError('#watch-error', new Error('Name the topic to watch.'));
    return;
  }
  const controller = new AbortController();
  const current = { topic, controller };
  watching = current;
  $('#watch-button').textContent = 'Stop';
  $('#watch-topic').disabled = true;
  setText('#watch-status', `connecting to ${topic}…`);
  $('#watch-log').replaceChildren();
  try {
    await events(url('/v1/topics', topic, 'events'), {
      signal: controller.signal,
      onOpen: () => setText('#watch-status', `watching ${topic}: new messages appear below`),
      onEvent: (e) => addEvent(e),
    });
    if (watching === current) stopWatching('the stream ended');
  } catch (err) {
    if (watching === current) {
      showError('#watch-error', err);
      stopWatching('stopped');
    }
  }
}

export function stopWatching(why) {
  if (!watching) return;
  watching.controller.abort();
  setText('#watch-status', `${why} (${watching.topic})`);
  watching = null;
  $('#watch-button').textContent = 'Watch';
  $('#watch-topic').disabled = false;
}

/** A message's payload as text: a string as is, bytes decoded as UTF-8. */
function payloadText(value) {
  if (typeof value === 'string') return value;
  if (Array.isArray(value) && value.every((b) => Number.isInteger(b) && b >= 0 && b < 256)) {
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(new Uint8Array(value));
    } catch {
      return `${value.length} bytes: ${value.map((b) => b.toString(16).padStart(2, '0')).join('')}`;
    }
  }
  return JSON.stringify(value, null, 2);
}

function addEvent(e) {
  let parsed = null;
  try {
    parsed = JSON.parse(e.data);
  } catch {
    parsed = null;
  }
  let from = '';
  let body = e.data;
  let when = new Date();
  if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) {
    from = parsed.from ?? parsed.source ?? parsed.peer_id ?? parsed.peer ?? '';
    const message = parsed.data ?? parsed.message ?? parsed.text;
    if (message !== undefined) body = payloadText(message);
    else if (typeof parsed.data_base64 === 'string') body = `binary data (base64): ${parsed.data_base64}`;
    else if (e.event === 'lagged' && parsed.missed !== undefined) body = `missed ${parsed.missed} message(s): this page read too slowly`;
    else body = JSON.stringify(parsed, null, 2);
    const ms = parsed.timestamp ?? parsed.timestamp_ms;
    if (typeof ms === 'number') when = new Date(ms);
  }
  const meta = [when.toLocaleTimeString(), e.event !== 'message' ? e.event : '', from ? `from ${from}` : '']
    .filter(Boolean)
    .join(' · ');
  const log = $('#watch-log');
  log.prepend(el('li', { dataset: { event: e.event } }, el('span', { class: 'log-meta', text: meta }), el('pre', { text: body })));
  while (log.children.length > MAX_LOG) log.lastElementChild.remove();
}
