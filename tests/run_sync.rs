//! Sync under load: two real `pmdlb run` instances, unicast IPVS sync over
//! 127.0.0.1.
//!
//! Instance A (role master) reads many UDP flows once from `net_pcap`
//! (each flow 4 packets, so IPVS's threshold 3 sends it exactly once; a
//! persistent service's flows also send their templates) and forwards to
//! `net_null`. It sends to instance B (role backup, idle on `net_null`
//! with no RX) and to this test, which keeps every datagram and has
//! **tshark**'s IPVS dissector decode them (syncid, record counts, the
//! flows' addresses and ports). Checked on B: every flow installed exactly
//! once (its worker's `sync_installed` is the number of distinct flows;
//! `pmdlb admin -L -c -n` lists each flow once, on the real server A's
//! listing shows), every template in B's table, A's records sent equal
//! B's received (loss printed), records per second printed.
//!
//! Then malformed datagrams, built here by hand from the kernel's header
//! layout (`struct ip_vs_sync_mesg`, `struct ip_vs_sync_v4`), go to B:
//! each is counted under its reason and none is installed. B's `/metrics`
//! passes `promtool check metrics`.

mod common;

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::running::{mac_str, parse_counters, pmdlb, wait_bounded, write_pcap, Running};
use etherparse::PacketBuilder;

const PORT_MAC: [u8; 6] = [0x02, 0x70, 0x63, 0x61, 0x70, 0x00];
const ROUTER_MAC: [u8; 6] = [0x02, 0xaa, 0, 0, 0, 0x01];
const VIP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 100);
const SYNCID: u8 = 9;
/// Flows of the plain UDP service (port 53).
const FLOWS: u32 = 20_000;
/// Flows of the persistent UDP service (port 5060), each from its own
/// client, so one template each.
const PERSISTENT: u32 = 200;
const PACKETS_PER_FLOW: u32 = 4;

const DNS_SERVERS: [&str; 4] = ["10.0.1.1", "10.0.1.2", "10.0.1.3", "10.0.1.4"];
const SIP_SERVERS: [&str; 2] = ["10.0.2.1", "10.0.2.2"];

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Flow {
    client: Ipv4Addr,
    cport: u16,
    vport: u16,
}

fn flows() -> Vec<Flow> {
    let mut v = Vec::new();
    for i in 0..FLOWS {
        v.push(Flow {
            client: Ipv4Addr::new(172, 16, (i / 200) as u8, (i % 200 + 1) as u8),
            cport: 10_000 + (i % 7) as u16,
            vport: 53,
        });
    }
    for i in 0..PERSISTENT {
        v.push(Flow {
            client: Ipv4Addr::new(192, 168, (i / 250) as u8, (i % 250 + 1) as u8),
            cport: 5060,
            vport: 5060,
        });
    }
    v
}

fn frame(f: &Flow) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2(ROUTER_MAC, PORT_MAC)
        .ipv4(f.client.octets(), VIP.octets(), 64)
        .udp(f.cport, f.vport)
        .write(&mut out, b"query")
        .unwrap();
    out
}

fn servers_toml(list: &[&str]) -> String {
    list.iter()
        .map(|a| {
            let o: Ipv4Addr = a.parse().unwrap();
            let mac = [2, 0, 0, 0, o.octets()[2], o.octets()[3]];
            format!(
                "[[service.server]]\naddr = \"{a}\"\nmac = \"{}\"\n",
                mac_str(&mac)
            )
        })
        .collect()
}

fn services_toml() -> String {
    format!(
        "[[service]]\nvip = \"{VIP}\"\nport = 53\nproto = \"udp\"\nscheduler = \"rr\"\n{}\
         [[service]]\nvip = \"{VIP}\"\nport = 5060\nproto = \"udp\"\nscheduler = \"rr\"\npersistent = 120\n{}",
        servers_toml(&DNS_SERVERS),
        servers_toml(&SIP_SERVERS)
    )
}

