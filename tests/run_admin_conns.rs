//! `pmdlb admin -L -c -n` against the real `pmdlb run` on `net_pcap`.
//!
//! Known TCP and UDP flows (IPv4 and IPv6, one persistent service) are
//! fed once from `in.pcap` (no `infinite_rx`, so their entries stay); once
//! pmdlb has received every frame the listing is taken, then pmdlb is
//! stopped and `out.pcap` decoded with etherparse, which says — by the
//! destination MAC of each forwarded frame — which real server every flow
//! went to. Each flow must appear in the listing exactly once with its
//! protocol, state, client, virtual and destination address, the
//! persistent flows' templates (a port service's and a fwmark service's)
//! with IPVS's template fields, and nothing else. Expected lines are built from ipvsadm's `print_conn`
//! format string (`"%-3s %-6s %-11s %-18s %-18s %s\n"`), never from
//! pmdlb's formatter; the expiry column is parsed and bounded.

mod common;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use common::running::{mac_str, parse_counters, pmdlb, read_pcap, write_pcap, Running};
use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TransportSlice};

/// MAC of the first net_pcap device (fixed in DPDK 22.11).
const PORT_MAC: [u8; 6] = [0x02, 0x70, 0x63, 0x61, 0x70, 0x00];
const ROUTER_MAC: [u8; 6] = [0x02, 0xaa, 0, 0, 0, 0x01];

const VIP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 100);
const VIP2: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 200);
const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x100);

/// Real servers: (address, MAC, service tag).
const SERVERS: &[(&str, [u8; 6], &str)] = &[
    ("10.0.3.31", [2, 0, 0, 0, 3, 31], "tcp8080"),
    ("10.0.3.32", [2, 0, 0, 0, 3, 32], "tcp8080"),
    ("10.0.2.21", [2, 0, 0, 0, 2, 21], "udp53"),
    ("10.0.2.22", [2, 0, 0, 0, 2, 22], "udp53"),
    ("10.0.4.41", [2, 0, 0, 0, 4, 41], "persist80"),
    ("10.0.4.42", [2, 0, 0, 0, 4, 42], "persist80"),
    ("2001:db8:1::51", [2, 0, 0, 0, 5, 51], "v6"),
    ("2001:db8:1::52", [2, 0, 0, 0, 5, 52], "v6"),
    ("10.0.1.11", [2, 0, 0, 0, 1, 11], "fwm1"),
];

fn servers_toml(tag: &str) -> String {
    SERVERS
        .iter()
        .filter(|s| s.2 == tag)
        .map(|s| {
            format!(
                "[[service.server]]\naddr = \"{}\"\nmac = \"{}\"\n",
                s.0,
                mac_str(&s.1)
            )
        })
        .collect()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Seg {
    Syn,
    Ack,
    Fin,
}

/// One crafted flow: its packets and the state its entry must show.
struct Flow {
    client: IpAddr,
    cport: u16,
    vip: IpAddr,
    vport: u16,
    udp: bool,
    segs: &'static [Seg],
    state: &'static str,
    /// The state's timeout (s): the expiry must be at most this.
    timeout_s: u32,
}

fn flows() -> Vec<Flow> {
    let c = |s: &str| s.parse::<IpAddr>().unwrap();
    let tcp = |client: &str, cport, vip: IpAddr, vport, segs, state, timeout_s| Flow {
        client: c(client),
        cport,
        vip,
        vport,
        udp: false,
        segs,
        state,
        timeout_s,
    };
    let v4 = IpAddr::V4(VIP);
    vec![
        tcp("192.0.2.1", 40001, v4, 8080, &[Seg::Syn], "SYN_RECV", 60),
        tcp(
            "192.0.2.2",
            40002,
            v4,
            8080,
            &[Seg::Syn, Seg::Ack],
            "ESTABLISHED",
            900,
        ),
        tcp(
            "192.0.2.3",
            40003,
            v4,
            8080,
            &[Seg::Syn, Seg::Ack, Seg::Fin],
            "FIN_WAIT",
            120,
        ),
        Flow {
            udp: true,
            ..tcp("192.0.2.4", 5353, v4, 53, &[Seg::Ack], "UDP", 300)
        },
        Flow {
            udp: true,
            ..tcp("192.0.2.5", 5354, v4, 53, &[Seg::Ack, Seg::Ack], "UDP", 300)
        },
        tcp(
            "2001:db8:2::7",
            40007,
            IpAddr::V6(VIP6),
            80,
            &[Seg::Syn, Seg::Ack],
            "ESTABLISHED",
            900,
        ),
        tcp(
            "198.51.100.9",
            40009,
            IpAddr::V4(VIP2),
            80,
            &[Seg::Syn, Seg::Ack],
            "ESTABLISHED",
            900,
        ),
        // fwmark 1 (TCP 443 of the VIP), persistent
        tcp("203.0.113.5", 40010, v4, 443, &[Seg::Syn], "SYN_RECV", 60),
    ]
}

fn frame(f: &Flow, seg: Seg) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(ROUTER_MAC, PORT_MAC);
    let b = match (f.client, f.vip) {
        (IpAddr::V4(s), IpAddr::V4(d)) => b.ipv4(s.octets(), d.octets(), 64),
        (IpAddr::V6(s), IpAddr::V6(d)) => b.ipv6(s.octets(), d.octets(), 64),
        _ => panic!("mixed families"),
    };
    let mut out = Vec::new();
    if f.udp {
        b.udp(f.cport, f.vport).write(&mut out, b"query").unwrap();
    } else {
        let t = b.tcp(f.cport, f.vport, 1000, 64240);
        let t = match seg {
            Seg::Syn => t.syn(),
            Seg::Ack => t.ack(1),
            Seg::Fin => t.ack(1).fin(),
        };
        t.write(&mut out, &[]).unwrap();
    }
    out
}

