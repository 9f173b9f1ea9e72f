//! pcap in → pcap out through the real `pmdlb run` binary on `net_pcap`.
//!
//! Each scenario writes crafted frames (built with etherparse or by hand,
//! never with pmdlb's own `wire` module) to `in.pcap`, starts the binary with
//! its own file prefix and scratch directory, waits until its counters say
//! every frame was received, stops it with SIGTERM and decodes `out.pcap`
//! independently (etherparse, and plain byte offsets for ARP, which
//! etherparse 0.16 does not parse). Asserted: forwarded frames are
//! byte-identical to their input but for the MACs (and the tag, per
//! `tx_vlan`), go to a server of the right service, respect persistence,
//! fwmark grouping and connection stickiness; ARP/ND/echo replies are
//! correct; every drop is counted under its reason and nothing is left
//! unaccounted, leaked or left on disk.
//!
//! The scenarios share two cores, so they run one at a time (a lock here for
//! `cargo test`, the `pmdlb-pcap` test group in `.config/nextest.toml` for
//! nextest).

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::running::{mac_str, parse_counters, pmdlb, read_pcap, write_pcap};
use etherparse::{
    IcmpEchoHeader, Icmpv4Header, Icmpv4Type, IpNumber, Ipv4Header, NetSlice, PacketBuilder,
    SlicedPacket, TransportSlice,
};

/// MAC of the first net_pcap device (fixed in DPDK 22.11).
const PORT_MAC: [u8; 6] = [0x02, 0x70, 0x63, 0x61, 0x70, 0x00];
/// The router that hands client traffic to the director.
const ROUTER_MAC: [u8; 6] = [0x02, 0xaa, 0, 0, 0, 0x01];
/// A unicast MAC that is not the port's.
const OTHER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x99, 0x99];
const BROADCAST: [u8; 6] = [0xff; 6];

const VIP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 100);
const VIP2: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 200);
const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x100);

/// Scenarios run one at a time: both cores are needed by each.
static SERIAL: Mutex<()> = Mutex::new(());

/// A real server of one service, with its static MAC.
struct Server {
    svc: &'static str,
    addr: &'static str,
    mac: [u8; 6],
}

const fn mac(a: u8, b: u8) -> [u8; 6] {
    [0x02, 0, 0, 0, a, b]
}

/// Every real server; the MACs are distinct so a MAC names its service.
const SERVERS: &[Server] = &[
    Server {
        svc: "fwm1",
        addr: "10.0.1.11",
        mac: mac(1, 11),
    },
    Server {
        svc: "fwm1",
        addr: "10.0.1.12",
        mac: mac(1, 12),
    },
    Server {
        svc: "fwm1",
        addr: "10.0.1.13",
        mac: mac(1, 13),
    },
    Server {
        svc: "udp53",
        addr: "10.0.2.21",
        mac: mac(2, 21),
    },
    Server {
        svc: "udp53",
        addr: "10.0.2.22",
        mac: mac(2, 22),
    },
    Server {
        svc: "tcp8080",
        addr: "10.0.3.31",
        mac: mac(3, 31),
    },
    Server {
        svc: "tcp8080",
        addr: "10.0.3.32",
        mac: mac(3, 32),
    },
    Server {
        svc: "subnet",
        addr: "10.0.4.41",
        mac: mac(4, 41),
    },
    Server {
        svc: "subnet",
        addr: "10.0.4.42",
        mac: mac(4, 42),
    },
    Server {
        svc: "subnet",
        addr: "10.0.4.43",
        mac: mac(4, 43),
    },
    Server {
        svc: "v6",
        addr: "2001:db8:1::51",
        mac: mac(5, 51),
    },
    Server {
        svc: "v6",
        addr: "2001:db8:1::52",
        mac: mac(5, 52),
    },
];

fn server_by_mac(m: &[u8]) -> Option<&'static Server> {
    SERVERS.iter().find(|s| s.mac == m)
}

/// `[[service.server]]` tables of service `svc`.
fn servers_toml(svc: &str) -> String {
    SERVERS
        .iter()
        .filter(|s| s.svc == svc)
        .map(|s| {
            format!(
                "[[service.server]]\naddr = \"{}\"\nmac = \"{}\"\n",
                s.addr,
                mac_str(&s.mac)
            )
        })
        .collect()
}

/// The services of every scenario: a persistent fwmark service for TCP 80
/// and 443, UDP 53 (wlc), TCP 8080 (rr, not persistent), a second VIP with
/// /24 persistence, and an IPv6 service.
fn services_toml() -> String {
    format!(
        r#"
[[vip]]
addr = "{VIP}"
arp = true
ping = true

[[vip]]
addr = "{VIP6}"
arp = true
ping = true

[[mark]]
dst = "{VIP}"
proto = "tcp"
ports = [80, 443]
mark = 1

[[service]]
fwmark = 1
scheduler = "rr"
persistent = 60
{fwm1}
[[service]]
vip = "{VIP}"
port = 53
proto = "udp"
scheduler = "wlc"
{udp53}
[[service]]
vip = "{VIP}"
port = 8080
proto = "tcp"
scheduler = "rr"
{tcp8080}
[[service]]
vip = "{VIP2}"
port = 80
proto = "tcp"
scheduler = "rr"
persistent = 60
netmask = "/24"
{subnet}
[[service]]
vip = "{VIP6}"
port = 80
proto = "tcp"
scheduler = "rr"
{v6}"#,
        fwm1 = servers_toml("fwm1"),
        udp53 = servers_toml("udp53"),
        tcp8080 = servers_toml("tcp8080"),
        subnet = servers_toml("subnet"),
        v6 = servers_toml("v6"),
    )
}

// ---------------------------------------------------------------------------
// Building frames (etherparse for IP and above, Ethernet and ARP by hand).

/// An Ethernet header (with an optional 802.1Q tag) before `payload`.
fn eth(dst: [u8; 6], src: [u8; 6], tag: Option<u16>, ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(18 + payload.len());
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    if let Some(tci) = tag {
        f.extend_from_slice(&0x8100u16.to_be_bytes());
        f.extend_from_slice(&tci.to_be_bytes());
    }
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// TCP flags of a crafted segment.
#[derive(Clone, Copy)]
enum Tcp {
    Syn,
    Ack,
    Data,
    Fin,
}

/// Transport of a crafted IP packet.
#[derive(Clone, Copy)]
enum L4 {
    Tcp(u16, u16, Tcp),
    Udp(u16, u16),
}

/// An IPv4 or IPv6 packet built by etherparse (no Ethernet header).
fn ip_packet(src: IpAddr, dst: IpAddr, ttl: u8, l4: L4, payload: &[u8]) -> Vec<u8> {
    let b = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => PacketBuilder::ipv4(s.octets(), d.octets(), ttl),
        (IpAddr::V6(s), IpAddr::V6(d)) => PacketBuilder::ipv6(s.octets(), d.octets(), ttl),
        _ => panic!("mixed families"),
    };
    let mut out = Vec::new();
    match l4 {
        L4::Tcp(sp, dp, flags) => {
            let seq = 1000 + u32::from(sp);
            let t = b.tcp(sp, dp, seq, 64240);
            let t = match flags {
                Tcp::Syn => t.syn(),
                Tcp::Ack => t.ack(1),
                Tcp::Data => t.ack(1).psh(),
                Tcp::Fin => t.ack(1).fin(),
            };
            t.write(&mut out, payload).unwrap();
        }
        L4::Udp(sp, dp) => b.udp(sp, dp).write(&mut out, payload).unwrap(),
    }
    out
}

/// A client frame to the port MAC, from the router.
fn client_frame(tag: Option<u16>, src: IpAddr, dst: IpAddr, l4: L4, payload: &[u8]) -> Vec<u8> {
    let ethertype = if src.is_ipv4() { 0x0800 } else { 0x86dd };
    eth(
        PORT_MAC,
        ROUTER_MAC,
        tag,
        ethertype,
        &ip_packet(src, dst, 64, l4, payload),
    )
}

