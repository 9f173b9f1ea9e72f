//! Criterion benches of the state tables: connection-table and
//! persistence-table lookup, insert and expiry at 64k and 1M entries,
//! single-threaded and with a second thread contending on the persistence
//! table, plus the whole `FlowState::assign` for a hot and a new client.
#![allow(missing_docs)] // criterion_group! generates an undocumented pub fn

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use pmdlb::lb::conn::{ConnEntry, ConnState, ConnTable};
use pmdlb::lb::flow::FlowState;
use pmdlb::lb::persist::{PersistTable, TemplateKey};
use pmdlb::lb::snapshot::Snapshot;
use pmdlb::lb::spec::{
    Persistence, RealServerSpec, SchedFlags, SchedulerKind, ServiceAddr, ServiceSpec, StateFlags,
    Timeouts,
};
use pmdlb::lb::state::{StateConfig, WorkerState};
use pmdlb::lb::types::{Addr, Family, FlowKey, RsId, ServiceId, TcpFlags};
use pmdlb::wire::ethernet::MacAddr;

const SIZES: [usize; 2] = [1 << 16, 1 << 20];

fn key(i: u32) -> FlowKey {
    FlowKey::new(
        Family::V4,
        17,
        Addr::v4((0x0a00_0000 | (i >> 4)).to_be_bytes()),
        1024 + (i & 15) as u16,
        Addr::v4([192, 0, 2, 1]),
        80,
    )
}

fn tkey(i: u32) -> TemplateKey {
    TemplateKey::new(ServiceId(0), Addr::v4((0x0a00_0000 | i).to_be_bytes()), 32)
}

fn entry(k: FlowKey, expires: u64) -> ConnEntry {
    ConnEntry {
        key: k,
        state: ConnState::Udp,
        flags: 0,
        svc: ServiceId(0),
        rs: RsId(0),
        tpl_slot: 0,
        expires,
    }
}

/// A table of capacity 2n holding n entries (load 1/2).
fn filled_conns(n: usize, expires: u64) -> ConnTable {
    let mut t = ConnTable::new(2 * n, 7);
    for i in 0..n as u32 {
        let h = t.hash(&key(i));
        let r = t.reserve(h, 0, |_| {}).expect("capacity");
        t.insert(r, entry(key(i), expires));
    }
    t
}

/// A cheap xorshift to pick keys in an order the prefetcher cannot guess.
fn next(x: &mut u32) -> u32 {
    *x ^= *x << 13;
    *x ^= *x >> 17;
    *x ^= *x << 5;
    *x
}

fn conn(c: &mut Criterion) {
    let mut g = c.benchmark_group("conn");
    for &n in &SIZES {
        let mut t = filled_conns(n, u64::MAX);
        let mut x = 1u32;
        g.bench_function(BenchmarkId::new("lookup_hit", n), |b| {
            b.iter(|| {
                let k = key(next(&mut x) % n as u32);
                black_box(t.find(&k, t.hash(&k)))
            })
        });
        g.bench_function(BenchmarkId::new("lookup_miss", n), |b| {
            b.iter(|| {
                let k = key(n as u32 + next(&mut x) % n as u32);
                black_box(t.find(&k, t.hash(&k)))
            })
        });
        let mut i = n as u32;
        g.bench_function(BenchmarkId::new("insert_remove", n), |b| {
            b.iter(|| {
                i = i.wrapping_add(1) | n as u32;
                let k = key(i);
                let h = t.hash(&k);
                let r = t.reserve(h, 0, |_| {}).expect("half full");
                let idx = t.insert(r, entry(k, 5));
                t.remove(black_box(idx));
            })
        });
        // expiry: time full sweeps of a table whose entries all expired,
        // per entry
        g.bench_function(BenchmarkId::new("expire_per_entry", n), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut done = 0u64;
                while done < iters {
                    let mut t = filled_conns(n, 1);
                    let start = Instant::now();
                    let mut gone = 0u64;
                    t.sweep(usize::MAX, |_| {}, |e| e.expires <= 1, |_| gone += 1);
                    total += start.elapsed();
                    done += gone.max(1);
                }
                total.mul_f64(iters as f64 / done as f64)
            })
        });
    }
    g.finish();
}

fn filled_persist(n: usize) -> PersistTable {
    let t = PersistTable::new(n, 8, 3);
    for i in 0..n as u32 {
        t.insert(&tkey(i), RsId(i % 7), 0, 1 << 40, false).ok(); // Full is the counted fallback; not expected at load 1/2
    }
    t
}

