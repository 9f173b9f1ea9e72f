//! Owning packet buffers. An [`Mbuf`] frees itself on drop; handing it to a
//! TX queue passes ownership explicitly ([`TxBuffer::push`]). [`RxBurst`]
//! holds the mbufs of one `rx_burst` and frees whatever the worker did not
//! take. Data pointer, length and prefetch are plain Rust, not calls to C.

use std::ptr::NonNull;

use super::PortId;
use super::QueueId;
use crate::ffi;

/// Largest burst pmdlb receives or transmits at once.
pub const MAX_BURST: usize = 64;
/// Bytes every mbuf keeps free in front of a received frame
/// (`RTE_PKTMBUF_HEADROOM` of the DPDK build pmdlb is compiled against).
pub const HEADROOM: u16 = ffi::RTE_PKTMBUF_HEADROOM as u16;

/// One single-segment packet buffer, owned.
#[derive(Debug)]
pub struct Mbuf(NonNull<ffi::rte_mbuf>);

// SAFETY: an Mbuf is exclusively owned; DPDK allows freeing an mbuf on any
// lcore or thread.
unsafe impl Send for Mbuf {}

#[inline(always)]
fn raw_data(m: *mut ffi::rte_mbuf) -> (*mut u8, usize) {
    // SAFETY: callers pass a live mbuf they own; buf_addr + data_off is the
    // start of packet data and data_len bytes follow it (DPDK invariant).
    unsafe {
        let m = &*m;
        (
            (m.buf_addr as *mut u8).add(m.data_off as usize),
            m.data_len as usize,
        )
    }
}

impl Mbuf {
    pub(crate) fn from_nonnull(p: NonNull<ffi::rte_mbuf>) -> Mbuf {
        Mbuf(p)
    }

    /// Takes ownership of a raw mbuf.
    ///
    /// # Safety
    /// `p` must be a live mbuf that nobody else owns or frees.
    pub unsafe fn from_raw(p: NonNull<ffi::rte_mbuf>) -> Mbuf {
        Mbuf(p)
    }

    /// Gives up ownership; the caller must free or transmit the pointer.
    pub fn into_raw(self) -> NonNull<ffi::rte_mbuf> {
        let p = self.0;
        std::mem::forget(self);
        p
    }

    /// The packet bytes.
    #[inline(always)]
    pub fn data(&self) -> &[u8] {
        let (p, len) = raw_data(self.0.as_ptr());
        // SAFETY: p..p+len is the packet data of an mbuf we own.
        unsafe { std::slice::from_raw_parts(p, len) }
    }

    /// The packet bytes, mutable.
    #[inline(always)]
    pub fn data_mut(&mut self) -> &mut [u8] {
        let (p, len) = raw_data(self.0.as_ptr());
        // SAFETY: as in `data`, and &mut self guarantees exclusivity.
        unsafe { std::slice::from_raw_parts_mut(p, len) }
    }

    /// Packet length in bytes.
    #[inline(always)]
    pub fn len(&self) -> usize {
        // SAFETY: reading a field of an mbuf we own.
        unsafe { (*self.0.as_ptr()).pkt_len as usize }
    }

    /// Whether the packet is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes free in front of the data.
    pub fn headroom(&self) -> usize {
        // SAFETY: reading a field of an mbuf we own.
        unsafe { (*self.0.as_ptr()).data_off as usize }
    }

    /// Grows the packet at the front by `n` bytes; `false` if the headroom
    /// is too small.
    pub fn prepend(&mut self, n: u16) -> bool {
        // SAFETY: we own the mbuf; rte_pktmbuf_prepend checks the headroom.
        !unsafe { ffi::pmdlb_pktmbuf_prepend(self.0.as_ptr(), n) }.is_null()
    }

    /// Removes `n` bytes from the front; `false` if the packet is shorter.
    pub fn adj(&mut self, n: u16) -> bool {
        // SAFETY: we own the mbuf; rte_pktmbuf_adj checks the length.
        !unsafe { ffi::pmdlb_pktmbuf_adj(self.0.as_ptr(), n) }.is_null()
    }

    /// Grows the packet at the end by `n` bytes; `false` if no tailroom.
    pub fn append(&mut self, n: u16) -> bool {
        // SAFETY: we own the mbuf; rte_pktmbuf_append checks the tailroom.
        !unsafe { ffi::pmdlb_pktmbuf_append(self.0.as_ptr(), n) }.is_null()
    }

    /// Shrinks the packet at the end by `n` bytes; `false` if shorter.
    pub fn trim(&mut self, n: u16) -> bool {
        // SAFETY: we own the mbuf; rte_pktmbuf_trim checks the length.
        unsafe { ffi::pmdlb_pktmbuf_trim(self.0.as_ptr(), n) == 0 }
    }