/// An IPv4 packet with a header shaped by `shape` (fragment fields,
/// options) before `payload`; etherparse computes the header checksum.
fn ipv4_raw(
    src: [u8; 4],
    dst: [u8; 4],
    proto: IpNumber,
    payload: &[u8],
    shape: impl FnOnce(&mut Ipv4Header),
) -> Vec<u8> {
    let mut h = Ipv4Header::new(payload.len() as u16, 64, proto, src, dst).unwrap();
    shape(&mut h);
    h.set_payload_len(payload.len()).unwrap();
    let mut out = Vec::new();
    h.write(&mut out).unwrap();
    out.extend_from_slice(payload);
    out
}

fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

/// An ARP request (who has `target`? tell `sender_ip`), padded to 60 bytes.
fn arp_request(
    tag: Option<u16>,
    sender_mac: [u8; 6],
    sender_ip: Ipv4Addr,
    target: Ipv4Addr,
) -> Vec<u8> {
    let mut a = Vec::new();
    a.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    a.extend_from_slice(&sender_mac);
    a.extend_from_slice(&sender_ip.octets());
    a.extend_from_slice(&[0; 6]);
    a.extend_from_slice(&target.octets());
    let mut f = eth(BROADCAST, sender_mac, tag, 0x0806, &a);
    let min = if tag.is_some() { 64 } else { 60 };
    f.resize(f.len().max(min), 0);
    f
}

/// The solicited-node multicast address of `a` and its MAC.
fn solicited_node(a: Ipv6Addr) -> (Ipv6Addr, [u8; 6]) {
    let o = a.octets();
    let mut m = [0xff02, 0, 0, 0, 0, 1, 0xff00 | u16::from(o[13]), 0];
    m[7] = u16::from_be_bytes([o[14], o[15]]);
    (
        Ipv6Addr::new(m[0], m[1], m[2], m[3], m[4], m[5], m[6], m[7]),
        [0x33, 0x33, 0xff, o[13], o[14], o[15]],
    )
}

/// A neighbour solicitation for `target` with a source link-layer option.
/// Duplicate address detection (source `::`) carries no such option.
fn neighbour_solicitation(src_mac: [u8; 6], src: Ipv6Addr, target: Ipv6Addr) -> Vec<u8> {
    let (dst, dst_mac) = solicited_node(target);
    let mut body = target.octets().to_vec();
    if !src.is_unspecified() {
        body.extend_from_slice(&[1, 1]);
        body.extend_from_slice(&src_mac);
    }
    let b = PacketBuilder::ipv6(src.octets(), dst.octets(), 255).icmpv6(
        etherparse::Icmpv6Type::Unknown {
            type_u8: 135,
            code_u8: 0,
            bytes5to8: [0; 4],
        },
    );
    let mut ip = Vec::new();
    b.write(&mut ip, &body).unwrap();
    eth(dst_mac, src_mac, None, 0x86dd, &ip)
}

// ---------------------------------------------------------------------------
// What each input frame should become.

/// A reply pmdlb must build.
#[derive(Clone, Debug)]
enum Reply {
    /// ARP reply for `vip` to the requester.
    Arp {
        tag: Option<u16>,
        req_mac: [u8; 6],
        req_ip: Ipv4Addr,
        vip: Ipv4Addr,
    },
    /// ICMP echo reply.
    Echo4 {
        client: Ipv4Addr,
        vip: Ipv4Addr,
        id: u16,
        seq: u16,
        payload: Vec<u8>,
    },
    /// ICMPv6 echo reply.
    Echo6 {
        client: Ipv6Addr,
        vip: Ipv6Addr,
        id: u16,
        seq: u16,
        payload: Vec<u8>,
    },
    /// Neighbour advertisement for `vip` to all nodes (answer to DAD).
    NaDad { vip: Ipv6Addr },
    /// Solicited neighbour advertisement for `vip`.
    Na {
        client_mac: [u8; 6],
        client: Ipv6Addr,
        vip: Ipv6Addr,
    },
}

/// The expected fate of one input frame.
#[derive(Clone, Debug)]
enum Expect {
    /// Forwarded to a server of `svc`; every frame sharing one of `groups`
    /// goes to the same server.
    Fwd {
        svc: &'static str,
        groups: Vec<String>,
    },
    /// Answered by pmdlb.
    Reply(Reply),
    /// Dropped and counted under this reason.
    Drop(&'static str),
}

/// The crafted input of a scenario.
#[derive(Default)]
struct Input {
    frames: Vec<Vec<u8>>,
    expect: Vec<Expect>,
}

impl Input {
    fn fwd(&mut self, frame: Vec<u8>, svc: &'static str, groups: &[String]) {
        self.frames.push(frame);
        self.expect.push(Expect::Fwd {
            svc,
            groups: groups.to_vec(),
        });
    }

    fn reply(&mut self, frame: Vec<u8>, r: Reply) {
        self.frames.push(frame);
        self.expect.push(Expect::Reply(r));
    }

    fn drop(&mut self, frame: Vec<u8>, reason: &'static str) {
        self.frames.push(frame);
        self.expect.push(Expect::Drop(reason));
    }

    fn expected_drops(&self) -> BTreeMap<String, u64> {
        let mut m = BTreeMap::new();
        for e in &self.expect {
            if let Expect::Drop(r) = e {
                *m.entry(r.to_string()).or_insert(0) += 1;
            }
        }
        m
    }
}

// ---------------------------------------------------------------------------
// Running the binary.

/// What one run left behind.
struct Outcome {
    /// Frames in out.pcap.
    out: Vec<Vec<u8>>,
    /// The process's standard output.
    stdout: String,
    /// `name → total` from the final counter table.
    counters: BTreeMap<String, u64>,
}

impl Outcome {
    fn get(&self, name: &str) -> u64 {
        self.counters.get(name).copied().unwrap_or(0)
    }

    fn drops(&self) -> BTreeMap<String, u64> {
        self.counters
            .iter()
            .filter_map(|(k, v)| {
                let r = k.strip_prefix("drop.")?;
                (r != "total").then(|| (r.to_string(), *v))
            })
            .collect()
    }
}

/// Kills the process and removes every file of the scenario, also when an
/// assertion fails half-way.
struct Cleanup {
    child: Option<Child>,
    dir: PathBuf,
    prefix: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            if c.try_wait().ok().flatten().is_none() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        common::cleanup_prefix(&self.prefix);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs `pmdlb run` on `frames` with the given `[ports]` extras (lines
/// such as `tx_vlan = "keep"`) and gratuitous-ARP setting; returns once it stopped cleanly on SIGTERM.
/// `control_frames` is how many frames the control plane must have sent
/// (gratuitous ARP / NA) before the stop.
fn run_pmdlb(
    tag: &str,
    ports_extra: &str,
    garp: bool,
    frames: &[Vec<u8>],
    control_frames: u64,
) -> Outcome {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let prefix = common::file_prefix(tag);
    let dir = common::scratch(&format!("run-pcap-{tag}"));
    let mut guard = Cleanup {
        child: None,
        dir: dir.clone(),
        prefix: prefix.clone(),
    };
    let (inp, outp, cfg) = (
        dir.join("in.pcap"),
        dir.join("out.pcap"),
        dir.join("pmdlb.toml"),
    );
    write_pcap(&inp, frames);
    let text = format!(
        r#"[eal]
lcores = "0-1"
hugepages = false
memory_mb = 256
file_prefix = "{prefix}"
vdevs = ["net_pcap0,rx_pcap={},tx_pcap={}"]
extra_args = ["--no-telemetry"]

[ports]
rx = "net_pcap0"
rx_desc = 256
tx_desc = 256
mbufs = 2047
mbuf_cache = 64
{ports_extra}

[workers]
count = 1
stats_interval_s = 0

[tables]
connections = 4096
persistence = 4096

[neighbours]
gratuitous_arp = {garp}
{}"#,
        inp.display(),
        outp.display(),
        services_toml()
    );
    std::fs::write(&cfg, text).unwrap();

    let started = Instant::now();
    let child = pmdlb()
        .args(["run", "--config"])
        .arg(&cfg)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn pmdlb run");
    let pid = child.id();
    guard.child = Some(child);
    let c = guard.child.as_mut().unwrap();
    let mut so = c.stdout.take().unwrap();
    let mut se = c.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = so.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = se.read_to_string(&mut s);
        s
    });

