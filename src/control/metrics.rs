//! The Prometheus text exposition (format 0.0.4) of a running pmdlb:
//! node_exporter's `ipvs` collector families with its exact names and
//! labels — so LVS dashboards and alerts work unchanged — and `pmdlb_*`
//! families for what only pmdlb knows (per-worker counters, drops by
//! reason, tables, mempool, neighbours, per-service and per-server
//! traffic). The control plane renders the text from the values it
//! publishes ([`Exposition`]) about once a second; `control::http` serves
//! the last rendering.
#![forbid(unsafe_code)]

use std::fmt::Write as _;
use std::net::IpAddr;

use crate::control::config::values::proto_name;
use crate::control::estimator::Totals;
use crate::control::sync::SyncStats;
use crate::control::traffic::TrafficBook;
use crate::dataplane::counters::WorkerStats;
use crate::dataplane::verdict::DropReason;
use crate::lb::realserver::ServiceState;
use crate::lb::snapshot::Snapshot;
use crate::lb::spec::ServiceAddr;
use crate::lb::state::StateCounters;
use crate::lb::types::RsId;

/// What a real server's neighbour entry looks like to the operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NeighbourState {
    /// A MAC is known (static, or answered recently).
    Resolved,
    /// No MAC yet: the server gets no traffic.
    Unresolved,
    /// A MAC is known but the server stopped answering ARP/ND.
    Stale,
}

impl NeighbourState {
    const ALL: [NeighbourState; 3] = [
        NeighbourState::Resolved,
        NeighbourState::Unresolved,
        NeighbourState::Stale,
    ];

    fn name(self) -> &'static str {
        match self {
            NeighbourState::Resolved => "resolved",
            NeighbourState::Unresolved => "unresolved",
            NeighbourState::Stale => "stale",
        }
    }
}

/// Everything one rendering reads.
#[derive(Debug)]
pub struct Exposition<'a> {
    /// Each worker's published counters.
    pub workers: &'a [WorkerStats],
    /// Services and real servers.
    pub snap: &'a Snapshot,
    /// Traffic sums per service and server.
    pub traffic: &'a TrafficBook,
    /// Connection-table capacity of each worker.
    pub conn_capacity: u64,
    /// Live persistence templates (the table is shared).
    pub templates: u64,
    /// Persistence-table capacity.
    pub template_capacity: u64,
    /// Mbufs in use (not in the pool).
    pub mbufs_in_use: u64,
    /// Mbufs in the pool in all.
    pub mbufs: u64,
    /// Addresses that stopped answering ARP/ND while keeping their MAC.
    pub stale: &'a [IpAddr],
    /// Per real server (`RsId` order) with health checks: `(up, checks
    /// run, checks failed)`; `None` for unchecked servers.
    pub health: &'a [Option<HealthSample>],
    /// The VIP announcement, when `[announce]` is configured.
    pub announce: Option<AnnounceSample>,
    /// The sync daemon's counters, when `[sync]` is configured.
    pub sync: Option<SyncStats>,
}

/// The VIP announcement's state for the exposition.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AnnounceSample {
    /// Every VIP that should be announced has its route installed, and
    /// at least one has.
    pub announcing: bool,
    /// `pmdlb ctl drain` is in effect.
    pub drained: bool,
    /// Host routes installed now.
    pub routes: u64,
    /// Times a VIP's announcement changed (added or withdrawn).
    pub changes: u64,
    /// Route commands that failed.
    pub failures: u64,
}

/// One checked server's health for the exposition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HealthSample {
    /// Every checker up.
    pub up: bool,
    /// Checks run.
    pub run: u64,
    /// Checks failed.
    pub failed: u64,
}

/// Escapes a label value: backslash, double quote and line feed.
pub fn escape_label(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

/// `{a="1",b="2"}` from name/value pairs (values escaped).
pub fn labels(pairs: &[(&str, &str)]) -> String {
    let mut s = String::from("{");
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(s, "{k}=\"{}\"", escape_label(v));
    }
    s.push('}');
    s
}

