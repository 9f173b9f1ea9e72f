//! The Prometheus exposition of a running `pmdlb run` on `net_pcap`,
//! checked against the traffic sent and the traffic that came out.
//!
//! Known traffic — UDP datagrams of many sizes from several clients to a
//! UDP service with three static-MAC servers, TCP flows to a fwmark service
//! with two, and frames no service takes — goes in through `in.pcap`.
//! The test scrapes `/metrics` with a plain `TcpStream` GET, runs
//! `promtool check metrics` on the text, and compares the values with
//! what it sent (packets, IP bytes and flows per service) and with what
//! `out.pcap`, decoded with etherparse, shows per destination MAC (the
//! per-server split). `pmdlb ctl servers --stats --exact` must agree.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::running::{mac_str, read_pcap, write_pcap, Running};
use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TransportSlice};

/// MAC of the first net_pcap device (fixed in DPDK 22.11).
const PORT_MAC: [u8; 6] = [0x02, 0x70, 0x63, 0x61, 0x70, 0x00];
const ROUTER_MAC: [u8; 6] = [0x02, 0xaa, 0, 0, 0, 0x01];
const VIP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 100);
const MARK: u32 = 0x1234;

/// `(service, address, MAC)` of every real server.
const SERVERS: &[(&str, &str, [u8; 6])] = &[
    ("udp", "10.0.2.21", [2, 0, 0, 0, 2, 21]),
    ("udp", "10.0.2.22", [2, 0, 0, 0, 2, 22]),
    ("udp", "10.0.2.23", [2, 0, 0, 0, 2, 23]),
    ("fwm", "10.0.3.31", [2, 0, 0, 0, 3, 31]),
    ("fwm", "10.0.3.32", [2, 0, 0, 0, 3, 32]),
];

fn config(prefix: &str, inp: &Path, outp: &Path, listen: &str) -> String {
    let servers = |svc: &str| -> String {
        SERVERS
            .iter()
            .filter(|s| s.0 == svc)
            .map(|s| {
                format!(
                    "[[service.server]]\naddr = \"{}\"\nmac = \"{}\"\n",
                    s.1,
                    mac_str(&s.2)
                )
            })
            .collect()
    };
    format!(
        r#"[eal]
lcores = "0-1"
hugepages = false
memory_mb = 256
file_prefix = "{prefix}"
vdevs = ["net_pcap0,rx_pcap={inp},tx_pcap={outp}"]
extra_args = ["--no-telemetry"]

[ports]
rx = "net_pcap0"
rx_desc = 256
tx_desc = 256
mbufs = 2047
mbuf_cache = 64

[workers]
count = 1
stats_interval_s = 0

[tables]
connections = 4096
persistence = 1024

[neighbours]
gratuitous_arp = false

[metrics]
listen = "{listen}"

[[vip]]
addr = "{VIP}"

[[mark]]
dst = "{VIP}"
proto = "tcp"
ports = [80, 443]
mark = {MARK}

[[service]]
vip = "{VIP}"
port = 53
proto = "udp"
scheduler = "rr"
{udp}
[[service]]
fwmark = {MARK}
scheduler = "rr"
{fwm}"#,
        inp = inp.display(),
        outp = outp.display(),
        udp = servers("udp"),
        fwm = servers("fwm"),
    )
}

/// A client frame to the port MAC, padded to the 60-byte minimum (the
/// padding is not IP bytes).
fn frame(src: Ipv4Addr, build: impl FnOnce(PacketBuilderIp) -> Vec<u8>) -> (Vec<u8>, u64) {
    let b = PacketBuilder::ethernet2(ROUTER_MAC, PORT_MAC).ipv4(src.octets(), VIP.octets(), 64);
    let mut f = build(b);
    let ip_len = (f.len() - 14) as u64;
    f.resize(f.len().max(60), 0);
    (f, ip_len)
}

type PacketBuilderIp = etherparse::PacketBuilderStep<etherparse::IpHeaders>;

/// What was sent to one service.
#[derive(Default, Debug)]
struct Sent {
    packets: u64,
    bytes: u64,
    flows: HashSet<(Ipv4Addr, u16, u16)>,
}

