//! The control plane's book of per-service and per-real-server traffic:
//! it sums what every worker publishes (`dataplane::traffic`), keeps an
//! IPVS-style rate [`Estimator`] for every server, every service and the
//! director as a whole, and prints the tables `ipvsadm -Ln --stats` and
//! `ipvsadm -Ln --rate` print, in their column formats.
#![forbid(unsafe_code)]

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Instant;

use crate::control::admin::format::largenum;
use crate::control::config::values::format_sockaddr;
use crate::control::estimator::{Estimator, Rates, Totals, SAMPLE_INTERVAL};
use crate::control::summary::service_name;
use crate::dataplane::traffic::{PublishedTraffic, RsTraffic};
use crate::lb::realserver::{RealServer, ServiceState};
use crate::lb::snapshot::Snapshot;
use crate::lb::spec::ServiceAddr;
use crate::lb::types::{RsId, ServiceId};

fn totals(t: &RsTraffic) -> Totals {
    Totals {
        conns: t.conns,
        in_pkts: t.in_pkts,
        in_bytes: t.in_bytes,
        ..Totals::default()
    }
}

/// Sums and rate estimators of the director's traffic, by slot (see
/// `lb::snapshot`): the workers' counters of a slot only grow, so a slot
/// that gets a new server (or is zeroed with `-Z`) keeps a baseline that
/// is subtracted from what the workers publish, and its estimator starts
/// over.
#[derive(Debug)]
pub struct TrafficBook {
    workers: Vec<Arc<PublishedTraffic>>,
    /// Raw sums over the workers, by server slot.
    raw: Vec<RsTraffic>,
    /// Per server slot: its owner, baseline and estimator.
    rs: Vec<(Option<RsId>, RsTraffic, Estimator)>,
    /// Per service slot: its owner, baseline, estimator, and its servers'
    /// slots in the current snapshot.
    svc: Vec<(Option<ServiceId>, Totals, Estimator, Vec<usize>)>,
    rs_mask: usize,
    svc_mask: usize,
    total_base: RsTraffic,
    total_est: Estimator,
    next_sample: Instant,
}

fn minus(a: &RsTraffic, b: &RsTraffic) -> RsTraffic {
    RsTraffic {
        conns: a.conns.saturating_sub(b.conns),
        in_pkts: a.in_pkts.saturating_sub(b.in_pkts),
        in_bytes: a.in_bytes.saturating_sub(b.in_bytes),
    }
}

impl TrafficBook {
    /// A book over the servers of `snap`, read from the workers' blocks.
    pub fn new(snap: &Snapshot, workers: Vec<Arc<PublishedTraffic>>, now: Instant) -> Self {
        let cap = snap.capacity();
        let mut b = TrafficBook {
            workers,
            raw: vec![RsTraffic::default(); cap.servers as usize],
            rs: vec![(None, RsTraffic::default(), Estimator::default()); cap.servers as usize],
            svc: vec![
                (None, Totals::default(), Estimator::default(), Vec::new());
                cap.services as usize
            ],
            rs_mask: cap.servers as usize - 1,
            svc_mask: cap.services as usize - 1,
            total_base: RsTraffic::default(),
            total_est: Estimator::default(),
            next_sample: now + SAMPLE_INTERVAL,
        };
        b.sync(snap);
        // What the workers counted before the book existed counts.
        for e in &mut b.rs {
            e.1 = RsTraffic::default();
        }
        for e in &mut b.svc {
            e.1 = Totals::default();
        }
        b
    }

    /// Follow a new snapshot: slots with a new owner start from zero.
    pub fn sync(&mut self, snap: &Snapshot) {
        self.refresh();
        let mut owned = vec![false; self.rs.len()];
        for r in snap.servers() {
            let slot = snap.server_slot(r.id);
            owned[slot] = true;
            let e = &mut self.rs[slot];
            if e.0 != Some(r.id) {
                *e = (Some(r.id), self.raw[slot], Estimator::default());
            }
        }
        for (slot, e) in self.rs.iter_mut().enumerate() {
            if !owned[slot] {
                e.0 = None;
            }
        }
        for e in &mut self.svc {
            e.3.clear();
        }
        let mut live = vec![false; self.svc.len()];
        for st in snap.services() {
            let slot = snap.service_slot(st.id);
            live[slot] = true;
            let servers: Vec<usize> = st.servers.iter().map(|r| snap.server_slot(r.id)).collect();
            let fresh = self.svc[slot].0 != Some(st.id);
            self.svc[slot].3 = servers;
            if fresh {
                self.svc[slot].0 = Some(st.id);
                self.svc[slot].2 = Estimator::default();
                self.svc[slot].1 = Totals::default();
                let t = self.service_raw(slot);
                self.svc[slot].1 = t;
            }
        }
        for (slot, e) in self.svc.iter_mut().enumerate() {
            if !live[slot] {
                e.0 = None;
            }
        }
    }