    // Wait until every input frame was received (and the announcements
    // went out), bounded.
    let want = frames.len() as u64;
    let deadline = started + Duration::from_secs(15);
    let mut last = BTreeMap::new();
    loop {
        if let Some(st) = c.try_wait().unwrap() {
            panic!(
                "pmdlb exited early ({st}):\n{}\n{}",
                out_reader.join().unwrap(),
                err_reader.join().unwrap()
            );
        }
        let o = pmdlb()
            .args(["ctl", "--config"])
            .arg(&cfg)
            .arg("stats")
            .output()
            .unwrap();
        if o.status.success() {
            last = parse_counters(&String::from_utf8_lossy(&o.stdout));
            let get = |k: &str| last.get(k).copied().unwrap_or(0);
            if get("rx") >= want && get("control_sent") >= control_frames {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{tag}: pmdlb did not receive {want} frames within 15 s; last stats {last:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let kill = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(kill.success(), "kill -TERM {pid}");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(st) = c.try_wait().unwrap() {
            break st;
        }
        assert!(
            Instant::now() < deadline,
            "{tag}: pmdlb did not stop within 10 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = out_reader.join().unwrap();
    let stderr = err_reader.join().unwrap();
    let ctx = format!("--- stdout\n{stdout}\n--- stderr\n{stderr}");
    assert_eq!(status.code(), Some(0), "{tag}: exit status {status}\n{ctx}");

    // The process's own report.
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("pmdlb: RX net_pcap0") && l.contains(&mac_str(&PORT_MAC))),
        "{tag}: RX MAC is not {} (did DPDK change net_pcap's MAC?)\n{ctx}",
        mac_str(&PORT_MAC)
    );
    let header = stdout
        .lines()
        .find(|l| l.starts_with("counter "))
        .unwrap_or("");
    let cols: Vec<&str> = header.split_whitespace().collect();
    assert_eq!(
        cols,
        ["counter", "worker0", "total"],
        "{tag}: final table header\n{ctx}"
    );
    let counters = parse_counters(&stdout);
    assert_eq!(
        counters.get("rx"),
        Some(&want),
        "{tag}: rx counter != input frames\n{ctx}"
    );
    assert!(
        stdout.contains(&format!("accounting: rx={want} unaccounted=0")),
        "{tag}: accounting line\n{ctx}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("mbufs: all ") && l.ends_with(" back in the pool")),
        "{tag}: mbufs not all back in the pool\n{ctx}"
    );
    assert!(stdout.contains("pmdlb: stopped cleanly"), "{tag}\n{ctx}");

    // Nothing left behind by EAL or the control socket.
    assert!(
        !Path::new("/var/run/dpdk").join(&prefix).exists(),
        "{tag}: /var/run/dpdk/{prefix} left behind"
    );
    if let Ok(d) = std::fs::read_dir("/dev/hugepages") {
        let left: Vec<_> = d
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(&prefix))
            .collect();
        assert!(left.is_empty(), "{tag}: hugepage files left: {left:?}");
    }
    assert!(
        !Path::new(&format!("/run/pmdlb/{prefix}.sock")).exists(),
        "{tag}: control socket left behind"
    );

    let out = read_pcap(&outp);
    drop(guard);
    eprintln!(
        "{tag}: {} frames in, {} out, {:.1} s",
        frames.len(),
        out.len(),
        started.elapsed().as_secs_f64()
    );
    Outcome {
        out,
        stdout,
        counters,
    }
}

// ---------------------------------------------------------------------------
// Decoding the output (independently of pmdlb).

/// Ethernet payload and 802.1Q TCI of a frame.
fn l2_payload(f: &[u8]) -> (Option<u16>, u16, &[u8]) {
    let et = u16::from_be_bytes([f[12], f[13]]);
    if et == 0x8100 {
        let tci = u16::from_be_bytes([f[14], f[15]]);
        (Some(tci), u16::from_be_bytes([f[16], f[17]]), &f[18..])
    } else {
        (None, et, &f[14..])
    }
}

/// Checks that `f` is the reply `r`; an error says what differs.
fn check_reply(f: &[u8], r: &Reply) -> Result<(), String> {
    if f[6..12] != PORT_MAC {
        return Err(format!("source MAC {}", mac_str(&f[6..12])));
    }
    match r {
        Reply::Arp {
            tag,
            req_mac,
            req_ip,
            vip,
        } => {
            let (t, et, a) = l2_payload(f);
            if et != 0x0806 || a.len() < 28 {
                return Err("not ARP".into());
            }
            let want_tag = tag.map(|x| x & 0x0fff);
            if t.map(|x| x & 0x0fff) != want_tag {
                return Err(format!("VLAN {t:?}, want {want_tag:?}"));
            }
            let got = (
                &f[0..6],
                &a[0..8],
                &a[8..14],
                &a[14..18],
                &a[18..24],
                &a[24..28],
            );
            let want = (
                &req_mac[..],
                &[0u8, 1, 8, 0, 6, 4, 0, 2][..],
                &PORT_MAC[..],
                &vip.octets()[..],
                &req_mac[..],
                &req_ip.octets()[..],
            );
            if got != want {
                return Err(format!("ARP reply fields {got:?}, want {want:?}"));
            }
            Ok(())
        }
        Reply::Echo4 {
            client,
            vip,
            id,
            seq,
            payload,
        } => {
            let p = SlicedPacket::from_ethernet(f).map_err(|e| format!("{e:?}"))?;
            let Some(NetSlice::Ipv4(ip)) = &p.net else {
                return Err("not IPv4".into());
            };
            let h = ip.header();
            if h.source() != vip.octets() || h.destination() != client.octets() {
                return Err(format!(
                    "addresses {:?} -> {:?}",
                    h.source(),
                    h.destination()
                ));
            }
            if h.to_header().calc_header_checksum() != h.header_checksum() {
                return Err("IPv4 header checksum wrong".into());
            }
            let Some(TransportSlice::Icmpv4(icmp)) = &p.transport else {
                return Err("not ICMP".into());
            };
            let ty = Icmpv4Type::EchoReply(IcmpEchoHeader { id: *id, seq: *seq });
            if icmp.icmp_type() != ty || icmp.payload() != &payload[..] {
                return Err(format!("ICMP {:?}", icmp.icmp_type()));
            }
            let want = Icmpv4Header::with_checksum(ty, payload).checksum;
            if icmp.checksum() != want {
                return Err(format!(
                    "ICMP checksum {:#x}, want {want:#x}",
                    icmp.checksum()
                ));
            }
            Ok(())
        }
        Reply::Echo6 {
            client,
            vip,
            id,
            seq,
            payload,
        } => {
            let p = SlicedPacket::from_ethernet(f).map_err(|e| format!("{e:?}"))?;
            let Some(NetSlice::Ipv6(ip)) = &p.net else {
                return Err("not IPv6".into());
            };
            let h = ip.header();
            if h.source() != vip.octets() || h.destination() != client.octets() {
                return Err("addresses".into());
            }
            let Some(TransportSlice::Icmpv6(icmp)) = &p.transport else {
                return Err("not ICMPv6".into());
            };
            let ty = etherparse::Icmpv6Type::EchoReply(IcmpEchoHeader { id: *id, seq: *seq });
            if icmp.icmp_type() != ty || icmp.payload() != &payload[..] {
                return Err(format!("ICMPv6 {:?}", icmp.icmp_type()));
            }
            if !icmp.is_checksum_valid(h.source(), h.destination()) {
                return Err("ICMPv6 checksum wrong".into());
            }
            Ok(())
        }
        Reply::NaDad { vip } => {
            if f[0..6] != [0x33, 0x33, 0, 0, 0, 1] {
                return Err(format!("DAD answer to MAC {}", mac_str(&f[0..6])));
            }
            // RFC 4861 7.2.4 wants the target link-layer option in every
            // answer to a multicast solicitation; pmdlb builds the NA in
            // the received frame and a DAD solicitation (no source option)
            // leaves no room for it. DAD still detects the duplicate.
            check_na(f, vip, &"ff02::1".parse().unwrap(), false, true)
        }
        Reply::Na {
            client_mac,
            client,
            vip,
        } => {
            if f[0..6] != client_mac[..] {
                return Err(format!("NA to MAC {}", mac_str(&f[0..6])));
            }
            check_na(f, vip, client, true, false)
        }
    }
}

/// An advertisement of `vip` from the port MAC to `dst`; `solicited` is the
/// S flag (the O flag is always set).
/// The target link-layer option is checked when present and required
/// unless `option_optional`.
fn check_na(
    f: &[u8],
    vip: &Ipv6Addr,
    dst: &Ipv6Addr,
    solicited: bool,
    option_optional: bool,
) -> Result<(), String> {
    let p = SlicedPacket::from_ethernet(f).map_err(|e| format!("{e:?}"))?;
    let Some(NetSlice::Ipv6(ip)) = &p.net else {
        return Err("not IPv6".into());
    };
    let h = ip.header();
    if h.destination() != dst.octets() || h.hop_limit() != 255 {
        return Err(format!(
            "NA to {:?} hop limit {}",
            h.destination(),
            h.hop_limit()
        ));
    }
    let Some(TransportSlice::Icmpv6(icmp)) = &p.transport else {
        return Err("not ICMPv6".into());
    };
    if icmp.type_u8() != 136 || icmp.code_u8() != 0 {
        return Err(format!(
            "ICMPv6 type {} code {}",
            icmp.type_u8(),
            icmp.code_u8()
        ));
    }
    if !icmp.is_checksum_valid(h.source(), h.destination()) {
        return Err("NA checksum wrong".into());
    }
    let flags = icmp.bytes5to8()[0];
    let want = if solicited { 0x60 } else { 0x20 };
    if flags & 0xe0 != want {
        return Err(format!("NA flags {flags:#x}, want {want:#x}"));
    }
    let body = icmp.payload();
    if body.len() < 16 || body[0..16] != vip.octets() {
        return Err(format!("NA target {:?}", &body[..body.len().min(16)]));
    }
    if body.len() == 16 && option_optional {
        return Ok(());
    }
    if body.len() < 24 {
        return Err(format!("NA without target link-layer option: {body:?}"));
    }
    // Target link-layer address option.
    if body[16..18] != [2, 1] || body[18..24] != PORT_MAC {
        return Err(format!("NA option {:?}", &body[16..24]));
    }
    Ok(())
}

/// Rows of `tshark -T fields` over `frames` for display filter `filter`,
/// or `None` when tshark is not installed: a second, independent decoder.
fn tshark(frames: &[Vec<u8>], filter: &str, fields: &[&str]) -> Option<Vec<Vec<String>>> {
    let dir = common::scratch("run-pcap-tshark");
    let file = dir.join("replies.pcap");
    write_pcap(&file, frames);
    let mut cmd = Command::new("tshark");
    cmd.arg("-n").arg("-r").arg(&file).args([
        "-o",
        "ip.check_checksum:TRUE",
        "-Y",
        filter,
        "-T",
        "fields",
    ]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd.stderr(Stdio::null()).output();
    let _ = std::fs::remove_dir_all(&dir);
    let out = out.ok()?;
    assert!(out.status.success(), "tshark failed");
    Some(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.split('\t').map(str::to_string).collect())
            .collect(),
    )
}

/// Matches forwarded output frames to their input by content (everything
/// after the MACs, with the tag transformed as `tag_op` says), checks the
/// MACs, and returns the chosen server per input index.
fn match_forwards(
    input: &Input,
    fwd_out: &[&Vec<u8>],
    expected_body: impl Fn(&[u8]) -> Vec<u8>,
) -> HashMap<usize, &'static Server> {
    let mut pending: HashMap<Vec<u8>, Vec<usize>> = HashMap::new();
    for (i, (f, e)) in input.frames.iter().zip(&input.expect).enumerate() {
        if matches!(e, Expect::Fwd { .. }) {
            pending.entry(expected_body(f)).or_default().push(i);
        }
    }
    let mut chosen = HashMap::new();
    for f in fwd_out {
        assert_eq!(
            f[6..12],
            PORT_MAC,
            "forwarded frame's source MAC is not the port's"
        );
        let srv = server_by_mac(&f[0..6]).unwrap();
        let idx = pending
            .get_mut(&f[12..])
            .and_then(|v| (!v.is_empty()).then(|| v.remove(0)))
            .unwrap_or_else(|| {
                panic!(
                    "forwarded frame to {} matches no input frame expected to be forwarded \
                     (changed beyond the MACs, or forwarded twice / wrongly): {:02x?}",
                    srv.addr, f
                )
            });
        let Expect::Fwd { svc, .. } = &input.expect[idx] else {
            unreachable!()
        };
        assert_eq!(
            srv.svc, *svc,
            "input frame {idx} went to {} of service {}, want service {svc}",
            srv.addr, srv.svc
        );
        chosen.insert(idx, srv);
    }
    let missing: Vec<usize> = pending.values().flatten().copied().collect();
    assert!(
        missing.is_empty(),
        "input frames not forwarded: {missing:?}"
    );
    chosen
}

/// Every group of frames went to one server; returns group → server.
fn check_groups(
    input: &Input,
    chosen: &HashMap<usize, &'static Server>,
) -> HashMap<String, &'static str> {
    let mut groups: HashMap<String, HashSet<&'static str>> = HashMap::new();
    for (i, e) in input.expect.iter().enumerate() {
        if let Expect::Fwd { groups: g, .. } = e {
            for k in g {
                groups.entry(k.clone()).or_default().insert(chosen[&i].addr);
            }
        }
    }
    groups
        .into_iter()
        .map(|(k, s)| {
            assert_eq!(s.len(), 1, "group {k} was spread over servers {s:?}");
            (k, s.into_iter().next().unwrap())
        })
        .collect()
}

/// Servers of `svc` that received traffic.
fn servers_used(chosen: &HashMap<usize, &'static Server>, svc: &str) -> HashSet<&'static str> {
    chosen
        .values()
        .filter(|s| s.svc == svc)
        .map(|s| s.addr)
        .collect()
}

// ---------------------------------------------------------------------------
// Scenario 1: everything at once, tags kept.

fn tuple(c: IpAddr, cport: u16, vip: IpAddr, vport: u16) -> String {
    format!("tuple {c}:{cport}->{vip}:{vport}")
}

fn main_input() -> Input {
    let mut inp = Input::default();
    let vip = IpAddr::V4(VIP);
    let vip2 = IpAddr::V4(VIP2);
    let vip6 = IpAddr::V6(VIP6);
    let steps = [Tcp::Syn, Tcp::Ack, Tcp::Data];

    // fwmark 1 (TCP 80 + 443), persistent: 12 clients, one connection to
    // each port, interleaved.
    for port in [80u16, 443] {
        for step in steps {
            for c in 0..12u8 {
                let client = v4(192, 168, 1, 10 + c);
                let cport = 40000 + u16::from(c) + port;
                let payload: &[u8] = if matches!(step, Tcp::Data) {
                    b"GET / HTTP/1.1\r\n\r\n"
                } else {
                    b""
                };
                inp.fwd(
                    client_frame(None, client, vip, L4::Tcp(cport, port, step), payload),
                    "fwm1",
                    &[format!("client {client}"), tuple(client, cport, vip, port)],
                );
            }
        }
    }

    // TCP 8080, not persistent: 8 connections (SYN, ACK, data, FIN) of 4
    // clients, interleaved; one tagged (VLAN 42, kept).
    for step in [Tcp::Syn, Tcp::Ack, Tcp::Data, Tcp::Fin] {
        for k in 0..8u16 {
            let client = v4(192, 168, 2, 1 + (k % 4) as u8);
            let cport = 50000 + k;
            let tag = (k == 7).then_some(0x2000 | 42);
            let payload: &[u8] = if matches!(step, Tcp::Data) {
                b"hello 8080"
            } else {
                b""
            };
            inp.fwd(
                client_frame(tag, client, vip, L4::Tcp(cport, 8080, step), payload),
                "tcp8080",
                &[tuple(client, cport, vip, 8080)],
            );
        }
        if matches!(step, Tcp::Ack) {
            // An ICMP "fragmentation needed" from a router on the path, about
            // the server's reply VIP:8080 -> client of connection 3 (tracked),
            // and one about a flow nobody has (dropped).
            for (client, cport, tracked) in [
                (v4(192, 168, 2, 4), 50003u16, true),
                (v4(192, 168, 2, 9), 50999, false),
            ] {
                let inner = ip_packet(
                    vip,
                    client,
                    63,
                    L4::Tcp(8080, cport, Tcp::Data),
                    b"0123456789abcdef",
                );
                let mut quoted = inner[..28].to_vec();
                quoted.extend_from_slice(&[0; 4]);
                let mut icmp = Vec::new();
                PacketBuilder::ipv4([198, 51, 100, 1], VIP.octets(), 250)
                    .icmpv4(Icmpv4Type::DestinationUnreachable(
                        etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded {
                            next_hop_mtu: 1400,
                        },
                    ))
                    .write(&mut icmp, &quoted)
                    .unwrap();
                let f = eth(PORT_MAC, ROUTER_MAC, None, 0x0800, &icmp);
                if tracked {
                    inp.fwd(f, "tcp8080", &[tuple(client, cport, vip, 8080)]);
                } else {
                    inp.drop(f, "icmp_no_connection");
                }
            }
        }
    }

    // TCP VIP2:80, persistent with a /24 netmask: 6 subnets, 3 hosts each.
    for step in [Tcp::Syn, Tcp::Ack] {
        for net in 1..=6u8 {
            for host in [5u8, 77, 200] {
                let client = v4(172, 16, net, host);
                let cport = 33000 + u16::from(host);
                inp.fwd(
                    client_frame(None, client, vip2, L4::Tcp(cport, 80, step), b""),
                    "subnet",
                    &[
                        format!("subnet 172.16.{net}.0/24"),
                        tuple(client, cport, vip2, 80),
                    ],
                );
            }
        }
    }

    // UDP 53 (wlc): 10 clients, two datagrams of one flow each; two of them
    // tagged (VLAN 42 kept), one padded to the Ethernet minimum.
    for round in 0..2u8 {
        for c in 0..10u8 {
            let client = v4(203, 0, 113, 1 + c);
            let tag = (c >= 8).then_some(42);
            let mut f = client_frame(
                tag,
                client,
                vip,
                L4::Udp(5300 + u16::from(c), 53),
                &[round, c, 0xab],
            );
            if c == 3 {
                f.resize(60, 0);
            }
            inp.fwd(f, "udp53", &[tuple(client, 5300 + u16::from(c), vip, 53)]);
        }
    }

    // IPv6 TCP 80: 6 clients, SYN, ACK, data.
    for step in steps {
        for c in 1..=6u16 {
            let client = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0xff, 0, 0, 0, 0, c));
            let payload: &[u8] = if matches!(step, Tcp::Data) {
                b"GET /v6"
            } else {
                b""
            };
            inp.fwd(
                client_frame(None, client, vip6, L4::Tcp(41000 + c, 80, step), payload),
                "v6",
                &[tuple(client, 41000 + c, vip6, 80)],
            );
        }
    }