fn config(prefix: &str, vdevs: &str, ports: &str, extra: &str) -> String {
    format!(
        r#"[eal]
lcores = "0-1"
hugepages = false
memory_mb = 256
file_prefix = "{prefix}"
vdevs = [{vdevs}]
extra_args = ["--no-telemetry"]

[ports]
{ports}
rx_desc = 1024
tx_desc = 1024
mbufs = 8191
mbuf_cache = 128

[workers]
count = 1
stats_interval_s = 0

[tables]
connections = 65536
persistence = 4096

[neighbours]
gratuitous_arp = false

{extra}
{services}"#,
        services = services_toml()
    )
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `name value` rows of `pmdlb ctl sync`.
fn sync_counters(text: &str) -> HashMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let (name, v) = (w.next()?, w.next()?);
            Some((name.to_owned(), v.parse().ok()?))
        })
        .collect()
}

fn get(m: &HashMap<String, u64>, k: &str) -> u64 {
    *m.get(k)
        .unwrap_or_else(|| panic!("no counter {k} in {m:?}"))
}

/// `pmdlb admin --config cfg -L -c -n`: (client, cport, vport) → server
/// of the connection rows, and the template rows' (client, vport) →
/// server. Panics on a flow listed twice.
type Listing = (
    HashMap<(String, u16, u16), String>,
    HashMap<(String, u16), String>,
);

