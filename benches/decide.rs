//! Criterion benches of the whole per-packet decision — parse, service
//! lookup, connection/persistence state, DR rewrite — with the real
//! `WorkerState`, on bursts of 32 frames, the way a worker calls it.
//!
//! Cases, each for a non-persistent (`udp :53`, wlc), a persistent
//! (`udp :54`, wlc, 300 s) and a persistent fwmark service (mark rule
//! `udp 80,443 → 1`, wlc, 300 s):
//! * `hot`: one client, every packet the same flow;
//! * `clients_64k` / `clients_1M`: 65,536 / 1,048,576 clients with live
//!   connections (and templates), visited in a pseudo-random order;
//! * `new_conn`: every packet a new client (new connections per second =
//!   the printed element rate). The clock advances 1 ms per burst with UDP
//!   and persistence timeouts of 1 s, and the worker's slow job (a sweep of
//!   256 buckets) runs every 64 bursts, so the tables sit in a steady state.
//!
//! Frames are 60-byte IPv4/UDP (64 on the wire with the FCS). Before each
//! decision the harness writes the frame's destination MAC back and patches
//! the client address and IPv4 checksum in (≈1 ns; see `harness_only`).
#![allow(missing_docs)] // criterion_group! generates an undocumented pub fn

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

#[path = "common/frames.rs"]
mod frames;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use pmdlb::dataplane::decide::{decide_burst_hinted, DecideCtx, ServiceMemo};
use pmdlb::dataplane::rewrite::TxVlan;
use pmdlb::dataplane::verdict::Verdict;
use pmdlb::lb::persist::PersistTable;
use pmdlb::lb::service::ServiceTable;
use pmdlb::lb::snapshot::Snapshot;
use pmdlb::lb::spec::{StateFlags, Timeouts};
use pmdlb::lb::state::{StateConfig, WorkerState};
use pmdlb::wire::ethernet::MacAddr;

use frames::{client, patch, permute, specs, template, BURST, FRAME, KINDS, RX_MAC, TX_MAC};

struct Fixture {
    services: ServiceTable,
    state: WorkerState,
    ctx: DecideCtx,
    /// Kept from burst to burst, as a worker keeps it.
    memo: ServiceMemo,
}

fn fixture(conn_capacity: usize, persist_capacity: usize, short: bool) -> Fixture {
    let (s, r, v) = specs(if short { 1 } else { 300 }, 1);
    let services = ServiceTable::new(&s, &r, &v).expect("services");
    let snap = Arc::new(Snapshot::new(&s));
    let persist = Arc::new(PersistTable::new(persist_capacity, 8, 11));
    let timeouts = Timeouts {
        udp_s: if short { 1 } else { 300 },
        ..Timeouts::default()
    };
    let state = WorkerState::new(
        snap,
        persist,
        StateConfig {
            conn_capacity,
            timeouts,
            flags: StateFlags::default(),
            seed: 0x5eed,
        },
    );
    Fixture {
        services,
        state,
        ctx: DecideCtx {
            rx_mac: MacAddr(RX_MAC),
            tx_mac: MacAddr(TX_MAC),
            tx_vlan: TxVlan::Keep,
            tunnel_mtu: 1500,
        },
        memo: ServiceMemo::default(),
    }
}

/// Runs one burst through the decision; returns forwarded frames.
#[inline(always)]
fn run_burst(fx: &mut Fixture, frames: &mut [[u8; FRAME]]) -> usize {
    let mut refs: [&mut [u8]; BURST] = Default::default();
    for (r, f) in refs.iter_mut().zip(frames.iter_mut()) {
        *r = &mut f[..];
    }
    let mut out = [Verdict::Neighbour; BURST];
    decide_burst_hinted(
        &mut refs,
        0,
        &mut out,
        &fx.ctx,
        &fx.services,
        &mut fx.state,
        &mut fx.memo,
    );
    out.iter()
        .filter(|v| matches!(v, Verdict::Forward { .. }))
        .count()
}

