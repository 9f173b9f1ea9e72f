//! The seed corpus of the decision fuzz: one frame of every shape the pcap
//! tests feed pmdlb, built with etherparse (and by hand where etherparse has
//! no builder: ARP, neighbour discovery, SCTP, extension headers), each
//! with the verdict it gets when the seeds are decided in order from an
//! empty state under `TxVlan::Keep`. The order matters: an ACK follows its
//! SYN, an ICMP error the connection it is about, a later fragment the
//! first one.
//!
//! The files in `fuzz/corpus/decide/` are these frames, named
//! `NN-shape.bin`; `cargo test --test decide_fuzz seed_files` checks them
//! and `PMDLB_WRITE_SEEDS=1` rewrites them.

use etherparse::{IpFragOffset, IpNumber, Ipv4Header, PacketBuilder, VlanId};
use pmdlb::dataplane::DropReason;

use crate::oracle::{
    ones_sum, pseudo6, CLIENT4, CLIENT6, CLIENT_MAC, RX_MAC, VIP4, VIP4_MARK, VIP4_PERSIST, VIP6,
};

/// What a seed's decision is (in order, from an empty state, `Keep`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Forwarded to a real server.
    Forward,
    /// Answered in place.
    Reply,
    /// Handed to the control plane.
    Neighbour,
    /// Dropped for this reason.
    Drop(DropReason),
}

const OTHER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xcc];
const ROUTER4: [u8; 4] = [198, 51, 100, 1];
const ROUTER6: [u8; 16] = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const VIP6_SOLICITED: [u8; 16] = [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0, 0, 0x64];

fn vlan(id: u16) -> VlanId {
    VlanId::try_new(id).expect("a valid VLAN id")
}

/// An Ethernet frame by hand: `tag` adds one 802.1Q tag.
fn eth(dst: [u8; 6], src: [u8; 6], tag: Option<u16>, ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = dst.to_vec();
    f.extend_from_slice(&src);
    if let Some(t) = tag {
        f.extend_from_slice(&[0x81, 0x00]);
        f.extend_from_slice(&t.to_be_bytes());
    }
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

fn pad60(mut f: Vec<u8>) -> Vec<u8> {
    if f.len() < 60 {
        f.resize(60, 0);
    }
    f
}

#[derive(Clone, Copy)]
enum Tcp {
    Syn,
    Ack,
    Fin,
    Rst,
}

fn tcp4(
    tag: Option<u16>,
    dst: [u8; 4],
    sport: u16,
    dport: u16,
    kind: Tcp,
    payload: &[u8],
) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(CLIENT_MAC, RX_MAC);
    let mut v = Vec::new();
    macro_rules! finish {
        ($ip:expr) => {{
            let t = $ip.tcp(sport, dport, 1000, 64240);
            match kind {
                Tcp::Syn => t.syn().write(&mut v, payload),
                Tcp::Ack => t.ack(1).write(&mut v, payload),
                Tcp::Fin => t.fin().ack(1).write(&mut v, payload),
                Tcp::Rst => t.rst().write(&mut v, payload),
            }
            .expect("etherparse writes the frame")
        }};
    }
    match tag {
        Some(t) => finish!(b.single_vlan(vlan(t)).ipv4(CLIENT4, dst, 64)),
        None => finish!(b.ipv4(CLIENT4, dst, 64)),
    }
    v
}

fn tcp6(tag: Option<u16>, sport: u16, dport: u16, kind: Tcp, payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(CLIENT_MAC, RX_MAC);
    let mut v = Vec::new();
    macro_rules! finish {
        ($ip:expr) => {{
            let t = $ip.tcp(sport, dport, 1000, 64240);
            match kind {
                Tcp::Syn => t.syn().write(&mut v, payload),
                Tcp::Ack => t.ack(1).write(&mut v, payload),
                Tcp::Fin => t.fin().ack(1).write(&mut v, payload),
                Tcp::Rst => t.rst().write(&mut v, payload),
            }
            .expect("etherparse writes the frame")
        }};
    }
    match tag {
        Some(t) => finish!(b.single_vlan(vlan(t)).ipv6(CLIENT6, VIP6, 64)),
        None => finish!(b.ipv6(CLIENT6, VIP6, 64)),
    }
    v
}

