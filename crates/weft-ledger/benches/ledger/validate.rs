//! Measurement 1: validating and applying one block of transfers, next to raw ed25519-zebra verification.

use super::*;

pub(crate) fn validate(count: usize, repeat: usize) -> Vec<String> {
    let senders = count.clamp(1, 100);
    eprintln!("[validate] signing {count} transfers from {senders} senders");
    let dev = Devnet::new("validate", senders);
    let txs: Vec<Transaction> = (0..count)
        .map(|i| dev.pay(i % senders, (i / senders) as u64))
        .collect();
    let open = || Chain::open(dev.genesis.clone(), MemoryStore::default()).expect("open a chain");
    let now = now_ms();
    let block = open().template(MINER, txs, now);
    let (size, n) = (block.size(), block.txs.len());
    let mut out = vec![format!(
        "1. Validation: one block of {n} transfers from {senders} senders ({:.2} MB), difficulty 1, best | median of {repeat}",
        size as f64 / 1e6
    )];

    eprintln!("[validate] Chain::process x{repeat}");
    let mut process = Vec::new();
    for _ in 0..repeat {
        let (mut chain, b) = (open(), block.clone());
        let t = Instant::now();
        let r = chain.process(b, now);
        let took = t.elapsed();
        drop(chain);
        match r {
            Ok(p) if p.new_tip => process.push(took),
            Ok(_) => {
                return vec![format!(
                    "{}  FAILED: the block did not become the tip",
                    out[0]
                )]
            }
            Err(e) => return vec![format!("{}  FAILED: the block is invalid: {e}", out[0])],
        }
    }

    let msgs: Vec<Vec<u8>> = block
        .txs
        .iter()
        .map(|t| t.signing_bytes(&dev.genesis_hash))
        .collect();
    eprintln!("[validate] raw ed25519-zebra, single and batch");
    let (mut single, mut batch, mut all_ok) = (Vec::new(), Vec::new(), true);
    for _ in 0..repeat {
        let t = Instant::now();
        let mut ok = 0usize;
        for (tx, msg) in block.txs.iter().zip(&msgs) {
            let key = VerificationKey::try_from(tx.from.0);
            ok += usize::from(
                key.is_ok_and(|k| k.verify(&Signature::from(tx.signature), msg).is_ok()),
            );
        }
        single.push(t.elapsed());
        all_ok &= ok == n;
        let t = Instant::now();
        let mut verifier = ed25519_zebra::batch::Verifier::new();
        for (tx, msg) in block.txs.iter().zip(&msgs) {
            let key = VerificationKeyBytes::from(tx.from.0);
            verifier.queue((key, Signature::from(tx.signature), msg));
        }
        all_ok &= verifier.verify(rand::thread_rng()).is_ok();
        batch.push(t.elapsed());
    }

    // Where process's time goes, piece by piece (for information).
    let genesis_state = State::from_accounts(dev.genesis.alloc.iter().map(|a| {
        (
            a.address,
            Account {
                balance: a.amount,
                nonce: 0,
            },
        )
    }));
    let mut parts: [Vec<Duration>; 5] = Default::default();
    for _ in 0..repeat {
        let t = Instant::now();
        std::hint::black_box(merkle_root(&block.txs));
        parts[0].push(t.elapsed());
        let t = Instant::now();
        let ids: HashSet<_> = block.txs.iter().map(Transaction::id).collect();
        parts[1].push(t.elapsed());
        all_ok &= ids.len() == n;
        let t = Instant::now();
        all_ok &= tx::verify_batch(&block.txs, &dev.genesis_hash).is_ok();
        parts[2].push(t.elapsed());
        let mut state = genesis_state.clone();
        let t = Instant::now();
        all_ok &= state.apply(&block, dev.genesis.reward).is_ok();
        parts[3].push(t.elapsed());
        let t = Instant::now();
        std::hint::black_box(block.encode());
        parts[4].push(t.elapsed());
    }

    let (p_best, p_med) = best_median(&mut process);
    let (s_best, s_med) = best_median(&mut single);
    let (b_best, b_med) = best_median(&mut batch);
    let rate = |d: Duration| n as f64 / d.as_secs_f64();
    let line = |label: &str, best: Duration, med: Duration| {
        format!(
            "  {label:<40} {:>8.1} | {:>8.1} ms {:>9.0} | {:>9.0} tx/s",
            ms(best),
            ms(med),
            rate(best),
            rate(med)
        )
    };
    out.push(format!(
        "{}  = {:.2}x raw batch, {:.2}x raw single (best runs; aim >= 0.60x batch)",
        line("Chain::process (MemoryStore)", p_best, p_med),
        b_best.as_secs_f64() / p_best.as_secs_f64(),
        s_best.as_secs_f64() / p_best.as_secs_f64(),
    ));
    out.push(line(
        "baseline: ed25519-zebra batch, 1 thread",
        b_best,
        b_med,
    ));
    out.push(line("baseline: ed25519-zebra one by one", s_best, s_med));
    let names = [
        "merkle root",
        "tx ids",
        "tx::verify_batch",
        "State::apply",
        "Block::encode",
    ];
    let pieces: Vec<String> = parts
        .iter_mut()
        .zip(names)
        .map(|(v, name)| format!("{name} {:.1}", ms(best_median(v).0)))
        .collect();
    out.push(format!("  parts, best ms, for info: {}", pieces.join(", ")));
    if !all_ok {
        out.push("  (a baseline rejected a signature or the state transition failed!)".into());
    }
    out
}
