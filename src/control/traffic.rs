//! The control plane's book of per-service and per-real-server traffic:
//! it sums what every worker publishes (`dataplane::traffic`), keeps an
//! IPVS-style rate [`Estimator`] for every server, every service and the
//! director as a whole, and prints the tables `ipvsadm -Ln --stats` and
//! `ipvsadm -Ln --rate` print, in their column formats.
#![forbid(unsafe_code)]

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Instant;

use crate::control::config::values::format_sockaddr;
use crate::control::estimator::{Estimator, Rates, Totals, SAMPLE_INTERVAL};
use crate::control::summary::service_name;
use crate::dataplane::traffic::{PublishedTraffic, RsTraffic};
use crate::lb::realserver::{RealServer, ServiceState, Snapshot};
use crate::lb::spec::ServiceAddr;

fn totals(t: &RsTraffic) -> Totals {
    Totals {
        conns: t.conns,
        in_pkts: t.in_pkts,
        in_bytes: t.in_bytes,
        ..Totals::default()
    }
}

/// Sums and rate estimators of the director's traffic.
#[derive(Debug)]
pub struct TrafficBook {
    workers: Vec<Arc<PublishedTraffic>>,
    /// `(first, count)` real-server range of each service.
    ranges: Vec<(usize, usize)>,
    per_rs: Vec<RsTraffic>,
    rs_est: Vec<Estimator>,
    svc_est: Vec<Estimator>,
    total_est: Estimator,
    next_sample: Instant,
}

impl TrafficBook {
    /// A book over the servers of `snap`, read from the workers' blocks.
    pub fn new(snap: &Snapshot, workers: Vec<Arc<PublishedTraffic>>, now: Instant) -> Self {
        let ranges = snap
            .services()
            .iter()
            .map(|s| (s.first as usize, s.count as usize))
            .collect::<Vec<_>>();
        let n = snap.servers().len();
        TrafficBook {
            workers,
            svc_est: vec![Estimator::default(); ranges.len()],
            ranges,
            per_rs: vec![RsTraffic::default(); n],
            rs_est: vec![Estimator::default(); n],
            total_est: Estimator::default(),
            next_sample: now + SAMPLE_INTERVAL,
        }
    }

    /// Re-reads the workers' published counters.
    pub fn refresh(&mut self) {
        self.per_rs.fill(RsTraffic::default());
        for w in &self.workers {
            w.add_into(&mut self.per_rs);
        }
    }

    /// Call from the control loop: every 2 s, refreshes the sums and feeds
    /// one sample to every estimator. A late loop samples once and
    /// resynchronises (no burst of catch-up samples).
    pub fn tick(&mut self, now: Instant) {
        if now < self.next_sample {
            return;
        }
        self.next_sample += SAMPLE_INTERVAL;
        if self.next_sample <= now {
            self.next_sample = now + SAMPLE_INTERVAL;
        }
        self.refresh();
        for (e, t) in self.rs_est.iter_mut().zip(&self.per_rs) {
            e.sample(totals(t));
        }
        for i in 0..self.ranges.len() {
            let t = self.service(i);
            self.svc_est[i].sample(t);
        }
        let t = self.total();
        self.total_est.sample(t);
    }

    /// Counters of real server `rs` (an index into the snapshot's servers).
    pub fn server(&self, rs: usize) -> Totals {
        self.per_rs.get(rs).map(totals).unwrap_or_default()
    }

    /// Counters of service `svc` (an index into the snapshot's services):
    /// the sum of its servers.
    pub fn service(&self, svc: usize) -> Totals {
        let mut t = RsTraffic::default();
        if let Some(&(first, count)) = self.ranges.get(svc) {
            for r in self.per_rs.iter().skip(first).take(count) {
                t.add(r);
            }
        }
        totals(&t)
    }

    /// Counters of the whole director.
    pub fn total(&self) -> Totals {
        let mut t = RsTraffic::default();
        for r in &self.per_rs {
            t.add(r);
        }
        totals(&t)
    }

