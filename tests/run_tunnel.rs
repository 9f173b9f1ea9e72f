//! Tunnel forwarding through the real `pmdlb run` binary on `net_pcap`:
//! crafted traffic in (etherparse), `out.pcap` decoded with etherparse and,
//! for outer fragments, tshark (never pmdlb's `wire` code).
//!
//! One run with DR, ipip, ip6ip6 and GUE servers side by side, at the
//! default MTU of 1500 (`net_pcap` cannot set another). Asserted:
//! - tunnel frames go to the gateway's MAC (IPv4, behind `ports.gateway`)
//!   or the server's own (IPv6, on-link), from the TX MAC; the outer header
//!   is exact (source = tunnel_addr, destination = the server, protocol
//!   4 / 41 / 17, TTL and DF copied, a valid header checksum); GUE has the
//!   server's port, a version-0 header naming the inner protocol, a UDP
//!   source port in 49152..=65535 that is stable per flow and varies across
//!   flows, a checksum only with `tun_csum` (valid then);
//! - the inner packet is byte-identical to what the client sent;
//! - a persistent fwmark service mixing DR and tunnel servers keeps one
//!   client on one server across both ports, and its DR server still gets
//!   plain DR frames;
//! - a packet too big for the MTU once encapsulated gets an ICMP
//!   fragmentation-needed (IPv4 with DF) or packet-too-big (IPv6) back with
//!   MTU minus the overhead, counted as `tunnel_too_big`;
//! - IPv4 without DF too big once encapsulated leaves as outer IPv4
//!   fragments to the server (as IPVS): each fits the MTU, carries the
//!   received frame's 802.1Q tag if it had one, the outer header with one
//!   identification (the same in all, different per
//!   packet), DF clear, MF on all but the last, offsets in order, full
//!   fragments of `(mtu - 20) & !7` bytes, a valid checksum (tshark's
//!   verdict); tshark reassembles them into the encapsulated packet whose
//!   inner packet is byte-identical to the client's; `tunnel_fragmented`
//!   counts them, `tx_sent` every fragment; nothing is unaccounted.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::running::{mac_str, parse_counters, pmdlb, read_pcap, write_pcap, Running};

use etherparse::{
    Icmpv4Type, Icmpv6Type, IpNumber, Ipv4Header, Ipv4HeaderSlice, Ipv6HeaderSlice, PacketBuilder,
    SlicedPacket, UdpHeaderSlice,
};

/// MAC of the first net_pcap device (fixed in DPDK 22.11).
const PORT_MAC: [u8; 6] = [0x02, 0x70, 0x63, 0x61, 0x70, 0x00];
const ROUTER_MAC: [u8; 6] = [0x02, 0xaa, 0, 0, 0, 0x01];
const GW_MAC: [u8; 6] = [0x02, 0, 0, 0, 0xfe, 0xfe];
const DR_MAC: [u8; 6] = [0x02, 0, 0, 0, 1, 13];
const V6_MAC: [u8; 6] = [0x02, 0, 0, 0, 5, 51];

const VIP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 100);
const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x100);
const TUN_SRC: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 2);
const TUN_SRC6: Ipv6Addr = Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, 1);
const GUE_PORT: u16 = 6080;

/// How a server is reached, as the test expects to see it on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Method {
    Dr,
    Ipip,
    Gue { csum: bool },
}

const SERVERS: &[(&str, &str, Method)] = &[
    ("fwm1", "10.0.1.13", Method::Dr),
    ("fwm1", "10.9.1.11", Method::Ipip),
    ("fwm1", "10.9.1.12", Method::Gue { csum: false }),
    ("udp53", "10.9.2.21", Method::Gue { csum: true }),
    ("big-ipip", "10.9.3.31", Method::Ipip),
    ("big-gue", "10.9.3.32", Method::Gue { csum: false }),
    ("v6", "2001:db8:9::51", Method::Ipip),
];

fn method_of(addr: IpAddr) -> Method {
    SERVERS
        .iter()
        .find(|s| s.1.parse::<IpAddr>().unwrap() == addr)
        .map(|s| s.2)
        .unwrap_or_else(|| panic!("{addr} is no server"))
}