/// `addr:port` as ipvsadm's `addrport_to_anyname` prints it numerically.
fn sockaddr(a: IpAddr, port: u16) -> String {
    match a {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}

/// ipvsadm's `print_conn` line.
fn conn_line(proto: &str, expire: &str, state: &str, c: &str, v: &str, d: &str) -> String {
    format!("{proto:<3} {expire:<6} {state:<11} {c:<18} {v:<18} {d}")
}

/// Seconds of an `MM:SS` expiry column.
fn expire_secs(s: &str) -> u32 {
    let (m, sec) = s.split_once(':').unwrap_or_else(|| panic!("expiry {s:?}"));
    assert_eq!(
        (m.len(), sec.len()),
        (2, 2),
        "expiry {s:?} is not %02d:%02d"
    );
    let (m, sec): (u32, u32) = (m.parse().unwrap(), sec.parse().unwrap());
    assert!(sec < 60, "expiry {s:?}");
    m * 60 + sec
}

/// Which server each flow went to, by the destination MAC of its
/// forwarded frames in `out.pcap` (decoded with etherparse).
fn servers_used(out: &[Vec<u8>]) -> HashMap<(IpAddr, u16), &'static str> {
    let mut m = HashMap::new();
    for f in out {
        let Some(srv) = SERVERS.iter().find(|s| f[0..6] == s.1) else {
            continue; // ARP, gratuitous announcements
        };
        let p = SlicedPacket::from_ethernet(f).expect("a forwarded frame parses");
        let src: IpAddr = match &p.net {
            Some(NetSlice::Ipv4(ip)) => IpAddr::V4(ip.header().source_addr()),
            Some(NetSlice::Ipv6(ip)) => IpAddr::V6(ip.header().source_addr()),
            _ => panic!("forwarded frame without IP"),
        };
        let sport = match &p.transport {
            Some(TransportSlice::Tcp(t)) => t.source_port(),
            Some(TransportSlice::Udp(u)) => u.source_port(),
            _ => panic!("forwarded frame without TCP/UDP"),
        };
        let prev = m.insert((src, sport), srv.0);
        assert!(
            prev.map_or(true, |p| p == srv.0),
            "flow {src}:{sport} went to two servers"
        );
    }
    m
}

