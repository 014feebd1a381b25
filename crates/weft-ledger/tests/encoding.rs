//! Encoding properties: every transaction and block round-trips exactly,
//! decoding arbitrary bytes never panics, and whatever decodes re-encodes
//! to the very bytes it came from (so ids are not malleable).

use ed25519_zebra::SigningKey;
use proptest::prelude::*;
use weft_ledger::{
    block::{merkle_root, Block, BlockHash, Header},
    service::sync::{Request, Response},
    tx::address_of,
    Address, Transaction,
};

fn tx_strategy() -> impl Strategy<Value = Transaction> {
    (
        any::<[u8; 32]>(),
        any::<[u8; 32]>(),
        1u64..,
        any::<u64>(),
        any::<u64>(),
        prop::collection::vec(any::<u8>(), 0..=256),
    )
        .prop_map(|(seed, to, amount, fee, nonce, memo)| {
            Transaction::sign(
                &SigningKey::from(seed),
                &[3; 32],
                Address(to),
                amount,
                fee,
                nonce,
                memo,
            )
        })
}

proptest! {
    #[test]
    fn transactions_round_trip_exactly(tx in tx_strategy()) {
        let bytes = tx.encode();
        let back = Transaction::decode(&bytes).unwrap();
        prop_assert_eq!(&back, &tx);
        prop_assert_eq!(back.encode(), bytes);
        prop_assert_eq!(back.id(), tx.id());
    }

    #[test]
    fn blocks_round_trip_exactly(txs in prop::collection::vec(tx_strategy(), 0..8), nonce: u64, height: u64) {
        let b = Block {
            header: Header {
                parent: BlockHash([1; 32]),
                height,
                timestamp: 5,
                tx_root: merkle_root(&txs),
                target: [0xff; 32],
                nonce,
                miner: address_of(&SigningKey::from([4; 32])),
            },
            txs,
        };
        let bytes = b.encode();
        let back = Block::decode(&bytes).unwrap();
        prop_assert_eq!(back.encode(), bytes);
        prop_assert_eq!(back.hash(), b.hash());
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_decoded_values_reencode_identically(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        if let Ok(tx) = Transaction::decode(&bytes) {
            prop_assert_eq!(tx.encode(), bytes.clone());
        }
        if let Ok(b) = Block::decode(&bytes) {
            prop_assert_eq!(b.encode(), bytes.clone());
        }
        let _ = borsh::from_slice::<Request>(&bytes);
        let _ = borsh::from_slice::<Response>(&bytes);
    }

    #[test]
    fn mutated_transactions_never_panic(tx in tx_strategy(), at: prop::sample::Index, byte: u8) {
        let mut bytes = tx.encode();
        let i = at.index(bytes.len());
        bytes[i] = byte;
        if let Ok(t) = Transaction::decode(&bytes) {
            prop_assert_eq!(t.encode(), bytes);
            let _ = t.verify(&[3; 32]);
        }
    }
}