fn servers_toml(svc: &str) -> String {
    SERVERS
        .iter()
        .filter(|s| s.0 == svc)
        .map(|(_, addr, m)| match m {
            Method::Dr => format!(
                "[[service.server]]\naddr = \"{addr}\"\nmac = \"{}\"\n",
                mac_str(&DR_MAC)
            ),
            Method::Ipip if addr.contains(':') => format!(
                "[[service.server]]\naddr = \"{addr}\"\nforward = \"tunnel\"\nmac = \"{}\"\n",
                mac_str(&V6_MAC)
            ),
            Method::Ipip => {
                format!("[[service.server]]\naddr = \"{addr}\"\nforward = \"tunnel\"\n")
            }
            Method::Gue { csum } => format!(
                "[[service.server]]\naddr = \"{addr}\"\nforward = \"tunnel\"\ntun_type = \"gue\"\ntun_port = {GUE_PORT}\ntun_csum = {csum}\n"
            ),
        })
        .collect()
}

/// The TX MTU of the run (`ports.mtu` unset: 1500).
const MTU: u16 = 1500;

fn config(prefix: &str, inp: &Path, outp: &Path) -> String {
    format!(
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
tx_addr = "10.0.1.1"
tunnel_addr = "{TUN_SRC}"
tx_addr6 = "{TUN_SRC6}"
gateway = "10.0.1.254"
gateway_mac = "{gw}"

[workers]
count = 1
stats_interval_s = 0

[tables]
connections = 4096
persistence = 4096

[neighbours]
gratuitous_arp = false

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
scheduler = "rr"
{udp53}
[[service]]
vip = "{VIP}"
port = 8080
scheduler = "rr"
{big_ipip}
[[service]]
vip = "{VIP}"
port = 8081
scheduler = "rr"
{big_gue}
[[service]]
vip = "{VIP6}"
port = 80
scheduler = "rr"
{v6}"#,
        inp.display(),
        outp.display(),
        gw = mac_str(&GW_MAC),
        fwm1 = servers_toml("fwm1"),
        udp53 = servers_toml("udp53"),
        big_ipip = servers_toml("big-ipip"),
        big_gue = servers_toml("big-gue"),
        v6 = servers_toml("v6"),
    )
}

// ---------------------------------------------------------------------------
// Input.

fn eth(ethertype: u16, ip: &[u8]) -> Vec<u8> {
    let mut f = PORT_MAC.to_vec();
    f.extend_from_slice(&ROUTER_MAC);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(ip);
    f
}

/// An IPv4 frame with an 802.1Q tag (`tci`).
fn eth_tagged(tci: u16, ip: &[u8]) -> Vec<u8> {
    let mut f = eth(0x8100, &tci.to_be_bytes());
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    f.extend_from_slice(ip);
    f
}

/// A TCP segment from `client:sport` to the VIP, SYN or ACK, with `data`;
/// `df` sets IPv4's don't-fragment bit. TTL 57 (a hop or two away).
fn tcp4(client: [u8; 4], sport: u16, dport: u16, syn: bool, data: &[u8], df: bool) -> Vec<u8> {
    let mut h = Ipv4Header::new(0, 57, IpNumber::TCP, client, VIP.octets()).unwrap();
    h.dont_fragment = df;
    h.identification = sport;
    h.dscp = etherparse::Ipv4Dscp::try_new(10).unwrap();
    let t = PacketBuilder::ip(etherparse::IpHeaders::Ipv4(h, Default::default()))
        .tcp(sport, dport, 1000, 64240);
    let t = if syn { t.syn() } else { t.ack(1) };
    let mut ip = Vec::new();
    t.write(&mut ip, data).unwrap();
    ip
}

fn udp4(client: [u8; 4], sport: u16, data: &[u8]) -> Vec<u8> {
    let mut ip = Vec::new();
    PacketBuilder::ipv4(client, VIP.octets(), 60)
        .udp(sport, 53)
        .write(&mut ip, data)
        .unwrap();
    ip
}

fn tcp6(sport: u16, syn: bool, data: &[u8]) -> Vec<u8> {
    let client = Ipv6Addr::new(0x2001, 0xdb8, 0xc, 0, 0, 0, 0, 7).octets();
    let t = PacketBuilder::ipv6(client, VIP6.octets(), 50).tcp(sport, 80, 1000, 64240);
    let t = if syn { t.syn() } else { t.ack(1) };
    let mut ip = Vec::new();
    t.write(&mut ip, data).unwrap();
    ip
}