fn established(c: &mut Criterion) {
    let mut g = c.benchmark_group("decide");
    g.throughput(Throughput::Elements(BURST as u64));
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(2));
    g.sample_size(30);

    for &(case, n) in &[
        ("hot", 1u32),
        ("clients_64k", 1 << 16),
        ("clients_1M", 1 << 20),
    ] {
        let cap = (2 * n as usize).max(1024);
        for &(kind, dport) in &KINDS {
            // Built on first use, so a filtered run skips the set-up.
            let mut setup: Option<(Fixture, Vec<[u8; FRAME]>, u16)> = None;
            let mask = n - 1;
            let mut j = 0u32;
            g.bench_function(BenchmarkId::new(case, kind), |b| {
                let (fx, frames, base) = setup.get_or_insert_with(|| {
                    let mut fx = fixture(cap, cap, false);
                    let mut frames = template(dport);
                    let base = u16::from_be_bytes([frames[0][24], frames[0][25]]);
                    // Establish every client first.
                    let mut i = 0u32;
                    while i < n {
                        for f in frames.iter_mut() {
                            patch(f, client(i % n), base);
                            i += 1;
                        }
                        let fwd = run_burst(&mut fx, &mut frames);
                        assert_eq!(fwd, BURST, "{case} {kind}: setup burst not forwarded");
                    }
                    (fx, frames, base)
                });
                let base = *base;
                b.iter(|| {
                    for f in frames.iter_mut() {
                        j = j.wrapping_add(1);
                        patch(f, client(permute(j, mask)), base);
                    }
                    black_box(run_burst(fx, frames))
                })
            });
        }
    }
    g.finish();
}

fn new_conns(c: &mut Criterion) {
    let mut g = c.benchmark_group("decide");
    g.throughput(Throughput::Elements(BURST as u64));
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(2));
    g.sample_size(30);
    for &(kind, dport) in &KINDS {
        // 1 ms per burst, 1 s timeouts: ≈32k live connections and ≈64k
        // live templates in tables of 128k and 256k.
        let mut fx = fixture(1 << 17, 1 << 18, true);
        let mut frames = template(dport);
        let base = u16::from_be_bytes([frames[0][24], frames[0][25]]);
        let mut i = 0u32;
        let mut now = 0u64;
        let mut bursts = 0u64;
        g.bench_function(BenchmarkId::new("new_conn", kind), |b| {
            b.iter(|| {
                for f in frames.iter_mut() {
                    i = i.wrapping_add(1) & 0x0fff_ffff;
                    patch(f, client(i), base);
                }
                now += 1;
                fx.state.set_now(now);
                let fwd = run_burst(&mut fx, &mut frames);
                bursts += 1;
                if bursts % 64 == 0 {
                    fx.state.sweep(256);
                }
                black_box(fwd)
            })
        });
        // The documented full-table fallbacks must stay rare here (they
        // still forward, statelessly): report them, fail if not rare.
        let c = *fx.state.counters();
        eprintln!(
            "new_conn/{kind}: {} created, {} conn-table-full, {} template-full",
            c.conn_created, c.conn_table_full, c.template_full
        );
        assert!(
            (c.conn_table_full + c.template_full) * 10_000 <= c.conn_created.max(1),
            "{kind}: tables overflowed: {c:?}"
        );
    }
    g.finish();
}

/// The harness alone (patching 32 frames), to subtract if wanted.
fn harness_only(c: &mut Criterion) {
    let mut g = c.benchmark_group("decide");
    g.throughput(Throughput::Elements(BURST as u64));
    g.warm_up_time(Duration::from_millis(300));
    g.measurement_time(Duration::from_secs(1));
    let mut frames = template(53);
    let base = u16::from_be_bytes([frames[0][24], frames[0][25]]);
    let mut j = 0u32;
    g.bench_function("harness_only", |b| {
        b.iter(|| {
            for f in frames.iter_mut() {
                j = j.wrapping_add(1);
                patch(f, client(permute(j, 0xffff)), base);
            }
            black_box(&mut frames);
        })
    });
    g.finish();
}

criterion_group!(benches, established, new_conns, harness_only);
criterion_main!(benches);