    /// Fills every slot of `out` (at most [`MAX_BURST`]) with a fresh,
    /// empty mbuf from the pool this one came from, all or none
    /// (`rte_pktmbuf_alloc_bulk`): `false`, and `out` untouched, when the
    /// pool cannot give them all. Whatever the slots held is freed. No
    /// pool handle is needed: a live mbuf keeps its pool alive.
    pub fn alloc_bulk_like(&self, out: &mut [Option<Mbuf>]) -> bool {
        let mut raw = [std::ptr::null_mut(); MAX_BURST];
        let Some(raw) = raw.get_mut(..out.len()) else {
            return false;
        };
        // SAFETY: reading a field of an mbuf we own; `pool` is the live
        // pool it was taken from (DPDK invariant), which outlives it.
        let pool = unsafe { (*self.0.as_ptr()).pool };
        // SAFETY: `raw` has room for `out.len()` pointers; on success every
        // one is a fresh mbuf we now own, on failure none was taken.
        let rc = unsafe { ffi::pmdlb_pktmbuf_alloc_bulk(pool, raw.as_mut_ptr(), raw.len() as u32) };
        if rc != 0 {
            return false;
        }
        for (slot, p) in out.iter_mut().zip(raw.iter()) {
            *slot = NonNull::new(*p).map(Mbuf);
        }
        true
    }
}

impl Drop for Mbuf {
    fn drop(&mut self) {
        // SAFETY: we own the mbuf and nobody else frees it.
        unsafe { ffi::pmdlb_pktmbuf_free(self.0.as_ptr()) };
    }
}

/// `RTE_MBUF_F_RX_IP_CKSUM_MASK` and `_GOOD` (checked against the headers
/// at build time by `src/ffi/shim.c`).
const RX_IP_CKSUM_MASK: u64 = (1 << 4) | (1 << 7);
const RX_IP_CKSUM_GOOD: u64 = 1 << 7;

/// The mbufs of one receive burst. Slots taken with [`RxBurst::take`] leave
/// the burst; the rest are freed (in bulk) on drop or [`RxBurst::clear`].
pub struct RxBurst {
    pkts: [*mut ffi::rte_mbuf; MAX_BURST],
    len: usize,
}

impl std::fmt::Debug for RxBurst {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RxBurst({} packets)", self.len)
    }
}

impl Default for RxBurst {
    fn default() -> Self {
        RxBurst {
            pkts: [std::ptr::null_mut(); MAX_BURST],
            len: 0,
        }
    }
}

impl RxBurst {
    /// Frees any packets still held, then receives up to `max` (at most
    /// [`MAX_BURST`]) packets from `queue` of `port`. Returns the count.
    #[inline]
    pub fn receive(&mut self, port: PortId, queue: QueueId, max: usize) -> usize {
        self.clear();
        let n = max.min(MAX_BURST) as u16;
        // SAFETY: pkts has room for n pointers; the port and queue were set
        // up and started by Port (rx_burst on a stopped port returns 0).
        let got = unsafe { ffi::pmdlb_rx_burst(port.0, queue.0, self.pkts.as_mut_ptr(), n) };
        self.len = got as usize;
        self.len
    }

    /// Number of packets received.
    #[inline(always)]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the burst is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bit `i` set: the device checked packet `i`'s IPv4 header checksum
    /// and found it good (`RTE_MBUF_F_RX_IP_CKSUM_GOOD`). Clear for every
    /// other report (bad, none, unknown) and for taken packets: those are
    /// verified in software.
    #[inline(always)]
    pub fn ip_cksum_good(&self) -> u64 {
        let mut good = 0;
        for (i, &p) in self.pkts[..self.len].iter().enumerate() {
            let flags = if p.is_null() {
                0
            } else {
                // SAFETY: a non-null pointer of the burst is a live mbuf it owns.
                unsafe { (*p).ol_flags }
            };
            good |= u64::from(flags & RX_IP_CKSUM_MASK == RX_IP_CKSUM_GOOD) << i;
        }
        good
    }

    /// Prefetches the first cache line of packet `i`'s data (no-op if taken
    /// or out of range).
    #[inline(always)]
    pub fn prefetch_data(&self, i: usize) {
        if i < self.len && !self.pkts[i].is_null() {
            let (p, _) = raw_data(self.pkts[i]);
            crate::sys::prefetch(p);
        }
    }

    /// The bytes of packet `i`, or `None` if taken or out of range.
    #[inline(always)]
    pub fn data_mut(&mut self, i: usize) -> Option<&mut [u8]> {
        if i >= self.len || self.pkts[i].is_null() {
            return None;
        }
        let (p, len) = raw_data(self.pkts[i]);
        // SAFETY: the burst owns packet i; &mut self gives exclusivity.
        Some(unsafe { std::slice::from_raw_parts_mut(p, len) })
    }