/// What one input frame must become.
#[derive(Debug)]
enum Expect {
    /// Forwarded to a server of `svc`; `group` names frames that must share
    /// their server, `flow` frames that must share a GUE source port.
    Fwd {
        svc: &'static str,
        group: String,
        flow: String,
    },
    /// Outer IPv4 fragments, `n` of them, to a server of `svc` (the one of
    /// `group`).
    Fragments {
        svc: &'static str,
        group: String,
        n: usize,
    },
    /// An ICMP error back with this MTU.
    TooBig { mtu: u16 },
}

// ---------------------------------------------------------------------------
// Running the binary.

/// Runs `pmdlb run` over `frames`; returns out.pcap's frames, the final
/// counters and stdout.
fn run(frames: &[Vec<u8>]) -> (Vec<Vec<u8>>, BTreeMap<String, u64>, String) {
    let prefix = common::file_prefix("tunnel");
    let dir = common::scratch("run-tunnel");
    let (inp, outp, cfg) = (
        dir.join("in.pcap"),
        dir.join("out.pcap"),
        dir.join("pmdlb.toml"),
    );
    write_pcap(&inp, frames);
    std::fs::write(&cfg, config(&prefix, &inp, &outp)).unwrap();

    // The check summary shows the methods.
    let o = pmdlb()
        .args(["check", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let summary = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "pmdlb check: {summary}");
    for want in [
        "-> 10.0.1.13:0  weight 1  forward Route  mac 02:00:00:00:01:0d",
        "-> 10.9.1.11:0  weight 1  forward Tunnel ipip via 10.0.1.254  mac 02:00:00:00:fe:fe",
        "forward Tunnel gue port 6080 nocsum via 10.0.1.254",
        "forward Tunnel gue port 6080 csum via 10.0.1.254",
        "-> [2001:db8:9::51]:80  weight 1  forward Tunnel ipip  mac 02:00:00:00:05:33",
        "tunnel src 10.0.1.2 src6 fd00:1::1  gateway 10.0.1.254 mac 02:00:00:00:fe:fe  gateway6 on-link  mtu 1500",
    ] {
        assert!(summary.contains(want), "summary lacks {want:?}:\n{summary}");
    }

    let mut lb = Running::spawn(cfg, prefix.clone(), dir);
    let want = frames.len() as u64;
    lb.wait_until(
        Duration::from_secs(20),
        &format!("pmdlb receives all {want} frames"),
        |lb| {
            let stats = lb.ctl(&["stats"])?;
            parse_counters(&stats)
                .get("rx")
                .is_some_and(|&n| n >= want)
                .then_some(())
        },
    );
    // The running server table names the method, as ipvsadm's Forward
    // column does.
    let table = lb.ctl(&["servers"]).expect("pmdlb ctl servers");
    for (_, addr, m) in SERVERS {
        let line = table
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("-> {addr} ")))
            .unwrap_or_else(|| panic!("no line for {addr}:\n{table}"));
        let want = if *m == Method::Dr { "Route" } else { "Tunnel" };
        assert_eq!(line.split_whitespace().nth(2), Some(want), "{line}");
    }
    let stopped = lb.stop();
    let stdout = stopped.stdout.clone();
    assert_eq!(
        stopped.status.code(),
        Some(0),
        "exit {}\n{}",
        stopped.status,
        stopped.text()
    );
    assert!(
        stdout.contains(&format!("accounting: rx={want} unaccounted=0")),
        "accounting:\n{stdout}"
    );
    assert!(stdout.contains("pmdlb: stopped cleanly"), "{stdout}");
    let counters = parse_counters(&stdout);
    let out = read_pcap(&outp);
    drop(stopped);
    eprintln!(
        "run_tunnel: {} frames in, {} out; forwarded {:?}, too_big_sent {:?}",
        frames.len(),
        out.len(),
        counters.get("forwarded"),
        counters.get("too_big_sent")
    );
    assert!(
        !Path::new("/var/run/dpdk").join(&prefix).exists(),
        "EAL runtime dir left behind"
    );
    (out, counters, stdout)
}

// ---------------------------------------------------------------------------
// Decoding the output.

