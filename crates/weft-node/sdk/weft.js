// weft.js: the SDK a weft app uses to reach the node that serves it.
//
// Load it with <script src="/sdk/weft.js"></script>; it defines `weft`.
// It talks only to the app's own origin (`/.weft/...`, or
// `/app/<hash>/.weft/...` in the path form), never to the node's /v1 API,
// and holds no token: payments wait for the user's approval in the
// dashboard.
(function () {
  "use strict";
  const m = location.pathname.match(/^\/app\/([0-9a-f]{64})\//);
  const base = m ? `/app/${m[1]}/.weft/` : "/.weft/";

  async function call(path, options) {
    const r = await fetch(base + path, options);
    let body = null;
    try {
      body = await r.json();
    } catch (_) {
      body = null;
    }
    if (!r.ok) {
      const message = body && body.message ? body.message : `${r.status} ${r.statusText}`;
      const err = new Error(message);
      err.code = body && body.code;
      err.status = r.status;
      throw err;
    }
    return body;
  }

  // POSTs as text/plain: a "simple" request, no CORS preflight needed.
  function post(path, value) {
    return call(path, {
      method: "POST",
      headers: { "Content-Type": "text/plain;charset=UTF-8" },
      body: JSON.stringify(value),
    });
  }

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  const weft = {
    /** The node: `{peer_id, address, app, genesis}` (address: its wallet, or null). */
    node: () => call("node"),
    /** The chain: `{height, tip, difficulty, work, mempool, sync, ...}`. */
    chain: () => call("chain"),
    /** An account: `{address, balance, nonce, pending_out, pending_in, next_nonce}`. */
    balance: (address) => call(`accounts/${encodeURIComponent(address)}`),
    /** URL of content by hash, on this app's origin (fetched from the swarm if needed). */
    contentUrl: (hash) => `${base}blob/${encodeURIComponent(hash)}`,
    /** Fetches content by hash; resolves to a Response. */
    fetchContent: (hash) => fetch(`${base}blob/${encodeURIComponent(hash)}`),
    /**
     * Adds a file (or any Blob) to the node's content; resolves to
     * `{hash, size, name}`. Refused (code "permission_required") unless
     * the user allowed this app uploads in the dashboard; at most 64 MiB.
     */
    addContent(blob, options = {}) {
      const name = options.name || (blob && blob.name) || "";
      const query = name ? `?name=${encodeURIComponent(name)}` : "";
      // An untyped Blob sends no Content-Type: a "simple" request.
      return call(`content${query}`, { method: "POST", body: new Blob([blob]) });
    },
    /** Publishes a text message on a topic; resolves to `{id, topic, from, timestamp, data}`. */
    publish: (topic, message) =>
      post(`topics/${encodeURIComponent(topic)}/messages`, { message: String(message) }),
    /**
     * Calls `onMessage({id, topic, from, timestamp, data})` for each new
     * message on `topic`, once each. Returns `{close()}`.
     */
    subscribe(topic, onMessage, onError) {
      const seen = new Set();
      const es = new EventSource(`${base}topics/${encodeURIComponent(topic)}/events`);
      es.onmessage = (e) => {
        let msg;
        try {
          msg = JSON.parse(e.data);
        } catch (_) {
          return;
        }
        if (seen.has(msg.id)) return;
        seen.add(msg.id);
        if (seen.size > 10000) seen.clear();
        onMessage(msg);
      };
      if (onError) es.onerror = onError;
      return { close: () => es.close() };
    },
    /**
     * Asks the user to pay `amount` to `to`. Resolves with the request once
     * the payment is sent (`{id, status: "sent", txid, ...}`); rejects if
     * the user denies it or it fails. `onUpdate(request)` sees each state,
     * starting with "pending" (waiting for approval in the dashboard).
     */
    async pay(to, amount, options = {}) {
      let req = await post("payments", {
        to,
        amount: Number(amount),
        fee: options.fee,
        memo: options.memo || "",
      });
      const onUpdate = options.onUpdate || (() => {});
      let last = null;
      for (;;) {
        if (req.status !== last) {
          onUpdate(req);
          last = req.status;
        }
        if (req.status === "sent") return req;
        if (req.status === "denied") throw new Error("the payment was denied");
        if (req.status === "failed") throw new Error(`the payment failed: ${req.error}`);
        await sleep(1000);
        req = await call(`payments/${req.id}`);
      }
    },
  };

  window.weft = weft;
})();
