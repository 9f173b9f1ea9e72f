//! Load-balancing logic: virtual services and mark rules, the per-worker
//! connection table, the shared persistence table and the IPVS schedulers.

pub mod clock;
pub mod conn;
pub mod counters;
pub mod flow;
pub mod hash;
pub mod live;
pub mod persist;
pub mod realserver;
pub mod sched;
pub mod service;
pub mod snapshot;
pub mod spec;
pub mod state;
pub(crate) mod sync;
pub mod types;
