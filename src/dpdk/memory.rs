//! DPDK's own heap (`rte_zmalloc_socket`) as a [`Backing`] for the big
//! tables: hugepage memory on a chosen NUMA node (anonymous memory under
//! `--no-huge`), so a table's lines are never split over 4 KiB pages,
//! whatever the host's transparent-huge-page setting, and sit on the
//! node of the NIC whose traffic reads them.

use std::alloc::Layout;
use std::ffi::c_void;
use std::ptr::NonNull;

use super::Eal;
use crate::ffi;
use crate::sys::mem::Backing;

/// Allocations from the EAL's heap on one socket.
#[derive(Debug)]
pub struct DpdkMemory {
    socket: i32,
    huge: bool,
}

impl DpdkMemory {
    /// The heap of NUMA node `socket` (`None`: any node, the caller's
    /// first) of a running EAL. Every table allocated here must be dropped
    /// before the EAL is (as its mempools and rings are).
    pub fn new(_eal: &Eal, socket: Option<u32>) -> DpdkMemory {
        // SAFETY: a plain query of the running EAL.
        let huge = unsafe { ffi::rte_eal_has_hugepages() } != 0;
        DpdkMemory {
            socket: socket.map_or(ffi::SOCKET_ID_ANY, |s| s as i32),
            huge,
        }
    }

    /// Whether the EAL runs on hugepages (not `--no-huge`).
    pub fn hugepages(&self) -> bool {
        self.huge
    }
}

impl Backing for DpdkMemory {
    fn alloc(&self, layout: Layout) -> Option<NonNull<u8>> {
        let align = u32::try_from(layout.align()).ok()?;
        // SAFETY: the type string is a static C string; size and a
        // power-of-two alignment come from a valid Layout; the EAL is up
        // (DpdkMemory::new took it).
        let p = unsafe {
            ffi::rte_zmalloc_socket(c"pmdlb_table".as_ptr(), layout.size(), align, self.socket)
        };
        NonNull::new(p as *mut u8)
    }

    unsafe fn free(&self, p: NonNull<u8>) {
        // SAFETY: the caller gives back what rte_zmalloc_socket returned,
        // once, while the EAL still runs.
        unsafe { ffi::rte_free(p.as_ptr() as *mut c_void) }
    }

    fn describe(&self) -> String {
        let kind = if self.huge {
            "DPDK hugepage memory"
        } else {
            "DPDK memory (--no-huge)"
        };
        if self.socket == ffi::SOCKET_ID_ANY {
            format!("{kind} on any socket")
        } else {
            format!("{kind} on socket {}", self.socket)
        }
    }
}
