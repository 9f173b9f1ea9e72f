//! Per-real-server traffic counters, IPVS's per-destination `conns`,
//! `inpkts` and `inbytes` (in DR the director sees no replies, so the
//! outgoing counters stay 0, as IPVS DR shows). A worker counts in its own
//! [`TrafficCounters`], plain integers indexed by `RsId` and allocated at
//! start; every few loops it publishes them into its own
//! [`PublishedTraffic`] block (relaxed stores, no read-modify-write), which
//! the control plane reads with relaxed loads and sums over workers. A
//! service's counters are the sum of its servers' (servers belong to one
//! service each).
#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_utils::CachePadded;

use crate::lb::types::RsId;

/// The traffic of one real server (or a sum of several).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RsTraffic {
    /// Connections created.
    pub conns: u64,
    /// Packets forwarded to it.
    pub in_pkts: u64,
    /// Bytes forwarded to it: IP packet lengths, as IPVS counts them.
    pub in_bytes: u64,
}

impl RsTraffic {
    /// Words per server in the published block.
    const WORDS: usize = 3;

    /// Adds `o` into `self`.
    pub fn add(&mut self, o: &RsTraffic) {
        self.conns += o.conns;
        self.in_pkts += o.in_pkts;
        self.in_bytes += o.in_bytes;
    }
}

/// One worker's packet and byte counts per real server, indexed by `RsId`.
/// Connections are counted by the state layer when it creates an entry
/// (`WorkerState::conns_by_rs`) and joined at publishing time.
#[derive(Debug)]
pub struct TrafficCounters {
    pkts: Box<[u64]>,
    bytes: Box<[u64]>,
    /// Slot of an id: `id & mask` (the snapshot's server capacity).
    mask: u32,
}

impl TrafficCounters {
    /// Counters for `servers` real servers (ids `0..servers`).
    pub fn new(servers: usize) -> Self {
        TrafficCounters {
            pkts: vec![0; servers].into_boxed_slice(),
            bytes: vec![0; servers].into_boxed_slice(),
            mask: servers.max(1).next_power_of_two() as u32 - 1,
        }
    }

    /// One packet of `ip_len` bytes forwarded to `rs`. An id out of range
    /// (never given by the state layer) is not counted.
    #[inline(always)]
    pub fn forwarded(&mut self, rs: RsId, ip_len: u32) {
        let i = (rs.0 & self.mask) as usize;
        if let (Some(p), Some(b)) = (self.pkts.get_mut(i), self.bytes.get_mut(i)) {
            *p += 1;
            *b += u64::from(ip_len);
        }
    }

    /// Number of servers counted.
    pub fn len(&self) -> usize {
        self.pkts.len()
    }

    /// Whether no server is counted.
    pub fn is_empty(&self) -> bool {
        self.pkts.is_empty()
    }
}

/// Words per cache line.
const LINE: usize = 8;

/// Where one worker publishes its traffic counters: whole cache lines of
/// its own, so no other worker's block shares a line with it.
#[derive(Debug)]
pub struct PublishedTraffic {
    lines: Box<[CachePadded<[AtomicU64; LINE]>]>,
    servers: usize,
}

impl PublishedTraffic {
    /// A block for `servers` real servers.
    pub fn new(servers: usize) -> Self {
        let words = servers * RsTraffic::WORDS;
        let lines = (0..words.div_ceil(LINE))
            .map(|_| CachePadded::new(std::array::from_fn(|_| AtomicU64::new(0))))
            .collect();
        PublishedTraffic { lines, servers }
    }

    fn word(&self, i: usize) -> Option<&AtomicU64> {
        self.lines.get(i / LINE).map(|l| &l[i % LINE])
    }

    /// Called by the worker (slow path, every few loops): its packet and
    /// byte counts and the state layer's connection counts per server.
    pub fn publish(
        &self,
        t: &TrafficCounters,
        conns_by_rs: &[u64],
        slots: impl Iterator<Item = usize>,
    ) {
        for i in slots.filter(|&i| i < self.servers) {
            let vals = [
                conns_by_rs.get(i).copied().unwrap_or(0),
                t.pkts.get(i).copied().unwrap_or(0),
                t.bytes.get(i).copied().unwrap_or(0),
            ];
            for (k, v) in vals.into_iter().enumerate() {
                if let Some(w) = self.word(i * RsTraffic::WORDS + k) {
                    w.store(v, Ordering::Relaxed);
                }
            }
        }
    }

    /// Called by the control plane: adds this worker's counts into `sum`
    /// (indexed by `RsId`).
    pub fn add_into(&self, sum: &mut [RsTraffic]) {
        for (i, s) in sum.iter_mut().enumerate().take(self.servers) {
            let r = |k: usize| {
                self.word(i * RsTraffic::WORDS + k)
                    .map_or(0, |w| w.load(Ordering::Relaxed))
            };
            s.add(&RsTraffic {
                conns: r(0),
                in_pkts: r(1),
                in_bytes: r(2),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_counts_sum_over_workers() {
        let n = 5; // 15 words: two cache lines, the second partly used
        let mut a = TrafficCounters::new(n);
        let mut b = TrafficCounters::new(n);
        a.forwarded(RsId(0), 100);
        a.forwarded(RsId(4), 60);
        a.forwarded(RsId(4), 40);
        b.forwarded(RsId(4), 1);
        b.forwarded(RsId(13), 1000); // slot 5 of 8: out of range, ignored
        let (pa, pb) = (PublishedTraffic::new(n), PublishedTraffic::new(n));
        pa.publish(&a, &[1, 0, 0, 0, 2], 0..n);
        pb.publish(&b, &[0, 0, 0, 0, 1], 0..n);
        let mut sum = vec![RsTraffic::default(); n];
        pa.add_into(&mut sum);
        pb.add_into(&mut sum);
        assert_eq!(
            sum[0],
            RsTraffic {
                conns: 1,
                in_pkts: 1,
                in_bytes: 100
            }
        );
        assert_eq!(
            sum[4],
            RsTraffic {
                conns: 3,
                in_pkts: 3,
                in_bytes: 101
            }
        );
        assert_eq!(sum[1..4], [RsTraffic::default(); 3]);
    }
}