    /// Estimated rates of real server `rs`.
    pub fn server_rates(&self, rs: usize) -> Rates {
        self.rs_est
            .get(rs)
            .map(Estimator::rates)
            .unwrap_or_default()
    }

    /// Estimated rates of service `svc`.
    pub fn service_rates(&self, svc: usize) -> Rates {
        self.svc_est
            .get(svc)
            .map(Estimator::rates)
            .unwrap_or_default()
    }

    /// Estimated rates of the whole director.
    pub fn total_rates(&self) -> Rates {
        self.total_est.rates()
    }
}

/// A counter as ipvsadm prints it (`print_largenum`): 9 columns, values
/// from 10^8 on abbreviated with K, M, G or T unless `exact`.
pub fn largenum(v: u64, exact: bool) -> String {
    if exact {
        let s = v.to_string();
        let w = if s.len() <= 8 { 9 } else { s.len() + 1 };
        return format!("{s:>w$}");
    }
    match v {
        0..=99_999_999 => format!("{v:>9}"),
        100_000_000..=999_999_999 => format!("{:>8}K", v / 1_000),
        1_000_000_000..=99_999_999_999 => format!("{:>8}M", v / 1_000_000),
        100_000_000_000..=99_999_999_999_999 => format!("{:>8}G", v / 1_000_000_000),
        _ => format!("{:>8}T", v / 1_000_000_000_000),
    }
}

/// ipvsadm's service column: `TCP  10.0.0.1:80` cut to 33 characters
/// (IPv4 only, as ipvsadm), padded to 33.
fn service_column(addr: &ServiceAddr) -> String {
    let mut s = service_name(addr);
    if !matches!(addr, ServiceAddr::Addr { vip, .. } if vip.is_ipv6()) {
        s.truncate(33);
    }
    format!("{s:<33}")
}

/// ipvsadm's server column: `  -> 10.0.1.1:80`, the address cut to 28
/// characters (IPv4), padded to 28. DR servers listen on the service's
/// port (0 for fwmark and port-0 services).
fn server_column(svc: &ServiceState, rs: &RealServer) -> String {
    let port = match svc.addr {
        ServiceAddr::Addr { port, .. } => port,
        ServiceAddr::Fwmark(_) => 0,
    };
    let mut s = format_sockaddr(&rs.addr, port);
    if rs.addr.is_ipv4() {
        s.truncate(28);
    }
    format!("  -> {s:<28}")
}

/// The `ipvsadm -Ln --stats` table.
pub fn stats_table(book: &TrafficBook, snap: &Snapshot, exact: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<33} {:>8} {:>8} {:>8} {:>8} {:>8}\n  -> RemoteAddress:Port",
        "Prot LocalAddress:Port", "Conns", "InPkts", "OutPkts", "InBytes", "OutBytes"
    );
    let row = |out: &mut String, head: String, t: Totals| {
        out.push_str(&head);
        for v in [t.conns, t.in_pkts, t.out_pkts, t.in_bytes, t.out_bytes] {
            out.push_str(&largenum(v, exact));
        }
        out.push('\n');
    };
    for (i, svc) in snap.services().iter().enumerate() {
        row(&mut out, service_column(&svc.addr), book.service(i));
        for (k, rs) in snap.servers_of(svc).iter().enumerate() {
            let id = svc.first as usize + k;
            row(&mut out, server_column(svc, rs), book.server(id));
        }
    }
    out
}

