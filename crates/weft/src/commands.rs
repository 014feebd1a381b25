//! Client commands: `id`, `peers`, `dial`, `disconnect`, `status`. Each
//! prints text, or with `--json` the API's JSON as-is.

use anyhow::bail;
use serde_json::{json, Value};

use crate::{cli::Command, client::Client, content};

/// Checks a command's arguments before any request is made.
pub(crate) fn validate(command: &Command) -> anyhow::Result<()> {
    match command {
        Command::Dial { multiaddr } => {
            weft_net::parse_multiaddr(multiaddr)?;
        }
        Command::Disconnect { peer_id } if peer_id.parse::<weft_net::PeerId>().is_err() => {
            bail!("{peer_id:?} is not a peer id");
        }
        Command::Share { path } => content::check_share(path)?,
        Command::Get { target, out } => {
            content::check_get(target, out.as_deref())?;
        }
        Command::Pin { hash }
        | Command::Unpin { hash }
        | Command::Rm { hash }
        | Command::Ticket { hash } => {
            content::parse_hash(hash)?;
        }
        _ => {}
    }
    Ok(())
}

pub(crate) async fn run(client: &Client, command: &Command, json: bool) -> anyhow::Result<()> {
    match command {
        Command::Id => {
            let node: Value = client.get("/v1/node").await?;
            if json {
                return print_json(&node);
            }
            println!("{}", str_field(&node, "peer_id"));
            for addr in node["listen_addrs"].as_array().into_iter().flatten() {
                println!("  {}", addr.as_str().unwrap_or_default());
            }
        }
        Command::Peers => {
            let peers: Value = client.get("/v1/peers").await?;
            if json {
                return print_json(&peers);
            }
            print_peers(&peers);
        }
        Command::Dial { multiaddr } => {
            let reply: Value = client
                .post("/v1/peers", &json!({ "addr": multiaddr }))
                .await?;
            if json {
                return print_json(&reply);
            }
            println!("connected to {}", str_field(&reply, "peer_id"));
        }
        Command::Disconnect { peer_id } => {
            let reply: Value = client.delete(&format!("/v1/peers/{peer_id}")).await?;
            if json {
                return print_json(&reply);
            }
            println!("disconnected from {peer_id}");
        }
        Command::Status => {
            let node: Value = client.get("/v1/node").await?;
            let peers: Value = client.get("/v1/peers").await?;
            let dht: Value = client.get("/v1/dht").await?;
            let peer_count = peers.as_array().map_or(0, Vec::len);
            let status = json!({
                "peer_id": node["peer_id"],
                "network": node["network"],
                "version": node["version"],
                "uptime_s": node["uptime_s"],
                "peers": peer_count,
                "dht_size": dht["size"],
                "dht_mode": dht["mode"],
            });
            if json {
                return print_json(&status);
            }
            println!("peer id:  {}", str_field(&node, "peer_id"));
            println!("network:  {}", str_field(&node, "network"));
            println!("peers:    {peer_count}");
            println!(
                "dht:      {} peers in the routing table ({} mode)",
                dht["size"].as_u64().unwrap_or(0),
                str_field(&dht, "mode")
            );
            println!(
                "uptime:   {}",
                human_duration(node["uptime_s"].as_u64().unwrap_or(0))
            );
        }
        Command::Share { path } => content::share(client, path, json).await?,
        Command::Get { target, out } => {
            let (target, out) = content::check_get(target, out.as_deref())?;
            content::get(client, &target, &out, json).await?;
        }
        Command::Ls => content::ls(client, json).await?,
        Command::Pin { hash } => {
            content::simple(client, "pin", &content::parse_hash(hash)?, json).await?
        }
        Command::Unpin { hash } => {
            content::simple(client, "unpin", &content::parse_hash(hash)?, json).await?
        }
        Command::Rm { hash } => {
            content::simple(client, "rm", &content::parse_hash(hash)?, json).await?
        }
        Command::Ticket { hash } => {
            content::simple(client, "ticket", &content::parse_hash(hash)?, json).await?
        }
        Command::Start(_) | Command::Devnet(_) => unreachable!("handled by the daemon module"),
        Command::Ledger(_) => unreachable!("handled by the ledger module"),
        Command::Pub { .. } | Command::Sub { .. } => unreachable!("handled by the pubsub module"),
        Command::Ui(_) => unreachable!("handled by the ui module"),
        Command::App(_) => unreachable!("handled by the app module"),
    }
    Ok(())
}

fn print_json(value: &Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

fn str_field<'a>(value: &'a Value, key: &str) -> &'a str {
    value[key].as_str().unwrap_or("?")
}

fn print_peers(peers: &Value) {
    let list = peers.as_array().cloned().unwrap_or_default();
    if list.is_empty() {
        println!("no peers connected");
        return;
    }
    println!("{:<54} {:<9} {:>9}  ADDRESS", "PEER ID", "DIRECTION", "RTT");
    for p in &list {
        let rtt = p["rtt_ms"]
            .as_f64()
            .map_or_else(|| "-".to_owned(), |ms| format!("{ms:.1}ms"));
        let addr = p["addrs"][0].as_str().unwrap_or("-");
        println!(
            "{:<54} {:<9} {:>9}  {}",
            str_field(p, "peer_id"),
            str_field(p, "direction"),
            rtt,
            addr
        );
    }
    println!("{} peer(s)", list.len());
}

pub(crate) fn human_duration(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m {s}s"),
        _ => format!("{d}d {h}h {m}m"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations_read_well() {
        assert_eq!(super::human_duration(5), "5s");
        assert_eq!(super::human_duration(65), "1m 5s");
        assert_eq!(super::human_duration(3661), "1h 1m 1s");
        assert_eq!(super::human_duration(90_000), "1d 1h 0m");
    }
}