fn udp4(dst_mac: [u8; 6], dst: [u8; 4], sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, dst_mac)
        .ipv4(CLIENT4, dst, 64)
        .udp(sport, dport)
        .write(&mut v, payload)
        .expect("etherparse writes the frame");
    v
}

fn udp6(tag: Option<u16>, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(CLIENT_MAC, RX_MAC);
    let mut v = Vec::new();
    match tag {
        Some(t) => b
            .single_vlan(vlan(t))
            .ipv6(CLIENT6, VIP6, 64)
            .udp(sport, dport)
            .write(&mut v, payload),
        None => b
            .ipv6(CLIENT6, VIP6, 64)
            .udp(sport, dport)
            .write(&mut v, payload),
    }
    .expect("etherparse writes the frame");
    v
}

/// An IPv4 packet with an explicit header (fragments, options, odd
/// protocols) after an Ethernet header to us.
fn ipv4_raw(header: Ipv4Header, payload: &[u8]) -> Vec<u8> {
    let mut ip = Vec::new();
    header.write(&mut ip).expect("etherparse writes the header");
    ip.extend_from_slice(payload);
    eth(RX_MAC, CLIENT_MAC, None, 0x0800, &ip)
}

fn ipv4_header(proto: IpNumber, dst: [u8; 4], payload_len: usize) -> Ipv4Header {
    let mut h =
        Ipv4Header::new(payload_len as u16, 64, proto, CLIENT4, dst).expect("a valid length");
    h.header_checksum = h.calc_header_checksum();
    h
}

fn frag4(dst: [u8; 4], offset_bytes: u16, more: bool, payload: &[u8]) -> Vec<u8> {
    let mut h = ipv4_header(IpNumber::TCP, dst, payload.len());
    h.identification = 0x4242;
    h.more_fragments = more;
    h.fragment_offset = IpFragOffset::try_new(offset_bytes / 8).expect("a valid offset");
    h.header_checksum = h.calc_header_checksum();
    ipv4_raw(h, payload)
}

/// A UDP datagram to port 53 of the IPv4 VIP without DF: under the small
/// fuzz MTU its tunnel servers get it as outer fragments.
fn udp4_no_df(sport: u16, payload: &[u8]) -> Vec<u8> {
    let mut h = ipv4_header(IpNumber::UDP, VIP4, 8 + payload.len());
    h.dont_fragment = false;
    h.identification = sport;
    h.header_checksum = h.calc_header_checksum();
    let mut udp = sport.to_be_bytes().to_vec();
    udp.extend_from_slice(&53u16.to_be_bytes());
    udp.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(payload);
    ipv4_raw(h, &udp)
}

/// An IPv6 packet by hand (extension headers, fragments, odd versions):
/// `next` is the first next-header value, `payload` everything after the
/// fixed header.
fn ipv6_raw(
    tag: Option<u16>,
    next: u8,
    src: [u8; 16],
    dst: [u8; 16],
    hop: u8,
    payload: &[u8],
) -> Vec<u8> {
    let mut ip = vec![0x60, 0, 0, 0];
    ip.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    ip.extend_from_slice(&[next, hop]);
    ip.extend_from_slice(&src);
    ip.extend_from_slice(&dst);
    ip.extend_from_slice(payload);
    eth(RX_MAC, CLIENT_MAC, tag, 0x86dd, &ip)
}

