//! Transaction decoding: never panics, and whatever decodes re-encodes to
//! the same bytes and can be verified without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weft_ledger::Transaction;

fuzz_target!(|data: &[u8]| {
    if let Ok(tx) = Transaction::decode(data) {
        assert_eq!(tx.encode(), data);
        let _ = tx.verify(&[0; 32]);
        let _ = tx.id();
    }
});
