//! Packet-buffer pools (`rte_pktmbuf_pool_create`), freed on drop.

use std::ffi::CString;
use std::ptr::NonNull;

use super::error::{last_errno, strerror, DpdkError, Result};
use super::mbuf::Mbuf;
use crate::ffi;

/// A pool of packet mbufs.
#[derive(Debug)]
pub struct Mempool {
    raw: NonNull<ffi::rte_mempool>,
    size: u32,
}

// SAFETY: DPDK mempools are multi-producer/multi-consumer safe; the handle
// only frees the pool on drop, which needs exclusive ownership.
unsafe impl Send for Mempool {}
// SAFETY: as above; every operation through &Mempool is thread-safe in DPDK.
unsafe impl Sync for Mempool {}

impl Mempool {
    /// Creates a pool of `count` mbufs with a per-lcore cache of `cache`
    /// and `data_room` bytes per buffer (headroom included) on `socket`
    /// (`-1` = any).
    pub fn new(name: &str, count: u32, cache: u32, data_room: u16, socket: i32) -> Result<Mempool> {
        let cname = CString::new(name).map_err(|_| DpdkError::BadArgument(name.to_owned()))?;
        // SAFETY: cname is a valid C string; EAL is initialised (pools can
        // only be created after Eal::init, which callers hold).
        let p = unsafe {
            ffi::rte_pktmbuf_pool_create(cname.as_ptr(), count, cache, 0, data_room, socket)
        };
        match NonNull::new(p) {
            Some(raw) => Ok(Mempool { raw, size: count }),
            None => Err(DpdkError::Mempool {
                name: name.to_owned(),
                count,
                text: strerror(last_errno()),
            }),
        }
    }

    /// The raw pointer, for port setup.
    pub(crate) fn as_ptr(&self) -> *mut ffi::rte_mempool {
        self.raw.as_ptr()
    }

    /// Number of mbufs the pool was created with.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// Mbufs free in the pool (per-lcore caches included).
    pub fn available(&self) -> u32 {
        // SAFETY: raw is a live pool.
        unsafe { ffi::rte_mempool_avail_count(self.raw.as_ptr()) }
    }

    /// Mbufs currently allocated from the pool.
    pub fn in_use(&self) -> u32 {
        // SAFETY: raw is a live pool.
        unsafe { ffi::rte_mempool_in_use_count(self.raw.as_ptr()) }
    }

    /// Allocates one mbuf, or `None` when the pool is empty.
    pub fn alloc(&self) -> Option<Mbuf> {
        // SAFETY: raw is a live pool; the result is null or an mbuf we own.
        let m = unsafe { ffi::pmdlb_pktmbuf_alloc(self.raw.as_ptr()) };
        NonNull::new(m).map(Mbuf::from_nonnull)
    }
}

impl Drop for Mempool {
    fn drop(&mut self) {
        // SAFETY: the pool is no longer used by any port (ports are stopped
        // before their pools are dropped) and no Mbuf outlives it.
        unsafe { ffi::rte_mempool_free(self.raw.as_ptr()) };
    }
}
