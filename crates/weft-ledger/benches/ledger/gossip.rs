//! Measurement 3: transaction gossip latency across many nodes, next to stream and TCP round trips.

use super::*;

pub(crate) async fn gossip(count: usize, rounds: usize, seed: u64) -> Result<Vec<String>, String> {
    let dev = Devnet::new("gossip", rounds + WARMUPS);
    let work = tempfile::tempdir().map_err(|e| e.to_string())?;
    eprintln!("[gossip] starting {count} nodes");
    let mut nodes = Vec::with_capacity(count);
    for i in 0..count {
        match Node::start(&dev, &work.path().join(format!("n{i}.redb")), false).await {
            Ok(n) => nodes.push(n),
            Err(e) => {
                stop_all(nodes).await;
                return Err(format!("node {i}: {e}"));
            }
        }
    }
    let result = gossip_rounds(&dev, &nodes, rounds, seed).await;
    eprintln!("[gossip] stopping the nodes");
    stop_all(nodes).await;
    result
}

pub(crate) async fn stop_all(nodes: Vec<Node>) {
    futures::future::join_all(nodes.into_iter().map(Node::stop)).await;
}

pub(crate) async fn gossip_rounds(
    dev: &Devnet,
    nodes: &[Node],
    rounds: usize,
    seed: u64,
) -> Result<Vec<String>, String> {
    let count = nodes.len();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut failed_dials = 0;
    for i in 1..count {
        for j in rand::seq::index::sample(&mut rng, i, DIALS_PER_NODE.min(i)).into_vec() {
            failed_dials += usize::from(nodes[i].dial(&nodes[j]).await.is_err());
        }
    }
    let ids: HashMap<_, _> = (0..count)
        .map(|i| (nodes[i].net.handle().local_peer_id(), i))
        .collect();

    eprintln!("[gossip] waiting for the meshes");
    let t = Instant::now();
    let meshes = wait_for_meshes(nodes).await;
    let mesh_time = t.elapsed();
    let mut graph = Vec::with_capacity(count);
    for n in nodes {
        graph.push(n.neighbours(&ids).await);
    }
    let links = graph.iter().map(Vec::len).sum::<usize>() / 2;
    let hops: Vec<Vec<usize>> = (0..count).map(|i| distances(&graph, i)).collect();
    let diameter = hops
        .iter()
        .flatten()
        .filter(|&&d| d != usize::MAX)
        .max()
        .copied()
        .unwrap_or(0);

    eprintln!("[gossip] waiting for the nodes to go quiet");
    let (quiet, idle) = settle(Duration::from_secs(20)).await;
    eprintln!("[gossip] warm-up");
    let mut warm = Vec::new();
    for w in 0..WARMUPS {
        let origin = (w * count / WARMUPS).min(count - 1);
        let (arrived, _) = propagate(nodes, origin, dev.pay(rounds + w, 0)).await?;
        warm.push(arrived.iter().flatten().max().copied());
    }

    eprintln!("[gossip] baselines");
    let tcp = tcp_rtt(1000).await;
    let (i, j) = (1, graph[1].first().copied().unwrap_or(0));
    let stream = stream_rtt(&nodes[i], &nodes[j], 300).await;
    let via = nodes[i].transport_to(&nodes[j]).await;

    eprintln!("[gossip] {rounds} rounds");
    let (cpu, wall) = (cpu_time(), Instant::now());
    let (mut all, mut each, mut incomplete) = (Vec::new(), Vec::new(), 0);
    let (mut submits, mut own) = (Vec::new(), Vec::new());
    let mut by_hops: Vec<Vec<Duration>> = vec![Vec::new(); diameter + 1];
    for r in 0..rounds {
        let origin = rng.gen_range(0..count);
        let (arrived, submit) = propagate(nodes, origin, dev.pay(r, 0)).await?;
        submits.push(submit);
        own.extend(arrived[origin]);
        for (n, a) in arrived.iter().enumerate().filter(|(n, _)| *n != origin) {
            if let Some(d) = a {
                each.push(*d);
                if let Some(v) = by_hops.get_mut(hops[origin][n]) {
                    v.push(*d);
                }
            }
        }
        let slowest = arrived.iter().flatten().max().copied().unwrap_or_default();
        eprintln!(
            "[gossip] round {r}: origin {origin}, {}/{count} nodes, slowest {:.1} ms",
            arrived.iter().flatten().count(),
            ms(slowest)
        );
        match arrived.iter().copied().collect::<Option<Vec<_>>>() {
            Some(v) => all.push(v.into_iter().max().unwrap_or_default()),
            None => incomplete += 1,
        }
        let gap = rng.gen_range(20..40);
        tokio::time::sleep(Duration::from_millis(gap)).await;
    }

    let cores = cores_since(cpu, wall);
    let mut out = vec![
        format!(
            "3. Gossip: {count} nodes, each dialed {DIALS_PER_NODE} random earlier ones: {links} connections, diameter {diameter} hops; {rounds} transfers"
        ),
        format!(
            "  meshes {} in {:.1} s ({}); warm-up all-nodes times: {}",
            if meshes.0 { "formed" } else { "NOT all formed" },
            mesh_time.as_secs_f64(),
            meshes.1,
            warm.iter()
                .map(|d| d.map_or("missed".into(), |d| format!("{:.1} ms", ms(d))))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        format!(
            "  nodes quiet {:.1} s after the meshes (Kademlia bootstrap), then {idle:.2} cores idle; {cores:.2} cores during the rounds",
            quiet.as_secs_f64()
        ),
    ];
    if failed_dials > 0 {
        out.push(format!("  ({failed_dials} dials FAILED)"));
    }
    let rtt = stream.as_ref().ok().copied();
    let ratio = |d: Duration| match (rtt, &tcp) {
        (Some(s), Ok(t)) => format!(
            "= {:>5.1}x stream RTT, {:>6.1}x TCP RTT",
            d.as_secs_f64() / s.as_secs_f64(),
            d.as_secs_f64() / t.as_secs_f64()
        ),
        _ => String::new(),
    };
    let stats = |label: &str, v: &mut Vec<Duration>| {
        if v.is_empty() {
            return format!("  {label:<34} no arrivals");
        }
        v.sort_unstable();
        let (med, p99) = (v[v.len() / 2], percentile(v, 99.0));
        format!(
            "  {label:<34} median {:>6.2} ms {}  p99 {:>6.2} ms  max {:>6.2} ms",
            ms(med),
            ratio(med),
            ms(p99),
            ms(v[v.len() - 1])
        )
    };
    out.push(stats(
        &format!("all {count} nodes have it ({} rounds)", all.len()),
        &mut all,
    ));
    out.push(stats(
        &format!("per node ({} arrivals)", each.len()),
        &mut each,
    ));
    for (h, v) in by_hops.iter_mut().enumerate().skip(1) {
        if !v.is_empty() {
            out.push(stats(&format!("  nodes {h} hop(s) from the origin"), v));
        }
    }
    out.push(stats("  origin: submit returned", &mut submits));
    out.push(stats("  origin: in its own mempool", &mut own));
    if incomplete > 0 {
        out.push(format!(
            "  {incomplete} rounds did NOT reach every node within 5 s"
        ));
    }
    out.push(match stream {
        Ok(d) => format!(
            "  baseline: {ECHO_BYTES} B round trip, libp2p stream ({via}) median {:.3} ms",
            ms(d)
        ),
        Err(e) => format!("  baseline: libp2p stream round trip FAILED: {e}"),
    });
    out.push(match tcp {
        Ok(d) => format!(
            "  baseline: {ECHO_BYTES} B round trip, raw loopback TCP   median {:.3} ms",
            ms(d)
        ),
        Err(e) => format!("  baseline: raw TCP round trip FAILED: {e}"),
    });
    out.push(format!(
        "  (mempools polled every {} us, so arrival times are up to that late)",
        poll_interval().as_micros()
    ));
    Ok(out)
}

/// Waits until this process uses under 0.1 cores over half a second (new
/// nodes run Kademlia bootstrap queries for a few seconds), or `limit`
/// passes. Returns the wait and the last half second's use.
pub(crate) async fn settle(limit: Duration) -> (Duration, f64) {
    let start = Instant::now();
    loop {
        let (cpu, wall) = (cpu_time(), Instant::now());
        tokio::time::sleep(Duration::from_millis(500)).await;
        let cores = cores_since(cpu, wall);
        if cores < 0.1 || start.elapsed() > limit {
            return (start.elapsed(), cores);
        }
    }
}

/// Hop counts from `from` over `graph` (`usize::MAX`: unreachable).
pub(crate) fn distances(graph: &[Vec<usize>], from: usize) -> Vec<usize> {
    let mut dist = vec![usize::MAX; graph.len()];
    dist[from] = 0;
    let mut queue = VecDeque::from([from]);
    while let Some(n) = queue.pop_front() {
        for &m in &graph[n] {
            if dist[m] == usize::MAX {
                dist[m] = dist[n] + 1;
                queue.push_back(m);
            }
        }
    }
    dist
}

/// Waits (up to 20 s) until every node's transaction mesh holds all its
/// subscribed peers or at least 5 of them. Returns whether it did, and the
/// mesh sizes.
pub(crate) async fn wait_for_meshes(nodes: &[Node]) -> (bool, String) {
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let mut sizes = Vec::with_capacity(nodes.len());
        let mut ready = true;
        for n in nodes {
            let topics = within(Duration::from_secs(5), "topics", n.net.handle().topics()).await;
            let topics = topics.ok().and_then(Result::ok).unwrap_or_default();
            let peers = n.net.handle().peers();
            let peers = within(Duration::from_secs(5), "peers", peers).await;
            let connected = peers.ok().and_then(Result::ok).map_or(0, |p| p.len());
            match topics.iter().find(|t| t.topic.ends_with(TX_TOPIC)) {
                Some(t) => {
                    sizes.push(t.mesh_peers.len());
                    ready &= t.subscribed_peers >= connected
                        && t.mesh_peers.len() >= t.subscribed_peers.min(5);
                }
                None => ready = false,
            }
        }
        if ready || Instant::now() > end {
            let (min, max) = (sizes.iter().min(), sizes.iter().max());
            let mean = sizes.iter().sum::<usize>() as f64 / sizes.len().max(1) as f64;
            let text = format!(
                "mesh peers min {} / mean {mean:.1} / max {}",
                min.unwrap_or(&0),
                max.unwrap_or(&0)
            );
            return (ready, text);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Submits `tx` on `nodes[origin]` and watches every node's mempool until
/// all have it or 5 s pass. Returns when each saw it and when `submit`
/// returned, counted from just before the submit.
///
/// A dedicated thread polls the mempools' sizes every [`poll_interval`] (tokio's
/// timer has 1 ms resolution); each rise is then confirmed with
/// `tx_status`, untimed.
pub(crate) async fn propagate(
    nodes: &[Node],
    origin: usize,
    tx: Transaction,
) -> Result<(Vec<Option<Duration>>, Duration), String> {
    let id = tx.id();
    let ledgers: Vec<Ledger> = nodes.iter().map(|n| n.ledger.clone()).collect();
    let before: Vec<usize> = ledgers.iter().map(|l| l.mempool_size().0).collect();
    let ledger = ledgers[origin].clone();
    let t = Instant::now();
    let submit = tokio::spawn(async move {
        let r = ledger.submit(tx).await.map_err(|e| e.to_string());
        r.map(|_| t.elapsed())
    });
    let poll = poll_interval();
    let watch = tokio::task::spawn_blocking(move || {
        let mut seen = vec![None; ledgers.len()];
        let end = t + Duration::from_secs(5);
        while seen.iter().any(Option::is_none) && Instant::now() < end {
            for (i, l) in ledgers.iter().enumerate() {
                if seen[i].is_none() && l.mempool_size().0 > before[i] {
                    seen[i] = Some(t.elapsed());
                }
            }
            std::thread::sleep(poll);
        }
        seen
    });
    let submitted = within(Duration::from_secs(5), "submit", submit).await?;
    let mut arrived = within(Duration::from_secs(10), "mempool watch", watch)
        .await?
        .map_err(|e| e.to_string())?;
    let submit_time = match submitted {
        Ok(Ok(d)) => d,
        Ok(Err(e)) => return Err(format!("submit on node {origin}: {e}")),
        Err(e) => return Err(format!("submit on node {origin}: {e}")),
    };
    for (n, a) in nodes.iter().zip(&mut arrived) {
        let status = within(Duration::from_secs(1), "tx_status", n.ledger.tx_status(id)).await;
        if !matches!(status, Ok(Ok(TxStatus::Pending(_)))) {
            *a = None;
        }
    }
    Ok((arrived, submit_time))
}

/// Median round trip of [`ECHO_BYTES`] over one libp2p stream from
/// `client` to `server` (already connected), `n` times after a warm-up.
pub(crate) async fn stream_rtt(client: &Node, server: &Node, n: usize) -> Result<Duration, String> {
    let mut incoming = server
        .net
        .handle()
        .accept_streams(ECHO)
        .map_err(|e| e.to_string())?;
    let echo = tokio::spawn(async move {
        if let Some((_, mut s)) = incoming.next().await {
            let mut buf = [0u8; ECHO_BYTES];
            while s.read_exact(&mut buf).await.is_ok() {
                if s.write_all(&buf).await.is_err() || s.flush().await.is_err() {
                    break;
                }
            }
        }
    });
    let peer = server.net.handle().local_peer_id();
    let result = within(Duration::from_secs(30), "stream round trips", async {
        let mut s = client
            .net
            .handle()
            .open_stream(peer, ECHO)
            .await
            .map_err(|e| e.to_string())?;
        let mut buf = [0x5au8; ECHO_BYTES];
        let mut times = Vec::with_capacity(n);
        for i in 0..n + 20 {
            let t = Instant::now();
            s.write_all(&buf).await.map_err(|e| e.to_string())?;
            s.flush().await.map_err(|e| e.to_string())?;
            s.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
            if i >= 20 {
                times.push(t.elapsed());
            }
        }
        let _ = s.close().await;
        Ok::<_, String>(best_median(&mut times).1)
    })
    .await;
    echo.abort();
    result?
}

/// Median round trip of [`ECHO_BYTES`] over a loopback TCP socket pair
/// (nodelay), `n` times after a warm-up.
pub(crate) async fn tcp_rtt(n: usize) -> Result<Duration, String> {
    within(Duration::from_secs(30), "TCP round trips", async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let echo = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await?;
            s.set_nodelay(true)?;
            let mut buf = [0u8; ECHO_BYTES];
            while s.read_exact(&mut buf).await.is_ok() {
                s.write_all(&buf).await?;
            }
            Ok::<_, std::io::Error>(())
        });
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        s.set_nodelay(true)?;
        let mut buf = [0x5au8; ECHO_BYTES];
        let mut times = Vec::with_capacity(n);
        for i in 0..n + 50 {
            let t = Instant::now();
            s.write_all(&buf).await?;
            s.read_exact(&mut buf).await?;
            if i >= 50 {
                times.push(t.elapsed());
            }
        }
        drop(s);
        let _ = echo.await;
        Ok::<_, std::io::Error>(best_median(&mut times).1)
    })
    .await?
    .map_err(|e| e.to_string())
}