#[test]
fn admin_lists_connections_and_templates() {
    let prefix = common::file_prefix("admin-conns");
    let dir = common::scratch("admin-conns");
    let (inp, outp, cfg) = (
        dir.join("in.pcap"),
        dir.join("out.pcap"),
        dir.join("pmdlb.toml"),
    );
    let flows = flows();
    let frames: Vec<Vec<u8>> = flows
        .iter()
        .flat_map(|f| f.segs.iter().map(move |&s| frame(f, s)))
        .collect();
    write_pcap(&inp, &frames);
    let text = format!(
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
persistence = 4096

[neighbours]
gratuitous_arp = false

[[vip]]
addr = "{VIP}"
arp = true

[[vip]]
addr = "{VIP2}"
arp = true

[[vip]]
addr = "{VIP6}"
arp = true

[[mark]]
dst = "{VIP}"
proto = "tcp"
ports = [443]
mark = 1

[[service]]
fwmark = 1
scheduler = "rr"
persistent = 60
{fwm1}
[[service]]
vip = "{VIP}"
port = 8080
proto = "tcp"
scheduler = "rr"
{tcp8080}
[[service]]
vip = "{VIP}"
port = 53
proto = "udp"
scheduler = "rr"
{udp53}
[[service]]
vip = "{VIP2}"
port = 80
proto = "tcp"
scheduler = "rr"
persistent = 60
{persist80}
[[service]]
vip = "{VIP6}"
port = 80
proto = "tcp"
scheduler = "rr"
{v6}"#,
        inp = inp.display(),
        outp = outp.display(),
        tcp8080 = servers_toml("tcp8080"),
        udp53 = servers_toml("udp53"),
        persist80 = servers_toml("persist80"),
        v6 = servers_toml("v6"),
        fwm1 = servers_toml("fwm1"),
    );
    std::fs::write(&cfg, text).unwrap();

    let mut run = Running::spawn(cfg.clone(), prefix, dir);
    let want = frames.len() as u64;
    run.wait_until(Duration::from_secs(20), "every frame received", |r| {
        let c = parse_counters(&r.ctl(&["stats"])?);
        (c.get("rx").copied().unwrap_or(0) >= want && c.get("forwarded") == Some(&want))
            .then_some(())
    });

    // The listing, while the entries live. Bounded: the server answers
    // within its 2 s dump bound, the client gives up after 30 s.
    let mut admin = pmdlb()
        .args(["admin", "--config"])
        .arg(&cfg)
        .args(["-L", "-c", "-n"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = common::running::reader(admin.stdout.take().unwrap());
    let err = common::running::reader(admin.stderr.take().unwrap());
    let st =
        common::running::wait_bounded(&mut admin, Duration::from_secs(40), "pmdlb admin -L -c");
    let (listing, notes) = (out.join().unwrap(), err.join().unwrap());
    assert!(
        st.success(),
        "pmdlb admin -L -c -n: {st}\n{listing}\n{notes}"
    );
    assert_eq!(notes, "", "no truncation or lateness notes expected");
    eprintln!("{listing}");

    // `--persistent-conn` changes the title only (no pe data).
    let pc = pmdlb()
        .args(["admin", "--config"])
        .arg(&cfg)
        .args(["-L", "-c", "-n", "--persistent-conn"])
        .output()
        .unwrap();
    assert!(pc.status.success());
    let pc = String::from_utf8(pc.stdout).unwrap();

    let stopped = run.stop();
    assert_eq!(stopped.status.code(), Some(0), "{}", stopped.text());
    let used = servers_used(&read_pcap(&outp));
    drop(stopped);

    // "IPVS connection entries\n" and "pro expire %-11s %-18s %-18s %s\n"
    let mut lines = listing.lines();
    assert_eq!(lines.next(), Some("IPVS connection entries"), "{listing}");
    let title = format!(
        "pro expire {:<11} {:<18} {:<18} {}",
        "state", "source", "virtual", "destination"
    );
    assert_eq!(lines.next(), Some(title.as_str()), "{listing}");
    let mut rows: Vec<&str> = lines.collect();

    // One row per expected entry: its columns but the expiry equal, the
    // expiry within bounds, and the whole line as print_conn pads it.
    let mut take = |want: [String; 5], max_s: u32, min_s: u32| {
        let i = rows
            .iter()
            .position(|l| {
                let c: Vec<&str> = l.split_whitespace().collect();
                c.len() == 6
                    && [c[0], c[2], c[3], c[4], c[5]] == want.each_ref().map(|s| s.as_str())
            })
            .unwrap_or_else(|| panic!("no row for {want:?} in\n{listing}"));
        let line = rows.remove(i);
        let c: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(line, conn_line(c[0], c[1], c[2], c[3], c[4], c[5]));
        let exp = expire_secs(c[1]);
        assert!(
            (min_s..=max_s).contains(&exp),
            "{line:?}: expiry {exp} s not in {min_s}..={max_s}"
        );
    };
    for f in &flows {
        let proto = if f.udp { "UDP" } else { "TCP" };
        let dest = used
            .get(&(f.client, f.cport))
            .unwrap_or_else(|| panic!("flow {}:{} not forwarded", f.client, f.cport));
        let dest: IpAddr = dest.parse().unwrap();
        let want = [
            proto.to_owned(),
            f.state.to_owned(),
            sockaddr(f.client, f.cport),
            sockaddr(f.vip, f.vport),
            sockaddr(dest, f.vport),
        ];
        // the test takes well under 60 s from the packets to the listing
        take(want, f.timeout_s, f.timeout_s.saturating_sub(60));
    }
    // The persistent flow's template (ip_vs_sched_persist): the service's
    // protocol, client /32 with port 0, the VIP and port, the server at
    // the service's port, state NONE; held by the connection, so at least
    // the persistence timeout.
    let pflow = flows.iter().find(|f| f.vip == IpAddr::V4(VIP2)).unwrap();
    let pdest: IpAddr = used[&(pflow.client, pflow.cport)].parse().unwrap();
    take(
        [
            "TCP".to_owned(),
            "NONE".to_owned(),
            sockaddr(pflow.client, 0),
            sockaddr(pflow.vip, 80),
            sockaddr(pdest, 80),
        ],
        60,
        60,
    );
    // The fwmark template: protocol IP, the mark as the virtual address,
    // every port 0.
    let fflow = flows.iter().find(|f| f.vport == 443).unwrap();
    take(
        [
            "IP".to_owned(),
            "NONE".to_owned(),
            sockaddr(fflow.client, 0),
            "0.0.0.1:0".to_owned(),
            "10.0.1.11:0".to_owned(),
        ],
        60,
        60,
    );
    assert!(rows.is_empty(), "unexpected rows: {rows:?}\n{listing}");

    let pc_title = format!(
        "pro expire {:<11} {:<18} {:<18} {:<18} {:<16} {}",
        "state", "source", "virtual", "destination", "pe name", "pe_data"
    );
    let mut pcl = pc.lines();
    assert_eq!(pcl.next(), Some("IPVS connection entries"));
    assert_eq!(pcl.next(), Some(pc_title.as_str()), "{pc}");
    assert_eq!(pcl.count(), flows.len() + 2, "{pc}");
}
