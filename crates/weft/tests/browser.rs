//! In a real browser: headless Chromium, driven through WebDriver
//! (chromedriver), against real `weft` nodes started as child processes on
//! 127.0.0.1.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs
//! them); without chromedriver every test fails and says how to install it.
//! Screenshots of the key steps, and of every window when a test fails, go
//! to `target/browser-artifacts/<test>-<step>.png`.
//!
//! Run with `cargo test -p weft --test browser -- --nocapture`.

#[path = "browser/harness.rs"]
mod harness;
#[allow(dead_code)]
#[path = "cli/support.rs"]
mod support;

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{anyhow, bail, Context as _};
use harness::{blocking, wait_for, Browser, Ctx};
use serde_json::{json, Value};
use support::{loopback_args, unique_network, Daemon};
use tempfile::TempDir;

/// Deadline for the page to react to something the test did.
const UI: Duration = Duration::from_secs(20);
/// Deadline for something that crosses the network between two nodes.
const NET: Duration = Duration::from_secs(45);

/// A `weft start` child process and what a browser needs to reach it.
struct Node {
    /// Kept for its drop, which kills the process. (In a mutex so that a
    /// `&Node` can cross an await: the daemon holds a channel receiver.)
    _daemon: std::sync::Mutex<Daemon>,
    dir: PathBuf,
    peer_id: String,
    tcp_addr: String,
    token: String,
    port: u16,
}

impl Node {
    async fn start(dir: &Path, args: Vec<String>) -> anyhow::Result<Node> {
        let dir = dir.to_owned();
        let daemon = blocking(move || Daemon::start(&dir, &args)).await;
        let token_file = daemon.dir.join("api.token");
        let token = std::fs::read_to_string(&token_file)
            .with_context(|| format!("read {}", token_file.display()))?
            .trim()
            .to_owned();
        let port = daemon
            .api_url
            .trim_end_matches('/')
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse().ok())
            .ok_or_else(|| anyhow!("no port in the API URL {:?}", daemon.api_url))?;
        Ok(Node {
            dir: daemon.dir.clone(),
            peer_id: daemon.peer_id.clone(),
            tcp_addr: daemon.addr("tcp"),
            _daemon: std::sync::Mutex::new(daemon),
            token,
            port,
        })
    }

    /// The dashboard, logged in through the URL fragment.
    fn dashboard_url(&self) -> String {
        format!("http://127.0.0.1:{}/#token={}", self.port, self.token)
    }

    /// An app on this node's gateway, in the app's own origin.
    fn app_url(&self, hash: &str) -> String {
        format!("http://{hash}.app.localhost:{}/", self.port)
    }

    /// `weft --data-dir DIR ARGS`; its stdout as JSON.
    async fn cli_json(&self, args: &[&str]) -> anyhow::Result<Value> {
        cli_json(self.dir.clone(), args).await
    }

    /// GET `/v1/...` with the node's token.
    async fn api(&self, path: &str) -> anyhow::Result<(u16, Value)> {
        let r = reqwest::Client::new()
            .get(format!("http://127.0.0.1:{}{path}", self.port))
            .bearer_auth(&self.token)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .with_context(|| format!("GET {path}"))?;
        let status = r.status().as_u16();
        let body = r.json().await.unwrap_or(Value::Null);
        Ok((status, body))
    }

    /// The peer ids `weft peers` lists (none if it fails).
    async fn peer_ids(&self) -> Vec<String> {
        let peers = self
            .cli_json(&["peers", "--json"])
            .await
            .unwrap_or_default();
        peers
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|p| p["peer_id"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The confirmed balance of this node's default wallet.
    async fn balance(&self) -> anyhow::Result<u64> {
        let v = self.cli_json(&["balance", "--json"]).await?;
        v["balance"]
            .as_u64()
            .ok_or_else(|| anyhow!("no balance in {v}"))
    }
}

/// `weft --data-dir DIR ARGS` (no running node needed); stdout as JSON.
async fn cli_json(dir: PathBuf, args: &[&str]) -> anyhow::Result<Value> {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let shown = args.join(" ");
    let out = blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        support::weft(&dir, &args)
    })
    .await;
    if !out.status.success() {
        bail!("weft {shown} failed: {}", support::stderr(&out).trim());
    }
    serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "weft {shown} printed no JSON: {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Starts node B bootstrapping from A and waits until each lists the other.
