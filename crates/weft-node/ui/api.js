// The node's HTTP API, as the dashboard uses it.
//
// The token lives in sessionStorage (it is gone when the tab closes) and is
// sent as `Authorization: Bearer <token>` on every /v1 call. Errors become
// `ApiError`s carrying the API's `{code, message}`; a 401 also tells the app
// (through `onUnauthorized`) so it can ask for a token again.

const TOKEN_KEY = 'weft.token';

let token = null;
try {
  token = sessionStorage.getItem(TOKEN_KEY);
} catch {
  token = null;
}
let unauthorizedHandler = () => {};

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
  }
}

/** Moves a `#token=...` from the address bar into sessionStorage. */
export function takeTokenFromUrl() {
  const fragment = location.hash.replace(/^#/, '');
  if (!fragment) return;
  const params = new URLSearchParams(fragment);
  if (!params.has('token')) return;
  const given = (params.get('token') || '').trim();
  params.delete('token');
  const rest = params.toString();
  history.replaceState(null, '', location.pathname + location.search + (rest ? '#' + rest : ''));
  if (given) setToken(given);
}

export function hasToken() {
  return Boolean(token);
}

export function setToken(value) {
  token = value;
  try {
    sessionStorage.setItem(TOKEN_KEY, value);
  } catch {
    // Private mode without storage: the token lives until the page reloads.
  }
}

export function clearToken() {
  token = null;
  try {
    sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    // Nothing stored.
  }
}

export function onUnauthorized(handler) {
  unauthorizedHandler = handler;
}

function headersFor(path, extra) {
  const headers = new Headers(extra || {});
  if (path.startsWith('/v1/')) {
    if (!token) throw new ApiError(401, 'unauthorized', 'not logged in: paste the API token');
    headers.set('Authorization', 'Bearer ' + token);
  }
  return headers;
}

async function errorFrom(response) {
  let code = 'http_' + response.status;
  let message = `the node answered ${response.status} ${response.statusText}`.trim();
  try {
    const text = await response.text();
    const body = JSON.parse(text);
    if (body && typeof body.message === 'string') {
      message = body.message;
      if (typeof body.code === 'string') code = body.code;
    }
  } catch {
    // Not the API's JSON: keep the status line.
  }
  return new ApiError(response.status, code, message);
}

function unreachable() {
  return new ApiError(0, 'unreachable', 'cannot reach the node: is it still running?');
}

/**
 * One API call. `json` is sent as a JSON body; `body` (with its own
 * content type in `headers`) is sent as is. Answers with the parsed JSON,
 * or with the Response itself when `raw` is set.
 */
export async function request(method, path, { json, body, headers, signal, raw } = {}) {
  const h = headersFor(path, headers);
  let payload = body;
  if (json !== undefined) {
    h.set('Content-Type', 'application/json');
    payload = JSON.stringify(json);
  }
  let response;
  try {
    response = await fetch(path, { method, headers: h, body: payload, signal, cache: 'no-store' });
  } catch (e) {
    if (e && e.name === 'AbortError') throw e;
    throw unreachable();
  }
  if (!response.ok) {
    const err = await errorFrom(response);
    if (response.status === 401 && path.startsWith('/v1/')) unauthorizedHandler(err);
    throw err;
  }
  if (raw) return response;
  const text = await response.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    throw new ApiError(response.status, 'bad_answer', `unexpected answer from ${path}`);
  }
}

export const get = (path, options) => request('GET', path, options);
export const post = (path, json, options) => request('POST', path, { ...options, json });
export const del = (path, options) => request('DELETE', path, options);

/** `path` with each segment of `parts` percent-encoded: `url('/v1/blobs', h, 'pin')`. */
export function url(base, ...parts) {
  return [base, ...parts.map((p) => encodeURIComponent(String(p)))].join('/');
}

/**
 * Uploads `file` as the raw body of a POST (XMLHttpRequest, for upload
 * progress). `onProgress(sent, total)` is called as bytes go out.
 */
export function upload(path, file, onProgress) {
  return new Promise((resolve, reject) => {
    let headers;
    try {
      headers = headersFor(path);
    } catch (e) {
      reject(e);
      return;
    }
    const xhr = new XMLHttpRequest();
    xhr.open('POST', path);
    for (const [k, v] of headers) xhr.setRequestHeader(k, v);
    // Never application/json: the API would read the body as a path request.
    xhr.setRequestHeader('Content-Type', 'application/octet-stream');
    xhr.upload.onprogress = (e) => {
      if (onProgress) onProgress(e.loaded, e.lengthComputable ? e.total : file.size);
    };
    xhr.onerror = () => reject(unreachable());
    xhr.onabort = () => reject(new ApiError(0, 'aborted', 'upload cancelled'));
    xhr.onload = () => {
      let body = null;
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        body = null;
      }
      if (xhr.status >= 200 && xhr.status < 300 && body) {
        resolve(body);
        return;
      }
      const err =
        body && typeof body.message === 'string'
          ? new ApiError(xhr.status, body.code || 'http_' + xhr.status, body.message)
          : new ApiError(xhr.status, 'http_' + xhr.status, `the node answered ${xhr.status}`);
      if (xhr.status === 401) unauthorizedHandler(err);
      reject(err);
    };
    xhr.send(file);
  });
}

/**
 * Reads a Server-Sent Events stream with fetch (EventSource cannot send
 * the Authorization header). Calls `onEvent({event, data, id})` per event;
 * resolves when the stream ends, rejects on errors (not on abort).
 */
export async function events(path, { signal, onEvent, onOpen }) {
  const response = await request('GET', path, {
    raw: true,
    signal,
    headers: { Accept: 'text/event-stream' },
  });
  if (onOpen) onOpen();
  if (!response.body) throw new ApiError(0, 'no_stream', 'this browser cannot read streams');
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  const parser = new SseParser(onEvent);
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      parser.push(value);
    }
    parser.end();
  } catch (e) {
    if (e && e.name === 'AbortError') return;
    throw e;
  } finally {
    reader.releaseLock();
  }
}

/** The text/event-stream format: `field: value` lines, events end at a blank line. */
export class SseParser {
  constructor(onEvent) {
    this.onEvent = onEvent;
    this.buffer = '';
    this.reset();
  }

  reset() {
    this.event = '';
    this.data = [];
    this.id = '';
  }

  push(text) {
    this.buffer += text;
    let index;
    while ((index = this.buffer.search(/\r\n|\r|\n/)) >= 0) {
      const line = this.buffer.slice(0, index);
      const newline = this.buffer.startsWith('\r\n', index) ? 2 : 1;
      // A lone \r at the end may be the first half of \r\n: wait for more.
      if (newline === 1 && this.buffer[index] === '\r' && index === this.buffer.length - 1) break;
      this.buffer = this.buffer.slice(index + newline);
      this.line(line);
    }
  }

  end() {
    if (this.buffer) this.line(this.buffer);
    this.buffer = '';
    this.line('');
  }

  line(line) {
    if (line === '') {
      if (this.data.length) {
        this.onEvent({ event: this.event || 'message', data: this.data.join('\n'), id: this.id });
      }
      this.reset();
      return;
    }
    if (line.startsWith(':')) return;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') this.data.push(value);
    else if (field === 'event') this.event = value;
    else if (field === 'id') this.id = value;
  }
}