/// An ARP packet (Ethernet/IPv4) by hand, RFC 826 layout.
fn arp(
    dst_mac: [u8; 6],
    tag: Option<u16>,
    op: u16,
    sha: [u8; 6],
    spa: [u8; 4],
    tha: [u8; 6],
    tpa: [u8; 4],
) -> Vec<u8> {
    let mut a = vec![0, 1, 0x08, 0x00, 6, 4];
    a.extend_from_slice(&op.to_be_bytes());
    a.extend_from_slice(&sha);
    a.extend_from_slice(&spa);
    a.extend_from_slice(&tha);
    a.extend_from_slice(&tpa);
    pad60(eth(dst_mac, CLIENT_MAC, tag, 0x0806, &a))
}

/// An ICMPv6 message with its checksum, computed here.
fn icmpv6(src: &[u8; 16], dst: &[u8; 16], mut msg: Vec<u8>) -> Vec<u8> {
    msg[2] = 0;
    msg[3] = 0;
    let sum = !ones_sum(&msg, pseudo6(src, dst, 58, msg.len() as u32));
    msg[2..4].copy_from_slice(&sum.to_be_bytes());
    msg
}

/// A neighbour solicitation for `target` from `src` (with a source
/// link-layer option unless `src` is unspecified), to the target's
/// solicited-node group.
fn ns(tag: Option<u16>, src: [u8; 16], target: [u8; 16]) -> Vec<u8> {
    let mut group = VIP6_SOLICITED;
    group[13..16].copy_from_slice(&target[13..16]);
    let mut m = vec![135, 0, 0, 0, 0, 0, 0, 0];
    m.extend_from_slice(&target);
    if src != [0; 16] {
        m.extend_from_slice(&[1, 1]);
        m.extend_from_slice(&CLIENT_MAC);
    }
    let m = icmpv6(&src, &group, m);
    let mut f = ipv6_raw(tag, 58, src, group, 255, &m);
    f[0..6].copy_from_slice(&[0x33, 0x33, 0xff, target[13], target[14], target[15]]);
    f
}

/// The IPv4 packet a real server sent back to the client (VIP:vport ->
/// client:cport), as an ICMP error quotes it: IP header and 8 bytes.
fn quoted4(proto: IpNumber, vport: u16, cport: u16) -> Vec<u8> {
    let mut q = Vec::new();
    let h = Ipv4Header::new(8, 64, proto, VIP4, CLIENT4).expect("a valid length");
    h.write(&mut q).expect("etherparse writes the header");
    q.extend_from_slice(&vport.to_be_bytes());
    q.extend_from_slice(&cport.to_be_bytes());
    q.extend_from_slice(&[0, 0, 0, 1]);
    q
}

fn icmp4_error(ty: u8, code: u8, rest: [u8; 4], quoted: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, RX_MAC)
        .ipv4(ROUTER4, VIP4, 60)
        .icmpv4_raw(ty, code, rest)
        .write(&mut v, quoted)
        .expect("etherparse writes the frame");
    v
}

fn icmp6_error(ty: u8, code: u8, rest: [u8; 4], quoted: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, RX_MAC)
        .ipv6(ROUTER6, VIP6, 64)
        .icmpv6_raw(ty, code, rest)
        .write(&mut v, quoted)
        .expect("etherparse writes the frame");
    v
}

/// The packet a real server sent to an IPv6 client, as quoted by an ICMPv6
/// error (as much as fits; here 100 bytes of data).
fn quoted6(vport: u16, cport: u16) -> Vec<u8> {
    let mut q = Vec::new();
    PacketBuilder::ipv6(VIP6, CLIENT6, 64)
        .tcp(vport, cport, 5, 100)
        .ack(1)
        .write(&mut q, &[0x5a; 100])
        .expect("etherparse writes the packet");
    q
}

fn sctp_common(sport: u16, dport: u16) -> Vec<u8> {
    let mut s = sport.to_be_bytes().to_vec();
    s.extend_from_slice(&dport.to_be_bytes());
    s.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0]);
    // An INIT chunk header (type 1, flags 0, length 4): enough to be a shape.
    s.extend_from_slice(&[1, 0, 0, 4]);
    s
}