async fn connect(a: &Node, b: &Node) -> anyhow::Result<()> {
    wait_for("the two nodes to see each other", NET, || async {
        let ab = a.peer_ids().await.contains(&b.peer_id);
        let ba = b.peer_ids().await.contains(&a.peer_id);
        Ok((ab && ba).then_some(()))
    })
    .await
}

/// The example app `apps/board`, published on a node.
struct Published {
    /// The app's URL on the publishing node's gateway, as `weft app
    /// publish` prints it (`http://<hash>.app.localhost:<port>/`).
    url: String,
    hash: String,
}

impl Published {
    /// The same app on `node`'s gateway: the URL with `node`'s port.
    fn on(&self, node: &Node) -> String {
        let (base, _) = self
            .url
            .trim_end_matches('/')
            .rsplit_once(':')
            .expect("a port in the app URL");
        format!("{base}:{}/", node.port)
    }
}

/// Publishes the example app `apps/board` on `node`.
async fn publish_board(node: &Node) -> anyhow::Result<Published> {
    let app = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../apps/board");
    let app = app.canonicalize().context("apps/board")?;
    let path = app.to_string_lossy().into_owned();
    let published = match node.cli_json(&["app", "publish", &path, "--json"]).await {
        Ok(v) => v,
        Err(e) if format!("{e:#}").contains("unrecognized subcommand") => {
            node.cli_json(&["share", &path, "--json"]).await?
        }
        Err(e) => return Err(e),
    };
    let hash = published["hash"]
        .as_str()
        .filter(|h| h.len() == 64)
        .ok_or_else(|| anyhow!("no hash in {published}"))?
        .to_owned();
    let url = match published["url"].as_str() {
        Some(url) => url.to_owned(),
        None => node.app_url(&hash),
    };
    eprintln!("published apps/board: {url}");
    Ok(Published { url, hash })
}

/// Opens the board app and waits until it has asked its node who it is.
async fn open_board(browser: &Browser, url: &str) -> anyhow::Result<String> {
    if let Err(e) = browser.goto(url).await {
        // Say why, when the cause is the name itself.
        let host = url
            .split("://")
            .nth(1)
            .unwrap_or("")
            .split([':', '/'])
            .next();
        if let Some(label) = host.and_then(|h| h.split('.').find(|l| l.len() > 63)) {
            return Err(e.context(format!(
                "the app's host name has a label of {} characters ({label}): DNS labels \
                 are at most 63, and Chromium does not resolve longer ones",
                label.len()
            )));
        }
        return Err(e);
    }
    browser
        .wait_text("#me", "to show who we are", UI, |t| {
            !t.trim().is_empty() && !t.contains("connecting")
        })
        .await
}

/// Waits until `from` has `to` in its gossip mesh for the app topic
/// `topic` (GET /v1/topics), so that a post is not published into an empty
/// mesh. A node without that endpoint is not waited for.
async fn wait_mesh(from: &Node, to: &Node, topic: &str) -> anyhow::Result<()> {
    let (status, _) = from.api("/v1/topics").await?;
    if status == 404 {
        eprintln!("GET /v1/topics is not there: not waiting for the gossip mesh");
        return Ok(());
    }
    let what = format!("{topic:?}'s gossip mesh to include the other node (GET /v1/topics)");
    wait_for(&what, NET, || async {
        let (_, v) = from.api("/v1/topics").await?;
        let list = match &v {
            Value::Array(a) => a.clone(),
            Value::Object(o) => o
                .get("topics")
                .or_else(|| o.get("subscriptions"))
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
            _ => vec![],
        };
        let ok = list.iter().any(|t| {
            t["topic"].as_str() == Some(topic)
                && t["mesh_peers"]
                    .as_array()
                    .is_some_and(|p| p.iter().any(|p| p.as_str() == Some(&to.peer_id)))
        });
        Ok(ok.then_some(()))
    })
    .await
}

/// The text of every `li.post` in `#posts`.
async fn posts(browser: &Browser) -> anyhow::Result<Vec<String>> {
    let v = browser
        .js(
            "return [...document.querySelectorAll('#posts li.post')].map((li) => li.textContent);",
            vec![],
        )
        .await?;
    Ok(v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default())
}

