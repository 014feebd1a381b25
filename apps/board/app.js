// The board: posts over the topic "board", attachments as content (a file
// added to the node, or a hash), tips as ledger payments the user approves
// in the node's dashboard.
"use strict";

const TOPIC = "board";
const TIP = 100;
let me = { address: null };

const $ = (id) => document.getElementById(id);

function render(msg) {
  let post;
  try {
    post = JSON.parse(msg.data);
  } catch (_) {
    post = { text: msg.data };
  }
  if (typeof post.text !== "string") return;
  const li = document.createElement("li");
  li.className = "post";
  li.dataset.id = msg.id;
  const meta = document.createElement("div");
  meta.className = "meta";
  meta.textContent = `${new Date(msg.timestamp).toLocaleTimeString()} · node ${msg.from.slice(0, 16)}…`;
  const text = document.createElement("div");
  text.className = "text";
  text.textContent = post.text;
  li.append(meta, text);
  if (typeof post.attachment === "string" && /^[0-9a-f]{64}$/.test(post.attachment)) {
    const a = document.createElement("a");
    a.href = weft.contentUrl(post.attachment);
    a.textContent = `attachment ${post.attachment.slice(0, 12)}…`;
    a.target = "_blank";
    li.append(a);
  }
  if (typeof post.author === "string" && post.author.startsWith("weft1") && post.author !== me.address) {
    const tip = document.createElement("button");
    tip.className = "tip-button";
    tip.textContent = `Tip ${TIP}`;
    tip.addEventListener("click", () => sendTip(post.author, tip));
    li.append(" ", tip);
  }
  $("posts").prepend(li);
}

async function sendTip(to, button) {
  button.disabled = true;
  const status = $("tip-status");
  try {
    const done = await weft.pay(to, TIP, {
      memo: "tip from the weft board",
      onUpdate: (r) => {
        if (r.status === "pending") status.textContent = "Tip waiting for your approval in the dashboard…";
        if (r.status === "approved") status.textContent = "Tip approved, sending…";
      },
    });
    status.textContent = `Tip sent: ${done.txid}`;
  } catch (e) {
    status.textContent = `Tip not sent: ${e.message}`;
    button.disabled = false;
  }
}

async function start() {
  try {
    me = await weft.node();
    $("me").textContent = me.address ? `you: ${me.address}` : `node ${me.peer_id} (no wallet: tips go nowhere)`;
  } catch (e) {
    $("me").textContent = `cannot reach the node: ${e.message}`;
  }
  weft.subscribe(TOPIC, render);
  $("post-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const text = $("post-text").value.trim();
    if (!text) return;
    let attachment = $("post-attachment").value.trim().toLowerCase() || undefined;
    const file = $("post-file").files[0];
    const status = $("post-status");
    try {
      if (file) {
        // The file becomes content on this node; others fetch it by hash.
        status.textContent = "adding the file…";
        attachment = (await weft.addContent(file)).hash;
      }
      status.textContent = "posting…";
      await weft.publish(TOPIC, JSON.stringify({ text, author: me.address, attachment }));
      $("post-text").value = "";
      $("post-attachment").value = "";
      $("post-file").value = "";
      status.textContent = "posted";
    } catch (e) {
      status.textContent = `not posted: ${e.message}`;
    }
  });
}

start();