fn persist(c: &mut Criterion) {
    let mut g = c.benchmark_group("persist");
    for &n in &SIZES {
        let t = Arc::new(filled_persist(n));
        let mut x = 1u32;
        g.bench_function(BenchmarkId::new("get_hit", n), |b| {
            b.iter(|| black_box(t.get(&tkey(next(&mut x) % n as u32), 0)))
        });
        g.bench_function(BenchmarkId::new("acquire_release", n), |b| {
            b.iter(|| {
                if let Some(h) = t.acquire(&tkey(next(&mut x) % n as u32), 0, |_| true) {
                    t.release(h.slot, 0, 1 << 40);
                }
            })
        });
        // insert a new template and free it again (create + expire cycle)
        let mut i = n as u32;
        g.bench_function(BenchmarkId::new("insert_expire", n), |b| {
            b.iter(|| {
                i = i.wrapping_add(1) | (1 << 30);
                // a full window (rare at load 1/2) is the counted fallback
                if let Ok(h) = t.insert(&tkey(i), RsId(1), 0, 1, true) {
                    t.release(h.slot, 0, 0);
                    black_box(t.acquire(&tkey(i), 10, |_| true));
                }
            })
        });
        // a second thread hammers the same keys (acquire/release and
        // create/expire) while this one measures
        let stop = Arc::new(AtomicBool::new(false));
        let bg = {
            let t = Arc::clone(&t);
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut y = 7u32;
                let mut j = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    if let Some(h) = t.acquire(&tkey(next(&mut y) % n as u32), 0, |_| true) {
                        t.release(h.slot, 0, 1 << 40);
                    }
                    j = j.wrapping_add(1) | (1 << 29);
                    if let Ok(h) = t.insert(&tkey(j), RsId(2), 0, 1, true) {
                        t.release(h.slot, 0, 0);
                    }
                }
            })
        };
        g.bench_function(BenchmarkId::new("contended_get_hit", n), |b| {
            b.iter(|| black_box(t.get(&tkey(next(&mut x) % n as u32), 0)))
        });
        g.bench_function(BenchmarkId::new("contended_acquire_release", n), |b| {
            b.iter(|| {
                if let Some(h) = t.acquire(&tkey(next(&mut x) % n as u32), 0, |_| true) {
                    t.release(h.slot, 0, 1 << 40);
                }
            })
        });
        stop.store(true, Ordering::Relaxed);
        bg.join().unwrap();
    }
    g.finish();
}

fn worker(c: &mut Criterion) {
    let spec = |p: Option<Persistence>| ServiceSpec {
        ops: false,
        addr: ServiceAddr::Fwmark(1),
        scheduler: SchedulerKind::Wlc,
        sched_flags: SchedFlags::default(),
        persistence: p,
        servers: (0..8)
            .map(|i| RealServerSpec {
                addr: format!("10.9.0.{}", i + 1).parse().unwrap(),
                weight: 1 + i,
                u_threshold: 0,
                l_threshold: 0,
                mac: Some(MacAddr([2, 0, 0, 0, 0, i as u8])),
                forward: Default::default(),
                via: None,
            })
            .collect(),
    };
    let snap = Arc::new(Snapshot::new(&[
        spec(None),
        spec(Some(Persistence {
            timeout_s: 300,
            prefix_len: 32,
        })),
    ]));
    let n = 1usize << 20;
    let pt = Arc::new(PersistTable::new(n, 8, 1));
    let mut w = WorkerState::new(
        Arc::clone(&snap),
        Arc::clone(&pt),
        StateConfig {
            conn_capacity: 2 * n,
            timeouts: Timeouts::default(),
            flags: StateFlags::default(),
            seed: 5,
        },
    );
    for i in 0..n as u32 {
        w.assign(ServiceId(0), &key(i), None).unwrap();
    }
    let mut g = c.benchmark_group("assign");
    let mut x = 1u32;
    g.bench_function("existing_conn_random_of_1M", |b| {
        b.iter(|| black_box(w.assign(ServiceId(0), &key(next(&mut x) % n as u32), None)))
    });
    let hot = key(12345);
    g.bench_function("hot_client", |b| {
        b.iter(|| black_box(w.assign(ServiceId(0), black_box(&hot), None)))
    });
    let syn = Some(TcpFlags(TcpFlags::SYN));
    let mut now = 0u64;
    let mut i = 0u32;
    for (name, svc) in [("new_conn_wlc", 0u32), ("new_conn_persistent", 1)] {
        g.bench_function(name, |b| {
            b.iter(|| {
                i = i.wrapping_add(1);
                let k = key(i);
                let k = FlowKey::new(k.family(), 6, k.client(), k.cport(), k.vip(), 443);
                if i % 4096 == 0 {
                    // let old flows expire so the table reaches a steady state
                    now += 61_000;
                    w.set_now(now);
                }
                black_box(w.assign(ServiceId(svc), &k, syn)).ok();
                if i % 16 == 0 {
                    w.sweep(8);
                }
            })
        });
    }
    g.finish();
}

criterion_group!(benches, conn, persist, worker);
criterion_main!(benches);