/// Types `text` into the board and posts it.
async fn post(browser: &Browser, text: &str) -> anyhow::Result<()> {
    let input = browser.wait_visible("#post-text", UI).await?;
    input.send_keys(text).await.context("type the post")?;
    browser.click("#post-button", UI).await?;
    browser
        .wait_text("#post-status", "to say posted", UI, |t| {
            t.trim() == "posted"
        })
        .await?;
    Ok(())
}

/// Waits until a post containing `text` shows in `browser`'s `#posts`.
async fn wait_post(browser: &Browser, text: &str) -> anyhow::Result<()> {
    let what = format!("a post {text:?} in #posts");
    wait_for(&what, NET, || async {
        Ok(posts(browser)
            .await?
            .iter()
            .any(|p| p.contains(text))
            .then_some(()))
    })
    .await
}

/// A short tag that keeps texts of different runs apart.
fn nonce() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos();
    format!("{:x}", nanos & 0xffff_ffff)
}

// ---------------------------------------------------------------- 1

/// Share a file through the dashboard and see it listed with its name and
/// BLAKE3 hash.
#[test]
fn dashboard_share_file() {
    harness::run("dashboard_share_file", dashboard_share_file_body);
}

async fn dashboard_share_file_body(ctx: Ctx) -> anyhow::Result<()> {
    let dir = ctx.keep(TempDir::new()?);
    let args = loopback_args(&unique_network("ui"));
    let node = ctx.keep(Node::start(&dir.path().join("a"), args).await?);

    let files = TempDir::new()?;
    let name = "weft-browser-share.txt";
    let file = files.path().join(name);
    let bytes = format!(
        "shared through the dashboard in a real browser, run {}\n",
        nonce()
    );
    std::fs::write(&file, &bytes)?;
    let hash = blake3::hash(bytes.as_bytes()).to_hex().to_string();

    let browser = ctx.browser("dashboard").await?;
    browser.goto(&node.dashboard_url()).await?;
    browser.wait_visible("#app", UI).await?;
    browser.click("#tab-content", UI).await?;
    let input = browser.wait_visible("#share-file", UI).await?;
    browser.screenshot("1-content-tab").await?;

    input
        .send_keys(&file.to_string_lossy())
        .await
        .context("pick the file in #share-file")?;
    browser.click("#share-button", UI).await?;

    let what = format!("#content-list to list {name} with hash {hash}");
    let row = wait_for(&what, UI, || async {
        let rows = browser
            .js(
                "return [...document.querySelectorAll('#content-list tbody tr')]
                    .map((tr) => tr.textContent);",
                vec![],
            )
            .await?;
        Ok(rows.as_array().and_then(|rows| {
            rows.iter()
                .filter_map(Value::as_str)
                .find(|r| r.contains(name) && r.contains(&hash))
                .map(str::to_owned)
        }))
    })
    .await?;
    eprintln!("listed: {row}");
    browser.screenshot("2-shared").await?;

    // The node has it too, under the same hash.
    let ls = node.cli_json(&["ls", "--json"]).await?;
    let listed = ls.as_array().is_some_and(|a| {
        a.iter()
            .any(|b| b["hash"].as_str() == Some(hash.as_str()) && b["name"].as_str() == Some(name))
    });
    if !listed {
        bail!("weft ls does not list {name} ({hash}): {ls}");
    }
    Ok(())
}

// ---------------------------------------------------------------- 2

/// The example board app, opened from two nodes' gateways: a post made in
/// B's window shows up in A's.
#[test]
fn board_app_across_two_nodes() {
    harness::run("board_app_across_two_nodes", board_app_body);
}

