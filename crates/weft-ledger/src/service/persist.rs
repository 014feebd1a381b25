//! The mempool across restarts. Pending transactions are saved to a file
//! next to the chain database (`ledger.redb` → `ledger.mempool`) on
//! shutdown and, while the pool changes, every [`SAVE_INTERVAL`]; on start
//! they are loaded and each is validated again (signature, nonce, balance)
//! against the chain as it is then. A crash loses at most the changes since
//! the last save; a damaged file is reported and otherwise ignored.
//!
//! Loaded transactions are gossiped again once a peer is there to hear
//! them: the network may not have seen them before the restart.

use std::{
    io::{self, Write},
    path::{Path, PathBuf},
    time::Duration,
};

use borsh::{BorshDeserialize, BorshSerialize};

use super::{Ledger, TX_TOPIC};
use crate::{mempool, tx::Transaction};

/// How often a changed mempool is saved.
pub(super) const SAVE_INTERVAL: Duration = Duration::from_secs(30);
/// How long loaded transactions wait for a peer to gossip them to.
const REPUBLISH_FOR: Duration = Duration::from_secs(600);
/// The file's first bytes (and its format version).
const MAGIC: &[u8; 8] = b"weftmp01";

#[derive(BorshSerialize, BorshDeserialize)]
struct File {
    txs: Vec<Vec<u8>>,
}

/// The mempool file of the chain database at `db`.
pub(super) fn path_for(db: &Path) -> PathBuf {
    db.with_extension("mempool")
}