    // ARP for the VIPs (one tagged), and for an address that is no VIP.
    let req = [0x02, 0xcc, 0, 0, 0, 0x01];
    let req2 = [0x02, 0xcc, 0, 0, 0, 0x02];
    let req_ip = Ipv4Addr::new(10, 0, 0, 1);
    inp.reply(
        arp_request(None, req, req_ip, VIP),
        Reply::Arp {
            tag: None,
            req_mac: req,
            req_ip,
            vip: VIP,
        },
    );
    inp.reply(
        arp_request(None, req2, Ipv4Addr::new(10, 0, 0, 2), VIP2),
        Reply::Arp {
            tag: None,
            req_mac: req2,
            req_ip: Ipv4Addr::new(10, 0, 0, 2),
            vip: VIP2,
        },
    );
    inp.reply(
        arp_request(Some(42), req, req_ip, VIP),
        Reply::Arp {
            tag: Some(42),
            req_mac: req,
            req_ip,
            vip: VIP,
        },
    );
    inp.drop(
        arp_request(None, req, req_ip, Ipv4Addr::new(10, 0, 0, 55)),
        "arp_not_for_vip",
    );

    // Neighbour solicitations: for the IPv6 VIP (answered), for another address.
    let c6 = Ipv6Addr::new(0x2001, 0xdb8, 0xff, 0, 0, 0, 0, 0x99);
    inp.reply(
        neighbour_solicitation(req, c6, VIP6),
        Reply::Na {
            client_mac: req,
            client: c6,
            vip: VIP6,
        },
    );
    inp.drop(
        neighbour_solicitation(req, c6, Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x77)),
        "nd_not_for_vip",
    );

    let dad = neighbour_solicitation(req2, Ipv6Addr::UNSPECIFIED, VIP6);
    inp.reply(dad, Reply::NaDad { vip: VIP6 });

    // Echo requests to the VIPs (one without data, padded to 60 bytes).
    let mut ping0 = Vec::new();
    PacketBuilder::ipv4([192, 168, 9, 10], VIP.octets(), 64)
        .icmpv4_echo_request(0x55, 1)
        .write(&mut ping0, &[])
        .unwrap();
    let mut ping0 = eth(PORT_MAC, ROUTER_MAC, None, 0x0800, &ping0);
    ping0.resize(60, 0);
    let r = Reply::Echo4 {
        client: Ipv4Addr::new(192, 168, 9, 10),
        vip: VIP,
        id: 0x55,
        seq: 1,
        payload: vec![],
    };
    inp.reply(ping0, r);
    let payload: Vec<u8> = (0..32u8).collect();
    let client = Ipv4Addr::new(192, 168, 9, 9);
    let mut ping = Vec::new();
    PacketBuilder::ipv4(client.octets(), VIP.octets(), 64)
        .icmpv4_echo_request(0x1234, 7)
        .write(&mut ping, &payload)
        .unwrap();
    inp.reply(
        eth(PORT_MAC, ROUTER_MAC, None, 0x0800, &ping),
        Reply::Echo4 {
            client,
            vip: VIP,
            id: 0x1234,
            seq: 7,
            payload: payload.clone(),
        },
    );
    let mut ping6 = Vec::new();
    PacketBuilder::ipv6(c6.octets(), VIP6.octets(), 64)
        .icmpv6_echo_request(0x4321, 9)
        .write(&mut ping6, &payload)
        .unwrap();
    inp.reply(
        eth(PORT_MAC, ROUTER_MAC, None, 0x86dd, &ping6),
        Reply::Echo6 {
            client: c6,
            vip: VIP6,
            id: 0x4321,
            seq: 9,
            payload,
        },
    );

    // Fragments: a first fragment (ports, MF set) of a new fwmark client is
    // decided as its flow; later fragments (no ports) follow the client's
    // persistence template, or are dropped when there is none.
    let seg = ip_packet(
        v4(192, 168, 1, 30),
        vip,
        64,
        L4::Tcp(40999, 443, Tcp::Syn),
        &[7; 40],
    );
    let seg = &seg[20..];
    let frag = |client: [u8; 4], first: bool| {
        let (part, off) = if first {
            (&seg[..32], 0)
        } else {
            (&seg[32..], 4)
        };
        let ip = ipv4_raw(client, VIP.octets(), IpNumber::TCP, part, |h| {
            h.identification = 0x4242;
            h.dont_fragment = false;
            h.more_fragments = first;
            h.fragment_offset = etherparse::IpFragOffset::try_new(off).unwrap();
        });
        eth(PORT_MAC, ROUTER_MAC, None, 0x0800, &ip)
    };
    let c30 = format!("client {}", v4(192, 168, 1, 30));
    inp.fwd(
        frag([192, 168, 1, 30], true),
        "fwm1",
        std::slice::from_ref(&c30),
    );
    inp.fwd(frag([192, 168, 1, 30], false), "fwm1", &[c30]);
    inp.fwd(
        frag([192, 168, 1, 10], false),
        "fwm1",
        &["client 192.168.1.10".into()],
    );
    inp.drop(frag([192, 168, 2, 1], false), "non_first_fragment");

    // IPv4 options (router alert) on a new 8080 connection: forwarded as is.
    let client = v4(192, 168, 2, 50);
    let seg = ip_packet(client, vip, 64, L4::Tcp(51000, 8080, Tcp::Syn), b"");
    let ip = ipv4_raw(
        [192, 168, 2, 50],
        VIP.octets(),
        IpNumber::TCP,
        &seg[20..],
        |h| {
            h.options = [0x94, 4, 0, 0].into();
        },
    );
    assert_eq!(ip[0], 0x46);
    inp.fwd(
        eth(PORT_MAC, ROUTER_MAC, None, 0x0800, &ip),
        "tcp8080",
        &[tuple(client, 51000, vip, 8080)],
    );

    // ICMPv6 packet too big about an IPv6 connection (tracked) and about a
    // flow nobody has.
    for (c, tracked) in [(2u16, true), (99, false)] {
        let client = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0xff, 0, 0, 0, 0, c));
        let inner = ip_packet(
            vip6,
            client,
            63,
            L4::Tcp(80, 41000 + c, Tcp::Data),
            &[0x55; 64],
        );
        let mut icmp = Vec::new();
        PacketBuilder::ipv6(
            [
                0x20, 0x01, 0x0d, 0xb8, 0xee, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
            ],
            VIP6.octets(),
            60,
        )
        .icmpv6(etherparse::Icmpv6Type::PacketTooBig { mtu: 1280 })
        .write(&mut icmp, &inner)
        .unwrap();
        let f = eth(PORT_MAC, ROUTER_MAC, None, 0x86dd, &icmp);
        if tracked {
            inp.fwd(f, "v6", &[tuple(client, 41000 + c, vip6, 80)]);
        } else {
            inp.drop(f, "icmp_no_connection");
        }
    }

    // Malformed and unwanted frames.
    let udp = |dst: IpAddr, port: u16| {
        client_frame(None, v4(198, 18, 0, 1), dst, L4::Udp(999, port), b"xyz")
    };
    let good = udp(vip, 53);
    inp.drop(good[..10].to_vec(), "truncated_ethernet");
    inp.drop(good[..13].to_vec(), "truncated_ethernet");
    inp.drop(
        eth(PORT_MAC, ROUTER_MAC, None, 0x8100, &[0x00]),
        "truncated_vlan",
    );
    inp.drop(good[..14 + 12].to_vec(), "ipv4_truncated");
    inp.drop(good[..good.len() - 2].to_vec(), "ipv4_truncated");
    let mut bad = good.clone();
    bad[14 + 10] ^= 0x5a;
    inp.drop(bad, "ipv4_bad_checksum");
    let mut hdr = Vec::new();
    Ipv4Header::new(10, 64, IpNumber::TCP, [198, 18, 0, 1], VIP.octets())
        .unwrap()
        .write(&mut hdr)
        .unwrap();
    hdr.extend_from_slice(&[0x9c, 0x40, 0x1f, 0x90, 0, 0, 0, 1, 0, 0]);
    inp.drop(
        eth(PORT_MAC, ROUTER_MAC, None, 0x0800, &hdr),
        "tcp_bad_header",
    );
    let v6 = client_frame(
        None,
        IpAddr::V6(c6),
        vip6,
        L4::Tcp(41999, 80, Tcp::Syn),
        b"",
    );
    inp.drop(v6[..14 + 20].to_vec(), "ipv6_truncated");
    let mut qinq = eth(PORT_MAC, ROUTER_MAC, Some(10), 0x8100, &[0, 20, 0x08, 0x00]);
    qinq.extend_from_slice(&good[14..]);
    inp.drop(qinq, "qinq");
    let mut ad = eth(
        PORT_MAC,
        ROUTER_MAC,
        None,
        0x88a8,
        &[0, 10, 0x81, 0x00, 0, 20, 0x08, 0x00],
    );
    ad.extend_from_slice(&good[14..]);
    inp.drop(ad, "qinq");
    inp.drop(
        eth(PORT_MAC, ROUTER_MAC, None, 0x88cc, &[0x5a; 46]),
        "unknown_ethertype",
    );
    inp.drop(
        client_frame(
            None,
            v4(192, 168, 7, 7),
            vip,
            L4::Tcp(45678, 8080, Tcp::Ack),
            b"late",
        ),
        "tcp_not_syn",
    );
    let mut other = good.clone();
    other[0..6].copy_from_slice(&OTHER_MAC);
    inp.drop(other, "not_for_us");
    inp.drop(udp(v4(10, 0, 0, 77), 53), "not_for_us");
    inp.drop(udp(vip, 9999), "no_service");
    inp.drop(
        eth(
            PORT_MAC,
            ROUTER_MAC,
            None,
            0x0800,
            &ip_packet(v4(198, 18, 0, 1), vip, 0, L4::Udp(999, 53), b"ttl0"),
        ),
        "ttl_expired",
    );
    inp
}

