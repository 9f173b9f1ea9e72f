//! Criterion bench of what run-time changes cost the data path (issue 10):
//! the per-packet decision on a warm table with the worker's swap check
//! (one epoch load per burst) and no swap, against the same with a swap
//! every N bursts — the worker's `pick_up`: `Live::load`,
//! `WorkerState::switch` to the successor snapshot, its lookup table from
//! then on.
//!
//! The successors are built before timing, as the control plane builds
//! them on its own core: a ring of 8 `Tables`, each `Snapshot::next` of
//! the one before, alternating one server's weight (1 ↔ 2) in every
//! service, so every swap rebuilds each service's state (a new version:
//! the worker resets its scheduler state for it) while every server keeps
//! its identity (connections and templates stay valid). Publishing (an
//! `ArcSwap` store and an epoch store) runs in the timed loop, on the same
//! core: a small overstatement of the worker's share.
//!
//! N = 3000 bursts of 32 is a swap every 10 ms at ~10 Mpps; N = 64 is a
//! harsher case (a swap every ~200 µs at that rate). Services, frames and
//! clients are `benches/decide.rs`'s (udp :53 wlc, udp :54 persistent,
//! fwmark persistent), cases `hot` and `clients_64k`.
#![allow(missing_docs)] // criterion_group! generates an undocumented pub fn

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

#[path = "common/frames.rs"]
mod frames;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use pmdlb::dataplane::decide::{decide_burst, DecideCtx};
use pmdlb::dataplane::rewrite::TxVlan;
use pmdlb::dataplane::verdict::Verdict;
use pmdlb::lb::live::{Live, Tables};
use pmdlb::lb::persist::PersistTable;
use pmdlb::lb::service::ServiceTable;
use pmdlb::lb::snapshot::Snapshot;
use pmdlb::lb::spec::{StateFlags, Timeouts};
use pmdlb::lb::state::{StateConfig, WorkerState};
use pmdlb::wire::ethernet::MacAddr;

use frames::{client, patch, permute, specs, template, BURST, FRAME, KINDS, RX_MAC, TX_MAC};

/// Successor tables built ahead.
const RING: usize = 8;

/// Swap every N bursts (`None`: never).
const SWAPS: [(&str, Option<u64>); 3] = [
    ("no_swap", None),
    ("swap_every_3000", Some(3000)),
    ("swap_every_64", Some(64)),
];

fn tables(snap: Snapshot, w0: u32) -> Arc<Tables> {
    let (s, r, v) = specs(300, w0);
    Arc::new(Tables {
        services: ServiceTable::new(&s, &r, &v).expect("services"),
        snap: Arc::new(snap),
        timeouts: Timeouts::default(),
        flags: StateFlags::default(),
    })
}

/// The worker's side: what `dataplane::worker` holds and does per burst.
struct Worker {
    live: Arc<Live>,
    tables: Arc<Tables>,
    state: WorkerState,
    ctx: DecideCtx,
}

/// The control plane's side: the successors, published every `every`.
struct Control {
    ring: Vec<Arc<Tables>>,
    next: usize,
    every: Option<u64>,
    bursts: u64,
    swaps: u64,
}

fn setup(cap: usize, every: Option<u64>) -> (Worker, Control) {
    let (s, _, _) = specs(300, 1);
    let first = tables(Snapshot::new(&s), 1);
    let mut ring = Vec::with_capacity(RING);
    let mut prev = Arc::clone(&first.snap);
    for i in 0..RING {
        let w0 = if i % 2 == 0 { 2 } else { 1 };
        let (snap, _) = prev.next(&specs(300, w0).0, 0).expect("successor");
        let t = tables(snap, w0);
        prev = Arc::clone(&t.snap);
        ring.push(t);
    }
    let persist = Arc::new(PersistTable::new(cap, 8, 11));
    let state = WorkerState::new(
        Arc::clone(&first.snap),
        persist,
        StateConfig {
            conn_capacity: cap,
            timeouts: Timeouts::default(),
            flags: StateFlags::default(),
            seed: 0x5eed,
        },
    );
    let worker = Worker {
        live: Arc::new(Live::new(Arc::clone(&first))),
        tables: first,
        state,
        ctx: DecideCtx {
            rx_mac: MacAddr(RX_MAC),
            tx_mac: MacAddr(TX_MAC),
            tx_vlan: TxVlan::Keep,
            tunnel_mtu: 1500,
        },
    };
    let control = Control {
        ring,
        next: 0,
        every,
        bursts: 0,
        swaps: 0,
    };
    (worker, control)
}

