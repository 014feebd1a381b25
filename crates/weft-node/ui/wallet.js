// The Wallet tab: the node's wallet (GET /v1/wallet; 404 means it has
// none), sending with an in-page confirmation (POST /v1/wallet/send), the
// chain's state (GET /v1/chain) and recent transactions: the mempool's and
// those in the last 20 blocks (GET /v1/blocks/{height}) that involve the
// wallet.

import { get, request, url } from './api.js';
import {
  $, clearError, copyText, el, fillTable, formatAmount, formatBytes, parseUnits, setText, showError,
  shortId,
} from './util.js';

const RECENT_BLOCKS = 20;

let wallet = null; // the last GET /v1/wallet answer, or null
let chain = null;
const blocks = new Map(); // height -> block, for the last RECENT_BLOCKS heights
let blocksTip = null;
let pendingSend = null; // {to, amount: string, fee: string} awaiting confirmation
let txKey = '';
let onChanged = () => {};

export function init(options) {
  onChanged = options.onChanged;
  $('#wallet-copy-address').addEventListener('click', (e) => {
    if (wallet) copyText(wallet.address, e.currentTarget);
  });
  $('#send-form').addEventListener('submit', (e) => {
    e.preventDefault();
    prepareSend();
  });
  $('#send-confirm').addEventListener('click', confirmSend);
  $('#send-cancel').addEventListener('click', () => {
    pendingSend = null;
    $('#send-dialog').close();
  });
  $('#send-dialog').addEventListener('cancel', () => {
    pendingSend = null;
  });
}

export async function refresh() {
  const [w, c] = await Promise.allSettled([get('/v1/wallet'), get('/v1/chain')]);
  let error = null;
  if (w.status === 'fulfilled') {
    renderWallet(w.value);
  } else if (w.reason.status === 404) {
    renderNoWallet(w.reason);
  } else {
    error = w.reason;
  }
  if (c.status === 'fulfilled') renderChain(c.value);
  else error = error || c.reason;
  if (error) showError('#wallet-error', error);
  else clearError('#wallet-error');

  if (wallet && chain) {
    try {
      await renderTransactions();
    } catch (err) {
      showError('#wallet-error', err);
    }
  } else if (!wallet) {
    fillTable($('#tx-list'), [], 'No wallet on this node.');
    txKey = '';
    $('#tx-mined').hidden = true;
  }
}

function renderWallet(w) {
  wallet = w;
  $('#wallet-missing').hidden = true;
  $('#wallet-details').hidden = false;
  $('#send-button').disabled = false;
  setText('#wallet-address', w.address);
  setText('#wallet-name', w.name ? `(wallet “${w.name}”)` : '');
  setText('#wallet-balance', formatAmount(w.balance));
  setText('#wallet-pending-in', formatAmount(w.pending_in));
  setText('#wallet-pending-out', formatAmount(w.pending_out));
  setText('#wallet-nonce', w.next_nonce);
}

function renderNoWallet(err) {
  wallet = null;
  $('#wallet-missing').hidden = false;
  $('#wallet-details').hidden = true;
  $('#send-button').disabled = true;
  setText('#wallet-missing-detail', err.message ? `The node says: ${err.message}` : '');
}

function renderChain(c) {
  chain = c;
  setText('#chain-height', formatAmount(c.height));
  setText('#chain-tip', c.tip);
  setText('#chain-difficulty', formatAmount(c.difficulty));
  const sync = c.sync || {};
  setText(
    '#chain-sync',
    sync.state === 'syncing' && sync.best_height !== null && sync.best_height !== undefined
      ? `syncing (best known height ${formatAmount(sync.best_height)})`
      : sync.state || '—',
  );
  const m = c.mempool || {};
  setText('#chain-mempool', `${formatAmount(m.count)} transaction${m.count === 1 ? '' : 's'} (${formatBytes(m.bytes)})`);
  setText('#chain-mining', c.mining ? 'yes' : 'no');
}

/** Keeps `blocks` at the last RECENT_BLOCKS main-chain blocks. */
async function updateBlocks() {
  if (blocksTip === chain.tip) return;
  const top = chain.height;
  const bottom = Math.max(0, top - RECENT_BLOCKS + 1);
  for (const h of [...blocks.keys()]) if (h < bottom || h > top) blocks.delete(h);
  const missing = (heights) => heights.filter((h) => !blocks.has(h));
  const all = [];
  for (let h = bottom; h <= top; h += 1) all.push(h);
  // New heights, plus the old tip height (it may have been replaced).
  const fetchHeights = async (heights) => {
    const got = await Promise.all(heights.map((h) => get(url('/v1/blocks', h))));
    got.forEach((b) => blocks.set(b.height, b));
  };
  await fetchHeights([...new Set([...missing(all), top])]);
  // A reorganisation breaks the parent links: then fetch them all again.
  const linked = all.every((h) => h === bottom || (blocks.get(h) && blocks.get(h - 1) && blocks.get(h).parent === blocks.get(h - 1).hash));
  if (!linked) {
    blocks.clear();
    await fetchHeights(all);
  }
  blocksTip = chain.tip;
}

