//! `ipvsadm -L -c` on the control loop: asks every worker for a dump of
//! its connection table (`dataplane::dump`), keeps the requests waiting,
//! and answers them in a later tick — once every worker has reported, or
//! after [`DUMP_WAIT`] with what arrived and a note. Persistence templates
//! come from the shared table, which the control plane scans itself.
//! Requests that arrive while a dump runs join it.
//!
//! The rows are those of `/proc/net/ip_vs_conn` for a DR director:
//!
//! * a connection: its protocol, state and time left (the worker's
//!   deadline against the worker's clock when it ended the dump), client,
//!   VIP and port, and its real server at the connection's port (DR
//!   servers have the service's port; for fwmark and port-0 services IPVS
//!   uses the packet's);
//! * a template (`ip_vs_sched_persist`): state `NONE`, client `ADDR &
//!   mask:0`; for a fwmark service protocol `IP`, virtual address the mark
//!   (`0.0.0.MARK:0`; for IPv6 the mark in the first 32 bits), server port
//!   0; for a port-0 service the VIP with port 0 and server port 0;
//!   otherwise the service's protocol, VIP and port and the server at that
//!   port (port 21 keeps IPVS's FTP rule: virtual port 0). A template held
//!   by connections shows at least its persistence timeout: it lives that
//!   long after the last of them ends.
//!
//! Rows whose service or server has left the snapshot meanwhile are left
//! out (and counted in a note).
#![forbid(unsafe_code)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::control::admin::args::ListOpts;
use crate::control::admin::client::answer_with_notes;
use crate::control::admin::format::{list_connections, ConnView};
use crate::control::config::values::proto_name;
use crate::control::ctl::Request;
use crate::dataplane::dump::{ConnDump, DumpEntry, DumpResult};
use crate::lb::persist::TemplateEntry;
use crate::lb::snapshot::Snapshot;
use crate::lb::spec::ServiceAddr;

/// How long a listing waits for the workers before it answers with what
/// arrived.
pub const DUMP_WAIT: Duration = Duration::from_secs(2);

/// The FTP control port, which IPVS's templates treat apart.
const FTP_PORT: u16 = 21;

/// One dump under way and the requests waiting for it.
#[derive(Debug)]
pub(super) struct Listing {
    epoch: u64,
    started: Instant,
    waiting: Vec<(Request, ListOpts)>,
    /// By worker: its dump, once in.
    results: Vec<Option<DumpResult>>,
}

/// The listings of one control plane: the epochs it has used and the
/// dump under way.
#[derive(Debug, Default)]
pub(super) struct Listings {
    last_epoch: u64,
    current: Option<Listing>,
}

impl Listings {
    /// Queues `req`: it joins the dump under way, or starts one.
    pub(super) fn add(
        &mut self,
        req: Request,
        opts: ListOpts,
        dumps: &[Arc<ConnDump>],
        now: Instant,
    ) {
        if let Some(l) = &mut self.current {
            l.waiting.push((req, opts));
            return;
        }
        self.last_epoch += 1;
        let epoch = self.last_epoch;
        for d in dumps {
            d.request(epoch);
        }
        self.current = Some(Listing {
            epoch,
            started: now,
            waiting: vec![(req, opts)],
            results: vec![None; dumps.len()],
        });
    }

    /// Collects what the workers finished; once all did, or at
    /// [`DUMP_WAIT`], answers every waiting request. `rows` turns the
    /// dumps into rows (and notes) with the current snapshot.
    pub(super) fn poll(
        &mut self,
        dumps: &[Arc<ConnDump>],
        now: Instant,
        rows: impl FnOnce(&[Option<DumpResult>]) -> (Vec<ConnView>, Vec<String>),
    ) {
        let Some(l) = &mut self.current else { return };
        for (slot, d) in l.results.iter_mut().zip(dumps) {
            if slot.is_none() && d.is_done(l.epoch) {
                *slot = d.take(l.epoch);
            }
        }
        let all = l.results.iter().all(Option::is_some);
        if !all && now.duration_since(l.started) < DUMP_WAIT {
            return;
        }
        if !all {
            // What arrived from the late ones (partial, or nothing).
            for (slot, d) in l.results.iter_mut().zip(dumps) {
                if slot.is_none() {
                    *slot = d.take(l.epoch);
                }
            }
        }
        let Some(l) = self.current.take() else { return };
        let (views, notes) = rows(&l.results);
        for (req, opts) in l.waiting {
            req.reply(answer_with_notes(list_connections(&views, &opts), &notes));
        }
    }
}

