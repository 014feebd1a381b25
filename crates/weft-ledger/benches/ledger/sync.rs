//! Measurement 2: a late joiner syncing a mined chain, next to importing the same blocks locally.

use super::*;

pub(crate) async fn sync(target: u64) -> Result<Vec<String>, String> {
    let dev = Devnet::new("sync", 100);
    let work = tempfile::tempdir().map_err(|e| e.to_string())?;
    let a_db = work.path().join("a.redb");
    eprintln!("[sync] node A mining to height {target}");
    let a = Node::start(&dev, &a_db, true).await?;
    let t = Instant::now();
    let fed = feed(&dev, &a.ledger, target, Duration::from_secs(150)).await;
    let mining = t.elapsed();
    a.stop().await;
    let a = Node::start(&dev, &a_db, false).await?;
    let result = sync_to_fresh_node(&dev, &a, work.path(), fed, mining, target).await;
    a.stop().await;
    result
}

/// Submits [`FEED_PER_TIP`] transfers to `ledger` whenever its tip moves,
/// until it reaches `target` or `limit` passes. Returns how many it took.
pub(crate) async fn feed(dev: &Devnet, ledger: &Ledger, target: u64, limit: Duration) -> usize {
    let mut nonces = vec![0u64; dev.keys.len()];
    let (mut sender, mut submitted) = (0, 0);
    let mut tips = ledger.watch_tip();
    let (end, mut shown) = (Instant::now() + limit, Instant::now());
    while ledger.tip().height < target && Instant::now() < end {
        for _ in 0..FEED_PER_TIP {
            let tx = dev.pay(sender, nonces[sender]);
            if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(5), ledger.submit(tx)).await
            {
                nonces[sender] += 1;
                submitted += 1;
            }
            sender = (sender + 1) % nonces.len();
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), tips.changed()).await;
        if shown.elapsed() > Duration::from_secs(5) {
            eprintln!("[sync] A at height {}", ledger.tip().height);
            shown = Instant::now();
        }
    }
    submitted
}

pub(crate) async fn sync_to_fresh_node(
    dev: &Devnet,
    a: &Node,
    work: &Path,
    fed: usize,
    mining: Duration,
    target: u64,
) -> Result<Vec<String>, String> {
    let tip = a.ledger.tip();
    eprintln!("[sync] loading A's {} blocks", tip.height);
    let mut blocks: Vec<Block> = Vec::with_capacity(tip.height as usize);
    for h in 1..=tip.height {
        let got = within(
            Duration::from_secs(10),
            "read a block",
            a.ledger.block(BlockId::Height(h)),
        );
        match got.await? {
            Ok(Some((b, true))) => blocks.push(b),
            other => return Err(format!("block {h} of A: {other:?}")),
        }
    }
    let bytes: usize = blocks.iter().map(Block::size).sum();
    let txs: usize = blocks.iter().map(|b| b.txs.len()).sum();
    let mut out = vec![
        format!(
            "2. Sync: {} blocks, {txs} transfers, {:.2} MB, from a node with the chain to a new one",
            tip.height,
            bytes as f64 / 1e6
        ),
        format!(
            "  (A mined them with 1 thread in {:.1} s, {:.0} blocks/s; {fed} transfers submitted{})",
            mining.as_secs_f64(),
            tip.height as f64 / mining.as_secs_f64(),
            if tip.height < target { "; STOPPED SHORT of the target" } else { "" }
        ),
    ];
    let row = |label: &str, d: Duration| {
        let s = d.as_secs_f64();
        format!(
            "  {label:<40} {s:>7.2} s {:>8.0} blocks/s {:>6.2} MB/s",
            tip.height as f64 / s,
            bytes as f64 / 1e6 / s
        )
    };

    eprintln!("[sync] node B syncing from A");
    settle_disk().await;
    let b = Node::start(dev, &work.join("b.redb"), false).await?;
    let mut tips = b.ledger.watch_tip();
    let t = Instant::now();
    let dialed = b.dial(a).await;
    let dial_time = t.elapsed();
    let mut synced = dialed.clone().map(|_| None);
    let end = Instant::now() + Duration::from_secs(150);
    while let Ok(None) = synced {
        let wait = tokio::time::timeout(
            Duration::from_secs(5),
            tips.wait_for(|t| t.hash == tip.hash),
        );
        match wait.await {
            Ok(Ok(_)) => synced = Ok(Some(t.elapsed())),
            Ok(Err(_)) => synced = Err("B's ledger stopped".to_string()),
            Err(_) if Instant::now() > end => {
                let h = b.ledger.tip().height;
                synced = Err(format!(
                    "B reached only height {h} of {} in 150 s",
                    tip.height
                ));
            }
            Err(_) => eprintln!("[sync] B at height {}", b.ledger.tip().height),
        }
    }
    let via = b.transport_to(a).await;
    b.stop().await;

    eprintln!("[sync] local imports, no network");
    let (genesis, now) = (dev.genesis.clone(), now_ms());
    let db = work.join("local.redb");
    let local = tokio::task::spawn_blocking(move || {
        let mem = import_locally(&blocks, &genesis, || Ok(MemoryStore::default()), now);
        let _ = std::process::Command::new("sync").status();
        let redb = import_locally(&blocks, &genesis, || RedbStore::open(&db), now);
        (mem, redb)
    });
    let (mem, redb) = within(Duration::from_secs(300), "local import", local)
        .await?
        .map_err(|e| e.to_string())?;

    let sync = synced.map(|d| d.unwrap_or_default());
    match (&sync, &mem) {
        (Ok(d), Ok((m, _))) => out.push(format!(
            "{}  = {:.2}x local import (MemoryStore), {:.2}x local import (redb)",
            row(&format!("sync via {via}, dial to same tip"), *d),
            m.as_secs_f64() / d.as_secs_f64(),
            redb.as_ref()
                .map_or(f64::NAN, |r| r.0.as_secs_f64() / d.as_secs_f64()),
        )),
        (Err(e), _) => out.push(format!("  sync FAILED: {e}")),
        (_, Err(e)) => out.push(format!("  local import FAILED: {e}")),
    }
    out.push(format!(
        "  (of which the dial and identify: {:.1} ms)",
        ms(dial_time)
    ));
    for (label, r) in [
        ("baseline: Chain::process, MemoryStore", mem),
        ("baseline: Chain::process, redb file", redb),
    ] {
        out.push(match r {
            Ok((d, commits)) => format!(
                "{}  (store commits {:.2} s)",
                row(label, d),
                commits.as_secs_f64()
            ),
            Err(e) => format!("  {label:<40} FAILED: {e}"),
        });
    }
    Ok(out)
}

