//! Load-balancing logic: virtual services and mark rules, the per-worker
//! connection table, the shared persistence table and the IPVS schedulers.

pub mod flow;
pub mod service;
pub mod spec;
pub mod types;
