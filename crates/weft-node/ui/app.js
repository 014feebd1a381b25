// weft's dashboard: logs in with the node's API token, shows the tabs, and
// runs the polls. Each tab's module (node, content, wallet, topics, apps)
// owns its part of the page; this one decides what runs when.
//
// Login: `weft ui` opens `/#token=...`; the token moves into sessionStorage
// and out of the address bar at once. Without one, a login box asks for it.
// A 401 from any call logs out and asks again.

import * as api from './api.js';
import * as apps from './apps.js';
import * as content from './content.js';
import * as node from './node.js';
import * as topics from './topics.js';
import * as wallet from './wallet.js';
import { $, describe, poller, setText } from './util.js';

const TABS = ['node', 'content', 'wallet', 'topics', 'apps'];
const TAB_KEY = 'weft.tab';

let currentTab = readTab();
let loggedIn = false;

function readTab() {
  try {
    const saved = sessionStorage.getItem(TAB_KEY);
    return TABS.includes(saved) ? saved : 'node';
  } catch {
    return 'node';
  }
}

// ---------------------------------------------------------------- polls

let requestTicks = 0;

const polls = {
  // Always: the bandwidth plot needs history, and it tells whether the node is up.
  metrics: poller(sampleMetrics, 2000),
  // Always: pending app payments must be seen from every tab.
  requests: poller(async () => {
    // A node without the endpoint is asked again every 15 s only.
    requestTicks += 1;
    if (!apps.requestsSupported() && requestTicks % 15 !== 0) return;
    await apps.refreshRequests();
  }, 1000),
  node: poller(node.refresh, 2000, () => currentTab === 'node'),
  content: poller(content.refresh, 3000, () => currentTab === 'content'),
  wallet: poller(wallet.refresh, 3000, () => currentTab === 'wallet'),
  topics: poller(topics.refresh, 3000, () => currentTab === 'topics'),
  apps: poller(apps.refreshApps, 4000, () => currentTab === 'apps'),
};

async function sampleMetrics() {
  try {
    await node.sampleMetrics();
    setConnection('ok', 'connected');
  } catch (err) {
    setConnection('error', describe(err));
  }
}

function setConnection(state, text) {
  const status = $('#conn-status');
  status.dataset.state = state;
  status.textContent = text;
}

function startPolls() {
  for (const p of Object.values(polls)) p.start();
}

function stopPolls() {
  for (const p of Object.values(polls)) p.stop();
}

// ---------------------------------------------------------------- tabs

function showTab(name) {
  if (!TABS.includes(name)) name = 'node';
  currentTab = name;
  try {
    sessionStorage.setItem(TAB_KEY, name);
  } catch {
    // Not remembered across reloads then.
  }
  for (const tab of TABS) {
    const selected = tab === name;
    const button = $(`#tab-${tab}`);
    button.setAttribute('aria-selected', String(selected));
    button.tabIndex = selected ? 0 : -1;
    $(`#panel-${tab}`).hidden = !selected;
  }
  if (name === 'node') node.drawBandwidth();
  const poll = polls[name];
  if (poll) poll.now();
  if (name === 'apps') polls.requests.now();
}

function bindTabs() {
  for (const tab of TABS) {
    const button = $(`#tab-${tab}`);
    button.addEventListener('click', () => showTab(tab));
    button.addEventListener('keydown', (e) => {
      const step = e.key === 'ArrowRight' ? 1 : e.key === 'ArrowLeft' ? -1 : 0;
      if (!step) return;
      const next = TABS[(TABS.indexOf(tab) + step + TABS.length) % TABS.length];
      showTab(next);
      $(`#tab-${next}`).focus();
    });
  }
  $('#requests-banner-review').addEventListener('click', () => showTab('apps'));
}

function pendingChanged(count) {
  const badge = $('#requests-badge');
  badge.textContent = String(count);
  badge.hidden = count === 0;
  const banner = $('#requests-banner');
  banner.hidden = count === 0;
  setText(
    '#requests-banner-text',
    count === 1 ? 'An app is asking to make a payment.' : `${count} app payment requests are waiting for you.`,
  );
  document.title = count ? `(${count}) weft` : 'weft';
}

// ---------------------------------------------------------------- login

function showLogin(message) {
  loggedIn = false;
  stopPolls();
  topics.stopWatching('logged out');
  $('#app').hidden = true;
  $('#logout-button').hidden = true;
  $('#login').hidden = false;
  setConnection('unknown', 'not logged in');
  const error = $('#login-error');
  error.textContent = message || '';
  error.hidden = !message;
  $('#login-token').focus();
}

async function enter() {
  try {
    await api.get('/v1/node');
  } catch (err) {
    if (err.status === 401) return; // onUnauthorized shows the login box
    // Unreachable or failing: show the dashboard anyway; the polls say why.
    setConnection('error', describe(err));
  }
  loggedIn = true;
  $('#login').hidden = true;
  $('#app').hidden = false;
  $('#logout-button').hidden = false;
  showTab(currentTab);
  startPolls();
  node.refresh().catch(() => {});
}

function bindLogin() {
  $('#login-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const token = $('#login-token').value.trim();
    if (!token) {
      showLogin('Paste the API token first.');
      return;
    }
    api.setToken(token);
    $('#login-token').value = '';
    await enter();
  });
  $('#logout-button').addEventListener('click', () => {
    api.clearToken();
    showLogin('');
  });
  api.onUnauthorized((err) => {
    api.clearToken();
    showLogin(`The node refused the token: ${err.message}`);
  });
}

// ---------------------------------------------------------------- start

function main() {
  api.takeTokenFromUrl();
  bindLogin();
  bindTabs();
  const refreshAll = () => {
    const poll = polls[currentTab];
    if (poll) poll.now();
  };
  node.init();
  content.init({ onChanged: refreshAll });
  wallet.init({ onChanged: refreshAll });
  topics.init();
  apps.init({
    onPendingChanged: pendingChanged,
    onChanged: () => {
      polls.requests.now();
      refreshAll();
    },
  });
  // A login URL opened in a tab that already shows the dashboard only
  // changes the fragment: take the token from there too.
  window.addEventListener('hashchange', () => {
    if (!/(^#|&)token=/.test(location.hash)) return;
    api.takeTokenFromUrl();
    if (api.hasToken()) enter();
  });
  if (api.hasToken()) enter();
  else showLogin('');
}

main();