#[test]
fn pcap_mixed_traffic_keep_vlan() {
    let inp = main_input();
    let o = run_pmdlb("mixed", "tx_vlan = \"keep\"", false, &inp.frames, 0);

    // Split the output: frames to a real server's MAC are forwards, the rest
    // are replies.
    let (fwd, replies): (Vec<&Vec<u8>>, Vec<&Vec<u8>>) = o
        .out
        .iter()
        .partition(|f| server_by_mac(&f[0..6]).is_some());

    // 7: every drop counted under its reason.
    assert_eq!(
        o.drops(),
        inp.expected_drops(),
        "drop reasons\n{}",
        o.stdout
    );

    // 1, 2, 10: byte-identical beyond the MACs (tags kept), right service.
    let chosen = match_forwards(&inp, &fwd, |f| f[12..].to_vec());
    // 3, 4, 6: persistence, fwmark grouping, subnets, 5-tuples, ICMP errors.
    let groups = check_groups(&inp, &chosen);
    assert_eq!(
        servers_used(&chosen, "fwm1").len(),
        3,
        "fwmark clients not spread (rr)"
    );
    assert_eq!(
        servers_used(&chosen, "subnet").len(),
        3,
        "subnets not spread (rr)"
    );
    assert_eq!(
        servers_used(&chosen, "tcp8080").len(),
        2,
        "8080 connections not spread"
    );
    assert_eq!(
        servers_used(&chosen, "udp53").len(),
        2,
        "UDP flows not spread (wlc)"
    );
    assert_eq!(
        servers_used(&chosen, "v6").len(),
        2,
        "IPv6 flows not spread"
    );
    let subnets: HashSet<_> = groups
        .iter()
        .filter(|(k, _)| k.starts_with("subnet"))
        .collect();
    assert_eq!(subnets.len(), 6);
    // Frames that went out tagged are the tagged inputs (tag 42 kept).
    let tagged_out = fwd.iter().filter(|f| f[12..14] == [0x81, 0x00]).count();
    let tagged_in = inp
        .frames
        .iter()
        .zip(&inp.expect)
        .filter(|(f, e)| matches!(e, Expect::Fwd { .. }) && f[12..14] == [0x81, 0x00])
        .count();
    assert_eq!(tagged_out, tagged_in);
    assert_eq!(tagged_in, 4 + 4);

    // 5, 9: replies decoded independently.
    let mut wanted: Vec<Option<Reply>> = inp
        .expect
        .iter()
        .filter_map(|e| match e {
            Expect::Reply(r) => Some(Some(r.clone())),
            _ => None,
        })
        .collect();
    for f in &replies {
        let mut errors = Vec::new();
        let slot = wanted.iter_mut().find(|w| match w {
            Some(r) => match check_reply(f, r) {
                Ok(()) => true,
                Err(e) => {
                    errors.push(format!("{r:?}: {e}"));
                    false
                }
            },
            None => false,
        });
        match slot {
            Some(s) => *s = None,
            None => panic!(
                "unexpected output frame {f:02x?}; against the expected replies: {errors:#?}"
            ),
        }
    }
    let unanswered: Vec<_> = wanted.iter().flatten().collect();
    assert!(unanswered.is_empty(), "no reply for {unanswered:#?}");

    // The replies once more through tshark: ARP fields and checksums.
    let reply_frames: Vec<Vec<u8>> = replies.iter().map(|f| f.to_vec()).collect();
    let fields = [
        "arp.opcode",
        "arp.src.hw_mac",
        "arp.src.proto_ipv4",
        "icmp.checksum.status",
        "icmpv6.checksum.status",
        "ip.checksum.status",
    ];
    match tshark(&reply_frames, "arp or icmp or icmpv6", &fields) {
        None => eprintln!("tshark not found: second decoding skipped"),
        Some(rows) => {
            assert_eq!(rows.len(), reply_frames.len(), "tshark rows {rows:?}");
            let port = mac_str(&PORT_MAC);
            let mut arp = 0;
            for r in &rows {
                let r: Vec<&str> = r.iter().map(String::as_str).collect();
                if r[0].is_empty() {
                    assert!(
                        r[3] == "1" || r[4] == "1",
                        "ICMP checksum per tshark: {r:?}"
                    );
                    assert!(
                        r[5].is_empty() || r[5] == "1",
                        "IPv4 checksum per tshark: {r:?}"
                    );
                } else {
                    assert_eq!(r[0], "2", "ARP opcode per tshark: {r:?}");
                    assert_eq!(r[1], port);
                    assert!([VIP, VIP2].iter().any(|v| v.to_string() == r[2]), "{r:?}");
                    arp += 1;
                }
            }
            assert_eq!(arp, 3);
        }
    }

    // 8: the books balance.
    let n_fwd = chosen.len() as u64;
    let n_reply = replies.len() as u64;
    assert_eq!(o.get("forwarded"), n_fwd);
    assert_eq!(o.get("replies"), n_reply);
    assert_eq!(o.get("to_control"), 0);
    assert_eq!(o.get("rx"), n_fwd + n_reply + o.get("drop.total"));
    assert_eq!(o.get("rx"), inp.frames.len() as u64);
    assert_eq!(o.out.len() as u64, n_fwd + n_reply);
    assert_eq!(o.get("tx_sent"), o.out.len() as u64);
    assert_eq!(o.get("tx_refused"), 0);
}

