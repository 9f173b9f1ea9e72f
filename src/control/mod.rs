//! Control plane: configuration and validation, the `pmdlb check` summary,
//! `pmdlb run` (startup, neighbour resolution, statistics, shutdown) and
//! runtime commands over the control socket, DPDK telemetry commands.

pub mod config;
pub mod ctl;
pub mod layout;
pub mod neigh;
pub mod run;
pub mod stats;
pub mod summary;
pub mod telemetry;