/// The `ipvsadm -Ln --rate` table.
pub fn rate_table(book: &TrafficBook, snap: &Snapshot) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<33} {:>8} {:>8} {:>8} {:>8} {:>8}\n  -> RemoteAddress:Port",
        "Prot LocalAddress:Port", "CPS", "InPPS", "OutPPS", "InBPS", "OutBPS"
    );
    for (i, svc) in snap.services().iter().enumerate() {
        let r = book.service_rates(i);
        out.push_str(&service_column(&svc.addr));
        for v in [r.cps, r.in_pps, r.out_pps, r.in_bps, r.out_bps] {
            out.push_str(&largenum(v, false));
        }
        out.push('\n');
        for (k, rs) in snap.servers_of(svc).iter().enumerate() {
            let r = book.server_rates(svc.first as usize + k);
            // As ipvsadm: a server's cps and pps raw, its bps abbreviated.
            let _ = writeln!(
                out,
                "{} {:>8} {:>8} {:>8}{}{}",
                server_column(svc, rs),
                r.cps,
                r.in_pps,
                r.out_pps,
                largenum(r.in_bps, false),
                largenum(r.out_bps, false)
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::traffic::TrafficCounters;
    use crate::lb::spec::{RealServerSpec, SchedFlags, SchedulerKind, ServiceSpec};
    use crate::lb::types::RsId;

    #[test]
    fn largenum_as_ipvsadm() {
        assert_eq!(largenum(0, false), "        0");
        assert_eq!(largenum(99_999_999, false), " 99999999");
        assert_eq!(largenum(123_456_789, false), "  123456K");
        assert_eq!(largenum(12_345_678_901, false), "   12345M");
        assert_eq!(largenum(123_456_789_012, false), "     123G");
        assert_eq!(largenum(123_456_789_012_345, false), "     123T");
        assert_eq!(largenum(123_456_789, true), " 123456789");
        assert_eq!(largenum(7, true), "        7");
    }

    fn specs() -> Vec<ServiceSpec> {
        let rs = |a: &str| RealServerSpec {
            addr: a.parse().unwrap(),
            weight: 1,
            u_threshold: 0,
            l_threshold: 0,
            mac: Some(crate::wire::ethernet::MacAddr([2, 0, 0, 0, 0, 1])),
            forward: Default::default(),
            via: None,
        };
        vec![
            ServiceSpec {
                ops: false,
                addr: ServiceAddr::Addr {
                    proto: 6,
                    vip: "10.0.0.1".parse().unwrap(),
                    port: 80,
                },
                scheduler: SchedulerKind::Rr,
                sched_flags: SchedFlags::default(),
                persistence: None,
                servers: vec![rs("10.0.1.1"), rs("10.0.1.2")],
            },
            ServiceSpec {
                ops: false,
                addr: ServiceAddr::Fwmark(1),
                scheduler: SchedulerKind::Rr,
                sched_flags: SchedFlags::default(),
                persistence: None,
                servers: vec![rs("10.0.1.1")],
            },
        ]
    }

    // Expected lines were printed with C printf formats (Python's `%`)
    // from ipvsadm's format strings.
    #[test]
    fn tables_sum_servers_into_services() {
        let snap = Snapshot::new(&specs());
        let p = Arc::new(PublishedTraffic::new(3));
        let mut t = TrafficCounters::new(3);
        for _ in 0..3 {
            t.forwarded(RsId(0), 100);
        }
        t.forwarded(RsId(1), 50);
        p.publish(&t, &[2, 1, 0]);
        let start = Instant::now();
        let mut book = TrafficBook::new(&snap, vec![p], start);
        book.tick(start + SAMPLE_INTERVAL);
        let table = stats_table(&book, &snap, false);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(
            lines[0],
            "Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes"
        );
        assert_eq!(lines[1], "  -> RemoteAddress:Port");
        assert_eq!(
            lines[2],
            "TCP  10.0.0.1:80                         3        4        0      350        0"
        );
        assert_eq!(
            lines[3],
            "  -> 10.0.1.1:80                         2        3        0      300        0"
        );
        assert_eq!(
            lines[5],
            "FWM  1                                   0        0        0        0        0"
        );
        assert_eq!(
            lines[6].trim_end(),
            "  -> 10.0.1.1:0                          0        0        0        0        0"
        );
        // One sample of 4 packets and 350 bytes in 2 s: a quarter of 2 pps
        // is 0.5, which rounds down; a quarter of 175 B/s, 43.75, to 44.
        let rates = rate_table(&book, &snap);
        let svc = rates.lines().nth(2).unwrap();
        assert_eq!(
            svc,
            "TCP  10.0.0.1:80                         0        0        0       44        0"
        );
    }
}