impl Control {
    #[inline(always)]
    fn tick(&mut self, live: &Live) {
        self.bursts += 1;
        if let Some(n) = self.every {
            if self.bursts % n == 0 {
                let t = Arc::clone(&self.ring[self.next]);
                self.next = (self.next + 1) % RING;
                // The ring keeps the old tables: nothing is freed here.
                drop(live.publish(t));
                self.swaps += 1;
            }
        }
    }
}

impl Worker {
    /// `dataplane::worker::Worker::pick_up`.
    #[cold]
    #[inline(never)]
    fn pick_up(&mut self) {
        let t = self.live.load();
        drop(self.state.switch(Arc::clone(&t.snap)));
        if t.timeouts != self.tables.timeouts {
            self.state.set_timeouts(t.timeouts);
        }
        self.tables = t;
    }

    /// One burst as the worker runs it: the swap check, then the decision.
    #[inline(always)]
    fn burst(&mut self, frames: &mut [[u8; FRAME]]) -> usize {
        if self.live.epoch() != self.tables.epoch() {
            self.pick_up();
        }
        let mut refs: [&mut [u8]; BURST] = Default::default();
        for (r, f) in refs.iter_mut().zip(frames.iter_mut()) {
            *r = &mut f[..];
        }
        let mut out = [Verdict::Neighbour; BURST];
        decide_burst(
            &mut refs,
            &mut out,
            &self.ctx,
            &self.tables.services,
            &mut self.state,
        );
        out.iter()
            .filter(|v| matches!(v, Verdict::Forward { .. }))
            .count()
    }
}

fn swaps(c: &mut Criterion) {
    let mut g = c.benchmark_group("swap");
    g.throughput(Throughput::Elements(BURST as u64));
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(2));
    g.sample_size(30);
    for &(case, n) in &[("hot", 1u32), ("clients_64k", 1 << 16)] {
        let cap = (2 * n as usize).max(1024);
        for &(kind, dport) in &KINDS {
            for &(variant, every) in &SWAPS {
                let mut fixture: Option<(Worker, Control, Vec<[u8; FRAME]>, u16)> = None;
                let mask = n - 1;
                let mut j = 0u32;
                let id = BenchmarkId::new(format!("{case}/{kind}"), variant);
                g.bench_function(id, |b| {
                    let (w, ctl, frames, base) = fixture.get_or_insert_with(|| {
                        let (mut w, ctl) = setup(cap, every);
                        let mut frames = template(dport);
                        let base = u16::from_be_bytes([frames[0][24], frames[0][25]]);
                        let mut i = 0u32;
                        while i < n {
                            for f in frames.iter_mut() {
                                patch(f, client(i % n), base);
                                i += 1;
                            }
                            let fwd = w.burst(&mut frames);
                            assert_eq!(fwd, BURST, "{case} {kind}: setup burst not forwarded");
                        }
                        (w, ctl, frames, base)
                    });
                    let base = *base;
                    b.iter(|| {
                        for f in frames.iter_mut() {
                            j = j.wrapping_add(1);
                            patch(f, client(permute(j, mask)), base);
                        }
                        ctl.tick(&w.live);
                        black_box(w.burst(frames))
                    })
                });
                if let Some((w, ctl, frames, base)) = &mut fixture {
                    // Every packet still forwarded after the swaps.
                    for f in frames.iter_mut() {
                        j = j.wrapping_add(1);
                        patch(f, client(permute(j, mask)), *base);
                    }
                    assert_eq!(w.burst(frames), BURST, "{case} {kind} {variant}");
                    eprintln!(
                        "swap/{case}/{kind}/{variant}: {} swaps in {} bursts",
                        ctl.swaps, ctl.bursts
                    );
                }
            }
        }
    }
    g.finish();
}

criterion_group!(benches, swaps);
criterion_main!(benches);
