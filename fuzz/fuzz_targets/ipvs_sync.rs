//! Fuzz target (cargo-fuzz / libFuzzer): the input is one IPVS sync
//! datagram. Checking it never panics; when it passes, every record and
//! option can be read, and the records that convert to owned values encode
//! back into a message that decodes to the same values. No corpus is kept:
//! the unit tests in `src/wire/ipvs_sync/tests.rs` hold the byte layouts.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pmdlb::wire::ipvs_sync::{Message, MessageBuilder, MAX_MESSAGE_LEN};

fuzz_target!(|data: &[u8]| {
    let Ok(m) = Message::new_checked(data) else {
        return;
    };
    let mut conns = Vec::new();
    for r in m.records() {
        let _ = (r.protocol(), r.flags(), r.state(), r.timeout(), r.addrs());
        let _ = r.options().count();
        if let Ok(c) = r.to_conn() {
            conns.push(c);
        }
    }
    let mut b = MessageBuilder::new(m.syncid(), MAX_MESSAGE_LEN);
    for c in &conns {
        b.push(c).expect("a decoded record encodes, and 255 fit in 64 KiB");
    }
    let Some(bytes) = b.take() else {
        return;
    };
    let again = Message::new_checked(&bytes[..]).expect("an encoded message decodes");
    let back: Vec<_> = again.records().map(|r| r.to_conn().unwrap()).collect();
    assert_eq!(back, conns);
});