/// The server a forwarded frame went to, after checking its outer headers
/// against the inner packet `inner`; the GUE source port, if any.
fn decode_forward(f: &[u8], inner: &[u8]) -> (IpAddr, Option<u16>) {
    assert_eq!(&f[6..12], &PORT_MAC, "from the TX port");
    let et = u16::from_be_bytes([f[12], f[13]]);
    let ip = &f[14..];
    if f[0..6] == DR_MAC {
        assert_eq!(ip, inner, "a DR frame carries the packet as received");
        return ("10.0.1.13".parse().unwrap(), None);
    }
    let (server, proto, hlen) = match et {
        0x0800 => {
            assert_eq!(&f[0..6], &GW_MAC, "IPv4 tunnel frames go to the gateway");
            let o = Ipv4HeaderSlice::from_slice(ip).expect("outer IPv4");
            let i = Ipv4HeaderSlice::from_slice(inner).expect("inner IPv4");
            assert_eq!(o.source_addr(), TUN_SRC, "outer source = tunnel_addr");
            assert_eq!(o.ttl(), i.ttl(), "TTL copied");
            assert_eq!(o.dont_fragment(), i.dont_fragment(), "DF copied");
            assert_eq!(o.dcp(), i.dcp(), "DSCP copied");
            assert_eq!(o.header_checksum(), o.to_header().calc_header_checksum());
            assert_eq!(usize::from(o.total_len()), ip.len());
            (IpAddr::V4(o.destination_addr()), o.protocol(), 20)
        }
        0x86dd => {
            assert_eq!(&f[0..6], &V6_MAC, "on-link IPv6 tunnel server's own MAC");
            let o = Ipv6HeaderSlice::from_slice(ip).expect("outer IPv6");
            let i = Ipv6HeaderSlice::from_slice(inner).expect("inner IPv6");
            assert_eq!(o.source_addr(), TUN_SRC6);
            assert_eq!(o.hop_limit(), i.hop_limit(), "hop limit copied");
            assert_eq!(usize::from(o.payload_length()) + 40, ip.len());
            (IpAddr::V6(o.destination_addr()), o.next_header(), 40)
        }
        e => panic!("forwarded EtherType {e:#06x}"),
    };
    let want_inner = if inner[0] >> 4 == 4 {
        IpNumber::IPV4
    } else {
        IpNumber::IPV6
    };
    match method_of(server) {
        Method::Dr => panic!("a DR server {server} got a tunnel frame"),
        Method::Ipip => {
            assert_eq!(proto, want_inner, "ipip protocol");
            assert_eq!(&ip[hlen..], inner, "the inner packet is byte-identical");
            (server, None)
        }
        Method::Gue { csum } => {
            assert_eq!(proto, IpNumber::UDP);
            let u = UdpHeaderSlice::from_slice(&ip[hlen..]).expect("UDP");
            assert_eq!(u.destination_port(), GUE_PORT);
            assert!(u.source_port() >= 49152);
            assert_eq!(usize::from(u.length()), ip.len() - hlen);
            let gue = &ip[hlen + 8..hlen + 12];
            assert_eq!(gue, &[0, want_inner.0, 0, 0], "GUE header v0");
            assert_eq!(
                &ip[hlen + 12..],
                inner,
                "the inner packet is byte-identical"
            );
            let payload = &ip[hlen + 8..];
            if csum {
                let o = Ipv4HeaderSlice::from_slice(ip).unwrap().to_header();
                let want = u.to_header().calc_checksum_ipv4(&o, payload).unwrap();
                assert_eq!(u.checksum(), want, "UDP checksum");
                assert_ne!(want, 0);
            } else {
                assert_eq!(u.checksum(), 0, "no UDP checksum without tun_csum");
            }
            (server, Some(u.source_port()))
        }
    }
}

