//! Typed errors for DPDK calls, carrying DPDK's own error text.

use std::ffi::CStr;

use crate::ffi;

/// The text DPDK gives for an error number (`rte_strerror`).
pub fn strerror(code: i32) -> String {
    let code = code.abs();
    // SAFETY: rte_strerror returns a pointer to a static or thread-local
    // NUL-terminated string for any input value.
    let p = unsafe { ffi::rte_strerror(code) };
    if p.is_null() {
        return format!("error {code}");
    }
    // SAFETY: p is non-null and NUL-terminated (see above); we copy it at once.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// The current lcore's `rte_errno`.
pub fn last_errno() -> i32 {
    // SAFETY: reads a thread-local integer; no preconditions.
    unsafe { ffi::pmdlb_errno() }
}

/// Errors from EAL, mempools, lcores and ports.
#[derive(Debug, thiserror::Error)]
pub enum DpdkError {
    /// `rte_eal_init` failed.
    #[error("EAL initialisation failed ({text}); EAL arguments were: {args}")]
    EalInit {
        /// The EAL arguments, space-separated.
        args: String,
        /// DPDK's error text.
        text: String,
    },
    /// EAL was already initialised in this process (it can start only once).
    #[error("EAL is already initialised in this process; it can start only once per process")]
    EalAlready,
    /// An EAL argument contained a NUL byte.
    #[error("EAL argument {0:?} contains a NUL byte")]
    BadArgument(String),
    /// A mempool could not be created.
    #[error("cannot create mempool {name:?} of {count} mbufs: {text}")]
    Mempool {
        /// Pool name.
        name: String,
        /// Requested number of mbufs.
        count: u32,
        /// DPDK's error text.
        text: String,
    },
    /// No port with that name (vdev name or PCI address).
    #[error("no DPDK port named {name:?} (known ports: {known}); check the --vdev / PCI allow-list in the EAL arguments")]
    NoSuchPort {
        /// The name asked for.
        name: String,
        /// Names of the ports EAL did probe.
        known: String,
    },
    /// A port operation failed.
    #[error("{port:?} ({name}): {op} failed: {text}")]
    Port {
        /// The port.
        port: super::PortId,
        /// The port's device name.
        name: String,
        /// What was being done.
        op: &'static str,
        /// DPDK's error text.
        text: String,
    },
    /// A requested port setting exceeds what the device supports.
    #[error("{port:?} ({name}): {what}")]
    PortLimit {
        /// The port.
        port: super::PortId,
        /// The port's device name.
        name: String,
        /// What is out of range.
        what: String,
    },
    /// An lcore could not be launched.
    #[error("cannot launch work on {lcore:?}: {text}")]
    Launch {
        /// The lcore.
        lcore: super::LcoreId,
        /// Why.
        text: String,
    },
    /// A telemetry command could not be registered.
    #[error("telemetry command {cmd:?}: {text}")]
    Telemetry {
        /// The command.
        cmd: String,
        /// Why.
        text: String,
    },
    /// The packet-capture server could not start.
    #[error(
        "pdump (live capture) could not start: {text}; set eal.pdump = false to run without it"
    )]
    Pdump {
        /// DPDK's error text.
        text: String,
    },
    /// A ring could not be created.
    #[error("cannot create ring {name:?}: {text}")]
    Ring {
        /// Ring name.
        name: String,
        /// DPDK's error text.
        text: String,
    },
}

/// Result alias for this module.
pub type Result<T> = std::result::Result<T, DpdkError>;