async function renderTransactions() {
  const address = wallet.address;
  const [mempool] = await Promise.all([get('/v1/mempool'), updateBlocks()]);
  const entries = [];
  for (const tx of mempool.txs || []) {
    if (tx.from === address || tx.to === address) entries.push({ tx, status: 'pending', height: Infinity });
  }
  const heights = [...blocks.keys()].sort((a, b) => b - a);
  const mined = { count: 0, amount: 0 };
  for (const h of heights) {
    const b = blocks.get(h);
    for (const tx of b.txs || []) {
      if (tx.from === address || tx.to === address) {
        entries.push({ tx, status: 'confirmed', height: h, confirmations: chain.height - h + 1 });
      }
    }
    if (b.miner === address && h > 0) {
      mined.count += 1;
      mined.amount += Number(chain.reward || 0) + (b.txs || []).reduce((acc, tx) => acc + Number(tx.fee || 0), 0);
    }
  }
  setText(
    '#tx-mined',
    mined.count ? `This wallet mined ${mined.count} of the last ${heights.length} blocks (+${formatAmount(mined.amount)} in rewards and fees).` : '',
  );
  $('#tx-mined').hidden = !mined.count;
  const key = JSON.stringify([address, chain.height, entries.map((e) => [e.tx.id, e.status, e.height])]);
  if (key === txKey) return;
  txKey = key;
  const rows = entries.map((e) => txRow(e, address));
  fillTable($('#tx-list'), rows, 'No transactions involving this wallet in the mempool or the last 20 blocks.');
}

function txRow(entry, address) {
  const { tx } = entry;
  let direction;
  let counterparty;
  let signed;
  if (tx.from === address && tx.to === address) {
    direction = 'self';
    counterparty = address;
    signed = formatAmount(tx.amount);
  } else if (tx.from === address) {
    direction = 'out';
    counterparty = tx.to;
    signed = `−${formatAmount(tx.amount)}`;
  } else {
    direction = 'in';
    counterparty = tx.from;
    signed = `+${formatAmount(tx.amount)}`;
  }
  const status =
    entry.status === 'pending'
      ? el('span', { class: 'pill', dataset: { state: 'pending' }, text: 'pending' })
      : el('span', {
          class: 'pill',
          dataset: { state: 'confirmed' },
          title: `${entry.confirmations} confirmation${entry.confirmations === 1 ? '' : 's'}`,
          text: `height ${entry.height}`,
        });
  return el(
    'tr',
    { dataset: { txid: tx.id, status: entry.status, direction } },
    el('td', {}, status),
    el('td', { text: direction }),
    el('td', {}, el('code', { class: 'medium', title: counterparty, text: counterparty })),
    el('td', { class: `num ${direction === 'out' ? 'amount-out' : direction === 'self' ? '' : 'amount-in'}`, text: signed }),
    el('td', { class: 'num', text: direction === 'out' || direction === 'self' ? formatAmount(tx.fee) : '' }),
    el('td', {}, el('code', { title: tx.id, text: shortId(tx.id) })),
  );
}

// ---------------------------------------------------------------- send

function prepareSend() {
  clearError('#send-error');
  $('#send-result').hidden = true;
  if (!wallet) {
    showError('#send-error', new Error('This node has no wallet: run `weft wallet new`.'));
    return;
  }
  const to = $('#send-to').value.trim();
  const amount = parseUnits($('#send-amount').value);
  const feeText = $('#send-fee').value.trim();
  const fee = feeText === '' ? 0n : parseUnits(feeText);
  if (!/^weft1[02-9ac-hj-np-z]{6,}$/i.test(to)) {
    showError('#send-error', new Error('The recipient must be a weft address (weft1…).'));
    return;
  }
  if (amount === null || amount <= 0n) {
    showError('#send-error', new Error('The amount must be a whole number of base units, more than zero.'));
    return;
  }
  if (fee === null) {
    showError('#send-error', new Error('The fee must be a whole number of base units.'));
    return;
  }
  if (amount + fee > 0xffffffffffffffffn) {
    showError('#send-error', new Error('The amount plus the fee is larger than any balance can be.'));
    return;
  }
  pendingSend = { to: to.toLowerCase(), amount: amount.toString(), fee: fee.toString() };
  setText('#send-confirm-to', pendingSend.to);
  setText('#send-confirm-amount', formatAmount(amount));
  setText('#send-confirm-fee', formatAmount(fee));
  setText('#send-confirm-total', formatAmount(amount + fee));
  $('#send-confirm').disabled = false;
  $('#send-dialog').showModal();
}

async function confirmSend() {
  const send = pendingSend;
  if (!send) return;
  $('#send-confirm').disabled = true;
  try {
    // Built by hand so that amounts above 2^53 keep every digit.
    const body = `{"to":${JSON.stringify(send.to)},"amount":${send.amount},"fee":${send.fee}}`;
    const answer = await request('POST', '/v1/wallet/send', {
      body,
      headers: { 'Content-Type': 'application/json' },
    });
    pendingSend = null;
    $('#send-dialog').close();
    setText('#send-txid', answer && answer.id ? answer.id : '?');
    $('#send-result').hidden = false;
    $('#send-amount').value = '';
    onChanged();
  } catch (err) {
    pendingSend = null;
    $('#send-dialog').close();
    showError('#send-error', err.status === 404 && err.code === 'not_found' && /path/.test(err.message)
      ? new Error('This node cannot send from its wallet yet (no /v1/wallet/send).')
      : err);
  } finally {
    $('#send-confirm').disabled = false;
  }
}