async fn board_app_body(ctx: Ctx) -> anyhow::Result<()> {
    let dir = ctx.keep(TempDir::new()?);
    let network = unique_network("board");
    let a = ctx.keep(Node::start(&dir.path().join("a"), loopback_args(&network)).await?);
    let mut args = loopback_args(&network);
    args.extend(["--bootstrap".to_owned(), a.tcp_addr.clone()]);
    let b = ctx.keep(Node::start(&dir.path().join("b"), args).await?);
    connect(&a, &b).await?;

    let app = publish_board(&a).await?;
    let window_a = ctx.browser("app-on-a").await?;
    let window_b = ctx.browser("app-on-b").await?;
    open_board(&window_a, &app.on(&a)).await?;
    // B's node fetches the app from A the first time.
    open_board(&window_b, &app.on(&b)).await?;
    wait_mesh(&b, &a, "board").await?;

    let text = format!("hello from B's window ({})", nonce());
    post(&window_b, &text).await?;
    wait_post(&window_b, &text).await?;
    wait_post(&window_a, &text).await?;
    window_b.screenshot("b-posted").await?;
    window_a.screenshot("a-received").await?;

    // A file attached in B's window becomes content on B, but only once the
    // user allows the app uploads; A's window links to it, and A's gateway
    // fetches it from B.
    let files = TempDir::new()?;
    let file = files.path().join("attachment.txt");
    let bytes = format!("attached in B's window ({})\n", nonce());
    std::fs::write(&file, &bytes)?;
    let attached = blake3::hash(bytes.as_bytes()).to_hex().to_string();
    let text = format!("a post with a file ({})", nonce());
    let input = window_b.wait_visible("#post-text", UI).await?;
    input.send_keys(&text).await.context("type the post")?;
    let picker = window_b.wait_visible("#post-file", UI).await?;
    picker
        .send_keys(&file.to_string_lossy())
        .await
        .context("pick the file in #post-file")?;
    window_b.click("#post-button", UI).await?;
    window_b
        .wait_text("#post-status", "to say uploads need permission", UI, |t| {
            t.contains("not posted") && t.contains("allow")
        })
        .await?;
    window_b.screenshot("b-upload-refused").await?;
    // The user allows the app uploads in B's dashboard (Apps tab).
    let dashboard = ctx.browser("dashboard-b").await?;
    dashboard.goto(&b.dashboard_url()).await?;
    dashboard.wait_visible("#app", UI).await?;
    dashboard.click("#tab-apps", UI).await?;
    let uploads = format!(
        "select[data-permission=\"{}\"][data-field=\"uploads\"]",
        app.hash
    );
    dashboard
        .wait_visible(&uploads, UI)
        .await?
        .select_by_value("allow")
        .await
        .context("choose allow in the app's Uploads select")?;
    wait_for("B to record the app's uploads as allowed", UI, || async {
        let (_, apps) = b.api("/v1/apps").await?;
        Ok(apps.as_array().and_then(|list| {
            list.iter()
                .find(|a| a["hash"] == app.hash.as_str() && a["permissions"]["uploads"] == "allow")
                .map(|_| ())
        }))
    })
    .await?;
    dashboard.screenshot("b-uploads-allowed").await?;
    window_b.click("#post-button", UI).await?;
    window_b
        .wait_text("#post-status", "to say posted", UI, |t| {
            t.trim() == "posted"
        })
        .await?;
    wait_post(&window_a, &text).await?;
    let shown = posts(&window_a).await?;
    let link = format!("attachment {}", &attached[..12]);
    if !shown.iter().any(|p| p.contains(&text) && p.contains(&link)) {
        bail!("A's window shows no {link:?} with the post: {shown:?}");
    }
    window_a.screenshot("a-attachment").await?;
    let got = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{}/blob/{attached}", a.port))
        .timeout(NET)
        .send()
        .await?
        .bytes()
        .await?;
    if got.as_ref() != bytes.as_bytes() {
        bail!("A's gateway served {} bytes, not the attachment", got.len());
    }
    Ok(())
}

// ---------------------------------------------------------------- 3

/// A tip from the board waits for the user's approval in the dashboard,
/// and is paid only once approved.
#[test]
fn tip_waits_for_approval() {
    harness::run("tip_waits_for_approval", tip_body);
}