/// Checks an ICMP error for `inner` reporting `mtu`.
fn check_too_big(f: &[u8], inner: &[u8], mtu: u16) {
    assert_eq!(&f[0..6], &ROUTER_MAC, "back to the router");
    assert_eq!(&f[6..12], &PORT_MAC);
    let p = SlicedPacket::from_ethernet(f).expect("etherparse decodes the error");
    match (&p.net, &p.transport) {
        (Some(etherparse::NetSlice::Ipv4(ip)), Some(etherparse::TransportSlice::Icmpv4(icmp))) => {
            let i = Ipv4HeaderSlice::from_slice(inner).unwrap();
            let h = ip.header();
            assert_eq!(h.source_addr(), i.destination_addr(), "from the VIP");
            assert_eq!(h.destination_addr(), i.source_addr(), "to the client");
            assert_eq!(h.header_checksum(), h.to_header().calc_header_checksum());
            assert_eq!(
                icmp.icmp_type(),
                Icmpv4Type::DestinationUnreachable(
                    etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded {
                        next_hop_mtu: mtu
                    }
                )
            );
            assert_eq!(
                icmp.checksum(),
                icmp.header().icmp_type.calc_checksum(icmp.payload())
            );
            let quote = icmp.payload();
            assert_eq!(quote.len(), 548, "576 bytes in all");
            assert_eq!(quote, &inner[..548]);
        }
        (Some(etherparse::NetSlice::Ipv6(ip)), Some(etherparse::TransportSlice::Icmpv6(icmp))) => {
            let i = Ipv6HeaderSlice::from_slice(inner).unwrap();
            let h = ip.header();
            assert_eq!(h.source_addr(), i.destination_addr());
            assert_eq!(h.destination_addr(), i.source_addr());
            assert_eq!(
                icmp.icmp_type(),
                Icmpv6Type::PacketTooBig { mtu: mtu.into() }
            );
            let want = icmp
                .header()
                .icmp_type
                .calc_checksum(h.source(), h.destination(), icmp.payload())
                .unwrap();
            assert_eq!(icmp.checksum(), want, "ICMPv6 checksum");
            let quote = icmp.payload();
            assert_eq!(quote.len(), 1280 - 48, "1280 bytes in all");
            assert_eq!(quote, &inner[..quote.len()]);
        }
        other => panic!("no ICMP error: {other:?}"),
    }
}

/// The frames of one run and what each must become.
#[derive(Default)]
struct Plan {
    frames: Vec<Vec<u8>>,
    inner: Vec<Vec<u8>>,
    expect: Vec<Expect>,
}

impl Plan {
    fn add(&mut self, ip: Vec<u8>, e: Expect) {
        let et = if ip[0] >> 4 == 4 { 0x0800 } else { 0x86dd };
        self.frames.push(eth(et, &ip));
        self.inner.push(ip);
        self.expect.push(e);
    }

    /// An IPv4 packet in a frame tagged `tci` (`tx_vlan` keeps the tag).
    fn add_tagged(&mut self, tci: u16, ip: Vec<u8>, e: Expect) {
        self.frames.push(eth_tagged(tci, &ip));
        self.inner.push(ip);
        self.expect.push(e);
    }
}

fn fwd(svc: &'static str, group: &str, flow: &str) -> Expect {
    Expect::Fwd {
        svc,
        group: group.to_string(),
        flow: flow.to_string(),
    }
}

fn frags(svc: &'static str, group: &str, n: usize) -> Expect {
    Expect::Fragments {
        svc,
        group: group.to_string(),
        n,
    }
}

/// One packet that left as outer fragments.
struct Fragmented {
    /// The frames, in output order.
    frames: Vec<Vec<u8>>,
    /// The client's packet.
    inner: Vec<u8>,
    /// How its server is reached.
    method: Method,
    /// The outer identification (etherparse's reading).
    id: u16,
    /// Where the outer IPv4 header starts (14, or 18 behind a tag).
    l3: usize,
}

/// What the output showed, beyond the per-frame checks.
#[derive(Default)]
struct Seen {
    servers_of_svc: HashMap<&'static str, HashSet<IpAddr>>,
    port_of_flow: HashMap<String, u16>,
    fragmented: Vec<Fragmented>,
}

/// Outer fragments of `inner` at `mtu`, checked frame by frame with
/// etherparse: to the gateway from the TX port with the received frame's
/// tag (`l2`: the bytes from the EtherType or tag to the IP header), IPv4
/// from tunnel_addr to one server, one identification, no DF, MF on all
/// but the last, offsets in order, full fragments of `(mtu - 20) & !7`
/// payload bytes, each within the MTU, TTL copied. Returns the server and
/// the identification.
fn check_fragment_frames(fs: &[&Vec<u8>], inner: &[u8], mtu: u16, l2: &[u8]) -> (IpAddr, u16) {
    let l3 = 12 + l2.len();
    let i = Ipv4HeaderSlice::from_slice(inner).expect("inner IPv4");
    assert!(!i.dont_fragment(), "only packets without DF are fragmented");
    let full = (usize::from(mtu) - 20) & !7;
    let mut at = 0;
    let mut first: Option<(Ipv4Addr, u16)> = None;
    for (k, f) in fs.iter().enumerate() {
        assert_eq!(&f[0..6], &GW_MAC, "fragment {k} to the gateway");
        assert_eq!(&f[6..12], &PORT_MAC, "fragment {k} from the TX port");
        assert_eq!(&f[12..l3], l2, "fragment {k}: the received tag, IPv4");
        let o = Ipv4HeaderSlice::from_slice(&f[l3..]).expect("fragment IPv4 header");
        let len = usize::from(o.total_len());
        assert_eq!(len, f.len() - l3, "fragment {k}: total length");
        assert!(
            len <= usize::from(mtu),
            "fragment {k}: {len} over MTU {mtu}"
        );
        assert_eq!(o.source_addr(), TUN_SRC);
        assert_eq!(o.ttl(), i.ttl(), "TTL copied");
        assert!(!o.dont_fragment());
        assert_eq!(o.more_fragments(), k + 1 < fs.len(), "fragment {k}: MF");
        assert_eq!(
            usize::from(o.fragments_offset().value()) * 8,
            at,
            "fragment {k}: offset"
        );
        if k + 1 < fs.len() {
            assert_eq!(len - 20, full, "fragment {k}: a full fragment");
        }
        let (dst, id) = *first.get_or_insert((o.destination_addr(), o.identification()));
        assert_eq!(
            (o.destination_addr(), o.identification()),
            (dst, id),
            "fragment {k}: one server, one identification"
        );
        at += len - 20;
    }
    let (dst, id) = first.expect("at least one fragment");
    (IpAddr::V4(dst), id)
}