fn listing(cfg: &Path) -> Listing {
    let mut admin = pmdlb()
        .args(["admin", "--config"])
        .arg(cfg)
        .args(["-L", "-c", "-n"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = common::running::reader(admin.stdout.take().unwrap());
    let err = common::running::reader(admin.stderr.take().unwrap());
    let st = wait_bounded(&mut admin, Duration::from_secs(40), "pmdlb admin -L -c");
    let (text, notes) = (out.join().unwrap(), err.join().unwrap());
    assert!(st.success(), "admin -L -c -n: {st}\n{notes}");
    assert_eq!(notes, "", "no truncation notes expected");
    let (mut conns, mut tpls) = (HashMap::new(), HashMap::new());
    for l in text.lines().skip(2) {
        let c: Vec<&str> = l.split_whitespace().collect();
        assert_eq!(c.len(), 6, "{l:?}");
        let split = |s: &str| {
            let (a, p) = s.rsplit_once(':').unwrap();
            (a.to_owned(), p.parse::<u16>().unwrap())
        };
        let ((ca, cp), (_, vp), (da, _)) = (split(c[3]), split(c[4]), split(c[5]));
        if c[2] == "NONE" {
            assert!(tpls.insert((ca, vp), da).is_none(), "template twice: {l}");
        } else {
            assert_eq!(c[2], "UDP", "{l}");
            let k = (ca, cp, vp);
            assert!(conns.insert(k, da).is_none(), "connection twice: {l}");
        }
    }
    (conns, tpls)
}

/// The datagrams as a pcap for tshark, then its IPVS dissector's fields:
/// one row per datagram (syncid, conncount, then each field's values).
fn tshark_rows(dir: &Path, datagrams: &[Vec<u8>], port: u16) -> Vec<Vec<String>> {
    let frames: Vec<Vec<u8>> = datagrams
        .iter()
        .map(|d| {
            let mut out = Vec::new();
            PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
                .ipv4([127, 0, 0, 1], [127, 0, 0, 1], 1)
                .udp(40000, port)
                .write(&mut out, d)
                .unwrap();
            out
        })
        .collect();
    let file = dir.join("sync.pcap");
    write_pcap(&file, &frames);
    let out = Command::new("tshark")
        .arg("-r")
        .arg(&file)
        .args(["-d", &format!("udp.port=={port},ipvs"), "-T", "fields"])
        .args(["-e", "ipvs.syncid", "-e", "ipvs.conncount"])
        .args(["-e", "ipvs.caddr", "-e", "ipvs.cport"])
        .args(["-e", "ipvs.vaddr", "-e", "ipvs.vport"])
        .args(["-e", "ipvs.daddr", "-e", "ipvs.flags.v1"])
        .args(["-E", "separator=/t", "-E", "aggregator=,"])
        .output()
        .expect("tshark (Debian package tshark)");
    assert!(
        out.status.success(),
        "tshark: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split('\t').map(str::to_owned).collect())
        .collect()
}

fn scrape(addr: SocketAddr) -> String {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text.split_once("\r\n\r\n")
        .expect("an HTTP answer")
        .1
        .to_owned()
}

fn promtool_ok(body: &str) {
    let mut p = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus)");
    p.stdin.take().unwrap().write_all(body.as_bytes()).unwrap();
    let o = p.wait_with_output().unwrap();
    assert!(
        o.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

// ---- hand-built datagrams, from the kernel's layout ----------------------
// struct ip_vs_sync_mesg: u8 reserved, u8 syncid, __be16 size, u8 nr_conns,
// s8 version, u16 spare. struct ip_vs_sync_v4: u8 type, u8 protocol,
// __be16 ver_size, __be32 flags, __be16 state, __be16 cport, vport, dport,
// __be32 fwmark, __be32 timeout, __be32 caddr, vaddr, daddr.

const IP_VS_CONN_F_DROUTE: u32 = 0x0003;
const IP_VS_CONN_F_NOOUTPUT: u32 = 0x0080;
const IP_VS_CONN_F_TEMPLATE: u32 = 0x1000;

fn header(syncid: u8, size: u16, nr_conns: u8) -> Vec<u8> {
    let mut h = vec![0u8, syncid];
    h.extend(size.to_be_bytes());
    h.extend([nr_conns, 1]);
    h.extend([0u8, 0]);
    h
}

/// A v4 record of `36 + opts.len()` bytes (opts already padded by the
/// caller to the length it wants).
fn record(
    flags: u32,
    client: [u8; 4],
    cport: u16,
    vaddr: [u8; 4],
    vport: u16,
    opts: &[u8],
) -> Vec<u8> {
    let size = 36 + opts.len() as u16;
    let mut r = vec![0u8, 17];
    r.extend(size.to_be_bytes());
    r.extend(flags.to_be_bytes());
    r.extend(0u16.to_be_bytes()); // IP_VS_UDP_S_NORMAL / CTPL_S_NONE
    r.extend(cport.to_be_bytes());
    r.extend(vport.to_be_bytes());
    r.extend(vport.to_be_bytes());
    r.extend(0u32.to_be_bytes());
    r.extend(300u32.to_be_bytes());
    r.extend(client);
    r.extend(vaddr);
    r.extend([10, 0, 1, 1]);
    r.extend(opts);
    r
}

fn message(syncid: u8, records: &[Vec<u8>]) -> Vec<u8> {
    let mut body = Vec::new();
    for r in records {
        body.extend(r);
        while body.len() % 4 != 0 {
            body.push(0);
        }
    }
    let mut m = header(syncid, (8 + body.len()) as u16, records.len() as u8);
    m.extend(body);
    m
}

const CONN: u32 = IP_VS_CONN_F_DROUTE | IP_VS_CONN_F_NOOUTPUT;

/// Each malformed datagram and the B counter it must land on.
fn malformed() -> Vec<(&'static str, Vec<u8>)> {
    let vip = VIP.octets();
    let good = |client: u8| record(CONN, [198, 51, 100, client], 7000, vip, 53, &[]);
    // size field one more than the datagram
    let mut size = message(SYNCID, &[good(1)]);
    let wrong = (size.len() as u16 + 4).to_be_bytes();
    size[2..4].copy_from_slice(&wrong);
    // a version-0 message: first byte is its connection count
    let mut v0 = message(SYNCID, &[good(3)]);
    v0[0] = 1;
    v0[5] = 0;
    // a truncated second record: record 0 carries a skippable 24-byte
    // option (type 0x40|5), record 1 starts with 20 bytes left
    let mut skip = vec![0x45u8, 22];
    skip.extend([0u8; 22]);
    let mut trunc = message(
        SYNCID,
        &[record(CONN, [198, 51, 100, 4], 7000, vip, 53, &skip)],
    );
    trunc.extend(&good(5)[..20]);
    trunc[4] = 2;
    let n = trunc.len() as u16;
    trunc[2..4].copy_from_slice(&n.to_be_bytes());
    // an unknown mandatory option (type 5 without 0x40)
    let unknown = message(
        SYNCID,
        &[record(
            CONN,
            [198, 51, 100, 6],
            7000,
            vip,
            53,
            &[5, 2, 0, 0],
        )],
    );
    let no_service = message(
        SYNCID,
        &[record(
            CONN,
            [198, 51, 100, 7],
            7000,
            [10, 9, 9, 9],
            53,
            &[],
        )],
    );
    let tpl_not_persistent = message(
        SYNCID,
        &[record(
            CONN | IP_VS_CONN_F_TEMPLATE,
            [198, 51, 100, 8],
            0,
            vip,
            53,
            &[],
        )],
    );
    vec![
        ("datagrams_dropped.size_mismatch", size),
        ("datagrams_dropped.syncid", message(SYNCID + 1, &[good(2)])),
        ("datagrams_dropped.not_version1", v0),
        ("datagrams_dropped.record_truncated", trunc),
        ("records_dropped.unknown_mandatory_option", unknown),
        ("records_not_installed.no_service", no_service),
        ("records_not_installed.not_persistent", tpl_not_persistent),
    ]
}

#[test]
fn sync_under_load_and_malformed_datagrams() {
    let dir_a = common::scratch("sync-a");
    let dir_b = common::scratch("sync-b");
    let (prefix_a, prefix_b) = (common::file_prefix("sync-a"), common::file_prefix("sync-b"));
    let flows = flows();
    let mut frames = Vec::new();
    for _ in 0..PACKETS_PER_FLOW {
        frames.extend(flows.iter().map(frame));
    }
    let inp = dir_a.join("in.pcap");
    write_pcap(&inp, &frames);

    // The test's own peer: keeps every datagram A sends.
    let tap = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
    tap.set_recv_buffer_size(4 << 20).unwrap();
    tap.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    let tap: UdpSocket = tap.into();
    tap.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let tap_port = tap.local_addr().unwrap().port();
    let port_b = free_udp_port();
    let metrics_b: SocketAddr = format!("127.0.0.1:{}", free_tcp_port()).parse().unwrap();

    // B first: it must be listening before A sends.
    let cfg_b = dir_b.join("b.toml");
    std::fs::write(
        &cfg_b,
        config(
            &prefix_b,
            "\"net_null0,no-rx=1\"",
            "rx = \"net_null0\"",
            &format!(
                "[metrics]\nlisten = \"{metrics_b}\"\n\n[sync]\nrole = \"backup\"\nsyncid = {SYNCID}\n\
                 port = {port_b}\npeers = [\"127.0.0.1:{tap_port}\"]\nring = 32768\n"
            ),
        ),
    )
    .unwrap();
    let mut b = Running::spawn(cfg_b.clone(), prefix_b, dir_b);
    b.wait_until(Duration::from_secs(20), "B's sync daemon up", |r| {
        r.ctl(&["sync"])
            .filter(|t| t.contains("backup sync daemon"))
    });
    let (code, daemon) = {
        let o = pmdlb()
            .args(["admin", "--config"])
            .arg(&cfg_b)
            .args(["-L", "--daemon"])
            .output()
            .unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
        )
    };
    // ipvsadm's "backup sync daemon (mcast=%s, syncid=%d" then the
    // optional maxlen/port/ttl parts (unicast: no group).
    assert_eq!(code, Some(0));
    assert_eq!(
        daemon,
        format!(
            "backup sync daemon (mcast=, syncid={SYNCID}, maxlen=1472, port={port_b}, ttl=1, peers=127.0.0.1:{tap_port})\n"
        )
    );

    let cfg_a = dir_a.join("a.toml");
    let vdevs_a = format!(
        "\"net_pcap0,rx_pcap={}\", \"net_null0,no-rx=1\"",
        inp.display()
    );
    std::fs::write(
        &cfg_a,
        config(
            &prefix_a,
            &vdevs_a,
            "rx = \"net_pcap0\"\ntx = \"net_null0\"",
            &format!(
                "[sync]\nrole = \"master\"\nsyncid = {SYNCID}\nflush_ms = 20\nring = 32768\n\
                 peers = [\"127.0.0.1:{port_b}\", \"127.0.0.1:{tap_port}\"]\n"
            ),
        ),
    )
    .unwrap();
    let t0 = Instant::now();
    let mut a = Running::spawn(cfg_a.clone(), prefix_a, dir_a);

    // A's datagrams as they come, until A has forwarded everything and
    // the tap holds every record A counts as sent.
    let want_records = u64::from(FLOWS + 2 * PERSISTENT);
    let mut datagrams = Vec::new();
    let mut buf = vec![0u8; 65536];
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut a_sync = HashMap::new();
    let (mut first_seen, mut last_seen) = (None, Instant::now());
    loop {
        while let Ok((n, _)) = tap.recv_from(&mut buf) {
            last_seen = Instant::now();
            first_seen.get_or_insert(last_seen);
            datagrams.push(buf[..n].to_vec());
        }
        let got: u64 = datagrams.iter().map(|d| u64::from(d[4])).sum();
        if let Some(t) = a.ctl(&["sync"]) {
            a_sync = sync_counters(&t);
            if got >= want_records
                && get(&a_sync, "records_sent.conn") + get(&a_sync, "records_sent.template") == got
            {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "tap got {got} records of {want_records}; A: {a_sync:?}"
        );
    }
    let sent = get(&a_sync, "records_sent.conn") + get(&a_sync, "records_sent.template");
    assert_eq!(
        get(&a_sync, "records_sent.conn"),
        u64::from(FLOWS + PERSISTENT)
    );
    assert_eq!(get(&a_sync, "records_sent.template"), u64::from(PERSISTENT));
    assert_eq!(get(&a_sync, "send_errors"), 0);
    let want_fwd = frames.len() as u64;
    a.wait_until(Duration::from_secs(20), "A forwarded every frame", |r| {
        let c = parse_counters(&r.ctl(&["stats"])?);
        (c.get("forwarded") == Some(&want_fwd)).then_some(())
    });

    // B received and installed all of it.
    let b_sync = b.wait_until(Duration::from_secs(20), "B received every record", |r| {
        let m = sync_counters(&r.ctl(&["sync"])?);
        (get(&m, "records_received") >= sent).then_some(m)
    });
    let first = first_seen.unwrap_or(t0);
    let span = last_seen
        .duration_since(first)
        .max(Duration::from_micros(1));
    let elapsed = first.elapsed();
    let received = get(&b_sync, "records_received");
    println!(
        "sync: A sent {sent} records in {} datagrams per peer; B received {received} (lost {}); \
         A's send rate {:.0} records/s (first to last datagram at the tap, {:.1} ms); \
         B done within {:.1} ms of the first datagram ({:.0} records/s, ctl polling included)",
        get(&a_sync, "datagrams_sent") / 2,
        sent.saturating_sub(received),
        sent as f64 / span.as_secs_f64(),
        span.as_secs_f64() * 1e3,
        elapsed.as_secs_f64() * 1e3,
        received as f64 / elapsed.as_secs_f64(),
    );
    assert_eq!(received, sent, "loopback with 4 MiB buffers loses nothing");
    assert_eq!(get(&b_sync, "conns_handed"), u64::from(FLOWS + PERSISTENT));
    assert_eq!(get(&b_sync, "templates_installed"), u64::from(PERSISTENT));
    assert_eq!(get(&b_sync, "install_ring_full"), 0);
    let b_installed = b.wait_until(
        Duration::from_secs(10),
        "B's worker installed every flow",
        |r| {
            let c = parse_counters(&r.ctl(&["stats"])?);
            let n = c.get("sync_installed").copied().unwrap_or(0);
            (n >= u64::from(FLOWS + PERSISTENT)).then_some(c)
        },
    );
    assert_eq!(
        b_installed.get("sync_installed"),
        Some(&u64::from(FLOWS + PERSISTENT)),
        "each distinct flow installed once: {b_installed:?}"
    );

    // Independent decode of A's datagrams.
    let rows = tshark_rows(a.dir(), &datagrams, tap_port);
    assert_eq!(rows.len(), datagrams.len());
    let mut decoded = HashSet::new();
    let (mut tshark_records, mut templates) = (0u64, 0u64);
    for r in &rows {
        assert_eq!(r[0], SYNCID.to_string(), "syncid: {r:?}");
        let count: usize = r[1].parse().unwrap();
        tshark_records += count as u64;
        let col = |i: usize| r[i].split(',').collect::<Vec<_>>();
        let (ca, cp, va, vp, flags) = (col(2), col(3), col(4), col(5), col(7));
        assert_eq!(ca.len(), count, "{r:?}");
        for k in 0..count {
            assert_eq!(va[k], VIP.to_string());
            let f: u32 = match flags[k].strip_prefix("0x") {
                Some(h) => u32::from_str_radix(h, 16).unwrap(),
                None => flags[k].parse().unwrap(),
            };
            if f & IP_VS_CONN_F_TEMPLATE != 0 {
                templates += 1;
                assert_eq!(cp[k], "0", "a template has no client port");
                continue;
            }
            let fl = Flow {
                client: ca[k].parse().unwrap(),
                cport: cp[k].parse().unwrap(),
                vport: vp[k].parse().unwrap(),
            };
            assert!(decoded.insert(fl), "{fl:?} sent twice");
        }
    }
    assert_eq!(tshark_records, sent);
    assert_eq!(templates, u64::from(PERSISTENT));
    let all: HashSet<Flow> = flows.iter().copied().collect();
    assert_eq!(decoded, all, "tshark sees every flow of the pcap, once");

    // Same servers on both directors.
    let (conns_a, _) = listing(&cfg_a);
    let (conns_b, tpls_b) = listing(&cfg_b);
    assert_eq!(conns_b.len(), flows.len(), "B lists every flow once");
    for (k, rs) in &conns_b {
        assert_eq!(conns_a.get(k), Some(rs), "flow {k:?}: B's server is A's");
    }
    assert_eq!(tpls_b.len(), PERSISTENT as usize);
    let a_stopped = a.stop();
    assert_eq!(a_stopped.status.code(), Some(0), "{}", a_stopped.text());
    drop(a_stopped);

    // Malformed datagrams, each counted under its reason on B.
    let before = sync_counters(&b.ctl(&["sync"]).unwrap());
    let cases = malformed();
    let to_b: SocketAddr = format!("127.0.0.1:{port_b}").parse().unwrap();
    for (_, d) in &cases {
        tap.send_to(d, to_b).unwrap();
    }
    let want_dgrams = get(&before, "datagrams_received") + cases.len() as u64;
    let after = b.wait_until(
        Duration::from_secs(10),
        "B read the malformed datagrams",
        |r| {
            let m = sync_counters(&r.ctl(&["sync"])?);
            (get(&m, "datagrams_received") >= want_dgrams).then_some(m)
        },
    );
    for (reason, _) in &cases {
        assert_eq!(
            get(&after, reason) - get(&before, reason),
            1,
            "{reason}: {after:?}"
        );
    }
    for k in ["conns_handed", "templates_installed", "install_ring_full"] {
        assert_eq!(get(&after, k), get(&before, k), "{k}: nothing installed");
    }
    let (conns_b2, tpls_b2) = listing(&cfg_b);
    assert_eq!(
        (conns_b2.len(), tpls_b2.len()),
        (flows.len(), PERSISTENT as usize)
    );
    assert!(conns_b2.keys().all(|k| !k.0.starts_with("198.51.100.")));

    // B's exposition (rendered once a second), as promtool reads it.
    let lines = [
        format!(
            "pmdlb_sync_records_received_total {}",
            get(&after, "records_received")
        ),
        "pmdlb_sync_datagrams_dropped_total{reason=\"syncid\"} 1".to_owned(),
        "pmdlb_sync_records_not_installed_total{reason=\"not_persistent\"} 1".to_owned(),
    ];
    let body = b.wait_until(
        Duration::from_secs(10),
        "B's metrics show the drops",
        |_| {
            let body = scrape(metrics_b);
            lines
                .iter()
                .all(|want| body.lines().any(|l| l == want))
                .then_some(body)
        },
    );
    promtool_ok(&body);
    let b_stopped = b.stop();
    assert_eq!(b_stopped.status.code(), Some(0), "{}", b_stopped.text());
}
