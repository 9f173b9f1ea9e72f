//! Publishing a new service-table snapshot to running workers.
//!
//! The control plane builds a [`Tables`] (the lookup table and the state
//! layer's [`Snapshot`] of one configuration), stores it in a [`Live`] and
//! bumps the epoch. A worker compares the epoch with the one it runs on at
//! every burst boundary — one relaxed load of a line that is written only on
//! a swap — and, when it changed, takes the new `Arc` and announces the
//! epoch it now runs on. No lock and no atomic read-modify-write per packet;
//! the reference-count increment happens once per swap per worker.
//!
//! Why `arc-swap` and not `rte_rcu_qsbr` or crossbeam-epoch: a worker holds
//! its snapshot for a whole burst and longer, which is exactly an `Arc`
//! (the worker's clone *is* its read-side critical section, the burst
//! boundary where it lets go is its quiescent state). `ArcSwap` makes the
//! pointer exchange wait-free for readers without unsafe code of ours, and
//! the grace period needs no tracking: the old tables live while anyone
//! holds them. The control plane keeps every retired `Tables` until it is
//! the only holder ([`Retired`]), so the last reference — and the
//! deallocation — is always dropped on the control plane, never on a
//! worker. The epochs workers announce tell the control plane when every
//! worker has left a snapshot (a removed server's slot may then be freed).
#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use crossbeam_utils::CachePadded;

use crate::lb::service::ServiceTable;
use crate::lb::snapshot::Snapshot;
use crate::lb::spec::{StateFlags, Timeouts};

/// One configuration as the workers read it.
#[derive(Debug)]
pub struct Tables {
    /// Service, mark-rule and VIP lookup.
    pub services: ServiceTable,
    /// Services and real servers for the state layer.
    pub snap: Arc<Snapshot>,
    /// Connection timeouts (`ipvsadm --set` changes them).
    pub timeouts: Timeouts,
    /// The IPVS behaviour switches (a reload may change them).
    pub flags: StateFlags,
}

impl Tables {
    /// The epoch (the snapshot's).
    pub fn epoch(&self) -> u64 {
        self.snap.epoch()
    }
}

/// The current tables, swapped by the control plane.
#[derive(Debug)]
pub struct Live {
    epoch: CachePadded<AtomicU64>,
    current: ArcSwap<Tables>,
}

impl Live {
    /// Starts with `t`.
    pub fn new(t: Arc<Tables>) -> Self {
        Live {
            epoch: CachePadded::new(AtomicU64::new(t.epoch())),
            current: ArcSwap::new(t),
        }
    }

    /// The epoch of the current tables (workers: once per burst).
    #[inline(always)]
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// The current tables.
    pub fn load(&self) -> Arc<Tables> {
        self.current.load_full()
    }

    /// Control plane: publish `t`; returns the tables it replaces (keep
    /// them in [`Retired`] so they are freed here).
    pub fn publish(&self, t: Arc<Tables>) -> Arc<Tables> {
        let e = t.epoch();
        let old = self.current.swap(t);
        self.epoch.store(e, Ordering::Release);
        old
    }
}

/// Retired tables waiting until no worker holds them.
#[derive(Debug, Default)]
pub struct Retired(Vec<Arc<Tables>>);

impl Retired {
    /// Keep `t` until it is ours alone.
    pub fn push(&mut self, t: Arc<Tables>) {
        self.0.push(t);
    }

    /// Drop every retired `Tables` no one else holds; returns how many are
    /// still held. `Arc::strong_count == 1` cannot go back up: the `Live`
    /// no longer hands it out.
    pub fn collect(&mut self) -> usize {
        self.0
            .retain(|t| Arc::strong_count(t) > 1 || Arc::strong_count(&t.snap) > 1);
        self.0.len()
    }
}

/// The epoch a worker runs on, for the control plane (own cache line).
#[derive(Debug, Default)]
pub struct SeenEpoch(CachePadded<AtomicU64>);

impl SeenEpoch {
    /// Worker: now running on `e`.
    pub fn set(&self, e: u64) {
        self.0.store(e, Ordering::Release);
    }

    /// Control plane.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }
}

/// The oldest epoch any worker still runs on (`u64::MAX` with no worker).
pub fn quiescent(seen: &[Arc<SeenEpoch>]) -> u64 {
    seen.iter().map(|s| s.get()).min().unwrap_or(u64::MAX)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::lb::spec::ServiceSpec;

    fn tables(prev: Option<&Snapshot>) -> Arc<Tables> {
        let specs: Vec<ServiceSpec> = Vec::new();
        let snap = match prev {
            None => Snapshot::new(&specs),
            Some(p) => p.next(&specs, 0).unwrap().0,
        };
        Arc::new(Tables {
            services: ServiceTable::new(&specs, &[], &[]).unwrap(),
            snap: Arc::new(snap),
            timeouts: Timeouts::default(),
            flags: StateFlags::default(),
        })
    }

    #[test]
    fn publish_and_retire() {
        let t0 = tables(None);
        let live = Live::new(Arc::clone(&t0));
        assert_eq!(live.epoch(), 0);
        let worker_copy = live.load();
        let t1 = tables(Some(&t0.snap));
        drop(t0);
        let mut retired = Retired::default();
        retired.push(live.publish(t1));
        assert_eq!(live.epoch(), 1);
        assert_eq!(retired.collect(), 1, "a worker still holds epoch 0");
        drop(worker_copy);
        assert_eq!(retired.collect(), 0);
        let seen = vec![
            Arc::new(SeenEpoch::default()),
            Arc::new(SeenEpoch::default()),
        ];
        seen[0].set(1);
        assert_eq!(quiescent(&seen), 0);
        seen[1].set(1);
        assert_eq!(quiescent(&seen), 1);
    }
}