/// The input: `(frames, sent per service, frames no service takes)`.
fn traffic() -> (Vec<Vec<u8>>, BTreeMap<&'static str, Sent>, u64) {
    let mut frames = Vec::new();
    let mut sent: BTreeMap<&'static str, Sent> = BTreeMap::new();
    let mut unserved = 0;
    // UDP: 12 clients, each with 2 source ports, 5 datagrams per flow of
    // sizes 0..1400 bytes.
    for c in 0..12u8 {
        let client = Ipv4Addr::new(198, 51, 100, 10 + c);
        for sport in [40_000u16, 40_001] {
            for k in 0..5u16 {
                let len = usize::from((u16::from(c) * 131 + sport % 7 * 17 + k * 293) % 1400);
                let payload = vec![0x5a; len];
                let (f, ip_len) = frame(client, |b| {
                    let mut v = Vec::new();
                    b.udp(sport, 53).write(&mut v, &payload).unwrap();
                    v
                });
                frames.push(f);
                let s = sent.entry("udp").or_default();
                s.packets += 1;
                s.bytes += ip_len;
                s.flows.insert((client, sport, 53));
            }
        }
    }
    // TCP to ports 80 and 443 (one fwmark service): SYN, then 3 data
    // segments, per flow.
    for c in 0..6u8 {
        let client = Ipv4Addr::new(203, 0, 113, 20 + c);
        for dport in [80u16, 443] {
            let sport = 50_000 + u16::from(c);
            for k in 0..4u32 {
                let payload = vec![0x33; if k == 0 { 0 } else { 100 * k as usize }];
                let (f, ip_len) = frame(client, |b| {
                    let t = b.tcp(sport, dport, 1000 + k * 500, 64240);
                    let t = if k == 0 { t.syn() } else { t.ack(1).psh() };
                    let mut v = Vec::new();
                    t.write(&mut v, &payload).unwrap();
                    v
                });
                frames.push(f);
                let s = sent.entry("fwm").or_default();
                s.packets += 1;
                s.bytes += ip_len;
                s.flows.insert((client, sport, dport));
            }
        }
    }
    // No service on UDP 54.
    for i in 0..7u16 {
        let (f, _) = frame(Ipv4Addr::new(198, 51, 100, 99), |b| {
            let mut v = Vec::new();
            b.udp(30_000 + i, 54).write(&mut v, b"x").unwrap();
            v
        });
        frames.push(f);
        unserved += 1;
    }
    (frames, sent, unserved)
}

/// What `out.pcap` shows for one destination MAC.
#[derive(Default, Debug)]
struct Seen {
    packets: u64,
    bytes: u64,
    flows: HashSet<(Ipv4Addr, u16, u16)>,
}

fn decode_out(frames: &[Vec<u8>]) -> HashMap<[u8; 6], Seen> {
    let mut m: HashMap<[u8; 6], Seen> = HashMap::new();
    for f in frames {
        let p = SlicedPacket::from_ethernet(f).expect("etherparse decodes the output");
        let Some(NetSlice::Ipv4(ip)) = &p.net else {
            continue;
        };
        let h = ip.header();
        let ports = match &p.transport {
            Some(TransportSlice::Udp(u)) => (u.source_port(), u.destination_port()),
            Some(TransportSlice::Tcp(t)) => (t.source_port(), t.destination_port()),
            _ => continue,
        };
        let dst: [u8; 6] = f[0..6].try_into().unwrap();
        let s = m.entry(dst).or_default();
        s.packets += 1;
        s.bytes += u64::from(h.total_len());
        s.flows.insert((h.source_addr(), ports.0, ports.1));
    }
    m
}

/// The `total` column of a counter row of `ctl stats`.
fn counter(stats: &str, name: &str) -> u64 {
    stats
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .and_then(|l| l.split_whitespace().last()?.parse().ok())
        .unwrap_or(0)
}

/// `GET /metrics` over a plain TCP connection: the body of a 200 answer.
fn scrape(addr: SocketAddr) -> String {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4"),
        "{head}"
    );
    body.to_owned()
}

/// `name{labels} value` lines: `(name, labels) → value`.
fn samples(text: &str) -> HashMap<(String, String), f64> {
    let mut m = HashMap::new();
    for l in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = l.rsplit_once(' ').expect("name value");
        let (name, labels) = match series.find('{') {
            Some(i) => (&series[..i], &series[i..]),
            None => (series, ""),
        };
        m.insert((name.to_owned(), labels.to_owned()), value.parse().unwrap());
    }
    m
}

