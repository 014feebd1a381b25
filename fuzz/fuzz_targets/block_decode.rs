//! Block and sync-message decoding: never panics, and a decoded block
//! re-encodes to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weft_ledger::{
    service::sync::{Request, Response},
    Block,
};

fuzz_target!(|data: &[u8]| {
    if let Ok(block) = Block::decode(data) {
        assert_eq!(block.encode(), data);
        let _ = block.hash();
        let _ = weft_ledger::block::merkle_root(&block.txs);
    }
    let _ = borsh::from_slice::<Request>(data);
    let _ = borsh::from_slice::<Response>(data);
});