/// A service's labels as node_exporter gives them: `local_address`,
/// `local_port`, `proto` and `local_mark`. Fwmark services have an empty
/// address, port 0, `proto="FWM"` and the mark in 8 upper-case hex
/// digits, as `/proc/net/ip_vs` prints it.
pub fn service_labels(addr: &ServiceAddr) -> [(&'static str, String); 4] {
    match addr {
        ServiceAddr::Addr { proto, vip, port } => [
            ("local_address", vip.to_string()),
            ("local_port", port.to_string()),
            ("proto", proto_name(*proto).to_owned()),
            ("local_mark", String::new()),
        ],
        ServiceAddr::Fwmark(m) => [
            ("local_address", String::new()),
            ("local_port", "0".to_owned()),
            ("proto", "FWM".to_owned()),
            ("local_mark", format!("{m:08X}")),
        ],
    }
}

/// A backend's labels in node_exporter's order: `local_address,
/// local_port, remote_address, remote_port, proto, local_mark`. In DR the
/// server's port is the service's.
pub fn backend_labels(addr: &ServiceAddr, server: &IpAddr) -> String {
    let [la, lp, pr, lm] = service_labels(addr);
    let rp = match addr {
        ServiceAddr::Addr { port, .. } => port.to_string(),
        ServiceAddr::Fwmark(_) => "0".to_owned(),
    };
    let ra = server.to_string();
    labels(&[
        (la.0, &la.1),
        (lp.0, &lp.1),
        ("remote_address", &ra),
        ("remote_port", &rp),
        (pr.0, &pr.1),
        (lm.0, &lm.1),
    ])
}

fn svc_labels(addr: &ServiceAddr) -> String {
    let l = service_labels(addr);
    labels(&l.each_ref().map(|(k, v)| (*k, v.as_str())))
}

/// A family name, its help text and how to read its value.
type Column<T> = (&'static str, &'static str, fn(&T) -> u64);

/// Writes one family: HELP, TYPE and its samples (`labels`, value).
fn family(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(String, u64)]) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (l, v) in samples {
        let _ = writeln!(out, "{name}{l} {v}");
    }
}

/// Per service and per server of the snapshot: `(labels, value)`.
fn per_backend(
    snap: &Snapshot,
    mut value: impl FnMut(&ServiceState, RsId) -> u64,
) -> Vec<(String, u64)> {
    let mut v = Vec::new();
    for svc in snap.services() {
        for rs in snap.servers_of(svc) {
            v.push((backend_labels(&svc.addr, &rs.addr), value(svc, rs.id)));
        }
    }
    v
}