    /// The bytes of every packet of the burst at once, in order, for a
    /// burst-wide decision (`out[i]` is packet `i`; a taken packet gives an
    /// empty slice). Returns the count.
    #[inline(always)]
    pub fn frames_mut<'a>(&'a mut self, out: &mut [&'a mut [u8]; MAX_BURST]) -> usize {
        for (i, o) in out.iter_mut().enumerate().take(self.len) {
            let p = self.pkts[i];
            *o = if p.is_null() {
                Default::default()
            } else {
                let (d, len) = raw_data(p);
                // SAFETY: the burst owns packet i and each packet's data is a
                // distinct buffer; `&'a mut self` keeps them exclusive (no
                // take or clear) for as long as the slices live.
                unsafe { std::slice::from_raw_parts_mut(d, len) }
            };
        }
        self.len
    }

    /// Takes packet `i` out of the burst.
    #[inline(always)]
    pub fn take(&mut self, i: usize) -> Option<Mbuf> {
        if i >= self.len {
            return None;
        }
        let p = std::mem::replace(&mut self.pkts[i], std::ptr::null_mut());
        NonNull::new(p).map(Mbuf)
    }

    /// Frees every packet not taken.
    #[inline]
    pub fn clear(&mut self) {
        if self.len == 0 {
            return;
        }
        // Compact the remaining pointers and free them in one call.
        let mut n = 0;
        for i in 0..self.len {
            let p = self.pkts[i];
            if !p.is_null() {
                self.pkts[n] = p;
                n += 1;
            }
        }
        if n > 0 {
            // SAFETY: the first n slots are live mbufs this burst owns.
            unsafe { ffi::rte_pktmbuf_free_bulk(self.pkts.as_mut_ptr(), n as u32) };
        }
        self.len = 0;
    }
}

impl Drop for RxBurst {
    fn drop(&mut self) {
        self.clear();
    }
}

/// Packets waiting for one TX queue of one port. The worker pushes, then
/// flushes when full or when the drain interval passed; whatever the NIC
/// refuses is freed and counted.
pub struct TxBuffer {
    port: PortId,
    queue: QueueId,
    pkts: [*mut ffi::rte_mbuf; MAX_BURST],
    len: usize,
    size: usize,
}

// SAFETY: the buffer exclusively owns its mbufs; moving it to the lcore that
// uses it is fine.
unsafe impl Send for TxBuffer {}

impl std::fmt::Debug for TxBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "TxBuffer({:?}/{:?}, {} of {})",
            self.port, self.queue, self.len, self.size
        )
    }
}

/// Result of a flush.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flushed {
    /// Packets the NIC accepted.
    pub sent: u32,
    /// Packets the NIC refused (freed).
    pub dropped: u32,
}

impl TxBuffer {
    /// A buffer for `queue` of `port` that flushes at `size` packets
    /// (clamped to 1..=[`MAX_BURST`]).
    pub fn new(port: PortId, queue: QueueId, size: usize) -> TxBuffer {
        TxBuffer {
            port,
            queue,
            pkts: [std::ptr::null_mut(); MAX_BURST],
            len: 0,
            size: size.clamp(1, MAX_BURST),
        }
    }

    /// Packets waiting.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Queues `m`; flushes when the buffer reaches its size.
    #[inline(always)]
    pub fn push(&mut self, m: Mbuf) -> Flushed {
        self.pkts[self.len] = m.into_raw().as_ptr();
        self.len += 1;
        if self.len >= self.size {
            self.flush()
        } else {
            Flushed::default()
        }
    }

    /// Transmits everything waiting; frees and counts what the NIC refused.
    #[inline]
    pub fn flush(&mut self) -> Flushed {
        if self.len == 0 {
            return Flushed::default();
        }
        // SAFETY: the first len slots are live mbufs we own; tx_burst takes
        // ownership of the first `sent` of them.
        let sent = unsafe {
            ffi::pmdlb_tx_burst(
                self.port.0,
                self.queue.0,
                self.pkts.as_mut_ptr(),
                self.len as u16,
            )
        } as usize;
        let dropped = self.len - sent;
        if dropped > 0 {
            // SAFETY: slots sent..len are still ours; free them.
            unsafe { ffi::rte_pktmbuf_free_bulk(self.pkts.as_mut_ptr().add(sent), dropped as u32) };
        }
        self.len = 0;
        Flushed {
            sent: sent as u32,
            dropped: dropped as u32,
        }
    }
}

impl Drop for TxBuffer {
    fn drop(&mut self) {
        if self.len > 0 {
            // SAFETY: the first len slots are live mbufs we own.
            unsafe { ffi::rte_pktmbuf_free_bulk(self.pkts.as_mut_ptr(), self.len as u32) };
            self.len = 0;
        }
    }
}
