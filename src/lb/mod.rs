//! Load-balancing logic: virtual services and mark rules, the per-worker
//! connection table, the shared persistence table and the IPVS schedulers.

pub mod flow;
pub mod spec;
pub mod types;
pub mod clock;
pub mod conn;
pub mod hash;
pub mod persist;
pub mod realserver;
pub mod sched;
pub(crate) mod sync;