impl Exposition<'_> {
    /// The whole exposition text.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        self.node_ipvs(&mut out);
        self.workers_part(&mut out);
        self.tables_part(&mut out);
        self.traffic_part(&mut out);
        self.health_part(&mut out);
        self.announce_part(&mut out);
        self.sync_part(&mut out);
        out
    }

    /// `pmdlb_sync_*`: every sync counter, one family per
    /// [`SyncStats::rows`] family, reasons as labels.
    fn sync_part(&self, out: &mut String) {
        let Some(s) = self.sync else {
            return;
        };
        let rows = s.rows();
        let mut i = 0;
        while i < rows.len() {
            let first = rows[i];
            let samples: Vec<(String, u64)> = rows[i..]
                .iter()
                .take_while(|r| r.family == first.family)
                .map(|r| {
                    let l = if r.label.is_empty() {
                        String::new()
                    } else {
                        labels(&[(r.label, r.value_label)])
                    };
                    (l, r.value)
                })
                .collect();
            i += samples.len();
            let name = format!("pmdlb_sync_{}_total", first.family);
            family(out, &name, "counter", first.help, &samples);
        }
    }

    fn announce_part(&self, out: &mut String) {
        let Some(a) = self.announce else {
            return;
        };
        let one = |v: u64| vec![(String::new(), v)];
        family(
            out,
            "pmdlb_announcing",
            "gauge",
            "1 while pmdlb has the host routes of its VIPs in its announce table (BGP exports them).",
            &one(u64::from(a.announcing)),
        );
        family(
            out,
            "pmdlb_drained",
            "gauge",
            "1 after pmdlb ctl drain: routes withdrawn, forwarding continues.",
            &one(u64::from(a.drained)),
        );
        family(
            out,
            "pmdlb_announce_routes",
            "gauge",
            "VIP host routes installed in the announce table.",
            &one(a.routes),
        );
        family(
            out,
            "pmdlb_announce_changes_total",
            "counter",
            "VIP announcements added or withdrawn.",
            &one(a.changes),
        );
        family(
            out,
            "pmdlb_announce_failures_total",
            "counter",
            "Route commands (ip route) that failed; retried.",
            &one(a.failures),
        );
    }

    fn health_part(&self, out: &mut String) {
        if !self.health.iter().any(Option::is_some) {
            return;
        }
        let checked = |f: fn(&HealthSample) -> u64| {
            let mut v = Vec::new();
            for svc in self.snap.services() {
                for rs in self.snap.servers_of(svc) {
                    if let Some(Some(h)) = self.health.get(rs.id.0 as usize) {
                        v.push((backend_labels(&svc.addr, &rs.addr), f(h)));
                    }
                }
            }
            v
        };
        family(
            out,
            "pmdlb_backend_health",
            "gauge",
            "1 while every health checker of the backend passes, 0 while one fails (checked backends only).",
            &checked(|h| u64::from(h.up)),
        );
        family(
            out,
            "pmdlb_backend_health_checks_total",
            "counter",
            "Health checks run against the backend.",
            &checked(|h| h.run),
        );
        family(
            out,
            "pmdlb_backend_health_check_failures_total",
            "counter",
            "Health checks of the backend that failed.",
            &checked(|h| h.failed),
        );
    }

    fn node_ipvs(&self, out: &mut String) {
        let t = self.traffic.total();
        let one = |v: u64| vec![(String::new(), v)];
        let totals: [(&str, &str, u64); 5] = [
            (
                "connections_total",
                "The total number of connections made.",
                t.conns,
            ),
            (
                "incoming_packets_total",
                "The total number of incoming packets.",
                t.in_pkts,
            ),
            (
                "outgoing_packets_total",
                "The total number of outgoing packets (0 in DR: replies bypass the director).",
                t.out_pkts,
            ),
            (
                "incoming_bytes_total",
                "The total amount of incoming data.",
                t.in_bytes,
            ),
            (
                "outgoing_bytes_total",
                "The total amount of outgoing data (0 in DR).",
                t.out_bytes,
            ),
        ];
        for (name, help, v) in totals {
            family(out, &format!("node_ipvs_{name}"), "counter", help, &one(v));
        }
        let snap = self.snap;
        let server = |id: RsId| snap.server(id);
        family(
            out,
            "node_ipvs_backend_connections_active",
            "gauge",
            "The current active connections by local and remote address.",
            &per_backend(snap, |_, id| {
                server(id).map_or(0, |r| u64::from(r.active()))
            }),
        );
        family(
            out,
            "node_ipvs_backend_connections_inactive",
            "gauge",
            "The current inactive connections by local and remote address.",
            &per_backend(snap, |_, id| {
                server(id).map_or(0, |r| u64::from(r.inactive()))
            }),
        );
        family(
            out,
            "node_ipvs_backend_weight",
            "gauge",
            "The current backend weight by local and remote address.",
            &per_backend(snap, |_, id| {
                server(id).map_or(0, |r| u64::from(r.weight()))
            }),
        );
    }

    fn per_worker(&self, value: impl Fn(&WorkerStats) -> u64) -> Vec<(String, u64)> {
        self.workers
            .iter()
            .enumerate()
            .map(|(i, w)| (labels(&[("worker", &i.to_string())]), value(w)))
            .collect()
    }

    fn workers_part(&self, out: &mut String) {
        let fams: [Column<WorkerStats>; 7] = [
            (
                "pmdlb_worker_rx_packets_total",
                "Frames received on the worker's RX queue.",
                |w| w.io.rx,
            ),
            (
                "pmdlb_worker_tx_packets_total",
                "Frames the TX NIC accepted from the worker.",
                |w| w.io.tx_sent,
            ),
            (
                "pmdlb_worker_tx_refused_total",
                "Frames the TX NIC refused (freed and counted).",
                |w| w.io.tx_refused,
            ),
            (
                "pmdlb_worker_forwarded_packets_total",
                "Frames forwarded to a real server.",
                |w| w.io.forwarded,
            ),
            (
                "pmdlb_worker_replies_total",
                "ARP replies, neighbour advertisements and echo replies sent.",
                |w| w.io.replies,
            ),
            (
                "pmdlb_worker_tunnel_too_big_sent_total",
                "ICMP fragmentation-needed / packet-too-big sent for packets too big for their tunnel.",
                |w| w.io.too_big_sent,
            ),
            (
                "pmdlb_worker_tunnel_fragmented_total",
                "Packets for tunnel servers sent as outer IPv4 fragments (IPv4 without DF, too big once encapsulated).",
                |w| w.io.tunnel_fragmented,
            ),
        ];
        for (name, help, f) in fams {
            family(out, name, "counter", help, &self.per_worker(f));
        }
        let mut drops = Vec::new();
        for (i, w) in self.workers.iter().enumerate() {
            for r in DropReason::ALL {
                let l = labels(&[("worker", &i.to_string()), ("reason", r.name())]);
                drops.push((l, w.drops.get(*r)));
            }
        }
        family(
            out,
            "pmdlb_drops_total",
            "counter",
            "Frames dropped, by reason.",
            &drops,
        );
        let mut events = Vec::new();
        for (i, w) in self.workers.iter().enumerate() {
            for (name, v) in StateCounters::NAMES.iter().zip(w.state.values()) {
                let l = labels(&[("worker", &i.to_string()), ("event", name)]);
                events.push((l, v));
            }
        }
        family(
            out,
            "pmdlb_state_events_total",
            "counter",
            "Connection and persistence events of the state layer, by kind.",
            &events,
        );
    }

    fn tables_part(&self, out: &mut String) {
        let one = |v: u64| vec![(String::new(), v)];
        family(
            out,
            "pmdlb_connection_table_entries",
            "gauge",
            "Entries in the worker's connection table.",
            &self.per_worker(|w| w.io.conns),
        );
        family(
            out,
            "pmdlb_connection_table_capacity",
            "gauge",
            "Capacity of each worker's connection table (tables.connections).",
            &self.per_worker(|_| self.conn_capacity),
        );
        family(
            out,
            "pmdlb_connection_table_full_total",
            "counter",
            "Packets forwarded without a connection entry because the table was full.",
            &self.per_worker(|w| w.state.conn_table_full),
        );
        family(
            out,
            "pmdlb_template_table_entries",
            "gauge",
            "Live persistence templates (one table shared by all workers).",
            &one(self.templates),
        );
        family(
            out,
            "pmdlb_template_table_capacity",
            "gauge",
            "Capacity of the persistence table (tables.persistence).",
            &one(self.template_capacity),
        );
        family(
            out,
            "pmdlb_template_table_full_total",
            "counter",
            "Connections tracked without a template because the persistence table was full.",
            &self.per_worker(|w| w.state.template_full),
        );
        family(
            out,
            "pmdlb_mempool_mbufs_in_use",
            "gauge",
            "Mbufs taken from the pool (in rings, queues and buffers).",
            &one(self.mbufs_in_use),
        );
        family(
            out,
            "pmdlb_mempool_mbufs",
            "gauge",
            "Mbufs in the pool (ports.mbufs).",
            &one(self.mbufs),
        );
        // One series per server address and state, 1 for the state it is in.
        let mut seen: Vec<IpAddr> = Vec::new();
        let mut neigh = Vec::new();
        for rs in self.snap.servers() {
            if seen.contains(&rs.addr) {
                continue;
            }
            seen.push(rs.addr);
            let now = if rs.mac().is_none() {
                NeighbourState::Unresolved
            } else if self.stale.contains(&rs.addr) {
                NeighbourState::Stale
            } else {
                NeighbourState::Resolved
            };
            let a = rs.addr.to_string();
            for s in NeighbourState::ALL {
                let l = labels(&[("remote_address", &a), ("state", s.name())]);
                neigh.push((l, u64::from(s == now)));
            }
        }
        family(
            out,
            "pmdlb_neighbour_state",
            "gauge",
            "Real-server MAC resolution: 1 for the state the address is in.",
            &neigh,
        );
    }

    fn traffic_part(&self, out: &mut String) {
        let book = self.traffic;
        let services: Vec<&ServiceState> = self.snap.services().collect();
        let per_svc = |f: fn(&Totals) -> u64| -> Vec<(String, u64)> {
            services
                .iter()
                .map(|s| (svc_labels(&s.addr), f(&book.service(s.id))))
                .collect()
        };
        let fams: [Column<Totals>; 3] = [
            ("connections", "Connections created", |t| t.conns),
            ("packets", "Packets forwarded", |t| t.in_pkts),
            (
                "bytes",
                "Bytes forwarded (IP packet lengths, as IPVS counts)",
                |t| t.in_bytes,
            ),
        ];
        for (name, help, f) in fams {
            family(
                out,
                &format!("pmdlb_service_{name}_total"),
                "counter",
                &format!("{help}, per virtual service."),
                &per_svc(f),
            );
            family(
                out,
                &format!("pmdlb_backend_{name}_total"),
                "counter",
                &format!("{help}, per real server of a service."),
                &per_backend(self.snap, |_, id| f(&book.server(id))),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The exposition of no workers and no services, with `announce` and
    /// `sync`: what the optional families add.
    fn render_optional(announce: Option<AnnounceSample>, sync: Option<SyncStats>) -> String {
        let snap = Snapshot::new(&[]);
        let book = TrafficBook::new(&snap, Vec::new(), std::time::Instant::now());
        Exposition {
            workers: &[],
            snap: &snap,
            traffic: &book,
            conn_capacity: 0,
            templates: 0,
            template_capacity: 0,
            mbufs_in_use: 0,
            mbufs: 0,
            stale: &[],
            health: &[],
            announce,
            sync,
        }
        .render()
    }

    #[test]
    fn announce_families_only_when_configured() {
        let render = |announce| render_optional(announce, None);
        assert!(!render(None).contains("pmdlb_announc"));
        let text = render(Some(AnnounceSample {
            announcing: false,
            drained: true,
            routes: 0,
            changes: 3,
            failures: 1,
        }));
        for line in [
            "pmdlb_announcing 0",
            "pmdlb_drained 1",
            "pmdlb_announce_routes 0",
            "pmdlb_announce_changes_total 3",
            "pmdlb_announce_failures_total 1",
            "# TYPE pmdlb_announce_changes_total counter",
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} missing:\n{text}");
        }
    }

    #[test]
    fn sync_families_only_when_configured_reasons_as_labels() {
        let render = |sync| render_optional(None, sync);
        assert!(!render(None).contains("pmdlb_sync"));
        let text = render(Some(SyncStats {
            drop_syncid: 2,
            conns_sent: 5,
            templates_sent: 1,
            records_received: 9,
            ..SyncStats::default()
        }));
        for line in [
            "# TYPE pmdlb_sync_datagrams_dropped_total counter",
            "pmdlb_sync_datagrams_dropped_total{reason=\"syncid\"} 2",
            "pmdlb_sync_datagrams_dropped_total{reason=\"size_mismatch\"} 0",
            "pmdlb_sync_records_sent_total{kind=\"conn\"} 5",
            "pmdlb_sync_records_sent_total{kind=\"template\"} 1",
            "pmdlb_sync_records_received_total 9",
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} missing:\n{text}");
        }
        let helps = text.matches("# HELP pmdlb_sync_records_sent_total").count();
        assert_eq!(helps, 1, "one family, one HELP");
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escape_label("x\ny"), "x\\ny");
        assert_eq!(labels(&[("a", "1"), ("b", "")]), r#"{a="1",b=""}"#);
    }

    #[test]
    fn backend_labels_as_node_exporter() {
        let tcp = ServiceAddr::Addr {
            proto: 6,
            vip: "10.0.0.1".parse().unwrap(),
            port: 80,
        };
        assert_eq!(
            backend_labels(&tcp, &"10.0.1.1".parse().unwrap()),
            r#"{local_address="10.0.0.1",local_port="80",remote_address="10.0.1.1",remote_port="80",proto="TCP",local_mark=""}"#
        );
        let udp6 = ServiceAddr::Addr {
            proto: 17,
            vip: "2001:db8::1".parse().unwrap(),
            port: 53,
        };
        assert_eq!(
            backend_labels(&udp6, &"2001:db8:0:0::10".parse().unwrap()),
            r#"{local_address="2001:db8::1",local_port="53",remote_address="2001:db8::10",remote_port="53",proto="UDP",local_mark=""}"#
        );
        // node_exporter's fixture: mark 0x10001000 as /proc prints it.
        assert_eq!(
            backend_labels(
                &ServiceAddr::Fwmark(0x1000_1000),
                &"192.168.50.26".parse().unwrap()
            ),
            r#"{local_address="",local_port="0",remote_address="192.168.50.26",remote_port="0",proto="FWM",local_mark="10001000"}"#
        );
        assert_eq!(
            svc_labels(&ServiceAddr::Fwmark(7)),
            r#"{local_address="",local_port="0",proto="FWM",local_mark="00000007"}"#
        );
    }
}
