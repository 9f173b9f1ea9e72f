//! The data plane: the per-packet decision ([`decide()`]), its verdicts and
//! drop reasons, the DR rewrite, the tunnel encapsulation and outer IPv4
//! fragmentation, the neighbour announcements and the counters workers
//! publish. The worker
//! loop that drives them lives beside them and is the only part touching
//! DPDK.
#![forbid(unsafe_code)]

pub mod counters;
pub mod decide;
pub mod dump;
pub mod fragment;
pub mod neighbour;
pub mod rewrite;
pub mod traffic;
pub mod tunnel;
pub mod verdict;
pub mod worker;

pub use decide::{decide, DecideCtx};
pub use rewrite::{apply_vlan, TxVlan};
pub use verdict::{DropCounters, DropReason, Verdict, VlanAction};