    /// `ipvsadm -Z`: the counters of these servers and services, or with
    /// both empty of everything, start from zero (rates too).
    pub fn zero(&mut self, servers: &[RsId], services: &[ServiceId]) {
        self.refresh();
        let all = servers.is_empty() && services.is_empty();
        for (slot, e) in self.rs.iter_mut().enumerate() {
            if e.0.is_some_and(|id| all || servers.contains(&id)) {
                e.1 = self.raw[slot];
                e.2 = Estimator::default();
            }
        }
        for slot in 0..self.svc.len() {
            if self.svc[slot]
                .0
                .is_some_and(|id| all || services.contains(&id))
            {
                self.svc[slot].1 = Totals::default();
                let t = self.service_raw(slot);
                self.svc[slot].1 = t;
                self.svc[slot].2 = Estimator::default();
            }
        }
        if all {
            self.total_base = self.raw.iter().fold(RsTraffic::default(), |mut a, r| {
                a.add(r);
                a
            });
            self.total_est = Estimator::default();
        }
    }

    /// Re-reads the workers' published counters.
    pub fn refresh(&mut self) {
        self.raw.fill(RsTraffic::default());
        for w in &self.workers {
            w.add_into(&mut self.raw);
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
        for slot in 0..self.rs.len() {
            if self.rs[slot].0.is_some() {
                let t = totals(&minus(&self.raw[slot], &self.rs[slot].1));
                self.rs[slot].2.sample(t);
            }
        }
        for slot in 0..self.svc.len() {
            if self.svc[slot].0.is_some() {
                let t = self.service_raw(slot);
                self.svc[slot].2.sample(t);
            }
        }
        let t = self.total();
        self.total_est.sample(t);
    }

    /// The sum of a service slot's servers' counters since each server's
    /// baseline, minus the service's own baseline.
    fn service_raw(&self, slot: usize) -> Totals {
        let mut t = RsTraffic::default();
        for &r in &self.svc[slot].3 {
            t.add(&minus(&self.raw[r], &self.rs[r].1));
        }
        let t = totals(&t);
        let b = self.svc[slot].1;
        Totals {
            conns: t.conns.saturating_sub(b.conns),
            in_pkts: t.in_pkts.saturating_sub(b.in_pkts),
            in_bytes: t.in_bytes.saturating_sub(b.in_bytes),
            ..Totals::default()
        }
    }

    /// Counters of real server `rs`.
    pub fn server(&self, rs: RsId) -> Totals {
        let slot = rs.0 as usize & self.rs_mask;
        match &self.rs[slot] {
            (Some(id), base, _) if *id == rs => totals(&minus(&self.raw[slot], base)),
            _ => Totals::default(),
        }
    }

    /// Counters of service `svc`: the sum of its servers.
    pub fn service(&self, svc: ServiceId) -> Totals {
        let slot = svc.0 as usize & self.svc_mask;
        match self.svc[slot].0 {
            Some(id) if id == svc => self.service_raw(slot),
            _ => Totals::default(),
        }
    }

    /// Counters of the whole director.
    pub fn total(&self) -> Totals {
        let mut t = RsTraffic::default();
        for r in &self.raw {
            t.add(r);
        }
        totals(&minus(&t, &self.total_base))
    }

    /// Estimated rates of real server `rs`.
    pub fn server_rates(&self, rs: RsId) -> Rates {
        match &self.rs[rs.0 as usize & self.rs_mask] {
            (Some(id), _, e) if *id == rs => e.rates(),
            _ => Rates::default(),
        }
    }

    /// Estimated rates of service `svc`.
    pub fn service_rates(&self, svc: ServiceId) -> Rates {
        match &self.svc[svc.0 as usize & self.svc_mask] {
            (Some(id), _, e, _) if *id == svc => e.rates(),
            _ => Rates::default(),
        }
    }

    /// Estimated rates of the whole director.
    pub fn total_rates(&self) -> Rates {
        self.total_est.rates()
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
    for svc in snap.services() {
        row(&mut out, service_column(&svc.addr), book.service(svc.id));
        for rs in snap.servers_of(svc) {
            row(&mut out, server_column(svc, rs), book.server(rs.id));
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
    for svc in snap.services() {
        let r = book.service_rates(svc.id);
        out.push_str(&service_column(&svc.addr));
        for v in [r.cps, r.in_pps, r.out_pps, r.in_bps, r.out_bps] {
            out.push_str(&largenum(v, false));
        }
        out.push('\n');
        for rs in snap.servers_of(svc) {
            let r = book.server_rates(rs.id);
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
        p.publish(&t, &[2, 1, 0], 0..3);
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