/// Every fragmented packet through tshark at once: its IPv4 dissector
/// verifies each fragment's header checksum and reassembles; the earlier
/// fragments name the last as where the datagram was reassembled, and the
/// reassembled payload is the encapsulated packet (ipip: the client's
/// packet; GUE: UDP to the GUE port, a version-0 header, the client's
/// packet). `ip.id` / MF / offset as tshark reads them match etherparse's.
fn tshark_reassembles(done: &[Fragmented]) {
    let dir = common::scratch("run-tunnel-tshark");
    let file = dir.join("fragments.pcap");
    let all: Vec<Vec<u8>> = done.iter().flat_map(|d| d.frames.clone()).collect();
    write_pcap(&file, &all);
    let fields = [
        "frame.number",
        "ip.id",
        "ip.flags.mf",
        "ip.frag_offset",
        "ip.checksum.status",
        "ip.reassembled_in",
        "ip.reassembled.data",
    ];
    let mut cmd = Command::new("tshark");
    cmd.args([
        "-2",
        "-n",
        "-o",
        "ip.check_checksum:TRUE",
        "-o",
        "ip.defragment:TRUE",
    ])
    .arg("-r")
    .arg(&file)
    .args(["-T", "fields", "-E", "separator=|"]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd.output().expect("tshark (Debian package tshark)");
    assert!(
        out.status.success(),
        "tshark: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split('|').collect()).collect();
    for r in &rows {
        let data = r.get(6).copied().unwrap_or("");
        eprintln!(
            "run_tunnel: tshark frame {} id {} mf {} offset {} checksum {} reassembled_in {:?} reassembled {} bytes",
            r[0],
            r[1],
            r[2],
            r[3],
            r[4],
            r[5],
            data.len() / 2
        );
    }
    assert_eq!(rows.len(), all.len(), "tshark rows:\n{text}");
    // The first value of a multi-valued field is the outer header's.
    let outer = |v: &str| v.split(',').next().unwrap_or("").to_string();
    let mut n = 0;
    for d in done {
        let last = n + d.frames.len();
        let mut at = 0;
        for (k, f) in d.frames.iter().enumerate() {
            let r = &rows[n + k];
            assert_eq!(r[0], (n + k + 1).to_string());
            assert_eq!(outer(r[1]), format!("{:#06x}", d.id), "tshark ip.id: {r:?}");
            let more = k + 1 < d.frames.len();
            assert_eq!(
                outer(r[2]),
                if more { "1" } else { "0" },
                "tshark MF: {r:?}"
            );
            assert_eq!(outer(r[3]), (at / 8).to_string(), "tshark offset: {r:?}");
            assert_eq!(outer(r[4]), "1", "tshark: header checksum good: {r:?}");
            at += f.len() - d.l3 - 20;
            if more {
                assert_eq!(r[5], last.to_string(), "reassembled in the last: {r:?}");
                continue;
            }
            let data = hex_bytes(r[6]);
            let inner_at = match d.method {
                Method::Ipip => 0,
                Method::Gue { .. } => {
                    assert_eq!(&data[2..4], &GUE_PORT.to_be_bytes(), "UDP to the GUE port");
                    assert_eq!(
                        usize::from(u16::from_be_bytes([data[4], data[5]])),
                        data.len()
                    );
                    assert_eq!(&data[8..12], &[0, 4, 0, 0], "GUE header v0, IPv4 inside");
                    12
                }
                Method::Dr => unreachable!(),
            };
            assert_eq!(
                &data[inner_at..],
                &d.inner[..],
                "tshark's reassembly carries the client's packet byte for byte"
            );
        }
        n = last;
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn hex_bytes(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex from tshark"))
        .collect()
}

/// Checks `out` frame by frame against the plan, then the counters; the
/// fragmented packets also through tshark.
fn check_output(
    plan: &Plan,
    out: &[Vec<u8>],
    counters: &BTreeMap<String, u64>,
    stdout: &str,
) -> Seen {
    let mut out_iter = out.iter();
    let mut server_of_group: HashMap<String, IpAddr> = HashMap::new();
    let mut seen = Seen::default();
    let mut next = |i: usize| {
        out_iter
            .next()
            .unwrap_or_else(|| panic!("frame {i}: no output"))
    };
    for (i, e) in plan.expect.iter().enumerate() {
        let inner = &plan.inner[i];
        let (svc, group, server) = match e {
            Expect::TooBig { mtu } => {
                check_too_big(next(i), inner, *mtu);
                continue;
            }
            Expect::Fwd { svc, group, flow } => {
                let (server, sport) = decode_forward(next(i), inner);
                if let Some(p) = sport {
                    let first = *seen.port_of_flow.entry(flow.clone()).or_insert(p);
                    assert_eq!(first, p, "frame {i}: flow {flow} changed GUE source port");
                }
                (svc, group, server)
            }
            Expect::Fragments { svc, group, n } => {
                let fs: Vec<&Vec<u8>> = (0..*n).map(|_| next(i)).collect();
                let received = &plan.frames[i];
                let l2 = &received[12..received.len() - inner.len()];
                let (server, id) = check_fragment_frames(&fs, inner, MTU, l2);
                seen.fragmented.push(Fragmented {
                    frames: fs.into_iter().cloned().collect(),
                    inner: inner.clone(),
                    method: method_of(server),
                    id,
                    l3: 12 + l2.len(),
                });
                (svc, group, server)
            }
        };
        let of_svc: Vec<IpAddr> = SERVERS
            .iter()
            .filter(|s| s.0 == *svc)
            .map(|s| s.1.parse().unwrap())
            .collect();
        assert!(of_svc.contains(&server), "frame {i}: {server} not in {svc}");
        let first = *server_of_group.entry(group.clone()).or_insert(server);
        assert_eq!(first, server, "frame {i}: group {group} changed server");
        seen.servers_of_svc.entry(svc).or_default().insert(server);
    }
    assert!(out_iter.next().is_none(), "more output than expected");
    let ids: HashSet<(IpAddr, u16)> = seen
        .fragmented
        .iter()
        .map(|f| (method_server(f), f.id))
        .collect();
    assert_eq!(
        ids.len(),
        seen.fragmented.len(),
        "one identification per packet"
    );
    tshark_reassembles(&seen.fragmented);

    let get = |k: &str| counters.get(k).copied().unwrap_or(0);
    // The only drops: too-big packets (their ICMP error is not a reply).
    let too_big = plan
        .expect
        .iter()
        .filter(|e| matches!(e, Expect::TooBig { .. }))
        .count() as u64;
    assert_eq!(get("drop.tunnel_too_big"), too_big, "{stdout}");
    assert_eq!(get("drop.total"), too_big, "{stdout}");
    assert_eq!(get("too_big_sent"), too_big);
    assert_eq!(get("replies"), 0);
    assert_eq!(get("tunnel_failed"), 0);
    let fwd_count = plan
        .expect
        .iter()
        .filter(|e| matches!(e, Expect::Fwd { .. } | Expect::Fragments { .. }))
        .count() as u64;
    assert_eq!(get("forwarded"), fwd_count);
    let frag_count = seen.fragmented.len() as u64;
    assert_eq!(get("tunnel_fragmented"), frag_count, "{stdout}");
    assert_eq!(
        get("tx_sent"),
        out.len() as u64,
        "every frame, fragments included"
    );
    seen
}

/// A fragmented packet's server (for the identification's uniqueness).
fn method_server(f: &Fragmented) -> IpAddr {
    let o = Ipv4HeaderSlice::from_slice(&f.frames[0][f.l3..]).unwrap();
    IpAddr::V4(o.destination_addr())
}

#[test]
fn tunnel_forwarding_end_to_end_on_pcap() {
    let mut p = Plan::default();
    // fwmark 1 (rr, persistent): three clients, each on ports 80 and 443,
    // get the three servers (DR, ipip, GUE), one each, for both ports.
    for c in 1..=3u8 {
        let client = [192, 0, 2, c];
        let g = format!("client{c}");
        for (sport, dport) in [(40000 + u16::from(c), 80), (41000 + u16::from(c), 443)] {
            let flow = format!("{c}:{sport}");
            p.add(
                tcp4(client, sport, dport, true, b"", true),
                fwd("fwm1", &g, &flow),
            );
            p.add(
                tcp4(client, sport, dport, false, &[c; 300], true),
                fwd("fwm1", &g, &flow),
            );
        }
    }
    // UDP 53 to a GUE server with checksums: 16 flows, two datagrams each
    // of different lengths.
    for i in 0..16u16 {
        let flow = format!("udp{i}");
        for len in [20, 200] {
            p.add(
                udp4([198, 51, 100, 9], 5000 + i, &vec![i as u8; len]),
                fwd("udp53", "udp", &flow),
            );
        }
    }
    // Too big once encapsulated: 1500-byte packets (fit 1500 as DR). With
    // DF a fragmentation-needed; without, two outer fragments (1480 bytes
    // of payload in the first, the rest in the second).
    let big = vec![0x5a; 1500 - 40];
    let client = [203, 0, 113, 5];
    p.add(
        tcp4(client, 50001, 8080, true, b"", true),
        fwd("big-ipip", "b1", "b1"),
    );
    p.add(
        tcp4(client, 50001, 8080, false, &big, true),
        Expect::TooBig { mtu: 1480 },
    );
    p.add(
        tcp4(client, 50001, 8080, false, &big[..1400], true),
        fwd("big-ipip", "b1", "b1"),
    );
    p.add(
        tcp4(client, 50001, 8080, false, &big, false),
        frags("big-ipip", "b1", 2),
    );
    p.add(
        tcp4(client, 50001, 8080, false, &big[..1400], false),
        fwd("big-ipip", "b1", "b1"),
    );
    p.add(
        tcp4(client, 50002, 8081, true, b"", true),
        fwd("big-gue", "b2", "b2"),
    );
    p.add(
        tcp4(client, 50002, 8081, false, &big, true),
        Expect::TooBig { mtu: 1468 },
    );
    p.add(
        tcp4(client, 50002, 8081, false, &big[..1400], true),
        fwd("big-gue", "b2", "b2"),
    );
    p.add(
        tcp4(client, 50002, 8081, false, &big, false),
        frags("big-gue", "b2", 2),
    );
    // In a tagged frame (VLAN 7, priority 5; tx_vlan keeps it): each
    // fragment carries the tag.
    p.add(
        tcp4(client, 50004, 8080, true, b"", true),
        fwd("big-ipip", "b1", "b4"),
    );
    p.add_tagged(
        0xa007,
        tcp4(client, 50004, 8080, false, &big, false),
        frags("big-ipip", "b1", 2),
    );
    // IPv6: ip6ip6 to an on-link server; 1480 bytes is too big (MTU 1460),
    // 1460 fits. IPv6 is never fragmented, as IPVS.
    p.add(tcp6(50003, true, b""), fwd("v6", "v6", "v6"));
    p.add(tcp6(50003, false, &[7; 100]), fwd("v6", "v6", "v6"));
    p.add(
        tcp6(50003, false, &[7; 1480 - 60]),
        Expect::TooBig { mtu: 1460 },
    );
    p.add(tcp6(50003, false, &[7; 1460 - 60]), fwd("v6", "v6", "v6"));

    let (out, counters, stdout) = run(&p.frames);
    let seen = check_output(&p, &out, &counters, &stdout);
    assert_eq!(
        seen.servers_of_svc["fwm1"].len(),
        3,
        "rr gave the three clients the three servers: {:?}",
        seen.servers_of_svc["fwm1"]
    );
    let udp_ports: HashSet<u16> = (0..16)
        .filter_map(|i| seen.port_of_flow.get(&format!("udp{i}")).copied())
        .collect();
    assert!(
        udp_ports.len() >= 8,
        "16 flows over only {} GUE source ports",
        udp_ports.len()
    );
    assert_eq!(seen.fragmented.len(), 3);
}
