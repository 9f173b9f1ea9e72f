//! Mbuf rings (`rte_ring`) between the control plane and the workers:
//! control → worker for frames the control plane wants sent (ARP requests,
//! gratuitous ARP), worker → control for frames it must see (ARP replies and
//! neighbour advertisements for the director's own addresses).

use std::ffi::{c_void, CString};
use std::ptr::NonNull;

use super::error::{last_errno, strerror, DpdkError, Result};
use super::mbuf::{Mbuf, MAX_BURST};
use crate::ffi;

/// Whether one or many threads enqueue / dequeue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingSync {
    /// One producer, one consumer.
    Spsc,
    /// Many producers, one consumer.
    Mpsc,
}

/// A ring of owned mbufs; mbufs still queued are freed on drop.
#[derive(Debug)]
pub struct MbufRing {
    raw: NonNull<ffi::rte_ring>,
}

// SAFETY: rte_ring is designed for concurrent use by the producer/consumer
// pattern chosen at creation; callers respect that pattern (documented on
// the constructor) and the ring only moves owned mbufs.
unsafe impl Send for MbufRing {}
// SAFETY: as above.
unsafe impl Sync for MbufRing {}

impl MbufRing {
    /// Creates a ring of at least `count` slots (rounded up to a power of
    /// two). With `Spsc`, only one thread may enqueue and one dequeue.
    pub fn new(name: &str, count: u32, sync: RingSync) -> Result<MbufRing> {
        let cname = CString::new(name).map_err(|_| DpdkError::BadArgument(name.to_owned()))?;
        let flags = match sync {
            RingSync::Spsc => ffi::RING_F_SP_ENQ | ffi::RING_F_SC_DEQ,
            RingSync::Mpsc => ffi::RING_F_SC_DEQ,
        };
        let count = count.max(2).next_power_of_two();
        // SAFETY: cname is a valid C string; EAL is initialised by the caller.
        let p = unsafe { ffi::rte_ring_create(cname.as_ptr(), count, -1, flags) };
        NonNull::new(p)
            .map(|raw| MbufRing { raw })
            .ok_or_else(|| DpdkError::Ring {
                name: name.to_owned(),
                text: strerror(last_errno()),
            })
    }

    /// Queues `m`; gives it back if the ring is full.
    pub fn enqueue(&self, m: Mbuf) -> std::result::Result<(), Mbuf> {
        let p = m.into_raw().as_ptr() as *mut c_void;
        let objs = [p];
        // SAFETY: objs holds one valid pointer; the ring takes ownership
        // only if it reports 1 enqueued.
        let n = unsafe { ffi::pmdlb_ring_enqueue_burst(self.raw.as_ptr(), objs.as_ptr(), 1) };
        if n == 1 {
            Ok(())
        } else {
            // SAFETY: the ring did not take the mbuf; we still own it.
            Err(unsafe { Mbuf::from_raw(NonNull::new_unchecked(p as *mut ffi::rte_mbuf)) })
        }
    }

    /// Dequeues up to `MAX_BURST` mbufs, calling `f` on each.
    pub fn drain(&self, mut f: impl FnMut(Mbuf)) -> usize {
        let mut objs = [std::ptr::null_mut::<c_void>(); MAX_BURST];
        // SAFETY: objs has room for MAX_BURST pointers.
        let n = unsafe {
            ffi::pmdlb_ring_dequeue_burst(self.raw.as_ptr(), objs.as_mut_ptr(), MAX_BURST as u32)
        } as usize;
        for &p in &objs[..n] {
            if let Some(nn) = NonNull::new(p as *mut ffi::rte_mbuf) {
                // SAFETY: the ring only ever holds mbufs enqueued by `enqueue`,
                // whose ownership passed to the ring and now to us.
                f(unsafe { Mbuf::from_raw(nn) });
            }
        }
        n
    }

    /// Entries waiting.
    pub fn len(&self) -> usize {
        // SAFETY: raw is a live ring.
        unsafe { ffi::pmdlb_ring_count(self.raw.as_ptr()) as usize }
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for MbufRing {
    fn drop(&mut self) {
        while self.drain(drop) > 0 {}
        // SAFETY: no other user remains (we are being dropped).
        unsafe { ffi::rte_ring_free(self.raw.as_ptr()) };
    }
}