/// Writes `txs` to `path` atomically (a synced temporary file, renamed).
pub(super) fn save(path: &Path, txs: &[Transaction]) -> io::Result<()> {
    let file = File {
        txs: txs.iter().map(Transaction::encode).collect(),
    };
    let mut bytes = MAGIC.to_vec();
    file.serialize(&mut bytes)?;
    let tmp = path.with_extension("mempool.tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)
}

/// Reads the transactions saved at `path`: none if there is no file. A
/// file larger than a full mempool could need is refused unread; entries
/// that do not decode are skipped (and counted in the second value).
pub(super) fn load(
    path: &Path,
    limits: &mempool::Config,
) -> Result<(Vec<Transaction>, usize), String> {
    let max = limits
        .max_bytes
        .saturating_add(limits.max_count.saturating_mul(8))
        .saturating_add(64) as u64;
    let len = match std::fs::metadata(path) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    if len > max {
        return Err(format!(
            "{}: {len} bytes, more than a full mempool ({max})",
            path.display()
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let body = bytes
        .strip_prefix(MAGIC.as_slice())
        .ok_or_else(|| format!("{}: not a weft mempool file", path.display()))?;
    let file = File::try_from_slice(body).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut bad = 0;
    let txs = file
        .txs
        .iter()
        .take(limits.max_count)
        .filter_map(|b| {
            let tx = Transaction::decode(b).ok();
            bad += usize::from(tx.is_none());
            tx
        })
        .collect();
    Ok((txs, bad))
}

impl Ledger {
    /// Loads the saved mempool and admits what is still valid; returns the
    /// admitted transactions.
    pub(super) async fn restore_mempool(&self) -> Vec<Transaction> {
        let path = self.inner.mempool_path.clone();
        let limits = self.inner.mempool_limits.clone();
        let genesis = self.inner.genesis_hash;
        let loaded = super::blocking(move || {
            load(&path, &limits).map(|(txs, bad)| {
                // Signatures are checked here, like any submitted transaction.
                let valid: Vec<Transaction> = txs
                    .into_iter()
                    .filter(|t| t.verify(&genesis.0).is_ok())
                    .collect();
                (valid, bad)
            })
        })
        .await;
        let (txs, bad) = match loaded {
            Some(Ok(v)) => v,
            Some(Err(e)) => {
                tracing::warn!("ignoring the saved mempool: {e}");
                return Vec::new();
            }
            None => return Vec::new(),
        };
        if bad > 0 {
            tracing::warn!("{bad} saved mempool entries did not decode; skipped");
        }
        let total = txs.len();
        let admitted: Vec<Transaction> = txs
            .into_iter()
            .filter(|t| self.admit(t.clone()).is_ok())
            .collect();
        if total > 0 {
            tracing::info!(
                "restored {} of {total} saved mempool transactions",
                admitted.len()
            );
        }
        admitted
    }

    /// Saves the mempool now.
    pub(super) async fn save_mempool(&self) {
        let txs: Vec<Transaction> = self.mempool_entries().into_iter().map(|(t, _)| t).collect();
        let path = self.inner.mempool_path.clone();
        if let Some(Err(e)) = super::blocking(move || save(&path, &txs)).await {
            tracing::warn!("cannot save the mempool: {e}");
        }
    }
}

/// Saves the mempool every [`SAVE_INTERVAL`] while it changes.
pub(super) async fn run_saves(ledger: Ledger) {
    let mut last: Vec<crate::tx::TxId> = Vec::new();
    let mut tick = tokio::time::interval(SAVE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let ids: Vec<_> = ledger
            .mempool_entries()
            .iter()
            .map(|(t, _)| t.id())
            .collect();
        if ids != last {
            ledger.save_mempool().await;
            last = ids;
        }
    }
}

/// Gossips restored transactions once some peer hears them (each new peer
/// is a new chance), for at most [`REPUBLISH_FOR`].
pub(super) async fn republish(ledger: Ledger, txs: Vec<Transaction>) {
    if txs.is_empty() {
        return;
    }
    let mut events = ledger.net().events();
    let deadline = tokio::time::Instant::now() + REPUBLISH_FOR;
    loop {
        let pending: Vec<&Transaction> = txs
            .iter()
            .filter(|t| ledger.mempool().contains(&t.id()))
            .collect();
        if pending.is_empty() {
            return;
        }
        let mut heard = false;
        for tx in pending {
            heard |= matches!(ledger.net().publish(TX_TOPIC, tx.encode()).await, Ok(true));
        }
        if heard {
            return;
        }
        // Subscriptions arrive just after a peer connects: try again then,
        // and now and then in case a peer's subscription came later.
        tokio::select! {
            _ = events.recv() => {}
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            _ = tokio::time::sleep_until(deadline) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Address;
    use ed25519_zebra::SigningKey;

    #[test]
    fn saved_transactions_load_back_and_damage_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_for(&dir.path().join("ledger.redb"));
        assert_eq!(path.file_name().unwrap(), "ledger.mempool");
        let limits = mempool::Config::default();
        assert!(
            load(&path, &limits).unwrap().0.is_empty(),
            "no file, no txs"
        );

        let k = SigningKey::from([5; 32]);
        let txs: Vec<Transaction> = (0..3)
            .map(|n| Transaction::sign(&k, &[1; 32], Address([2; 32]), 10, 1, n, vec![]))
            .collect();
        save(&path, &txs).unwrap();
        let (back, bad) = load(&path, &limits).unwrap();
        assert_eq!(back, txs);
        assert_eq!(bad, 0);

        std::fs::write(&path, b"not a mempool").unwrap();
        assert!(load(&path, &limits)
            .unwrap_err()
            .contains("not a weft mempool"));
        let mut cut = MAGIC.to_vec();
        cut.extend_from_slice(&[9, 0, 0, 0, 1]);
        std::fs::write(&path, &cut).unwrap();
        assert!(
            load(&path, &limits).is_err(),
            "a truncated file is an error"
        );
        let small = mempool::Config {
            max_bytes: 10,
            max_count: 1,
            ..Default::default()
        };
        save(&path, &txs).unwrap();
        assert!(load(&path, &small)
            .unwrap_err()
            .contains("more than a full mempool"));
    }
}