// ---------------------------------------------------------------------------
// Scenarios 2 and 3: VLAN insert / rewrite and removal; announcements.

/// A little traffic for the VLAN scenarios: untagged and tagged (PCP 5,
/// VLAN 42) UDP and TCP, one ARP request for the VIP.
fn vlan_input() -> Input {
    let mut inp = Input::default();
    let vip = IpAddr::V4(VIP);
    for c in 0..6u8 {
        let client = v4(203, 0, 113, 50 + c);
        let tag = (c % 2 == 1).then_some(0xa000 | 42);
        inp.fwd(
            client_frame(tag, client, vip, L4::Udp(6000 + u16::from(c), 53), b"q"),
            "udp53",
            &[],
        );
        for step in [Tcp::Syn, Tcp::Ack] {
            inp.fwd(
                client_frame(
                    tag,
                    client,
                    vip,
                    L4::Tcp(7000 + u16::from(c), 8080, step),
                    b"",
                ),
                "tcp8080",
                &[tuple(client, 7000 + u16::from(c), vip, 8080)],
            );
        }
    }
    let req = [0x02, 0xcc, 0, 0, 0, 0x03];
    let req_ip = Ipv4Addr::new(10, 0, 0, 3);
    inp.reply(
        arp_request(None, req, req_ip, VIP),
        Reply::Arp {
            tag: None,
            req_mac: req,
            req_ip,
            vip: VIP,
        },
    );
    inp
}

