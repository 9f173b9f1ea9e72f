//! Safe wrappers over DPDK: EAL start and cleanup, lcores, mempools, owning
//! mbufs with burst RX/TX, ports, telemetry commands and the pdump capture
//! server. The other modules allowed `unsafe` are
//! [`crate::ffi`] and [`crate::sys`]; everything above them is safe Rust.

pub mod eal;
pub mod error;
pub mod lcore;
pub mod mbuf;
pub mod memory;
pub mod mempool;
pub mod pdump;
pub mod port;
pub mod ring;
pub mod telemetry;

use core::fmt;

pub use eal::Eal;
pub use error::{DpdkError, Result};
pub use lcore::{launch, LcoreJob, LcoreJobs};
pub use mbuf::{Flushed, Mbuf, RxBurst, TxBuffer, MAX_BURST};
pub use memory::DpdkMemory;
pub use mempool::Mempool;
pub use pdump::Pdump;
pub use port::{LinkStatus, Port, PortBuilder, PortConfig, PortInfo, PortStats};
pub use ring::{MbufRing, RingSync};
pub use telemetry::{TelemetryDict, TelemetryError, TelemetryValues, TelemetryWrite};

/// A DPDK port id.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortId(pub u16);

impl fmt::Debug for PortId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "port{}", self.0)
    }
}

impl PortId {
    /// The NUMA node the device is attached to (`None` when the device
    /// does not say: virtual devices, or a NUMA-less machine).
    pub fn socket(self) -> Option<u32> {
        // SAFETY: a plain query; an unknown port id returns an error code.
        let s = unsafe { crate::ffi::rte_eth_dev_socket_id(self.0) };
        u32::try_from(s).ok()
    }
}

/// A queue index on a port.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueId(pub u16);

impl fmt::Debug for QueueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "queue{}", self.0)
    }
}

/// An EAL logical core id.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LcoreId(pub u32);

impl fmt::Debug for LcoreId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "lcore{}", self.0)
    }
}

impl LcoreId {
    /// The NUMA node of the lcore's CPU, as EAL found it at start
    /// (`None` for an id past `RTE_MAX_LCORE`).
    pub fn socket(self) -> Option<u32> {
        if self.0 >= crate::ffi::RTE_MAX_LCORE {
            return None;
        }
        // SAFETY: DPDK indexes its lcore table with the id unchecked; it
        // is below RTE_MAX_LCORE, the table's length.
        Some(unsafe { crate::ffi::rte_lcore_to_socket_id(self.0) })
    }
}

/// The TSC frequency EAL measured at start, in Hz (0 before EAL init).
pub fn tsc_hz() -> u64 {
    // SAFETY: reads a value EAL computed at init.
    unsafe { crate::ffi::pmdlb_tsc_hz() }
}
