//! The counters a worker publishes: its own loop and forwarding counters,
//! the state layer's [`StateCounters`] and the drops per [`DropReason`],
//! each set whole. The worker counts in plain local integers and publishes
//! every few loops into its own cache-padded block of atomics (relaxed
//! stores, no read-modify-write); the control plane reads them with relaxed
//! loads (and formats them, `control::stats`).
#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_utils::CachePadded;

use crate::dataplane::verdict::{DropCounters, DropReason};
use crate::lb::counters::counter_set;
use crate::lb::state::StateCounters;

counter_set! {
    /// One worker's loop and forwarding counters.
    pub struct WorkerCounters {
        /// Frames received on the RX queue.
        rx,
        /// Frames forwarded to a real server (handed to the TX buffer).
        forwarded,
        /// ARP replies, neighbour advertisements and echo replies sent back.
        replies,
        /// Neighbour frames (ARP replies, NAs) handed to the control plane.
        to_control,
        /// Neighbour frames dropped because the control-plane ring was full.
        control_ring_full,
        /// Frames the control plane asked this worker to send.
        control_sent,
        /// Frames the TX NIC accepted.
        tx_sent,
        /// Frames the TX NIC refused (freed).
        tx_refused,
        /// Forwards that needed a VLAN tag inserted but had no headroom.
        vlan_no_headroom,
        /// Forwards to a tunnel server that could not be encapsulated (no
        /// headroom, or no tunnel source address of the server's family).
        tunnel_failed,
        /// ICMP fragmentation-needed / packet-too-big errors sent back for
        /// packets too big for their tunnel (each packet is counted as
        /// dropped, `tunnel_too_big`, not as a reply).
        too_big_sent,
        /// Packets for tunnel servers sent as outer IPv4 fragments (IPv4
        /// without DF, too big for the TX MTU once encapsulated); each is
        /// also counted in `forwarded`, each fragment in `tx_sent`.
        tunnel_fragmented,
        /// Connection entries in this worker's table (occupancy, not a count
        /// of events).
        conns,
        /// Loop iterations.
        loops,
        /// Non-empty bursts.
        bursts,
    }
}

/// Everything one worker publishes (also used for sums).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WorkerStats {
    /// The worker's own counters.
    pub io: WorkerCounters,
    /// The state layer's counters, whole.
    pub state: StateCounters,
    /// Frames dropped by the decision, per [`DropReason`].
    pub drops: DropCounters,
}

impl WorkerStats {
    /// Number of published words.
    pub const WORDS: usize = WorkerCounters::LEN + StateCounters::LEN + DropReason::COUNT;

    /// Adds `o` into `self`.
    pub fn add(&mut self, o: &WorkerStats) {
        self.io.add(&o.io);
        self.state.add(&o.state);
        for (a, b) in self.drops.counts.iter_mut().zip(o.drops.counts.iter()) {
            *a += *b;
        }
    }

    /// All drops.
    pub fn dropped(&self) -> u64 {
        self.drops.counts.iter().sum()
    }

    /// Frames received and not yet accounted for: received minus forwarded,
    /// replied, handed over and dropped. Zero in a consistent snapshot taken
    /// after the worker stopped.
    pub fn unaccounted(&self) -> i128 {
        let c = &self.io;
        c.rx as i128
            - c.forwarded as i128
            - c.replies as i128
            - c.to_control as i128
            - c.control_ring_full as i128
            - c.vlan_no_headroom as i128
            - c.tunnel_failed as i128
            - self.dropped() as i128
    }

    fn words(&self) -> impl Iterator<Item = u64> {
        self.io
            .values()
            .into_iter()
            .chain(self.state.values())
            .chain(self.drops.counts)
    }
}

/// Words per cache line.
const LINE: usize = 8;

/// Where one worker publishes its counters: whole cache lines of its own
/// (each line is padded and aligned, so no other worker's block, nor any
/// other allocation, shares a line with it).
#[derive(Debug)]
pub struct Published {
    lines: Box<[CachePadded<[AtomicU64; LINE]>]>,
}

impl Default for Published {
    fn default() -> Self {
        let lines = (0..WorkerStats::WORDS.div_ceil(LINE))
            .map(|_| CachePadded::new(std::array::from_fn(|_| AtomicU64::new(0))))
            .collect();
        Published { lines }
    }
}

impl Published {
    fn words(&self) -> impl Iterator<Item = &AtomicU64> {
        self.lines
            .iter()
            .flat_map(|l| l.iter())
            .take(WorkerStats::WORDS)
    }

    /// Called by the worker (slow path, every few loops).
    pub fn publish(&self, s: &WorkerStats) {
        for (w, v) in self.words().zip(s.words()) {
            w.store(v, Ordering::Relaxed);
        }
    }

    /// Called by the control plane.
    pub fn read(&self) -> WorkerStats {
        let mut it = self.words().map(|w| w.load(Ordering::Relaxed));
        let mut next = || it.next().unwrap_or(0);
        let io = WorkerCounters::from_values(std::array::from_fn(|_| next()));
        let state = StateCounters::from_values(std::array::from_fn(|_| next()));
        let mut drops = DropCounters::default();
        for d in drops.counts.iter_mut() {
            *d = next();
        }
        WorkerStats { io, state, drops }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_counter_survives_publishing() {
        // Distinct values in every word: a word published or read in the
        // wrong place, or not at all, breaks the equality.
        let n = WorkerCounters::LEN as u64;
        let m = StateCounters::LEN as u64;
        let io = WorkerCounters::from_values(std::array::from_fn(|i| 1 + i as u64));
        let state = StateCounters::from_values(std::array::from_fn(|i| 1 + n + i as u64));
        let mut drops = DropCounters::default();
        for (i, d) in drops.counts.iter_mut().enumerate() {
            *d = 1 + n + m + i as u64;
        }
        let s = WorkerStats { io, state, drops };
        let p = Published::default();
        p.publish(&s);
        assert_eq!(p.read(), s);
        // The block starts on a cache line of its own.
        assert_eq!(p.lines.as_ptr() as usize % 64, 0);
    }
}