/// The forwarded frames of a VLAN scenario match their input, with the tag
/// as `expected_body` predicts; returns the non-forwarded output frames.
fn check_vlan_run(
    inp: &Input,
    o: &Outcome,
    expected_body: impl Fn(&[u8]) -> Vec<u8>,
) -> Vec<Vec<u8>> {
    let (fwd, rest): (Vec<&Vec<u8>>, Vec<&Vec<u8>>) = o
        .out
        .iter()
        .partition(|f| server_by_mac(&f[0..6]).is_some());
    let chosen = match_forwards(inp, &fwd, expected_body);
    check_groups(inp, &chosen);
    assert_eq!(o.get("forwarded"), chosen.len() as u64);
    assert_eq!(o.get("drop.total"), 0, "{}", o.stdout);
    assert_eq!(o.get("vlan_no_headroom"), 0);
    assert_eq!(o.get("rx"), o.get("forwarded") + o.get("replies"));
    rest.into_iter().cloned().collect()
}

#[test]
fn pcap_vlan_set_and_announcements() {
    let inp = vlan_input();
    // Gratuitous ARP for the IPv4 VIPs and unsolicited NA for the IPv6 one,
    // three rounds.
    let announced = 3 * 3;
    let o = run_pmdlb("vlanset", "tx_vlan = 100", true, &inp.frames, announced);
    // Untagged frames get tag 100 inserted; tagged ones keep their PCP and
    // get VLAN 100. The rest of the frame is unchanged.
    let rest = check_vlan_run(&inp, &o, |f| {
        let (tci, et, payload) = l2_payload(f);
        let mut b = vec![0x81, 0x00];
        b.extend_from_slice(&((tci.unwrap_or(0) & 0xf000) | 100).to_be_bytes());
        b.extend_from_slice(&et.to_be_bytes());
        b.extend_from_slice(payload);
        b
    });
    let mut garp = HashMap::new();
    let mut na = 0;
    let mut arp_replies = 0;
    for f in &rest {
        let (_, et, p) = l2_payload(f);
        if et == 0x0806 && p[6..8] == [0, 2] && f[0..6] != BROADCAST {
            check_reply(
                f,
                &inp.expect
                    .iter()
                    .find_map(|e| match e {
                        Expect::Reply(r) => Some(r.clone()),
                        _ => None,
                    })
                    .unwrap(),
            )
            .unwrap();
            arp_replies += 1;
        } else if et == 0x0806 {
            // Gratuitous ARP: broadcast, sender = target = VIP, port MAC.
            assert_eq!(f[0..6], BROADCAST, "GARP not broadcast");
            assert_eq!(f[6..12], PORT_MAC);
            assert_eq!(p[0..6], [0, 1, 8, 0, 6, 4]);
            assert_eq!(p[8..14], PORT_MAC);
            assert_eq!(p[14..18], p[24..28], "GARP sender != target address");
            let a = Ipv4Addr::new(p[14], p[15], p[16], p[17]);
            *garp.entry(a).or_insert(0) += 1;
        } else {
            assert_eq!(
                f[0..6],
                [0x33, 0x33, 0, 0, 0, 1],
                "unsolicited NA not to all-nodes"
            );
            assert_eq!(f[6..12], PORT_MAC);
            check_na(f, &VIP6, &"ff02::1".parse().unwrap(), false, false).unwrap();
            na += 1;
        }
    }
    assert_eq!(arp_replies, 1);
    assert_eq!(
        garp,
        HashMap::from([(VIP, 3), (VIP2, 3)]),
        "gratuitous ARP rounds"
    );
    assert_eq!(na, 3, "unsolicited NA rounds");
    assert_eq!(o.get("control_sent"), announced);
    assert_eq!(
        o.out.len() as u64,
        o.get("forwarded") + o.get("replies") + announced
    );
    assert_eq!(o.get("tx_sent"), o.out.len() as u64);
}

#[test]
fn pcap_vlan_none_strips_tags() {
    let inp = vlan_input();
    let o = run_pmdlb("vlannone", "tx_vlan = \"none\"", false, &inp.frames, 0);
    let rest = check_vlan_run(&inp, &o, |f| {
        let (_, et, payload) = l2_payload(f);
        let mut b = et.to_be_bytes().to_vec();
        b.extend_from_slice(payload);
        b
    });
    assert_eq!(rest.len(), 1, "one ARP reply");
    assert_eq!(o.out.len() as u64, o.get("forwarded") + o.get("replies"));
    assert!(
        o.out.iter().all(|f| f[12..14] != [0x81, 0x00]),
        "a tag left"
    );
}

// ---------------------------------------------------------------------------
// Scenario 4: transport length fields checked against the IP length.

/// Writes a big-endian `u16` into a crafted frame.
fn with_be16(mut f: Vec<u8>, at: usize, v: u16) -> Vec<u8> {
    f[at..at + 2].copy_from_slice(&v.to_be_bytes());
    f
}

