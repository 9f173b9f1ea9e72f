//! Fuzz target (cargo-fuzz / libFuzzer): the input is one Ethernet frame.
//! It is decided under every TX VLAN policy, from an empty state and from a
//! state that knows every flow, and as a burst with a copy of itself and
//! its first half; every verdict must have the properties of the shared
//! oracle, `tests/decide_fuzz/oracle.rs` — the checks the bounded run in
//! CI makes (`cargo test --test decide_fuzz -- --ignored`). The seeds are
//! `fuzz/corpus/decide/*.bin`, cargo-fuzz's default corpus directory for
//! this target; see `fuzz/README.md`.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/decide_fuzz/oracle.rs"]
mod oracle;

use oracle::{check_burst, check_decide, OracleState, POLICIES};

fuzz_target!(|data: &[u8]| {
    for tx in POLICIES {
        check_decide(data, tx, &mut OracleState::new());
        check_decide(data, tx, &mut OracleState::tracking_everything());
    }
    let burst = [data.to_vec(), data.to_vec(), data[..data.len() / 2].to_vec()];
    check_burst(&burst, POLICIES[data.len() % 3], &OracleState::new());
});
