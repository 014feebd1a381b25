//! `weft start` (one node until a signal) and `weft devnet` (several
//! connected nodes in one process).

use std::{path::PathBuf, time::Duration};

use anyhow::Context;
use weft_node::{FileConfig, Node, NodeConfig, NodeInfo, Overrides};

use crate::cli::{Cli, DevnetArgs, StartArgs};

/// Shutdown must finish within this time after a signal.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(4);
/// How long devnet waits for its nodes to connect to each other.
const DEVNET_CONNECT_DEADLINE: Duration = Duration::from_secs(20);

pub(crate) async fn start(cli: &Cli, data_dir: PathBuf, args: &StartArgs) -> anyhow::Result<()> {
    let overrides = Overrides {
        listen: args.listen.clone(),
        bootstrap: args.bootstrap.clone(),
        api: cli.api.as_deref().map(strip_scheme),
        mdns: args.no_mdns.then_some(false),
        network: args.network.clone(),
        max_peers: args.max_peers,
        dht_mode: args.dht_mode.clone(),
        store_max: args.store_max.clone(),
        genesis: args.genesis.clone(),
        mine: args.mine.then_some(true),
        miner: args.miner.clone(),
        mine_threads: args.mine_threads,
        test_fault: args.test_fault.clone(),
    };
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("data dir {} is not usable", data_dir.display()))?;
    let file = FileConfig::load(&data_dir)?;
    let config = NodeConfig::resolve(data_dir, overrides, file)?;
    let signals = Signals::install()?;
    let node = Node::start(config).await?;
    print_started(node.info(), cli.json)?;
    print_ledger(&node, cli.json);
    signals.wait().await?;
    eprintln!("shutting down");
    if tokio::time::timeout(SHUTDOWN_DEADLINE, node.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("shutdown took too long; exiting anyway");
    }
    Ok(())
}

/// `--api http://127.0.0.1:0` is accepted for start too.
fn strip_scheme(s: &str) -> String {
    s.trim()
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned()
}

fn print_started(info: &NodeInfo, json: bool) -> anyhow::Result<()> {
    if json {
        let value = serde_json::json!({
            "peer_id": info.peer_id.to_string(),
            "network": info.network,
            "listen_addrs": info.listen_addrs.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "api_url": info.api_url,
            "data_dir": info.data_dir,
        });
        println!("{}", serde_json::to_string(&value)?);
        return Ok(());
    }
    println!("weft {} node {}", env!("CARGO_PKG_VERSION"), info.peer_id);
    println!("network: {}", info.network);
    for addr in &info.listen_addrs {
        println!("listening on {addr}");
    }
    println!("API: {}", info.api_url);
    println!("data dir: {}", info.data_dir.display());
    Ok(())
}

/// The chain this node runs on (on stderr, so `--json` stays one line).
fn print_ledger(node: &Node, json: bool) {
    if json {
        return;
    }
    let l = node.ledger();
    let tip = l.tip();
    eprintln!(
        "ledger: genesis {}, height {}{}",
        l.genesis_hash(),
        tip.height,
        if l.is_mining() { ", mining" } else { "" }
    );
}

/// SIGINT (Ctrl-C) and SIGTERM, listened for from the moment this is
/// created: before the start-up line is printed, so a signal sent right
/// after reading it is never missed (the default action would kill the
/// process without a clean shutdown).
struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Self {
                term: signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?,
                int: signal(SignalKind::interrupt()).context("cannot listen for Ctrl-C")?,
            })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    async fn wait(mut self) -> anyhow::Result<()> {
        #[cfg(unix)]
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
        #[cfg(not(unix))]
        tokio::signal::ctrl_c()
            .await
            .context("cannot listen for Ctrl-C")?;
        Ok(())
    }
}

pub(crate) async fn devnet(cli: &Cli, args: &DevnetArgs) -> anyhow::Result<()> {
    if !(1..=100).contains(&args.nodes) {
        anyhow::bail!("--nodes must be between 1 and 100, not {}", args.nodes);
    }
    let signals = Signals::install()?;
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => {
            let suffix: u32 = rand_suffix();
            std::env::temp_dir().join(format!("weft-devnet-{suffix:08x}"))
        }
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let network = args
        .network
        .clone()
        .unwrap_or_else(|| format!("devnet-{:08x}", rand_suffix()));

    let mut nodes: Vec<Node> = Vec::with_capacity(args.nodes);
    let result = start_devnet_nodes(&dir, &network, args.nodes, &mut nodes).await;
    if let Err(e) = result {
        for node in nodes {
            node.shutdown().await;
        }
        return Err(e);
    }

    if cli.json {
        let list: Vec<_> = nodes
            .iter()
            .map(|n| {
                let i = n.info();
                serde_json::json!({
                    "peer_id": i.peer_id.to_string(),
                    "api_url": i.api_url,
                    "data_dir": i.data_dir,
                    "listen_addrs": i.listen_addrs.iter().map(ToString::to_string).collect::<Vec<_>>(),
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({ "network": network, "dir": dir, "nodes": list })
        );
    } else {
        println!(
            "devnet {network}: {} nodes in {}",
            nodes.len(),
            dir.display()
        );
        for (i, node) in nodes.iter().enumerate() {
            let info = node.info();
            println!("node-{i}  {}  API {}", info.peer_id, info.api_url);
            println!("        export WEFT_DATA_DIR={}", info.data_dir.display());
        }
        println!("all nodes connected; press Ctrl-C to stop");
    }
    signals.wait().await?;
    eprintln!("shutting down");
    let all = futures_join(nodes);
    if tokio::time::timeout(SHUTDOWN_DEADLINE, all).await.is_err() {
        tracing::warn!("shutdown took too long; exiting anyway");
    }
    Ok(())
}

async fn futures_join(nodes: Vec<Node>) {
    let mut set = tokio::task::JoinSet::new();
    for node in nodes {
        set.spawn(node.shutdown());
    }
    while set.join_next().await.is_some() {}
}

async fn start_devnet_nodes(
    dir: &std::path::Path,
    network: &str,
    count: usize,
    nodes: &mut Vec<Node>,
) -> anyhow::Result<()> {
    for i in 0..count {
        let mut config = NodeConfig::loopback(dir.join(format!("node-{i}")), network);
        if let Some(first) = nodes.first() {
            config.bootstrap = first.info().listen_addrs.iter().take(1).cloned().collect();
        }
        let node = Node::start(config)
            .await
            .with_context(|| format!("starting devnet node-{i}"))?;
        nodes.push(node);
    }
    // Connect everyone to everyone, so the devnet is ready when we print.
    let deadline = tokio::time::Instant::now() + DEVNET_CONNECT_DEADLINE;
    for (i, node) in nodes.iter().enumerate() {
        for other in &nodes[..i] {
            let Some(addr) = other.info().listen_addrs.first().cloned() else {
                continue;
            };
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            tokio::time::timeout(left, node.net().dial(addr))
                .await
                .context("devnet nodes did not connect in time")?
                .context("connecting devnet nodes")?;
        }
    }
    Ok(())
}

fn rand_suffix() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    nanos ^ std::process::id().rotate_left(16)
}