/// Every seed: (shape name, frame, expected verdict). The file of seed `i`
/// is `format!("{i:02}-{name}.bin")`.
pub fn seeds() -> Vec<(&'static str, Vec<u8>, Expect)> {
    use DropReason as R;
    use Expect::*;
    let bcast = [0xff; 6];
    let mut v: Vec<(&'static str, Vec<u8>, Expect)> = Vec::new();
    let mut add = |name, frame, expect| v.push((name, frame, expect));

    // ARP.
    add(
        "arp-request-vip",
        arp(bcast, None, 1, CLIENT_MAC, CLIENT4, [0; 6], VIP4),
        Reply,
    );
    add(
        "arp-request-vip-vlan",
        arp(bcast, Some(42), 1, CLIENT_MAC, CLIENT4, [0; 6], VIP4),
        Reply,
    );
    add(
        "arp-request-other",
        arp(bcast, None, 1, CLIENT_MAC, CLIENT4, [0; 6], [10, 0, 0, 1]),
        Drop(R::ArpNotForVip),
    );
    add(
        "arp-request-no-answer-vip",
        arp(bcast, None, 1, CLIENT_MAC, CLIENT4, [0; 6], VIP4_MARK),
        Drop(R::ArpNotForVip),
    );
    add(
        "arp-reply",
        arp(RX_MAC, None, 2, CLIENT_MAC, CLIENT4, RX_MAC, VIP4),
        Neighbour,
    );
    add(
        "arp-gratuitous",
        arp(bcast, None, 1, CLIENT_MAC, CLIENT4, [0; 6], CLIENT4),
        Neighbour,
    );

    // Neighbour discovery.
    add("ns-vip", ns(None, CLIENT6, VIP6), Reply);
    add("ns-vip-vlan", ns(Some(42), CLIENT6, VIP6), Reply);
    add("ns-dad", ns(None, [0; 16], VIP6), Reply);
    let mut other = VIP6;
    other[15] = 0x65;
    add("ns-other", ns(None, CLIENT6, other), Drop(R::NdNotForVip));
    let mut na = vec![136, 0, 0, 0, 0x20, 0, 0, 0];
    na.extend_from_slice(&CLIENT6);
    na.extend_from_slice(&[2, 1]);
    na.extend_from_slice(&CLIENT_MAC);
    let all_nodes = [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    let mut f = ipv6_raw(
        None,
        58,
        CLIENT6,
        all_nodes,
        255,
        &icmpv6(&CLIENT6, &all_nodes, na),
    );
    f[0..6].copy_from_slice(&[0x33, 0x33, 0, 0, 0, 1]);
    add("na-unsolicited", f, Neighbour);

    // Echo (TTL 57: a reply with TTL 64 needs a new header checksum).
    let mut f = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, RX_MAC)
        .ipv4(CLIENT4, VIP4, 57)
        .icmpv4_echo_request(7, 1)
        .write(&mut f, b"pmdlb ping data")
        .expect("etherparse writes the frame");
    add("echo4", f, Reply);
    let mut f = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, RX_MAC)
        .ipv4(CLIENT4, VIP4, 64)
        .icmpv4_echo_request(7, 2)
        .write(&mut f, b"")
        .expect("etherparse writes the frame");
    add("echo4-padded", pad60(f), Reply);
    let mut f = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, RX_MAC)
        .ipv6(CLIENT6, VIP6, 57)
        .icmpv6_echo_request(7, 3)
        .write(&mut f, b"pmdlb ping data")
        .expect("etherparse writes the frame");
    add("echo6", f, Reply);
    let mut f = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, RX_MAC)
        .ipv4(CLIENT4, VIP4_MARK, 64)
        .icmpv4_echo_request(7, 4)
        .write(&mut f, b"x")
        .expect("etherparse writes the frame");
    add("echo4-no-answer-vip", f, Drop(R::IcmpNotHandled));

    // TCP over IPv4: a whole connection, a stray ACK, tags, options, fwmark.
    add(
        "tcp4-syn",
        tcp4(None, VIP4, 40000, 80, Tcp::Syn, b""),
        Forward,
    );
    add(
        "tcp4-ack",
        tcp4(None, VIP4, 40000, 80, Tcp::Ack, b"GET / HTTP/1.0\r\n\r\n"),
        Forward,
    );
    add(
        "tcp4-fin",
        tcp4(None, VIP4, 40000, 80, Tcp::Fin, b""),
        Forward,
    );
    add(
        "tcp4-rst",
        tcp4(None, VIP4, 40000, 80, Tcp::Rst, b""),
        Forward,
    );
    add(
        "tcp4-ack-no-conn",
        tcp4(None, VIP4, 40001, 80, Tcp::Ack, b"late"),
        Drop(R::TcpNotSyn),
    );
    // Priority 5 on VLAN 42: setting a new VLAN id keeps it.
    let mut f = tcp4(Some(42), VIP4, 40002, 80, Tcp::Syn, b"");
    f[14] |= 0xa0;
    add("tcp4-syn-vlan-priority", f, Forward);
    let seg = {
        let mut s = Vec::new();
        PacketBuilder::ipv4(CLIENT4, VIP4, 64)
            .tcp(40003, 80, 1, 1000)
            .syn()
            .write(&mut s, b"")
            .expect("etherparse writes the packet");
        s[20..].to_vec()
    };
    let mut h = ipv4_header(IpNumber::TCP, VIP4, seg.len());
    h.options = [0x94, 0x04, 0, 0][..]
        .try_into()
        .expect("router alert fits");
    h.set_payload_len(seg.len()).expect("a valid length");
    h.header_checksum = h.calc_header_checksum();
    add("tcp4-syn-ip-options", ipv4_raw(h, &seg), Forward);
    add(
        "tcp4-fwmark-80",
        tcp4(None, VIP4_MARK, 40004, 80, Tcp::Syn, b""),
        Forward,
    );
    add(
        "tcp4-fwmark-443",
        tcp4(None, VIP4_MARK, 40005, 443, Tcp::Syn, b""),
        Forward,
    );
    add(
        "tcp4-persistent-port0",
        tcp4(None, VIP4_PERSIST, 40006, 8443, Tcp::Syn, b""),
        Forward,
    );

    // TCP over IPv6.
    add("tcp6-syn", tcp6(None, 50000, 443, Tcp::Syn, b""), Forward);
    add(
        "tcp6-ack",
        tcp6(None, 50000, 443, Tcp::Ack, b"hello"),
        Forward,
    );
    add("tcp6-fin", tcp6(None, 50000, 443, Tcp::Fin, b""), Forward);
    add("tcp6-rst", tcp6(None, 50000, 443, Tcp::Rst, b""), Forward);
    add(
        "tcp6-syn-vlan",
        tcp6(Some(42), 50001, 443, Tcp::Syn, b""),
        Forward,
    );

    // UDP.
    add("udp4", udp4(RX_MAC, VIP4, 5353, 53, b"query"), Forward);
    add(
        "udp4-padded",
        pad60(udp4(RX_MAC, VIP4, 5354, 53, b"q")),
        Forward,
    );
    add("udp6", udp6(None, 5353, 53, b"query"), Forward);
    add("udp6-vlan", udp6(Some(42), 5354, 53, b"query"), Forward);
    add("udp6-fwmark", udp6(None, 5355, 8080, b"marked"), Forward);
    let mut ext = vec![60, 0, 1, 4, 0, 0, 0, 0, 17, 0, 1, 4, 0, 0, 0, 0];
    ext.extend_from_slice(&[0x15, 0xb4, 0x00, 0x35, 0x00, 0x0c, 0, 0, 1, 2, 3, 4]);
    add(
        "udp6-ext-headers",
        ipv6_raw(None, 0, CLIENT6, VIP6, 64, &ext),
        Forward,
    );

    // SCTP.
    let s = sctp_common(5000, 3000);
    add(
        "sctp4",
        ipv4_raw(ipv4_header(IpNumber::SCTP, VIP4, s.len()), &s),
        Forward,
    );
    add(
        "sctp6-no-service",
        ipv6_raw(None, 132, CLIENT6, VIP6, 64, &sctp_common(5000, 3000)),
        Drop(R::NoService),
    );

    // ICMP errors about connections (and about none).
    add(
        "icmp4-frag-needed",
        icmp4_error(3, 4, [0, 0, 0x05, 0x78], &quoted4(IpNumber::TCP, 80, 40000)),
        Forward,
    );
    add(
        "icmp4-time-exceeded-udp",
        icmp4_error(11, 0, [0; 4], &quoted4(IpNumber::UDP, 53, 5353)),
        Forward,
    );
    add(
        "icmp4-unreach-no-conn",
        icmp4_error(3, 1, [0; 4], &quoted4(IpNumber::TCP, 80, 39999)),
        Drop(R::IcmpNoConnection),
    );
    add(
        "icmp6-packet-too-big",
        icmp6_error(2, 0, 1280u32.to_be_bytes(), &quoted6(443, 50000)),
        Forward,
    );
    add(
        "icmp6-unreach-no-conn",
        icmp6_error(1, 4, [0; 4], &quoted6(443, 49999)),
        Drop(R::IcmpNoConnection),
    );

    // Fragments: IPv4 and IPv6, first and later, with and without a template.
    let seg = {
        let mut s = Vec::new();
        PacketBuilder::ipv4(CLIENT4, VIP4_PERSIST, 64)
            .tcp(41000, 8443, 1, 100)
            .syn()
            .write(&mut s, &[7u8; 40])
            .expect("etherparse writes the packet");
        s[20..].to_vec()
    };
    add(
        "frag4-first",
        frag4(VIP4_PERSIST, 0, true, &seg[..32]),
        Forward,
    );
    add(
        "frag4-later",
        frag4(VIP4_PERSIST, 32, false, &seg[32..]),
        Forward,
    );
    add(
        "frag4-later-no-template",
        frag4(VIP4, 32, false, &[0u8; 16]),
        Drop(R::NonFirstFragment),
    );
    let mut first = vec![17, 0, 0x00, 0x01, 0, 0, 0x42, 0x42];
    first.extend_from_slice(&[0x15, 0xb6, 0x1f, 0x90, 0x00, 0x18, 0, 0]);
    first.extend_from_slice(&[0x33; 8]);
    add(
        "frag6-first",
        ipv6_raw(None, 44, CLIENT6, VIP6, 64, &first),
        Forward,
    );
    let mut later = vec![17, 0, 0x00, 0x10, 0, 0, 0x42, 0x42];
    later.extend_from_slice(&[0x33; 8]);
    add(
        "frag6-later",
        ipv6_raw(None, 44, CLIENT6, VIP6, 64, &later),
        Forward,
    );
    let mut f = Vec::new();
    let mut h = ipv4_header(IpNumber::ICMP, VIP4, 16);
    h.more_fragments = true;
    h.header_checksum = h.calc_header_checksum();
    h.write(&mut f).expect("etherparse writes the header");
    f.extend_from_slice(&[8, 0, 0xf7, 0xfe, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    add(
        "icmp4-fragment",
        eth(RX_MAC, CLIENT_MAC, None, 0x0800, &f),
        Drop(R::IcmpFragment),
    );

    // Malformed and unwanted.
    let good = udp4(RX_MAC, VIP4, 999, 53, b"xyz");
    let mut f = good.clone();
    f[14] = 0x65;
    add("ipv4-version-6", f, Drop(R::Ipv4Malformed));
    let mut f = udp6(None, 999, 53, b"xyz");
    f[14] = 0x40;
    add("ipv6-version-4", f, Drop(R::Ipv6Malformed));
    let mut f = good.clone();
    f[14 + 10] ^= 0x5a;
    add("ipv4-bad-checksum", f, Drop(R::Ipv4BadChecksum));
    let mut h = ipv4_header(IpNumber::UDP, VIP4, 8);
    h.time_to_live = 0;
    h.header_checksum = h.calc_header_checksum();
    add(
        "ipv4-ttl0",
        ipv4_raw(h, &[0x03, 0xe7, 0x00, 0x35, 0x00, 0x08, 0, 0]),
        Drop(R::TtlExpired),
    );
    add(
        "ipv6-hop-limit0",
        ipv6_raw(
            None,
            17,
            CLIENT6,
            VIP6,
            0,
            &[0x03, 0xe7, 0x00, 0x35, 0x00, 0x08, 0, 0],
        ),
        Drop(R::TtlExpired),
    );
    add(
        "tcp4-no-service",
        tcp4(None, VIP4, 40007, 81, Tcp::Syn, b""),
        Drop(R::NoService),
    );
    add(
        "udp4-not-vip",
        udp4(RX_MAC, [10, 0, 0, 77], 999, 53, b"xyz"),
        Drop(R::NotForUs),
    );
    add(
        "udp4-other-mac",
        udp4(OTHER_MAC, VIP4, 999, 53, b"xyz"),
        Drop(R::NotForUs),
    );
    add(
        "udp4-broadcast-mac",
        udp4(bcast, VIP4, 999, 53, b"xyz"),
        Drop(R::NotForUs),
    );
    add(
        "gre4",
        ipv4_raw(ipv4_header(IpNumber::GRE, VIP4, 4), &[0, 0, 0x08, 0x00]),
        Drop(R::UnknownL4Proto),
    );
    let mut qinq = eth(RX_MAC, CLIENT_MAC, Some(10), 0x8100, &[0, 20, 0x08, 0x00]);
    qinq.extend_from_slice(&good[14..]);
    add("qinq", qinq, Drop(R::QinQ));
    let mut ad = eth(
        RX_MAC,
        CLIENT_MAC,
        None,
        0x88a8,
        &[0, 10, 0x81, 0x00, 0, 20, 0x08, 0x00],
    );
    ad.extend_from_slice(&good[14..]);
    add("qinq-8021ad", ad, Drop(R::QinQ));
    add(
        "lldp",
        eth(RX_MAC, CLIENT_MAC, None, 0x88cc, &[0x5a; 46]),
        Drop(R::UnknownEthertype),
    );
    let mut h = ipv4_header(IpNumber::TCP, VIP4, 10);
    h.header_checksum = h.calc_header_checksum();
    add(
        "tcp4-header-cut",
        ipv4_raw(h, &[0x9c, 0x40, 0x00, 0x50, 0, 0, 0, 1, 0, 0]),
        Drop(R::TcpBadHeader),
    );
    add(
        "truncated-ethernet",
        good[..10].to_vec(),
        Drop(R::TruncatedEthernet),
    );
    add(
        "truncated-vlan",
        eth(RX_MAC, CLIENT_MAC, None, 0x8100, &[0x00]),
        Drop(R::TruncatedVlan),
    );
    add(
        "ipv4-truncated",
        good[..good.len() - 2].to_vec(),
        Drop(R::Ipv4Truncated),
    );
    let f = tcp6(None, 50002, 443, Tcp::Syn, b"");
    add(
        "ipv6-truncated",
        f[..14 + 20].to_vec(),
        Drop(R::Ipv6Truncated),
    );
    // Larger datagrams from several flows, so some reach each tunnel
    // server (the oracle's services 1 and 5 have ipip and GUE servers) and
    // mutations under the small fuzz MTU get too-big replies.
    let big = [0x42u8; 600];
    for sport in [7001, 7002, 7003] {
        add("udp4-big", udp4(RX_MAC, VIP4, sport, 53, &big), Forward);
        add("udp6-big", udp6(None, sport, 53, &big), Forward);
    }
    // The same without DF: the outer packet is split instead.
    for sport in [7011, 7012, 7013] {
        add("udp4-big-nodf", udp4_no_df(sport, &big), Forward);
    }
    v
}