/// Good UDP datagrams and TCP segments next to ones whose UDP length, TCP
/// data offset or SCTP header does not fit in their IP packet (as its
/// total / payload length says, whatever the frame's padding holds).
fn l4_length_input() -> Input {
    /// UDP length field and TCP data offset byte in an untagged IPv4 frame.
    const UDP_LEN: usize = 14 + 20 + 4;
    const TCP_DOFF: usize = 14 + 20 + 12;
    let mut inp = Input::default();
    let vip = IpAddr::V4(VIP);
    let client = v4(198, 51, 100, 9);
    let udp =
        |cport: u16, payload: &[u8]| client_frame(None, client, vip, L4::Udp(cport, 53), payload);
    let syn = |cport: u16, payload: &[u8]| {
        client_frame(None, client, vip, L4::Tcp(cport, 8080, Tcp::Syn), payload)
    };

    inp.fwd(udp(5300, b"query"), "udp53", &[]);
    // Length 7: shorter than the UDP header itself.
    inp.drop(with_be16(udp(5301, b"query"), UDP_LEN, 7), "udp_bad_length");
    // Length 14: one byte beyond the 13-byte IP payload.
    inp.drop(
        with_be16(udp(5302, b"query"), UDP_LEN, 14),
        "udp_bad_length",
    );
    // Length 18: beyond the 8-byte IP payload, inside the Ethernet padding.
    let mut padded = with_be16(udp(5303, b""), UDP_LEN, 18);
    padded.resize(60, 0);
    inp.drop(padded, "udp_bad_length");
    // Length 10 of a 13-byte IP payload: legal (the receiver trims to the
    // UDP length), forwarded untouched as IPVS does.
    inp.fwd(with_be16(udp(5304, b"query"), UDP_LEN, 10), "udp53", &[]);
    // A first fragment: the length counts the whole 108-byte datagram.
    let mut dgram = vec![0x14, 0xbd, 0x00, 0x35, 0, 108, 0, 0];
    dgram.extend_from_slice(&[0x5a; 24]);
    let frag = ipv4_raw(
        [198, 51, 100, 9],
        VIP.octets(),
        IpNumber::UDP,
        &dgram,
        |h| h.more_fragments = true,
    );
    inp.fwd(eth(PORT_MAC, ROUTER_MAC, None, 0x0800, &frag), "udp53", &[]);
    // IPv6: a UDP length beyond the payload length.
    let v6 = client_frame(
        None,
        IpAddr::V6("2001:db8:9::9".parse().unwrap()),
        IpAddr::V6(VIP6),
        L4::Udp(5305, 53),
        b"query",
    );
    inp.drop(with_be16(v6, 14 + 40 + 4, 14), "udp_bad_length");

    inp.fwd(syn(8300, b""), "tcp8080", &[tuple(client, 8300, vip, 8080)]);
    // Data offset 4: shorter than the fixed header.
    let mut doff4 = syn(8301, b"");
    doff4[TCP_DOFF] = 4 << 4;
    inp.drop(doff4, "tcp_bad_header");
    // Data offset 15 (60 bytes) in a 23-byte IP payload.
    let mut doff15 = syn(8302, b"abc");
    doff15[TCP_DOFF] = 15 << 4;
    inp.drop(doff15, "tcp_bad_header");
    // Data offset 6 whose options would be the Ethernet padding.
    let mut in_padding = syn(8303, b"");
    in_padding[TCP_DOFF] = 6 << 4;
    in_padding.resize(60, 0);
    inp.drop(in_padding, "tcp_bad_header");

    // SCTP: 8 bytes of a 12-byte common header.
    let sctp = ipv4_raw(
        [198, 51, 100, 9],
        VIP.octets(),
        IpNumber::SCTP,
        &[0x13, 0x88, 0x0b, 0xb8, 0, 0, 0, 1],
        |_| {},
    );
    inp.drop(
        eth(PORT_MAC, ROUTER_MAC, None, 0x0800, &sctp),
        "sctp_truncated",
    );
    inp
}

#[test]
fn pcap_malformed_l4_lengths_are_dropped() {
    let inp = l4_length_input();
    // The crafted frames are what an independent decoder says they are:
    // etherparse's strict slicer refuses every malformed UDP/TCP one and
    // takes every one meant to be forwarded.
    for (i, (f, e)) in inp.frames.iter().zip(&inp.expect).enumerate() {
        let parsed = SlicedPacket::from_ethernet(f);
        match e {
            Expect::Fwd { .. } => assert!(parsed.is_ok(), "input {i}: {:?}", parsed.err()),
            Expect::Drop("udp_bad_length" | "tcp_bad_header") => {
                assert!(parsed.is_err(), "input {i} is not malformed per etherparse")
            }
            _ => {}
        }
    }

    let o = run_pmdlb("l4len", "tx_vlan = \"keep\"", false, &inp.frames, 0);

    // Only the good frames came out, unchanged but for the MACs, to a
    // server of their service, and etherparse decodes each of them whole.
    let chosen = match_forwards(&inp, &o.out.iter().collect::<Vec<_>>(), |f| {
        f[12..].to_vec()
    });
    assert_eq!(chosen.len(), 4, "forwarded frames");
    let mut udp_ports = Vec::new();
    for f in &o.out {
        let p = SlicedPacket::from_ethernet(f)
            .unwrap_or_else(|e| panic!("forwarded frame does not decode: {e:?}\n{f:02x?}"));
        match (&p.net, &p.transport) {
            (Some(NetSlice::Ipv4(ip)), Some(TransportSlice::Udp(u))) => {
                assert!(u.length() >= 8);
                assert!(usize::from(u.length()) <= ip.payload().payload.len());
                udp_ports.push(u.source_port());
            }
            (Some(NetSlice::Ipv4(_)), Some(TransportSlice::Tcp(t))) => {
                assert_eq!((t.source_port(), t.destination_port()), (8300, 8080));
                assert!(t.syn());
            }
            (Some(NetSlice::Ipv4(ip)), None) => {
                assert!(ip.is_payload_fragmented(), "{f:02x?}");
                udp_ports.push(u16::from_be_bytes([f[34], f[35]]));
            }
            _ => panic!("unexpected frame out: {f:02x?}"),
        }
    }
    udp_ports.sort_unstable();
    assert_eq!(udp_ports, [5300, 5304, 5309], "UDP datagrams out");

    // Every drop counted under its reason in the final statistics.
    assert_eq!(
        o.drops(),
        inp.expected_drops(),
        "drop reasons\n{}",
        o.stdout
    );
    assert_eq!(o.get("drop.udp_bad_length"), 4, "{}", o.stdout);
    assert_eq!(o.get("drop.tcp_bad_header"), 3, "{}", o.stdout);
    assert_eq!(o.get("drop.sctp_truncated"), 1, "{}", o.stdout);
    assert_eq!(o.get("forwarded"), 4);
    assert_eq!(o.get("rx"), o.get("forwarded") + o.get("drop.total"));
    assert_eq!(o.get("tx_sent"), o.out.len() as u64);
}

// ---------------------------------------------------------------------------
// Scenario 5: small mbufs (ports.mbuf_size) on a device without an MTU setter.

#[test]
fn pcap_small_mbufs_drop_a_frame_longer_than_one() {
    // 346 bytes of data room: the 128-byte headroom and a 218-byte frame
    // (MTU 200). net_pcap cannot set its MTU, so it delivers the 342-byte
    // frame anyway, chained over two mbufs.
    let vip = IpAddr::V4(VIP);
    let (c1, c2) = (v4(198, 18, 5, 1), v4(198, 18, 5, 2));
    let short = client_frame(None, c1, vip, L4::Udp(5301, 53), &[0x5a; 100]);
    let long = client_frame(None, c2, vip, L4::Udp(5302, 53), &[0xa5; 300]);
    assert_eq!((short.len(), long.len()), (142, 342));
    let frames = [short.clone(), long, short.clone()];
    let o = run_pmdlb(
        "smallmbuf",
        "tx_vlan = \"keep\"\nmtu = 200\nmbuf_size = 346",
        false,
        &frames,
        0,
    );
    assert!(
        o.stdout
            .lines()
            .any(|l| l.starts_with("pmdlb: warning: net_pcap0 (net_pcap) cannot set its MTU")),
        "no MTU warning\n{}",
        o.stdout
    );
    // The long frame is cut short to its first mbuf: a counted drop, and
    // its chain goes back to the pool (run_pmdlb checks every mbuf).
    assert_eq!(o.get("drop.ipv4_truncated"), 1, "{}", o.stdout);
    assert_eq!(o.get("forwarded"), 2, "{}", o.stdout);
    assert_eq!(o.out.len(), 2);
    for f in &o.out {
        let p = SlicedPacket::from_ethernet(f)
            .unwrap_or_else(|e| panic!("forwarded frame does not decode: {e:?}\n{f:02x?}"));
        assert!(
            matches!(p.transport, Some(TransportSlice::Udp(ref u)) if u.source_port() == 5301),
            "{f:02x?}"
        );
        assert_eq!(f[6..12], PORT_MAC, "source MAC");
        let server = server_by_mac(&f[..6]).map(|s| s.svc);
        assert_eq!(server, Some("udp53"), "{f:02x?}");
        assert_eq!(&f[12..], &short[12..], "payload changed");
    }
}