/// The rows of `ipvsadm -L -c` from the workers' dumps (by worker; `None`:
/// nothing arrived) and the live templates, resolved with `snap`;
/// `now_ms` is the clock the templates' expiry is on. Also the notes for
/// standard error: truncated or missing dumps, rows left out.
pub fn rows(
    dumps: &[Option<DumpResult>],
    templates: &[TemplateEntry],
    snap: &Snapshot,
    now_ms: u64,
) -> (Vec<ConnView>, Vec<String>) {
    let mut views = Vec::new();
    let mut notes = Vec::new();
    let mut gone = 0usize;
    for (i, d) in dumps.iter().enumerate() {
        let Some(d) = d else {
            notes.push(format!(
                "pmdlb: worker {i} did not report its connections within {} s: none of them listed",
                DUMP_WAIT.as_secs()
            ));
            continue;
        };
        if !d.complete {
            notes.push(format!(
                "pmdlb: worker {i} did not finish its dump within {} s: {} of its connections listed",
                DUMP_WAIT.as_secs(),
                d.entries.len()
            ));
        }
        if d.truncated {
            notes.push(format!(
                "pmdlb: worker {i}: listing truncated at {} entries (its table holds {}, expired ones included)",
                d.entries.len(),
                d.table_len
            ));
        }
        for e in &d.entries {
            match conn_row(e, snap, d.now_ms) {
                Some(v) => views.push(v),
                None => gone += 1,
            }
        }
    }
    for t in templates {
        match template_row(t, snap, now_ms) {
            Some(v) => views.push(v),
            None => gone += 1,
        }
    }
    if gone > 0 {
        notes.push(format!(
            "pmdlb: {gone} entries left out: their service or real server is gone"
        ));
    }
    (views, notes)
}

fn secs_left(deadline_ms: u64, now_ms: u64) -> u32 {
    u32::try_from(deadline_ms.saturating_sub(now_ms) / 1000).unwrap_or(u32::MAX)
}

/// One connection's row; `None` if its server left the snapshot.
pub fn conn_row(e: &DumpEntry, snap: &Snapshot, now_ms: u64) -> Option<ConnView> {
    let rs = snap.server(e.rs)?;
    let k = &e.key;
    Some(ConnView {
        proto: proto_name(k.proto()).to_owned(),
        expire_s: secs_left(e.deadline_ms, now_ms),
        state: e.state.ipvs_name(k.proto()).to_owned(),
        client: (k.client().to_ip(k.family()), k.cport()),
        virt: (k.vip().to_ip(k.family()), k.vport()),
        dest: (rs.addr, k.vport()),
    })
}

/// The virtual address of a fwmark template: the mark in the address's
/// first 32 bits (IPVS's `nf_inet_addr` with `.ip = htonl(fwmark)`).
fn fwmark_addr(mark: u32, v6: bool) -> IpAddr {
    if v6 {
        let mut b = [0u8; 16];
        b[..4].copy_from_slice(&mark.to_be_bytes());
        IpAddr::V6(Ipv6Addr::from(b))
    } else {
        IpAddr::V4(Ipv4Addr::from(mark))
    }
}