/// Flushes dirty page cache (A's chain, other work on the machine) so that
/// it is not written back during a timed phase: every block import ends in
/// an fsync, which would wait for it.
pub(crate) async fn settle_disk() {
    let sync = tokio::task::spawn_blocking(|| std::process::Command::new("sync").status());
    let _ = tokio::time::timeout(Duration::from_secs(60), sync).await;
}

/// A [`ChainStore`] that times its commits.
pub(crate) struct Timed<S> {
    pub(crate) store: S,
    pub(crate) commits: Duration,
}

impl<S: ChainStore> ChainStore for Timed<S> {
    fn load(&self) -> Result<Snapshot, StoreError> {
        self.store.load()
    }
    fn block(&self, hash: &BlockHash) -> Result<Option<Block>, StoreError> {
        self.store.block(hash)
    }
    fn undo(&self, hash: &BlockHash) -> Result<Option<Undo>, StoreError> {
        self.store.undo(hash)
    }
    fn tx_block(&self, id: &TxId) -> Result<Option<BlockHash>, StoreError> {
        self.store.tx_block(id)
    }
    fn commit(&mut self, commit: Commit) -> Result<(), StoreError> {
        let t = Instant::now();
        let r = self.store.commit(commit);
        self.commits += t.elapsed();
        r
    }
}

/// Opens a chain over `store` and imports `blocks` in order. Returns the
/// time and, of it, the store's commits; the clone of the blocks is not
/// timed.
pub(crate) fn import_locally<S: ChainStore>(
    blocks: &[Block],
    genesis: &Genesis,
    store: impl FnOnce() -> Result<S, StoreError>,
    now: u64,
) -> Result<(Duration, Duration), String> {
    let blocks = blocks.to_vec();
    let t = Instant::now();
    let store = Timed {
        store: store().map_err(|e| e.to_string())?,
        commits: Duration::ZERO,
    };
    let mut chain = Chain::open(genesis.clone(), store).map_err(|e| e.to_string())?;
    for b in blocks {
        let height = b.header.height;
        chain
            .process(b, now)
            .map_err(|e| format!("block {height}: {e}"))?;
    }
    Ok((t.elapsed(), chain.store().commits))
}