fn value(m: &HashMap<(String, String), f64>, name: &str, labels: &str) -> u64 {
    match m.get(&(name.to_owned(), labels.to_owned())) {
        Some(v) => *v as u64,
        None => panic!("no sample {name}{labels}"),
    }
}

fn backend(svc: &str, addr: &str) -> String {
    match svc {
        "udp" => format!(
            r#"{{local_address="{VIP}",local_port="53",remote_address="{addr}",remote_port="53",proto="UDP",local_mark=""}}"#
        ),
        _ => format!(
            r#"{{local_address="",local_port="0",remote_address="{addr}",remote_port="0",proto="FWM",local_mark="{MARK:08X}"}}"#
        ),
    }
}

fn service(svc: &str) -> String {
    match svc {
        "udp" => format!(r#"{{local_address="{VIP}",local_port="53",proto="UDP",local_mark=""}}"#),
        _ => format!(r#"{{local_address="",local_port="0",proto="FWM",local_mark="{MARK:08X}"}}"#),
    }
}

/// A free TCP port on 127.0.0.1 for the listener (bound and released; the
/// run fails loudly, not silently, should another process take it first).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn metrics_match_the_traffic_sent_and_forwarded() {
    let promtool = Command::new("promtool").arg("--version").output();
    assert!(
        promtool.is_ok_and(|o| o.status.success()),
        "promtool not found: install the Debian package prometheus (scripts/install-deps.sh does)"
    );
    let prefix = common::file_prefix("metrics");
    let dir = common::scratch("run-metrics");
    let (inp, outp, cfg) = (
        dir.join("in.pcap"),
        dir.join("out.pcap"),
        dir.join("pmdlb.toml"),
    );
    let (frames, sent, unserved) = traffic();
    write_pcap(&inp, &frames);
    let listen: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    std::fs::write(&cfg, config(&prefix, &inp, &outp, &listen.to_string())).unwrap();
    let mut run = Running::spawn(cfg, prefix, dir);

    // The listener is announced once it is up.
    run.wait_for_line(
        Duration::from_secs(15),
        &format!("pmdlb: metrics at http://{listen}/metrics"),
    );

    // Every frame received, and every forwarded one counted in the
    // exposition (the worker publishes every few loops, the control plane
    // renders once a second): bounded polls.
    let want_rx = frames.len() as u64;
    let fwd: u64 = sent.values().map(|s| s.packets).sum();
    let body = run.wait_until(
        Duration::from_secs(15),
        &format!("metrics reach {fwd} forwarded packets"),
        |run| {
            let rx_done = run
                .ctl(&["stats"])
                .is_some_and(|s| counter(&s, "rx") >= want_rx);
            if !rx_done {
                return None;
            }
            let body = scrape(listen);
            let m = samples(&body);
            (m.get(&("node_ipvs_incoming_packets_total".into(), String::new()))
                == Some(&(fwd as f64)))
            .then_some(body)
        },
    );
    let exact = run
        .ctl(&["servers", "--stats", "--exact"])
        .expect("ctl servers --stats");
    let rates = run.ctl(&["servers", "--rate"]).expect("ctl servers --rate");

    // promtool, the independent judge of the format.
    let mut p = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    p.stdin.take().unwrap().write_all(body.as_bytes()).unwrap();
    let po = p.wait_with_output().unwrap();
    assert!(
        po.status.success(),
        "promtool check metrics:\n{}{}\n--- exposition\n{body}",
        String::from_utf8_lossy(&po.stdout),
        String::from_utf8_lossy(&po.stderr)
    );

    // Stop, and collect what came out.
    let stopped = run.stop();
    let ctx = format!("{}\n--- exposition\n{body}", stopped.text());
    assert_eq!(stopped.status.code(), Some(0), "{ctx}");
    assert!(stopped.stdout.contains("pmdlb: stopped cleanly"), "{ctx}");
    let out = read_pcap(&outp);
    drop(stopped);

    let m = samples(&body);
    let seen = decode_out(&out);
    // node_exporter's totals: what was sent to the services.
    let total_bytes: u64 = sent.values().map(|s| s.bytes).sum();
    let total_flows: u64 = sent.values().map(|s| s.flows.len() as u64).sum();
    assert_eq!(
        value(&m, "node_ipvs_incoming_packets_total", ""),
        fwd,
        "{ctx}"
    );
    assert_eq!(
        value(&m, "node_ipvs_incoming_bytes_total", ""),
        total_bytes,
        "{ctx}"
    );
    assert_eq!(
        value(&m, "node_ipvs_connections_total", ""),
        total_flows,
        "{ctx}"
    );
    assert_eq!(value(&m, "node_ipvs_outgoing_packets_total", ""), 0);
    assert_eq!(value(&m, "node_ipvs_outgoing_bytes_total", ""), 0);
    assert_eq!(out.len() as u64, fwd, "every served frame came out\n{ctx}");

    // Per service: what was sent.
    for (svc, s) in &sent {
        let l = service(svc);
        assert_eq!(
            value(&m, "pmdlb_service_packets_total", &l),
            s.packets,
            "{svc}"
        );
        assert_eq!(value(&m, "pmdlb_service_bytes_total", &l), s.bytes, "{svc}");
        assert_eq!(
            value(&m, "pmdlb_service_connections_total", &l),
            s.flows.len() as u64,
            "{svc}"
        );
    }
    // Per server: what out.pcap shows for its MAC, and every server of the
    // round-robin services got some.
    for (svc, addr, mac) in SERVERS {
        let l = backend(svc, addr);
        let s = seen
            .get(mac)
            .unwrap_or_else(|| panic!("{addr}: no frames out\n{ctx}"));
        assert_eq!(
            value(&m, "pmdlb_backend_packets_total", &l),
            s.packets,
            "{addr}"
        );
        assert_eq!(
            value(&m, "pmdlb_backend_bytes_total", &l),
            s.bytes,
            "{addr}"
        );
        assert_eq!(
            value(&m, "pmdlb_backend_connections_total", &l),
            s.flows.len() as u64,
            "{addr}"
        );
        assert_eq!(value(&m, "node_ipvs_backend_weight", &l), 1, "{addr}");
        // UDP flows are inactive connections; TCP flows that went SYN,
        // then ACK are ESTABLISHED: active (IPVS's input-only table).
        let flows = s.flows.len() as u64;
        let (active, inactive) = if *svc == "udp" {
            (0, flows)
        } else {
            (flows, 0)
        };
        assert_eq!(
            value(&m, "node_ipvs_backend_connections_active", &l),
            active,
            "{addr}"
        );
        assert_eq!(
            value(&m, "node_ipvs_backend_connections_inactive", &l),
            inactive,
            "{addr}"
        );
        // ipvsadm -Ln --stats --exact: the server's row.
        let row = exact
            .lines()
            .find(|r| r.starts_with(&format!("  -> {addr}:")))
            .unwrap_or_else(|| panic!("{addr} not in\n{exact}"));
        let cols: Vec<u64> = row
            .split_whitespace()
            .skip(2)
            .map(|w| w.parse().unwrap())
            .collect();
        assert_eq!(
            cols,
            [s.flows.len() as u64, s.packets, 0, s.bytes, 0],
            "{row}"
        );
        let r = format!("  -> {addr}:");
        assert!(rates.lines().any(|l| l.starts_with(&r)), "{rates}");
    }
    // Drops by reason, and the worker counters.
    let w0 = r#"{worker="0"}"#;
    assert_eq!(
        value(
            &m,
            "pmdlb_drops_total",
            r#"{worker="0",reason="no_service"}"#
        ),
        unserved
    );
    assert_eq!(value(&m, "pmdlb_worker_rx_packets_total", w0), want_rx);
    assert_eq!(value(&m, "pmdlb_worker_forwarded_packets_total", w0), fwd);
    assert_eq!(value(&m, "pmdlb_connection_table_entries", w0), total_flows);
    assert_eq!(value(&m, "pmdlb_connection_table_capacity", w0), 4096);
    // Static MACs are resolved.
    for (_, addr, _) in SERVERS {
        let l = format!(r#"{{remote_address="{addr}",state="resolved"}}"#);
        assert_eq!(value(&m, "pmdlb_neighbour_state", &l), 1);
    }
}
