// The Apps tab: the apps this node has served and their payment
// permission (GET /v1/apps, POST /v1/apps/{hash}/permissions), and the
// payment requests apps make (GET /v1/apps/requests, polled every second
// from any tab): each pending one gets approve and deny buttons, a badge on
// the tab and a banner on every tab.

import { get, post, url } from './api.js';
import {
  $, clearError, el, fillTable, formatAmount, formatTime, setText, showError, shortId,
} from './util.js';

let apps = []; // the last GET /v1/apps answer
let appsKey = '';
let requestsKey = '';
let pendingCount = 0;
const busy = new Set(); // request ids with an approve/deny in flight
let requestsAvailable = true;
let pendingChanged = () => {};

export function init({ onPendingChanged, onChanged }) {
  $('#requests-list').addEventListener('click', (e) => decide(e, onChanged));
  $('#apps-list').addEventListener('change', (e) => setPermission(e, onChanged));
  pendingChanged = onPendingChanged;
}

/** Pending requests the last poll saw. */
export function pending() {
  return pendingCount;
}

/** Whether GET /v1/apps/requests exists on this node (it may be older). */
export function requestsSupported() {
  return requestsAvailable;
}

function appName(id) {
  const app = apps.find((a) => a.hash === id || a.name === id || a.url === id);
  if (app) return app.name || shortId(app.hash);
  return /^[0-9a-f]{64}$/i.test(String(id)) ? `app ${shortId(id)}` : String(id);
}

// ---------------------------------------------------------------- requests

export async function refreshRequests() {
  let list;
  try {
    list = await get('/v1/apps/requests');
    requestsAvailable = true;
    clearError('#requests-error');
  } catch (err) {
    if (err.status === 404) {
      requestsAvailable = false;
      list = [];
      setText('#requests-error', 'This node does not list app payment requests (no /v1/apps/requests).');
      $('#requests-error').hidden = false;
    } else {
      showError('#requests-error', err);
      return;
    }
  }
  if (!Array.isArray(list)) list = [];
  // App names arrive separately: redraw when they change too.
  const key = JSON.stringify([list, [...busy], apps.map((a) => [a.hash, a.name])]);
  if (key === requestsKey) return;
  requestsKey = key;
  renderRequests(list);
}

function renderRequests(list) {
  const waiting = list.filter((r) => r.status === 'pending');
  const earlier = list.filter((r) => r.status !== 'pending').reverse().slice(0, 50);
  pendingCount = waiting.length;
  setText('#requests-count', waiting.length ? `(${waiting.length} waiting)` : '');

  const cards = waiting.map((r) => {
    const id = String(r.id);
    const inFlight = busy.has(id);
    return el(
      'div',
      { class: 'request', dataset: { request: id, status: r.status } },
      el(
        'div',
        { class: 'request-what' },
        el('div', {}, el('strong', { text: appName(r.app) }), ' asks to pay'),
        el('div', { class: 'request-amount', text: `${formatAmount(r.amount)}` }),
        el('div', { class: 'request-meta' }, 'to ', el('code', { text: r.to }), ` · fee ${formatAmount(r.fee)}`),
        r.memo ? el('div', { class: 'request-meta', text: `memo: ${r.memo}` }) : null,
        r.created ? el('div', { class: 'request-meta', text: `asked ${formatTime(r.created)}` }) : null,
      ),
      el(
        'div',
        { class: 'request-buttons' },
        el('button', { type: 'button', dataset: { deny: id }, disabled: inFlight, text: 'Deny' }),
        el('button', { type: 'button', class: 'button-approve', dataset: { approve: id }, disabled: inFlight, text: 'Approve and pay' }),
      ),
    );
  });
  const listNode = $('#requests-list');
  if (cards.length) listNode.replaceChildren(...cards);
  else listNode.replaceChildren(el('p', { class: 'empty', text: 'No payment request is waiting.' }));

  const rows = earlier.map((r) =>
    el(
      'tr',
      { dataset: { request: String(r.id), status: r.status } },
      el('td', { text: appName(r.app) }),
      el('td', {}, el('code', { class: 'medium', title: r.to, text: r.to })),
      el('td', { class: 'num', text: formatAmount(r.amount) }),
      el('td', {}, el('span', { class: 'pill', dataset: { state: r.status }, title: r.error || '', text: r.status })),
      el('td', {}, r.txid ? el('code', { title: r.txid, text: shortId(r.txid) }) : r.error ? el('span', { class: 'small', text: r.error }) : '—'),
      el('td', { class: 'small', text: formatTime(r.created) }),
    ),
  );
  fillTable($('#requests-history'), rows, 'None yet.');
  pendingChanged(pendingCount);
}

