//! Control plane: the ipvsadm command line (`pmdlb admin`), configuration and validation, the `pmdlb check` summary, the VIP announcement for BGP, the connection sync daemon,
//! `pmdlb run` (startup, neighbour resolution, statistics, shutdown) and
//! runtime commands over the control socket, traffic counters and rates,
//! the Prometheus metrics listener and DPDK telemetry commands.

pub mod admin;
pub mod announce;
pub mod bringup;
pub mod config;
pub mod ctl;
pub mod current;
pub mod estimator;
pub mod health;
pub mod http;
pub mod layout;
pub mod metrics;
pub mod neigh;
pub mod run;
pub mod stats;
pub mod summary;
pub mod sync;
pub mod telemetry;
pub mod traffic;
pub mod watch;

/// Whether a socket call that failed with `e` only timed out or was
/// interrupted (a read or write timeout ran out, a signal came): try again.
pub(crate) fn is_retry(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock
            | std::io::ErrorKind::TimedOut
            | std::io::ErrorKind::Interrupted
    )
}