async fn tip_body(ctx: Ctx) -> anyhow::Result<()> {
    const TIP: u64 = 100;
    let dir = ctx.keep(TempDir::new()?);
    let (dir_a, dir_b) = (dir.path().join("a"), dir.path().join("b"));
    let addr_a = cli_json(dir_a.clone(), &["wallet", "new", "--json"]).await?["address"]
        .as_str()
        .ok_or_else(|| anyhow!("no address from wallet new"))?
        .to_owned();
    let addr_b = cli_json(dir_b.clone(), &["wallet", "new", "--json"]).await?["address"]
        .as_str()
        .ok_or_else(|| anyhow!("no address from wallet new"))?
        .to_owned();
    let genesis = dir.path().join("genesis.json");
    let genesis_s = genesis.to_string_lossy().into_owned();
    let (alloc_a, alloc_b) = (format!("{addr_a}=1000000"), format!("{addr_b}=1000000"));
    let gen_args: Vec<String> = [
        "genesis",
        "new",
        "--alloc",
        &alloc_a,
        "--alloc",
        &alloc_b,
        "--block-interval",
        "300ms",
        "--difficulty",
        "50",
        "--reward",
        "10",
        "-o",
        &genesis_s,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let out = blocking(move || {
        let args: Vec<&str> = gen_args.iter().map(String::as_str).collect();
        support::weft_raw(&args)
    })
    .await;
    if !out.status.success() {
        bail!("weft genesis new failed: {}", support::stderr(&out));
    }

    let network = unique_network("tip");
    let mut args = loopback_args(&network);
    args.extend(["--genesis".into(), genesis_s.clone(), "--mine".into()]);
    let a = ctx.keep(Node::start(&dir_a, args).await?);
    let mut args = loopback_args(&network);
    args.extend([
        "--genesis".into(),
        genesis_s,
        "--bootstrap".into(),
        a.tcp_addr.clone(),
    ]);
    let b = ctx.keep(Node::start(&dir_b, args).await?);
    connect(&a, &b).await?;

    let app = publish_board(&a).await?;
    let window_a = ctx.browser("app-on-a").await?;
    let window_b = ctx.browser("app-on-b").await?;
    let me_a = open_board(&window_a, &app.on(&a)).await?;
    let me_b = open_board(&window_b, &app.on(&b)).await?;
    if !me_a.contains(&addr_a) || !me_b.contains(&addr_b) {
        bail!("the board does not show the wallets: A shows {me_a:?}, B shows {me_b:?}");
    }
    wait_mesh(&b, &a, "board").await?;

    let text = format!("tip me, from B ({})", nonce());
    post(&window_b, &text).await?;
    wait_post(&window_a, &text).await?;
    let before = b.balance().await?;

    // The tip button sits in the post from B (which carries B's address).
    let tip_button = wait_for("a .tip-button on B's post in A's window", UI, || async {
        let found = window_a
            .client
            .find_all(fantoccini::Locator::Css("#posts li.post"))
            .await?;
        for li in found {
            if li.text().await?.contains(&text) {
                if let Ok(button) = li.find(fantoccini::Locator::Css(".tip-button")).await {
                    return Ok(Some(button));
                }
            }
        }
        Ok(None)
    })
    .await?;
    tip_button.click().await.context("click the tip button")?;
    window_a
        .wait_text(
            "#tip-status",
            "to say the tip waits for approval",
            UI,
            |t| t.to_lowercase().contains("approval"),
        )
        .await?;
    window_a.screenshot("1-tip-waiting").await?;

    // A's dashboard lists it, with an approve button; nothing is paid yet.
    let request = wait_for("A's node to list the pending request", UI, || async {
        let (status, v) = a.api("/v1/apps/requests").await?;
        if status != 200 {
            bail!("GET /v1/apps/requests answered {status}: {v}");
        }
        Ok(v.as_array().and_then(|list| {
            list.iter()
                .find(|r| {
                    r["status"] == "pending"
                        && r["to"] == json!(addr_b)
                        && r["amount"] == json!(TIP)
                })
                .cloned()
        }))
    })
    .await?;
    let id = match &request["id"] {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let dashboard = ctx.browser("dashboard-a").await?;
    dashboard.goto(&a.dashboard_url()).await?;
    dashboard.wait_visible("#app", UI).await?;
    dashboard.click("#tab-apps", UI).await?;
    let approve = format!("[data-approve=\"{id}\"]");
    dashboard.wait_visible(&approve, UI).await?;
    dashboard.screenshot("2-pending-request").await?;
    let now = b.balance().await?;
    if now != before {
        bail!("B's balance changed from {before} to {now} before the tip was approved");
    }

    dashboard.click(&approve, UI).await?;
    window_a
        .wait_text("#tip-status", "to say the tip was sent", NET, |t| {
            t.contains("Tip sent")
        })
        .await?;
    let what = format!("B's balance to rise from {before} by {TIP}");
    wait_for(&what, NET, || async {
        Ok((b.balance().await? == before + TIP).then_some(()))
    })
    .await?;
    window_a.screenshot("3-tip-sent").await?;
    dashboard.screenshot("4-dashboard-after").await?;
    Ok(())
}
