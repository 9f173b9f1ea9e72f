//! Statistics: each worker counts in plain local integers and publishes
//! them every few loops into its own cache-padded block of atomics (relaxed
//! stores, no read-modify-write); the control plane reads those with relaxed
//! loads, sums them and prints one compact line periodically and the full
//! table at exit.
#![forbid(unsafe_code)]

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_utils::CachePadded;

use crate::dataplane::verdict::{DropCounters, DropReason};
use crate::lb::state::StateCounters;

macro_rules! worker_stats {
    ($( $(#[doc = $doc:literal])* $name:ident, )*) => {
        /// One worker's counters (also used for sums).
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct WorkerStats {
            $( $(#[doc = $doc])* pub $name: u64, )*
            /// Frames dropped by the decision, per [`DropReason`].
            pub drops: DropCounters,
            /// The state layer's counters, whole.
            pub state: StateCounters,
        }

        impl WorkerStats {
            /// Names of the scalar counters, in [`WorkerStats::scalars`] order.
            pub const NAMES: &'static [&'static str] = &[$(stringify!($name),)*];
            const N: usize = Self::NAMES.len();
            /// Number of published words.
            pub const WORDS: usize = Self::N + DropReason::COUNT + StateCounters::COUNT;

            /// The scalar counters, in [`WorkerStats::NAMES`] order.
            pub fn scalars(&self) -> [u64; Self::N] {
                [$(self.$name,)*]
            }

            fn store(&self, out: &[AtomicU64]) {
                let mut i = 0;
                $( out[i].store(self.$name, Ordering::Relaxed); i += 1; )*
                for d in self.drops.counts {
                    out[i].store(d, Ordering::Relaxed);
                    i += 1;
                }
                for v in self.state.values() {
                    out[i].store(v, Ordering::Relaxed);
                    i += 1;
                }
            }

            fn load(src: &[AtomicU64]) -> WorkerStats {
                let mut s = WorkerStats::default();
                let mut i = 0;
                $( s.$name = src[i].load(Ordering::Relaxed); i += 1; )*
                for d in s.drops.counts.iter_mut() {
                    *d = src[i].load(Ordering::Relaxed);
                    i += 1;
                }
                for v in s.state.values_mut() {
                    *v = src[i].load(Ordering::Relaxed);
                    i += 1;
                }
                s
            }

            /// Adds `o` into `self`.
            pub fn add(&mut self, o: &WorkerStats) {
                $( self.$name += o.$name; )*
                for (a, b) in self.drops.counts.iter_mut().zip(o.drops.counts.iter()) {
                    *a += *b;
                }
                for (a, b) in self.state.values_mut().into_iter().zip(o.state.values()) {
                    *a += b;
                }
            }
        }
    };
}

worker_stats! {
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
    /// Connection entries in this worker's table.
    conns,
    /// Loop iterations.
    loops,
    /// Non-empty bursts.
    bursts,
}

impl WorkerStats {
    /// All drops.
    pub fn dropped(&self) -> u64 {
        self.drops.counts.iter().sum()
    }

    /// Frames received and not yet accounted for: received minus forwarded,
    /// replied, handed over and dropped. Zero in a consistent snapshot taken
    /// after the worker stopped.
    pub fn unaccounted(&self) -> i128 {
        self.rx as i128
            - self.forwarded as i128
            - self.replies as i128
            - self.to_control as i128
            - self.control_ring_full as i128
            - self.vlan_no_headroom as i128
            - self.dropped() as i128
    }
}

/// Where one worker publishes its counters.
#[derive(Debug)]
pub struct Published {
    words: CachePadded<Box<[AtomicU64]>>,
}

impl Default for Published {
    fn default() -> Self {
        let words: Vec<AtomicU64> = (0..WorkerStats::WORDS).map(|_| AtomicU64::new(0)).collect();
        Published {
            words: CachePadded::new(words.into_boxed_slice()),
        }
    }
}

impl Published {
    /// Called by the worker (slow path, every few loops).
    pub fn publish(&self, s: &WorkerStats) {
        s.store(&self.words);
    }

    /// Called by the control plane.
    pub fn read(&self) -> WorkerStats {
        WorkerStats::load(&self.words)
    }
}

/// Sum of several workers.
pub fn total(per_worker: &[WorkerStats]) -> WorkerStats {
    let mut t = WorkerStats::default();
    for w in per_worker {
        t.add(w);
    }
    t
}

/// The one-line periodic summary: totals plus rates since `prev`.
pub fn compact_line(now: &WorkerStats, prev: &WorkerStats, secs: f64, extra: &str) -> String {
    let rate = |a: u64, b: u64| {
        if secs > 0.0 {
            (a.saturating_sub(b)) as f64 / secs
        } else {
            0.0
        }
    };
    let mut top = String::new();
    let mut drops: Vec<(usize, u64)> = now
        .drops
        .counts
        .iter()
        .copied()
        .enumerate()
        .filter(|&(_, v)| v > 0)
        .collect();
    drops.sort_by_key(|d| std::cmp::Reverse(d.1));
    for (i, v) in drops.iter().take(3) {
        let _ = write!(top, " {}={}", DropReason::ALL[*i].name(), v);
    }
    format!(
        "rx={} ({:.0}/s) fwd={} ({:.0}/s) reply={} drop={}{} tx_refused={} conns={}{}",
        now.rx,
        rate(now.rx, prev.rx),
        now.forwarded,
        rate(now.forwarded, prev.forwarded),
        now.replies,
        now.dropped(),
        if top.is_empty() {
            String::new()
        } else {
            format!(" [{}]", top.trim_start())
        },
        now.tx_refused,
        now.conns,
        extra
    )
}

/// The full table: one column per worker and a total column.
pub fn full_table(per_worker: &[WorkerStats]) -> String {
    let t = total(per_worker);
    let mut out = String::new();
    let _ = write!(out, "{:<24}", "counter");
    for i in 0..per_worker.len() {
        let _ = write!(out, " {:>14}", format!("worker{i}"));
    }
    let _ = writeln!(out, " {:>14}", "total");
    let row = |out: &mut String, name: &str, vals: &mut dyn Iterator<Item = u64>, total: u64| {
        let _ = write!(out, "{name:<24}");
        for v in vals {
            let _ = write!(out, " {v:>14}");
        }
        let _ = writeln!(out, " {total:>14}");
    };
    let tsc = t.scalars();
    for (k, name) in WorkerStats::NAMES.iter().enumerate() {
        row(
            &mut out,
            name,
            &mut per_worker.iter().map(|w| w.scalars()[k]),
            tsc[k],
        );
    }
    let tst = t.state.values();
    for (k, name) in StateCounters::NAMES.iter().enumerate() {
        row(
            &mut out,
            name,
            &mut per_worker.iter().map(|w| w.state.values()[k]),
            tst[k],
        );
    }
    for r in DropReason::ALL {
        let i = r.as_index();
        if t.drops.counts[i] == 0 {
            continue;
        }
        row(
            &mut out,
            &format!("drop.{}", r.name()),
            &mut per_worker.iter().map(|w| w.drops.counts[i]),
            t.drops.counts[i],
        );
    }
    row(
        &mut out,
        "drop.total",
        &mut per_worker.iter().map(|w| w.dropped()),
        t.dropped(),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_roundtrip_and_sum() {
        let p = Published::default();
        let mut s = WorkerStats {
            rx: 10,
            forwarded: 7,
            replies: 1,
            ..Default::default()
        };
        s.drops.counts[DropReason::NoService.as_index()] = 2;
        s.state.conn_created = 3;
        s.state.template_busy = 5;
        p.publish(&s);
        let r = p.read();
        assert_eq!(r, s);
        assert_eq!(r.unaccounted(), 0);
        let t = total(&[r, r]);
        assert_eq!(t.rx, 20);
        assert_eq!(t.dropped(), 4);
        let table = full_table(&[r, r]);
        assert!(table.contains("drop.no_service"));
        assert_eq!(t.state.conn_created, 6);
        for (name, total) in [("conn_created", "6"), ("template_busy", "10")] {
            assert!(
                table
                    .lines()
                    .any(|l| l.starts_with(&format!("{name} ")) && l.trim_end().ends_with(total)),
                "{name}:\n{table}"
            );
        }
        assert!(table
            .lines()
            .any(|l| l.starts_with("rx ") && l.trim_end().ends_with("20")));
        let line = compact_line(&t, &WorkerStats::default(), 2.0, "");
        assert!(line.starts_with("rx=20 (10/s) fwd=14"), "{line}");
        assert!(line.contains("no_service=4"), "{line}");
    }
}