async function decide(event, onChanged) {
  const button = event.target.closest('button');
  if (!button) return;
  const id = button.dataset.approve || button.dataset.deny;
  if (!id) return;
  const approve = Boolean(button.dataset.approve);
  clearError('#requests-error');
  $('#requests-result').hidden = true;
  busy.add(id);
  for (const b of button.closest('.request').querySelectorAll('button')) b.disabled = true;
  try {
    const answer = await post(url('/v1/apps/requests', id, approve ? 'approve' : 'deny'));
    setText(
      '#requests-result',
      approve ? `Approved: transaction ${answer && answer.txid ? answer.txid : '?'} is on its way.` : 'Denied: nothing was paid.',
    );
    $('#requests-result').hidden = false;
    $('#requests-result').dataset.request = id;
    onChanged();
  } catch (err) {
    showError('#requests-error', err);
  } finally {
    busy.delete(id);
    requestsKey = '';
    await refreshRequests();
  }
}

// ---------------------------------------------------------------- apps

export async function refreshApps() {
  let list;
  try {
    list = await get('/v1/apps');
    clearError('#apps-error');
  } catch (err) {
    if (err.status === 404) {
      list = [];
      setText('#apps-error', 'This node does not list apps (no /v1/apps).');
      $('#apps-error').hidden = false;
    } else {
      showError('#apps-error', err);
      return;
    }
  }
  if (!Array.isArray(list)) list = [];
  apps = list;
  const key = JSON.stringify(list);
  if (key === appsKey) return;
  appsKey = key;
  const rows = list.map((a) => {
    const current = (a.permissions && a.permissions.payments) || 'ask';
    const select = el(
      'select',
      { dataset: { permission: a.hash }, 'aria-label': `Payments by ${a.name || a.hash}` },
      el('option', { value: 'ask', text: 'ask' }),
      el('option', { value: 'allow', text: 'allow' }),
    );
    select.value = current;
    const uploads = el(
      'select',
      {
        dataset: { permission: a.hash, field: 'uploads' },
        'aria-label': `Uploads by ${a.name || a.hash}`,
        title: 'Whether the app may add files to this node (64 MiB each at most)',
      },
      el('option', { value: 'deny', text: 'deny' }),
      el('option', { value: 'allow', text: 'allow' }),
    );
    uploads.value = (a.permissions && a.permissions.uploads) || 'deny';
    const link = a.url || a.path_url;
    return el(
      'tr',
      { dataset: { app: a.hash } },
      el('td', {}, link ? el('a', { href: link, target: '_blank', rel: 'noopener', text: a.name || 'app' }) : a.name || 'app'),
      el('td', {}, el('code', { class: 'short', title: a.hash, text: a.hash })),
      el('td', {}, select),
      el('td', {}, uploads),
      el('td', { text: formatTime(a.last_used) }),
    );
  });
  fillTable($('#apps-list'), rows, 'No app has been opened through this node yet.');
}

async function setPermission(event, onChanged) {
  const select = event.target.closest('select[data-permission]');
  if (!select) return;
  const hash = select.dataset.permission;
  select.disabled = true;
  clearError('#apps-error');
  try {
    // Keep the app's other permissions (e.g. max_amount) as they are.
    const app = apps.find((a) => a.hash === hash);
    const field = select.dataset.field || 'payments';
    const body = { payments: 'ask', ...((app && app.permissions) || {}), [field]: select.value };
    await post(url('/v1/apps', hash, 'permissions'), body);
    onChanged();
  } catch (err) {
    showError('#apps-error', err);
    appsKey = ''; // redraw with the node's value
    onChanged();
  } finally {
    select.disabled = false;
  }
}