/// One template's row; `None` if its service or server left the snapshot.
pub fn template_row(t: &TemplateEntry, snap: &Snapshot, now_ms: u64) -> Option<ConnView> {
    let svc = snap.service(t.key.svc)?;
    let rs = snap.server(t.rs)?;
    let family = match rs.addr {
        IpAddr::V4(_) => crate::lb::types::Family::V4,
        IpAddr::V6(_) => crate::lb::types::Family::V6,
    };
    let client = (t.key.client.to_ip(family), 0);
    let (proto, virt, dport) = match svc.addr {
        ServiceAddr::Fwmark(m) => ("IP", (fwmark_addr(m, rs.addr.is_ipv6()), 0), 0),
        ServiceAddr::Addr { proto, vip, port } => {
            let vport = if port == FTP_PORT { 0 } else { port };
            (proto_name(proto), (vip, vport), port)
        }
    };
    let mut expire_s = secs_left(t.expires, now_ms);
    if t.refs > 0 {
        let timeout = svc.persistence.map_or(0, |p| p.timeout_s);
        expire_s = expire_s.max(timeout);
    }
    Some(ConnView {
        proto: proto.to_owned(),
        expire_s,
        state: "NONE".to_owned(),
        client,
        virt,
        dest: (rs.addr, dport),
    })
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::lb::conn::ConnState;
    use crate::lb::persist::TemplateKey;
    use crate::lb::spec::{Persistence, RealServerSpec, SchedFlags, SchedulerKind, ServiceSpec};
    use crate::lb::types::{ip_proto, Addr, FlowKey, RsId, ServiceId};
    use crate::wire::ethernet::MacAddr;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn service(addr: ServiceAddr, servers: &[&str], persist: Option<u32>) -> ServiceSpec {
        ServiceSpec {
            addr,
            scheduler: SchedulerKind::Rr,
            sched_flags: SchedFlags::default(),
            persistence: persist.map(|t| Persistence {
                timeout_s: t,
                prefix_len: 24,
            }),
            ops: false,
            servers: servers
                .iter()
                .map(|a| RealServerSpec {
                    addr: ip(a),
                    weight: 1,
                    u_threshold: 0,
                    l_threshold: 0,
                    mac: Some(MacAddr([2, 0, 0, 0, 0, 1])),
                    forward: Default::default(),
                    via: None,
                })
                .collect(),
        }
    }

    /// svc0 tcp 10.0.0.1:80 (rs0, rs1), svc1 fwmark 7 persistent (rs2),
    /// svc2 udp [fd00::1]:53 (rs3), svc3 tcp 10.0.0.1:0 persistent (rs4),
    /// svc4 fwmark 8 IPv6 persistent (rs5), svc5 tcp 10.0.0.1:21 persistent (rs6).
    fn snap() -> Snapshot {
        let tcp = |port| ServiceAddr::Addr {
            proto: ip_proto::TCP,
            vip: ip("10.0.0.1"),
            port,
        };
        Snapshot::new(&[
            service(tcp(80), &["10.0.1.1", "10.0.1.2"], None),
            service(ServiceAddr::Fwmark(7), &["10.0.2.1"], Some(360)),
            service(
                ServiceAddr::Addr {
                    proto: ip_proto::UDP,
                    vip: ip("fd00::1"),
                    port: 53,
                },
                &["fd00::2"],
                None,
            ),
            service(tcp(0), &["10.0.3.1"], Some(300)),
            service(ServiceAddr::Fwmark(8), &["fd00::9"], Some(60)),
            service(tcp(21), &["10.0.4.1"], Some(300)),
        ])
    }

    fn entry(client: &str, cport: u16, vip: &str, vport: u16, proto: u8) -> DumpEntry {
        let (family, c) = Addr::from_ip(ip(client));
        let (_, v) = Addr::from_ip(ip(vip));
        DumpEntry {
            key: FlowKey::new(family, proto, c, cport, v, vport),
            state: ConnState::Established,
            svc: ServiceId(0),
            rs: RsId(1),
            deadline_ms: 0,
        }
    }

    fn view(
        proto: &str,
        exp: u32,
        state: &str,
        c: (&str, u16),
        v: (&str, u16),
        d: (&str, u16),
    ) -> ConnView {
        ConnView {
            proto: proto.into(),
            expire_s: exp,
            state: state.into(),
            client: (ip(c.0), c.1),
            virt: (ip(v.0), v.1),
            dest: (ip(d.0), d.1),
        }
    }

    #[test]
    fn connection_rows_use_the_workers_clock_and_the_servers_address() {
        let s = snap();
        let mut tcp = entry("192.0.2.7", 40000, "10.0.0.1", 80, ip_proto::TCP);
        tcp.deadline_ms = 1_000_000 + 899_999;
        let mut udp = entry("2001:db8::7", 5353, "fd00::1", 53, ip_proto::UDP);
        udp.state = ConnState::Udp;
        udp.svc = ServiceId(2);
        udp.rs = RsId(3);
        udp.deadline_ms = 1_000_000 + 5_000;
        // a fwmark connection: the server at the packet's port
        let mut fwm = entry("192.0.2.8", 1234, "10.0.0.1", 443, ip_proto::TCP);
        fwm.state = ConnState::SynRecv;
        fwm.svc = ServiceId(1);
        fwm.rs = RsId(2);
        fwm.deadline_ms = 1_059_000;
        let mut gone = entry("192.0.2.9", 1, "10.0.0.1", 80, ip_proto::TCP);
        gone.rs = RsId(999);
        let d = DumpResult {
            entries: vec![tcp, udp, fwm, gone],
            now_ms: 1_000_000,
            truncated: false,
            complete: true,
            table_len: 4,
        };
        let (views, notes) = rows(&[Some(d)], &[], &s, 0);
        assert_eq!(
            views,
            [
                view(
                    "TCP",
                    899,
                    "ESTABLISHED",
                    ("192.0.2.7", 40000),
                    ("10.0.0.1", 80),
                    ("10.0.1.2", 80)
                ),
                view(
                    "UDP",
                    5,
                    "UDP",
                    ("2001:db8::7", 5353),
                    ("fd00::1", 53),
                    ("fd00::2", 53)
                ),
                view(
                    "TCP",
                    59,
                    "SYN_RECV",
                    ("192.0.2.8", 1234),
                    ("10.0.0.1", 443),
                    ("10.0.2.1", 443)
                ),
            ]
        );
        assert_eq!(
            notes,
            ["pmdlb: 1 entries left out: their service or real server is gone"]
        );
    }

    #[test]
    fn template_rows_follow_ip_vs_sched_persist() {
        let s = snap();
        let t = |svc: u32, rs: u32, client: &str, refs: u32, expires: u64| TemplateEntry {
            key: TemplateKey::new(
                ServiceId(svc),
                Addr::from_ip(ip(client)).1,
                if client.contains(':') { 64 } else { 24 },
            ),
            rs: RsId(rs),
            refs,
            expires,
        };
        let now = 10_000;
        let tpls = [
            // fwmark: IP, the mark as the virtual address, ports 0
            t(1, 2, "192.0.2.77", 0, now + 359_500),
            // held by a connection, expiry in the past: at least the timeout
            t(1, 2, "198.51.100.1", 1, 0),
            // port-0 service: its protocol, VIP:0, server port 0
            t(3, 4, "192.0.2.5", 0, now + 1_000),
            // IPv6 fwmark: the mark in the first 32 bits
            t(4, 5, "2001:db8::1", 0, now + 60_000),
            // FTP: virtual port 0, server port 21
            t(5, 6, "192.0.2.6", 0, now + 2_000),
        ];
        let (views, notes) = rows(&[], &tpls, &s, now);
        assert!(notes.is_empty());
        assert_eq!(
            views,
            [
                view(
                    "IP",
                    359,
                    "NONE",
                    ("192.0.2.0", 0),
                    ("0.0.0.7", 0),
                    ("10.0.2.1", 0)
                ),
                view(
                    "IP",
                    360,
                    "NONE",
                    ("198.51.100.0", 0),
                    ("0.0.0.7", 0),
                    ("10.0.2.1", 0)
                ),
                view(
                    "TCP",
                    1,
                    "NONE",
                    ("192.0.2.0", 0),
                    ("10.0.0.1", 0),
                    ("10.0.3.1", 0)
                ),
                view(
                    "IP",
                    60,
                    "NONE",
                    ("2001:db8::", 0),
                    ("0:8::", 0),
                    ("fd00::9", 0)
                ),
                view(
                    "TCP",
                    2,
                    "NONE",
                    ("192.0.2.0", 0),
                    ("10.0.0.1", 0),
                    ("10.0.4.1", 21)
                ),
            ]
        );
    }

    #[test]
    fn notes_for_truncated_late_and_missing_workers() {
        let s = snap();
        let d = |complete, truncated, n: usize| DumpResult {
            entries: vec![entry("192.0.2.7", 1, "10.0.0.1", 80, ip_proto::TCP); n],
            now_ms: 0,
            truncated,
            complete,
            table_len: 70_000,
        };
        let (views, notes) = rows(
            &[Some(d(true, true, 3)), Some(d(false, false, 2)), None],
            &[],
            &s,
            0,
        );
        assert_eq!(views.len(), 5);
        assert_eq!(
            notes,
            [
                "pmdlb: worker 0: listing truncated at 3 entries (its table holds 70000, expired ones included)",
                "pmdlb: worker 1 did not finish its dump within 2 s: 2 of its connections listed",
                "pmdlb: worker 2 did not report its connections within 2 s: none of them listed",
            ]
        );
    }

    #[test]
    fn a_listing_waits_for_every_worker_or_the_bound() {
        let dumps: Vec<Arc<ConnDump>> = (0..2).map(|_| Arc::new(ConnDump::new(16))).collect();
        let mut l = Listings::default();
        let (req, rx) = Request::for_test("admin");
        let t0 = Instant::now();
        l.add(req, ListOpts::default(), &dumps, t0);
        let mut called = 0;
        // nobody reported: no answer before the bound
        l.poll(&dumps, t0 + Duration::from_millis(10), |_| {
            called += 1;
            (Vec::new(), Vec::new())
        });
        assert_eq!(called, 0);
        assert!(rx.try_recv().is_err());
        // at the bound: answered with what arrived (nothing), with notes
        l.poll(&dumps, t0 + DUMP_WAIT, |r| {
            called += 1;
            assert!(r.iter().all(Option::is_none));
            (Vec::new(), vec!["late".into()])
        });
        assert_eq!(called, 1);
        let a = rx.try_recv().unwrap();
        assert_eq!(a.status, 0);
        assert!(
            a.body.starts_with("IPVS connection entries\n"),
            "{}",
            a.body
        );
        assert!(a.body.ends_with("\u{1d}late\n"), "{}", a.body);
        // the next listing uses a new epoch
        let (req, _rx) = Request::for_test("admin");
        l.add(req, ListOpts::default(), &dumps, t0);
        assert_eq!(l.last_epoch, 2);
    }
}
