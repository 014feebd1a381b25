// Small helpers shared by every section: DOM building (never innerHTML with
// data from the node), number formatting, error boxes, copying.

export const $ = (selector, root = document) => root.querySelector(selector);

/**
 * Creates an element. `props`: `class`, `text`, `title`, `dataset` (an
 * object), `on` (event name -> handler), anything else as an attribute
 * (`false`/`null` skip it). Children may be nodes, strings or null.
 */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key === 'text') node.textContent = value;
    else if (key === 'dataset') Object.assign(node.dataset, value);
    else if (key === 'on') for (const [ev, fn] of Object.entries(value)) node.addEventListener(ev, fn);
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function setText(selector, value) {
  const node = typeof selector === 'string' ? $(selector) : selector;
  if (node) node.textContent = value === null || value === undefined ? '—' : String(value);
}

/** Replaces a table's body with `rows`, or one "empty" row. */
export function fillTable(table, rows, emptyText) {
  const body = table.tBodies[0];
  if (!rows.length) {
    const columns = table.tHead ? table.tHead.rows[0].cells.length : 1;
    body.replaceChildren(el('tr', {}, el('td', { class: 'empty', colspan: columns, text: emptyText })));
    return;
  }
  body.replaceChildren(...rows);
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

export function formatBytes(n) {
  if (n === null || n === undefined || !Number.isFinite(Number(n))) return '—';
  let value = Number(n);
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  if (unit === 0) return `${Math.round(value)} B`;
  return `${value.toFixed(value < 10 ? 2 : value < 100 ? 1 : 0)} ${UNITS[unit]}`;
}

export function formatRate(bytesPerSecond) {
  if (bytesPerSecond === null || bytesPerSecond === undefined) return '—';
  return `${formatBytes(bytesPerSecond)}/s`;
}

export function formatDuration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return '—';
  const s = Math.max(0, Math.floor(seconds));
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  if (d) return `${d}d ${h}h ${m}m`;
  if (h) return `${h}h ${m}m ${sec}s`;
  if (m) return `${m}m ${sec}s`;
  return `${sec}s`;
}

/** An integer amount with thousands separators (amounts are base units). */
export function formatAmount(n) {
  if (n === null || n === undefined) return '—';
  if (typeof n === 'bigint') return n.toLocaleString('en-US');
  const value = Number(n);
  if (!Number.isFinite(value)) return String(n);
  return value.toLocaleString('en-US', { maximumFractionDigits: 0 });
}

/** A timestamp (seconds or milliseconds since the epoch, or a date string). */
export function formatTime(value) {
  if (value === null || value === undefined || value === '') return '—';
  let date;
  if (typeof value === 'number') date = new Date(value > 1e12 ? value : value * 1000);
  else date = new Date(value);
  if (Number.isNaN(date.getTime())) return String(value);
  return date.toLocaleString();
}

export function shortId(id, head = 8, tail = 6) {
  if (!id) return '—';
  const s = String(id);
  return s.length <= head + tail + 1 ? s : `${s.slice(0, head)}…${s.slice(-tail)}`;
}

/** The message to show for an error: the API's message and code. */
export function describe(err) {
  if (!err) return 'unknown error';
  if (err.code && err.code !== 'unreachable' && !String(err.code).startsWith('http_')) {
    return `${err.message} (${err.code})`;
  }
  return err.message || String(err);
}

export function showError(target, err) {
  const node = typeof target === 'string' ? $(target) : target;
  if (!node) return;
  node.textContent = describe(err);
  node.hidden = false;
}

export function clearError(target) {
  const node = typeof target === 'string' ? $(target) : target;
  if (!node) return;
  node.textContent = '';
  node.hidden = true;
}

let toastTimer = null;

/** A short message at the bottom of the page. */
export function toast(message) {
  const node = $('#toast');
  if (!node) return;
  node.textContent = message;
  node.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => {
    node.hidden = true;
  }, 2500);
}

/** Copies `text`; flips the button's label for a moment. */
export async function copyText(text, button) {
  let ok = false;
  try {
    await navigator.clipboard.writeText(text);
    ok = true;
  } catch {
    const area = el('textarea', { readonly: true, class: 'offscreen' });
    area.value = text;
    document.body.append(area);
    area.select();
    try {
      ok = document.execCommand('copy');
    } catch {
      ok = false;
    }
    area.remove();
  }
  if (button) {
    const label = button.dataset.label || button.textContent;
    button.dataset.label = label;
    button.textContent = ok ? 'Copied' : 'Copy failed';
    setTimeout(() => {
      button.textContent = label;
    }, 1500);
  }
  if (!ok) toast('Copy failed: select the text and copy it by hand');
  return ok;
}

/** Asks a yes/no question in the page's own dialog. */
export function ask(message, okLabel = 'OK') {
  const dialog = $('#confirm-dialog');
  $('#confirm-message').textContent = message;
  $('#confirm-ok').textContent = okLabel;
  return new Promise((resolve) => {
    const done = (answer) => {
      $('#confirm-ok').removeEventListener('click', yes);
      $('#confirm-cancel').removeEventListener('click', no);
      dialog.removeEventListener('cancel', no);
      dialog.close();
      resolve(answer);
    };
    const yes = () => done(true);
    const no = () => done(false);
    $('#confirm-ok').addEventListener('click', yes);
    $('#confirm-cancel').addEventListener('click', no);
    dialog.addEventListener('cancel', no);
    dialog.showModal();
  });
}

/**
 * Runs `task` now and then `ms` after each run ends, while `when()` is
 * true (checked before each run). Runs never overlap. `now()` runs it at
 * once (e.g. after an action or a tab switch).
 */
export function poller(task, ms, when = () => true) {
  let timer = null;
  let running = false;
  let stopped = true;
  let again = false;
  const run = async () => {
    clearTimeout(timer);
    timer = null;
    if (stopped) return;
    if (running) {
      again = true;
      return;
    }
    if (when()) {
      running = true;
      try {
        await task();
      } catch (e) {
        console.error(e);
      } finally {
        running = false;
      }
    }
    if (!stopped) timer = setTimeout(run, again ? 0 : ms);
    again = false;
  };
  return {
    start() {
      if (!stopped) return;
      stopped = false;
      run();
    },
    stop() {
      stopped = true;
      clearTimeout(timer);
      timer = null;
    },
    now() {
      if (!stopped) run();
    },
  };
}

/** Parses a non-negative integer typed by the user; null if it is not one. */
export function parseUnits(text) {
  const s = String(text).trim().replace(/[_ ,]/g, '');
  if (!/^\d+$/.test(s)) return null;
  try {
    return BigInt(s);
  } catch {
    return null;
  }
}
