//! Criterion benches of the service lookup (IPVS order: mark rules, exact
//! `(proto, VIP, port)`, port-0) with 10 and 10,000 services: an exact
//! service hit, a port-0 fallback, a fwmark hit through a mark rule, a
//! miss on a VIP, and the mark rules alone.
#![allow(missing_docs)] // criterion_group! generates an undocumented pub fn

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use pmdlb::lb::service::ServiceTable;
use pmdlb::lb::spec::{
    MarkRuleSpec, PortRange, SchedFlags, SchedulerKind, ServiceAddr, ServiceSpec,
};
use pmdlb::lb::types::{Addr, Family};

fn vip(i: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i))
}

/// `n` services: a third TCP exact ports on distinct VIPs, a third UDP
/// port-0 services, a third fwmark services with one mark rule each
/// (`tcp VIP 80,443 → mark`), plus /24 mark rules that match nothing looked
/// up here (a second prefix length to probe).
fn table(n: u32) -> ServiceTable {
    let mut services = Vec::new();
    let mut rules = Vec::new();
    for i in 0..n {
        let addr = match i % 3 {
            0 => ServiceAddr::Addr {
                proto: 6,
                vip: vip(i),
                port: 8080,
            },
            1 => ServiceAddr::Addr {
                proto: 17,
                vip: vip(i),
                port: 0,
            },
            _ => {
                rules.push(MarkRuleSpec {
                    dst: vip(i),
                    prefix_len: 32,
                    proto: Some(6),
                    ports: vec![PortRange { lo: 80, hi: 80 }, PortRange { lo: 443, hi: 443 }],
                    mark: i,
                });
                ServiceAddr::Fwmark(i)
            }
        };
        services.push(ServiceSpec {
            ops: false,
            addr,
            scheduler: SchedulerKind::Rr,
            sched_flags: SchedFlags::default(),
            persistence: None,
            servers: vec![],
        });
    }
    for j in 0..4u32 {
        rules.push(MarkRuleSpec {
            dst: IpAddr::V4(Ipv4Addr::from(0xc0a8_0000 + (j << 8))),
            prefix_len: 24,
            proto: None,
            ports: vec![PortRange { lo: 1000, hi: 2000 }],
            mark: 1_000_000 + j,
        });
    }
    ServiceTable::new(&services, &rules, &[]).expect("services")
}

fn a(i: u32) -> Addr {
    Addr::v4((0x0a00_0000 + i).to_be_bytes())
}

fn services(c: &mut Criterion) {
    let mut g = c.benchmark_group("services");
    g.throughput(Throughput::Elements(1));
    g.warm_up_time(Duration::from_millis(300));
    g.measurement_time(Duration::from_secs(1));
    for n in [10u32, 10_000] {
        let t = table(n);
        // walk the services of one kind in a stride so lookups are not
        // always the same cache lines
        let pick = |k: &mut u32, kind: u32| {
            *k = k.wrapping_add(7919);
            let i = (*k % (n / 3)) * 3 + kind;
            a(i)
        };
        let mut k = 0u32;
        g.bench_function(BenchmarkId::new("exact", n), |b| {
            b.iter(|| t.lookup(Family::V4, 6, &pick(&mut k, 0), black_box(8080)))
        });
        g.bench_function(BenchmarkId::new("port0", n), |b| {
            b.iter(|| t.lookup(Family::V4, 17, &pick(&mut k, 1), black_box(53)))
        });
        g.bench_function(BenchmarkId::new("fwmark", n), |b| {
            b.iter(|| t.lookup(Family::V4, 6, &pick(&mut k, 2), black_box(443)))
        });
        g.bench_function(BenchmarkId::new("miss", n), |b| {
            b.iter(|| t.lookup(Family::V4, 6, &pick(&mut k, 0), black_box(9)))
        });
        g.bench_function(BenchmarkId::new("mark_only", n), |b| {
            b.iter(|| t.mark(Family::V4, 6, &pick(&mut k, 2), black_box(80)))
        });
    }
    g.finish();
}

criterion_group!(benches, services);
criterion_main!(benches);
