//! The properties every decision must have, whatever the input: shared by
//! the bounded fuzz run (`tests/decide_fuzz/main.rs`) and the cargo-fuzz
//! target (`fuzz/fuzz_targets/decide.rs`, which includes this file by
//! path), so a longer fuzz checks exactly what CI checks.
//!
//! For one frame, [`check_decide`] runs [`decide`] and asserts:
//! - no panic (debug builds: no arithmetic overflow either);
//! - `Drop(reason)` and `Neighbour` leave the frame untouched; a drop
//!   reason is one of [`DropReason::ALL`] (it has a counter);
//! - `Forward` happens only for a frame sent to the RX port's MAC and
//!   carrying IPv4 or IPv6; its target is an answer the state layer gave
//!   during this call, one of the servers of the service it answered for;
//!   for a whole TCP/UDP/SCTP packet that answer was for the flow an
//!   independent decoder (etherparse) reads from the frame, and for the
//!   service the table gives that flow; the frame keeps its length, gets
//!   the server's MAC and the TX port's MAC, and after the worker applies
//!   the VLAN action its IP packet is byte for byte the received one, with
//!   the tag the TX policy asks for; for a tunnel server the packet fits
//!   the MTU once encapsulated, and the frame the worker then builds
//!   (`tunnel::encapsulate`) decodes with etherparse to exact outer headers
//!   (addresses, protocol, TTL/DF/TOS copied, identification 0 with DF and
//!   the worker's counter without, checksums, GUE header and ports) around
//!   the received IP packet, byte for byte;
//! - `Fragment` is a `Forward` to a tunnel server of an IPv4 packet without
//!   DF that does *not* fit the MTU once encapsulated; the encapsulated
//!   frame, split by `fragment::Split`, gives fragments that each fit the
//!   MTU, carry the frame's Ethernet header and one identification, have
//!   offsets following each other in 8-byte units, MF on all but the last,
//!   valid checksums, and whose payloads (decoded with etherparse) put
//!   together are the outer packet's payload, byte for byte;
//! - `TooBig { len }` answers a packet too big for a tunnel server's MTU
//!   with a valid ICMP fragmentation-needed / packet-too-big from the VIP
//!   to the client, reporting MTU minus overhead, quoting the packet;
//! - `Reply { len }` fits the frame, keeps the tag, comes from the RX
//!   port's MAC, and is an ARP reply, an echo reply or a neighbour
//!   advertisement built from the request, with valid checksums.
//!
//! [`check_burst`] asserts that [`decide_burst`] gives exactly the verdicts
//! and bytes of deciding frame by frame (each checked as above).
#![allow(dead_code)]

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::OnceLock;

use etherparse::{LaxNetSlice, LaxSlicedPacket, NetSlice, SlicedPacket, TransportSlice};
use pmdlb::dataplane::decide::decide_burst;
use pmdlb::dataplane::fragment::{Split, SplitError, MAX_FRAGMENTS};
use pmdlb::dataplane::tunnel::{encapsulate, Outer, OuterIds};
use pmdlb::dataplane::{apply_vlan, decide, DecideCtx, DropReason, TxVlan, Verdict, VlanAction};
use pmdlb::lb::flow::{FlowState, StateDrop, Target};
use pmdlb::lb::service::ServiceTable;
use pmdlb::lb::spec::{
    Forwarding, MarkRuleSpec, Persistence, PortRange, SchedFlags, SchedulerKind, ServiceAddr,
    ServiceSpec, Tunnel, TunnelKind, VipSpec,
};
use pmdlb::lb::types::{Addr, Family, FlowKey, RsId, ServiceId, TcpFlags};
use pmdlb::wire::ethernet::MacAddr;

/// The RX port's MAC (frames must be sent to it).
pub const RX_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xaa];
/// The TX port's MAC (source of forwarded frames).
pub const TX_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xbb];
/// The client's (or router's) MAC.
pub const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
/// IPv4 VIP: tcp 80, udp any port, sctp any port; answers ARP and ping.
pub const VIP4: [u8; 4] = [10, 0, 0, 100];
/// IPv4 address covered by mark rule 5 (tcp 80, 443); neither ARP nor ping.
pub const VIP4_MARK: [u8; 4] = [10, 0, 0, 101];
/// IPv4 VIP with a persistent tcp port-0 service; answers ARP, not ping.
pub const VIP4_PERSIST: [u8; 4] = [10, 0, 0, 102];
/// An IPv4 client.
pub const CLIENT4: [u8; 4] = [192, 0, 2, 7];
/// IPv6 VIP: tcp 443, udp 53, fwmark 6 on ports 8000-8100; answers ND and ping.
pub const VIP6: [u8; 16] = [
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x64,
];
/// An IPv6 client.
pub const CLIENT6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7];

/// The TX VLAN policies every frame is decided under.
pub const POLICIES: [TxVlan; 3] = [TxVlan::Keep, TxVlan::Set(7), TxVlan::Untagged];

/// Number of services in [`table`]; service `i` is `ServiceId(i)`.
pub const SERVICES: u32 = 8;

fn persistent(svc: ServiceId) -> bool {
    matches!(svc.0, 3 | 4 | 7)
}

/// svc0 tcp VIP4:80, svc1 udp VIP4:0, svc2 tcp [VIP6]:443, svc3 fwmark 5
/// (persistent; rule VIP4_MARK tcp 80,443), svc4 tcp VIP4_PERSIST:0
/// (persistent), svc5 udp [VIP6]:53, svc6 sctp VIP4:0, svc7 fwmark 6
/// (persistent; rule VIP6 any protocol 8000-8100).
pub fn table() -> &'static ServiceTable {
    static TABLE: OnceLock<ServiceTable> = OnceLock::new();
    TABLE.get_or_init(|| {
        let s = |addr, svc: u32| ServiceSpec {
            ops: false,
            addr,
            scheduler: SchedulerKind::Rr,
            sched_flags: SchedFlags::default(),
            persistence: persistent(ServiceId(svc)).then_some(Persistence {
                timeout_s: 300,
                prefix_len: 32,
            }),
            servers: vec![],
        };
        let a = |proto, vip: std::net::IpAddr, port| ServiceAddr::Addr { proto, vip, port };
        let v4 = std::net::IpAddr::from(VIP4);
        let v6 = std::net::IpAddr::from(VIP6);
        let vip = |addr: std::net::IpAddr, answer_arp, answer_ping| VipSpec {
            addr,
            answer_arp,
            answer_ping,
        };
        ServiceTable::new(
            &[
                s(a(6, v4, 80), 0),
                s(a(17, v4, 0), 1),
                s(a(6, v6, 443), 2),
                s(ServiceAddr::Fwmark(5), 3),
                s(a(6, VIP4_PERSIST.into(), 0), 4),
                s(a(17, v6, 53), 5),
                s(a(132, v4, 0), 6),
                s(ServiceAddr::Fwmark(6), 7),
            ],
            &[
                MarkRuleSpec {
                    dst: VIP4_MARK.into(),
                    prefix_len: 32,
                    proto: Some(6),
                    ports: vec![PortRange { lo: 80, hi: 80 }, PortRange { lo: 443, hi: 443 }],
                    mark: 5,
                },
                MarkRuleSpec {
                    dst: v6,
                    prefix_len: 128,
                    proto: None,
                    ports: vec![PortRange { lo: 8000, hi: 8100 }],
                    mark: 6,
                },
            ],
            &[
                vip(v4, true, true),
                vip(v6, true, true),
                vip(VIP4_MARK.into(), false, false),
                vip(VIP4_PERSIST.into(), true, false),
            ],
        )
        .expect("the oracle's service table is valid")
    })
}

/// The decision context for a TX VLAN policy.
pub fn ctx(tx_vlan: TxVlan) -> DecideCtx {
    DecideCtx {
        rx_mac: MacAddr(RX_MAC),
        tx_mac: MacAddr(TX_MAC),
        tx_vlan,
        tunnel_mtu: mtu(tx_vlan),
    }
}

/// The servers of `svc`: service `i` has `i % 3 + 1` servers, `RsId(16 i + j)`
/// at MAC 02:52:53:i:00:j. No two services share a server. Server 0 is a
/// DR server, server 1 an ipip tunnel server, server 2 a GUE one (port
/// 6080, with a UDP checksum in odd services).
pub fn servers(svc: ServiceId) -> impl Iterator<Item = Target> {
    (0..svc.0 % 3 + 1).map(move |j| Target {
        rs: RsId(svc.0 * 16 + j),
        mac: MacAddr([0x02, 0x52, 0x53, svc.0 as u8, 0, j as u8]),
        forward: match j {
            0 => Forwarding::Dr,
            1 => Forwarding::Tunnel(Tunnel {
                kind: TunnelKind::Ipip,
                port: 0,
                csum: false,
            }),
            _ => Forwarding::Tunnel(Tunnel {
                kind: TunnelKind::Gue,
                port: GUE_PORT,
                csum: svc.0 % 2 == 1,
            }),
        },
    })
}

/// The GUE port of the oracle's GUE servers.
pub const GUE_PORT: u16 = 6080;
/// The director's tunnel source addresses.
pub const TUN_SRC4: [u8; 4] = [10, 0, 1, 1];
/// The director's IPv6 tunnel source address.
pub const TUN_SRC6: [u8; 16] = [0xfd, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];

/// The TX MTU under a TX VLAN policy: 1500 when frames keep their tag
/// (the seeds' policy), 68 (the IPv4 minimum) otherwise, so that the
/// fuzz's small frames reach both the encapsulation and the too-big reply.
pub fn mtu(tx: TxVlan) -> u16 {
    match tx {
        TxVlan::Keep => 1500,
        _ => 68,
    }
}

/// The outer addresses of a tunnelled packet to `rs` of family `v6`:
/// the server is 10.9.svc.j / fd00:9::svc:j.
pub fn outer(rs: RsId, v6: bool) -> Outer {
    let (svc, j) = ((rs.0 / 16) as u8, (rs.0 % 16) as u8);
    if v6 {
        let mut dst = [0u8; 16];
        dst[0..4].copy_from_slice(&[0xfd, 0, 0, 9]);
        dst[13] = svc;
        dst[15] = j;
        Outer::V6 { src: TUN_SRC6, dst }
    } else {
        Outer::V4 {
            src: TUN_SRC4,
            dst: [10, 9, svc, j],
        }
    }
}

/// The service a server belongs to.
pub fn service_of(rs: RsId) -> ServiceId {
    ServiceId(rs.0 / 16)
}

fn pick<T: Hash>(svc: ServiceId, what: &T) -> Target {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    what.hash(&mut h);
    let n = svc.0 % 3 + 1;
    servers(svc)
        .nth((h.finish() % n as u64) as usize)
        .expect("index below the server count")
}

/// One question the decision asked the state layer, and the answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Asked {
    /// [`FlowState::assign`] (or `assign_hashed`).
    Assign(ServiceId, FlowKey, Option<Target>),
    /// [`FlowState::lookup_conn`].
    Conn(FlowKey, Option<Target>),
    /// [`FlowState::lookup_template`].
    Template(ServiceId, Addr, Option<Target>),
}

impl Asked {
    fn answer(&self) -> Option<Target> {
        match *self {
            Asked::Assign(_, _, t) | Asked::Conn(_, t) | Asked::Template(_, _, t) => t,
        }
    }
}

/// Test double of the state layer: a bounded connection map, templates for
/// the persistent services, servers picked by a hash of the key among the
/// service's own [`servers`], and a log of every question asked. With
/// `track_everything`, every flow of a service has a connection and every
/// client of a persistent service a template (so ICMP errors and later
/// fragments of any flow reach their forward path).
#[derive(Clone)]
pub struct OracleState {
    conns: HashMap<FlowKey, (ServiceId, Target)>,
    templates: HashMap<(ServiceId, Addr), Target>,
    track_everything: bool,
    /// What the decision asked since the last [`OracleState::clear_log`].
    pub asked: RefCell<Vec<Asked>>,
}

/// Connection entries kept before the double starts over (deterministic).
const MAX_CONNS: usize = 1024;

impl OracleState {
    /// An empty state: a flow has a connection only once a packet of it
    /// was assigned.
    pub fn new() -> Self {
        OracleState {
            conns: HashMap::new(),
            templates: HashMap::new(),
            track_everything: false,
            asked: RefCell::new(Vec::new()),
        }
    }

    /// A state in which every flow and every persistent client is known.
    pub fn tracking_everything() -> Self {
        OracleState {
            track_everything: true,
            ..OracleState::new()
        }
    }

    /// Forgets the questions asked so far.
    pub fn clear_log(&self) {
        self.asked.borrow_mut().clear();
    }

    /// Number of connection entries.
    pub fn conn_count(&self) -> usize {
        self.conns.len()
    }

    fn log(&self, a: Asked) {
        self.asked.borrow_mut().push(a);
    }

    fn flow_hash(key: &FlowKey) -> u64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        key.hash(&mut h);
        h.finish()
    }
}

impl Default for OracleState {
    fn default() -> Self {
        OracleState::new()
    }
}

impl FlowState for OracleState {
    fn assign(
        &mut self,
        svc: ServiceId,
        key: &FlowKey,
        tcp: Option<TcpFlags>,
    ) -> Result<Target, StateDrop> {
        assert!(svc.0 < SERVICES, "assign for unknown service {svc:?}");
        let r = (|| {
            if let Some(&(s, t)) = self.conns.get(key) {
                assert_eq!(s, svc, "one flow, two services: {key:?}");
                return Ok(t);
            }
            // A deterministic slice of new flows meets a full table.
            if key.cport() % 251 == 250 {
                return Err(StateDrop::TableFull);
            }
            let t = match self.templates.get(&(svc, key.client())) {
                Some(&t) => t,
                None if tcp.is_some_and(|f| !f.has(TcpFlags::SYN)) && !self.track_everything => {
                    return Err(StateDrop::TcpNotSyn)
                }
                None => pick(svc, key),
            };
            if self.conns.len() >= MAX_CONNS {
                self.conns.clear();
                self.templates.clear();
            }
            if persistent(svc) {
                self.templates.insert((svc, key.client()), t);
            }
            self.conns.insert(*key, (svc, t));
            Ok(t)
        })();
        self.log(Asked::Assign(svc, *key, r.ok()));
        r
    }

    fn lookup_conn(&self, key: &FlowKey) -> Option<Target> {
        let t = match self.conns.get(key) {
            Some(&(_, t)) => Some(t),
            None if self.track_everything => table()
                .lookup(key.family(), key.proto(), &key.vip(), key.vport())
                .map(|svc| pick(svc, key)),
            None => None,
        };
        self.log(Asked::Conn(*key, t));
        t
    }

    fn lookup_template(&self, svc: ServiceId, client: Addr) -> Option<Target> {
        assert!(svc.0 < SERVICES, "template of unknown service {svc:?}");
        let t = match self.templates.get(&(svc, client)) {
            Some(&t) => Some(t),
            None if self.track_everything && persistent(svc) => Some(pick(svc, &client)),
            None => None,
        };
        self.log(Asked::Template(svc, client, t));
        t
    }

    fn prepare(&self, key: &FlowKey) -> u64 {
        Self::flow_hash(key)
    }

    fn assign_hashed(
        &mut self,
        svc: ServiceId,
        key: &FlowKey,
        hash: u64,
        _hint: u64,
        tcp: Option<TcpFlags>,
    ) -> Result<Target, StateDrop> {
        assert_eq!(
            hash,
            Self::flow_hash(key),
            "a hash prepared for another key"
        );
        self.assign(svc, key, tcp)
    }
}

/// Ones'-complement sum of `data` (odd tail padded with zero) plus `init`,
/// folded: 0xffff over a message and its checksum means the checksum holds.
pub fn ones_sum(data: &[u8], init: u32) -> u16 {
    let mut s = init as u64;
    for c in data.chunks(2) {
        s += u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]) as u64;
    }
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

/// The IPv6 pseudo-header sum for an upper-layer message of `len` bytes.
pub fn pseudo6(src: &[u8; 16], dst: &[u8; 16], next: u8, len: u32) -> u32 {
    let mut p = Vec::with_capacity(40);
    p.extend_from_slice(src);
    p.extend_from_slice(dst);
    p.extend_from_slice(&len.to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, next]);
    ones_sum(&p, 0) as u32
}

/// (EtherType after at most one 802.1Q tag, L3 offset), read by offsets.
pub fn l2(frame: &[u8]) -> Option<(u16, usize)> {
    let et = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
    if et == 0x8100 {
        Some((u16::from_be_bytes([*frame.get(16)?, *frame.get(17)?]), 18))
    } else {
        Some((et, 14))
    }
}

fn fam_addr(ip: std::net::IpAddr) -> (Family, Addr) {
    Addr::from_ip(ip)
}

/// Whether an IPv6 packet's extension headers include a fragment header
/// with a nonzero offset or the M flag (RFC 8200: 13-bit offset, 2 reserved
/// bits, M).
fn ipv6_fragmented(ip: &[u8]) -> bool {
    let (Some(&first), mut off) = (ip.get(6), 40usize) else {
        return false;
    };
    let mut next = first;
    for _ in 0..16 {
        let (Some(&nh), Some(&l)) = (ip.get(off), ip.get(off + 1)) else {
            return false;
        };
        match next {
            0 | 43 | 60 => off += (l as usize + 1) * 8,
            51 => off += (l as usize + 2) * 4,
            44 => {
                return ip
                    .get(off + 2..off + 4)
                    .is_some_and(|b| u16::from_be_bytes([b[0], b[1]]) & 0xfff9 != 0)
            }
            _ => return false,
        }
        next = nh;
    }
    false
}

/// The flow etherparse reads from a whole (unfragmented) TCP/UDP/SCTP
/// packet: `None` for anything else.
fn etherparse_flow(frame: &[u8]) -> Option<FlowKey> {
    let p = LaxSlicedPacket::from_ethernet(frame).ok()?;
    let (src, dst, payload, fragmented) = match p.net? {
        LaxNetSlice::Ipv4(ip) => (
            std::net::IpAddr::from(ip.header().source()),
            std::net::IpAddr::from(ip.header().destination()),
            ip.payload().clone(),
            ip.payload().fragmented,
        ),
        LaxNetSlice::Ipv6(ip) => {
            // etherparse 0.16 reads the IPv6 fragment header's offset and M
            // flag in IPv4's bit order (M from the top bit of byte 3), and
            // iterating its lax extension slices can read out of bounds:
            // walk the chain here, RFC 8200 layout.
            let fragmented = ipv6_fragmented(&frame[l2(frame)?.1..]);
            (
                std::net::IpAddr::from(ip.header().source()),
                std::net::IpAddr::from(ip.header().destination()),
                ip.payload().clone(),
                fragmented,
            )
        }
    };
    let proto = payload.ip_number.0;
    if fragmented || !matches!(proto, 6 | 17 | 132) {
        return None;
    }
    let ports = payload.payload.get(0..4)?;
    let (family, client) = fam_addr(src);
    let (_, vip) = fam_addr(dst);
    Some(FlowKey::new(
        family,
        proto,
        client,
        u16::from_be_bytes([ports[0], ports[1]]),
        vip,
        u16::from_be_bytes([ports[2], ports[3]]),
    ))
}

/// Decides a copy of `before` under `tx` and asserts the properties in the
/// module docs. Returns the verdict and the frame as the decision left it.
pub fn check_decide(before: &[u8], tx: TxVlan, state: &mut OracleState) -> (Verdict, Vec<u8>) {
    let mut after = before.to_vec();
    state.clear_log();
    let v = decide(&mut after, &ctx(tx), table(), state);
    let asked = state.asked.borrow().clone();
    check_verdict(before, &after, v, tx, &asked);
    (v, after)
}

/// The properties of one verdict `v` for `before`, which the decision
/// turned into `after` after asking the state layer `asked`.
pub fn check_verdict(before: &[u8], after: &[u8], v: Verdict, tx: TxVlan, asked: &[Asked]) {
    match v {
        Verdict::Drop(r) => {
            assert!(DropReason::ALL.contains(&r), "uncounted reason {r:?}");
            assert_eq!(after, before, "{r:?}: a dropped frame was modified");
        }
        Verdict::Neighbour => {
            assert_eq!(after, before, "a neighbour frame was modified");
            let (et, _) = l2(before).expect("a neighbour frame has an EtherType");
            assert!(
                et == 0x0806 || et == 0x86dd,
                "neighbour frame of type {et:#06x}"
            );
        }
        Verdict::Forward {
            target,
            vlan,
            ip_len,
        } => check_forward(before, after, (target, vlan, ip_len), tx, asked, false),
        Verdict::Fragment {
            target,
            vlan,
            ip_len,
        } => check_forward(before, after, (target, vlan, ip_len), tx, asked, true),
        Verdict::Reply { len } => check_reply(before, after, len),
        Verdict::TooBig { len } => check_too_big(before, after, len, tx, asked),
    }
}

/// The tunnel overhead by etherparse-independent arithmetic: outer IP
/// header (same family as the packet), plus UDP and GUE for gue.
fn tunnel_overhead(t: Tunnel, v6: bool) -> usize {
    (if v6 { 40 } else { 20 }) + if t.kind == TunnelKind::Gue { 12 } else { 0 }
}

/// A frame for tunnel server `target` leaves, once the worker encapsulated
/// what the decision left (`out`, the DR frame after the VLAN action), as
/// Ethernet + outer IP (+ UDP + GUE) + the received IP packet, byte for
/// byte, fitting the MTU; every outer field checked with etherparse.
/// The seed of the outer identifications the oracle's "worker" hands out.
const IDS_SEED: u64 = 0x1d5;

fn check_encap(
    before: &[u8],
    out: &[u8],
    (target, t, ip_len): (Target, Tunnel, u32),
    tx: TxVlan,
    fragment: bool,
) {
    let (et, l3) = l2(out).expect("the DR frame has an EtherType");
    let v6 = et == 0x86dd;
    let h = tunnel_overhead(t, v6);
    let ip_len = ip_len as usize;
    assert_eq!(
        ip_len + h > usize::from(mtu(tx)),
        fragment,
        "{ip_len} bytes into a {h}-byte tunnel under MTU {}: fragment {fragment}",
        mtu(tx)
    );
    let (_, in_l3) = l2(before).unwrap();
    let inner = &before[in_l3..in_l3 + ip_len];
    let mut buf = vec![0u8; h];
    buf.extend_from_slice(out);
    let dst = outer(target.rs, v6);
    let n = encapsulate(
        &mut buf,
        &dst,
        t,
        ip_len,
        &mut OuterIds::new(0, 1, IDS_SEED),
    )
    .expect("it encapsulates");
    let f = &buf[..n];
    if fragment {
        let Outer::V4 { dst, .. } = dst else {
            panic!("an IPv6 packet for fragments")
        };
        check_fragments(f, l3, mtu(tx), OuterIds::new(0, 1, IDS_SEED).next(dst));
    }
    assert_eq!(n, l3 + h + ip_len);
    assert_eq!(&f[..l3], &out[..l3], "the Ethernet header and tag are DR's");
    assert_eq!(&f[l3 + h..], inner, "the inner packet is byte-identical");
    let p =
        etherparse::SlicedPacket::from_ethernet(f).expect("etherparse decodes the tunnel frame");
    let (want_proto, inner_v6) = (if inner[0] >> 4 == 6 { 41 } else { 4 }, inner[0] >> 4 == 6);
    let proto = match &p.net {
        Some(NetSlice::Ipv4(ip)) => {
            let o = ip.header();
            let Outer::V4 { src, dst } = outer(target.rs, false) else {
                unreachable!()
            };
            assert_eq!((o.source(), o.destination()), (src, dst));
            assert_eq!(usize::from(o.total_len()), h + ip_len);
            assert_eq!(ones_sum(o.slice(), 0), 0xffff, "outer IPv4 checksum");
            assert_eq!(
                (o.fragments_offset().value(), o.more_fragments()),
                (0, false)
            );
            let ih = etherparse::Ipv4HeaderSlice::from_slice(inner).expect("inner IPv4");
            assert_eq!(o.ttl(), ih.ttl(), "TTL copied");
            assert_eq!(o.dont_fragment(), ih.dont_fragment(), "DF copied");
            assert_eq!(o.slice()[1], inner[1], "TOS copied");
            let Outer::V4 { dst, .. } = outer(target.rs, false) else {
                unreachable!()
            };
            let want_id = match ih.dont_fragment() {
                true => 0,
                false => OuterIds::new(0, 1, IDS_SEED).next(dst),
            };
            assert_eq!(o.identification(), want_id, "outer identification");
            o.protocol().0
        }
        Some(NetSlice::Ipv6(ip)) => {
            let o = ip.header();
            let Outer::V6 { src, dst } = outer(target.rs, true) else {
                unreachable!()
            };
            assert_eq!((o.source(), o.destination()), (src, dst));
            assert_eq!(usize::from(o.payload_length()) + 40, h + ip_len);
            let ih = etherparse::Ipv6HeaderSlice::from_slice(inner).expect("inner IPv6");
            assert_eq!(o.hop_limit(), ih.hop_limit(), "hop limit copied");
            assert_eq!(
                o.traffic_class(),
                ih.traffic_class(),
                "traffic class copied"
            );
            o.next_header().0
        }
        other => panic!("the outer header is no IP: {other:?}"),
    };
    assert!(!inner_v6 || v6, "an IPv6 packet in an IPv4 tunnel");
    match t.kind {
        TunnelKind::Ipip => assert_eq!(proto, want_proto, "ipip protocol"),
        TunnelKind::Gue => {
            assert_eq!(proto, 17, "gue is UDP");
            let Some(TransportSlice::Udp(u)) = &p.transport else {
                panic!("no UDP in a GUE frame: {:?}", p.transport)
            };
            assert_eq!(u.destination_port(), t.port);
            assert!(u.source_port() >= 49152, "source port {}", u.source_port());
            assert_eq!(usize::from(u.length()), 12 + ip_len);
            let udp = &f[l3 + h - 12..];
            assert_eq!(&udp[8..12], &[0, want_proto, 0, 0], "GUE header v0");
            let sum = |pseudo: u32| ones_sum(udp, pseudo);
            match &p.net {
                Some(NetSlice::Ipv4(ip)) if !t.csum => {
                    let _ = ip;
                    assert_eq!(u.checksum(), 0, "no UDP checksum without tun_csum")
                }
                Some(NetSlice::Ipv4(ip)) => {
                    let o = ip.header();
                    let mut ph = o.source().to_vec();
                    ph.extend_from_slice(&o.destination());
                    ph.extend_from_slice(&[0, 17]);
                    ph.extend_from_slice(&u.length().to_be_bytes());
                    assert_ne!(u.checksum(), 0);
                    assert_eq!(sum(u32::from(ones_sum(&ph, 0))), 0xffff, "UDP checksum");
                }
                Some(NetSlice::Ipv6(ip)) => {
                    let o = ip.header();
                    assert_ne!(u.checksum(), 0, "IPv6 always has a UDP checksum");
                    let ph = pseudo6(&o.source(), &o.destination(), 17, u32::from(u.length()));
                    assert_eq!(sum(ph), 0xffff, "UDP checksum over IPv6");
                }
                _ => unreachable!(),
            }
        }
    }
}

/// A packet for a tunnel server too big for the MTU once encapsulated got
/// an ICMP error back: from the RX port to its sender's MAC, tag kept, from
/// the packet's destination to its source, reporting MTU minus overhead,
/// quoting the start of the packet, checksums valid; and the state layer
/// did answer with a tunnel server.
fn check_too_big(before: &[u8], after: &[u8], len: usize, tx: TxVlan, asked: &[Asked]) {
    let (et, l3) = l2(before).expect("a too-big frame has an EtherType");
    let tunnel = asked
        .iter()
        .filter_map(|a| a.answer())
        .find_map(|t| match t.forward {
            Forwarding::Tunnel(tu) => Some(tu),
            Forwarding::Dr => None,
        })
        .unwrap_or_else(|| panic!("too big without a tunnel server: {asked:?}"));
    let v6 = et == 0x86dd;
    let want_mtu = usize::from(mtu(tx)) - tunnel_overhead(tunnel, v6);
    assert!(len <= after.len() && len > l3);
    let r = &after[..len];
    assert_eq!(&r[0..6], &before[6..12], "back to the sender's MAC");
    assert_eq!(&r[6..12], &RX_MAC, "from the RX port");
    assert_eq!(&r[12..l3], &before[12..l3], "the tag is kept");
    let q = &before[l3..];
    let p = SlicedPacket::from_ethernet(r).expect("etherparse decodes the ICMP error");
    match (&p.net, &p.transport) {
        (Some(NetSlice::Ipv4(ip)), Some(TransportSlice::Icmpv4(icmp))) => {
            let qh = etherparse::Ipv4HeaderSlice::from_slice(q).expect("the packet was IPv4");
            assert!(qh.dont_fragment(), "too-big reply for a packet without DF");
            let h = ip.header();
            assert_eq!(
                (h.source(), h.destination()),
                (qh.destination(), qh.source())
            );
            assert_eq!(ones_sum(h.slice(), 0), 0xffff, "IPv4 header checksum");
            assert_eq!(
                icmp.icmp_type(),
                etherparse::Icmpv4Type::DestinationUnreachable(
                    etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded {
                        next_hop_mtu: want_mtu as u16
                    }
                )
            );
            let m = ip.payload().payload;
            assert_eq!(ones_sum(m, 0), 0xffff, "ICMP checksum");
            let quote = &m[8..];
            assert!(quote.len() >= 28 && quote.len() <= 548);
            assert_eq!(quote, &q[..quote.len()], "quotes the packet");
            assert!(
                usize::from(qh.total_len()) + tunnel_overhead(tunnel, false) > usize::from(mtu(tx))
            );
        }
        (Some(NetSlice::Ipv6(ip)), Some(TransportSlice::Icmpv6(icmp))) => {
            let qh = etherparse::Ipv6HeaderSlice::from_slice(q).expect("the packet was IPv6");
            let h = ip.header();
            assert_eq!(
                (h.source(), h.destination()),
                (qh.destination(), qh.source())
            );
            assert_eq!(
                icmp.icmp_type(),
                etherparse::Icmpv6Type::PacketTooBig {
                    mtu: want_mtu as u32
                }
            );
            let m = icmp.slice();
            assert_eq!(
                ones_sum(
                    m,
                    pseudo6(&h.source(), &h.destination(), 58, m.len() as u32)
                ),
                0xffff,
                "ICMPv6 checksum"
            );
            let quote = &m[8..];
            assert_eq!(quote, &q[..quote.len()], "quotes the packet");
            assert!(
                usize::from(qh.payload_length()) + 40 + tunnel_overhead(tunnel, true)
                    > usize::from(mtu(tx))
            );
        }
        other => panic!("a too-big reply that is no ICMP error: {other:?}"),
    }
}

fn check_forward(
    before: &[u8],
    after: &[u8],
    (target, vlan, ip_len): (Target, VlanAction, u32),
    tx: TxVlan,
    asked: &[Asked],
    fragment: bool,
) {
    assert_eq!(&before[0..6], &RX_MAC, "forwarded a frame not sent to us");
    let (et, l3) = l2(before).expect("a forwarded frame has an EtherType");
    assert!(
        et == 0x0800 || et == 0x86dd,
        "forwarded EtherType {et:#06x}"
    );
    // The bytes counted for the server are the IP packet's own length (the
    // IPv4 total length, the IPv6 payload plus its 40-byte header), never
    // the frame's padding.
    let want_len = if et == 0x0800 {
        etherparse::Ipv4HeaderSlice::from_slice(&before[l3..])
            .map(|h| u32::from(h.total_len()))
            .expect("a forwarded IPv4 header parses")
    } else {
        etherparse::Ipv6HeaderSlice::from_slice(&before[l3..])
            .map(|h| u32::from(h.payload_length()) + 40)
            .expect("a forwarded IPv6 header parses")
    };
    assert_eq!(ip_len, want_len, "bytes counted for the forward");
    // The target is an answer of the state layer, a server of the service
    // it answered for.
    let svc = service_of(target.rs);
    assert!(
        servers(svc).any(|t| t == target),
        "{target:?} is no server of {svc:?}"
    );
    let source = asked
        .iter()
        .find(|a| a.answer() == Some(target))
        .unwrap_or_else(|| panic!("{target:?} is no answer of the state layer: {asked:?}"));
    match *source {
        Asked::Assign(s, _, _) | Asked::Template(s, _, _) => assert_eq!(s, svc),
        Asked::Conn(..) => {}
    }
    // A whole TCP/UDP/SCTP packet was assigned as the flow it is, for the
    // service the table gives that flow.
    if let Some(flow) = etherparse_flow(before) {
        let want = table().lookup(flow.family(), flow.proto(), &flow.vip(), flow.vport());
        assert!(
            asked.contains(&Asked::Assign(svc, flow, Some(target))) && want == Some(svc),
            "forwarded {flow:?} (service {want:?}) to {target:?}; asked {asked:?}"
        );
    }
    // Bytes: only the MACs (and the VLAN id, per policy) changed.
    assert_eq!(after.len(), before.len());
    assert_eq!(&after[0..6], target.mac.as_bytes());
    assert_eq!(&after[6..12], &TX_MAC);
    let tagged = l3 == 18;
    let tci = tagged.then(|| u16::from_be_bytes([before[14], before[15]]));
    let want_vlan = match (tx, tci) {
        (TxVlan::Keep, _) | (TxVlan::Untagged, None) | (TxVlan::Set(_), Some(_)) => {
            VlanAction::None
        }
        (TxVlan::Set(vid), None) => VlanAction::Insert(vid & 0x0fff),
        (TxVlan::Untagged, Some(_)) => VlanAction::Remove,
    };
    assert_eq!(vlan, want_vlan, "VLAN action under {tx:?}");
    match (tx, tci) {
        (TxVlan::Set(vid), Some(t)) => {
            let new = (t & 0xf000) | (vid & 0x0fff);
            assert_eq!(&after[12..14], &before[12..14]);
            assert_eq!(&after[14..16], &new.to_be_bytes(), "VLAN id set in place");
            assert_eq!(&after[16..], &before[16..]);
        }
        _ => assert_eq!(&after[12..], &before[12..]),
    }
    // What leaves the TX port once the worker applied the VLAN action.
    let mut buf = vec![0u8; 4];
    buf.extend_from_slice(after);
    let (s, l) = apply_vlan(&mut buf, 4, after.len(), vlan).expect("the VLAN action applies");
    let out = &buf[s..s + l];
    let mut want = target.mac.as_bytes().to_vec();
    want.extend_from_slice(&TX_MAC);
    let out_tci = match (tx, tci) {
        (TxVlan::Keep, t) => t,
        (TxVlan::Set(vid), t) => Some((t.unwrap_or(0) & 0xf000) | (vid & 0x0fff)),
        (TxVlan::Untagged, _) => None,
    };
    if let Some(t) = out_tci {
        want.extend_from_slice(&[0x81, 0x00]);
        want.extend_from_slice(&t.to_be_bytes());
    }
    want.extend_from_slice(&before[l3 - 2..]);
    assert_eq!(out, &want[..], "the frame on the wire under {tx:?}");
    match target.forward {
        Forwarding::Tunnel(t) => check_encap(before, out, (target, t, ip_len), tx, fragment),
        Forwarding::Dr => assert!(!fragment, "fragments for a DR server"),
    }
}

/// The outer IPv4 packet of `f` (header at `l3`) split for `mtu`, each
/// fragment decoded with etherparse: it fits, has `f`'s Ethernet header and
/// identification `id`, no DF, MF on all but the last, offsets in order,
/// a valid checksum; the payloads put together are `f`'s. (A packet that
/// needs more than `MAX_FRAGMENTS` is the worker's counted drop.)
fn check_fragments(f: &[u8], l3: usize, mtu: u16, id: u16) {
    let total = usize::from(u16::from_be_bytes([f[l3 + 2], f[l3 + 3]]));
    let per = (usize::from(mtu) - 20) & !7;
    let s = match Split::plan(f, mtu) {
        Ok(s) => s,
        Err(SplitError::TooMany) if (total - 20).div_ceil(per) > MAX_FRAGMENTS => return,
        Err(e) => panic!("the outer packet of {total} bytes does not split: {e:?}"),
    };
    let mut frags = vec![f.to_vec()];
    for k in 1..s.count() {
        let mut g = vec![0u8; s.frame_len(k)];
        assert!(s.write(f, k, &mut g), "fragment {k} written");
        frags.push(g);
    }
    let n = s.first(&mut frags[0]);
    frags[0].truncate(n);
    let mut payload = Vec::new();
    for (k, g) in frags.iter().enumerate() {
        assert_eq!(&g[..l3], &f[..l3], "fragment {k}: the Ethernet header");
        let h = etherparse::Ipv4HeaderSlice::from_slice(&g[l3..]).expect("fragment header");
        assert!(
            g.len() - l3 <= usize::from(mtu),
            "fragment {k} over the MTU"
        );
        assert_eq!(usize::from(h.total_len()), g.len() - l3);
        assert_eq!(ones_sum(h.slice(), 0), 0xffff, "fragment {k} checksum");
        assert_eq!(h.identification(), id, "fragment {k}: one identification");
        assert!(!h.dont_fragment());
        assert_eq!(h.more_fragments(), k + 1 < frags.len(), "fragment {k}: MF");
        assert_eq!(usize::from(h.fragments_offset().value()) * 8, payload.len());
        assert_eq!(&h.slice()[8..10], &f[l3 + 8..l3 + 10], "TTL, protocol");
        assert_eq!(&h.slice()[12..20], &f[l3 + 12..l3 + 20], "addresses");
        payload.extend_from_slice(&g[l3 + 20..]);
    }
    assert_eq!(payload, &f[l3 + 20..l3 + total], "the fragments reassemble");
}

fn check_reply(before: &[u8], after: &[u8], len: usize) {
    assert!(
        len <= after.len(),
        "reply of {len} bytes from {}",
        after.len()
    );
    let (et, l3) = l2(before).expect("a reply has an EtherType");
    assert!(len >= l3, "reply of {len} bytes, L3 at {l3}");
    let r = &after[..len];
    assert_eq!(&r[6..12], &RX_MAC, "a reply comes from the RX port");
    assert_eq!(&r[12..l3], &before[12..l3], "a reply keeps the tag");
    let vip_info = |fam, a: Addr| table().vip(fam, &a);
    match et {
        0x0806 => {
            // RFC 826 offsets, not pmdlb's ARP view.
            let (q, a) = (&before[l3..], &r[l3..]);
            assert_eq!(&a[0..6], &[0, 1, 0x08, 0x00, 6, 4]);
            assert_eq!(&q[6..8], &[0, 1], "only requests are answered");
            assert_eq!(&a[6..8], &[0, 2], "an ARP reply");
            assert_eq!(&a[8..14], &RX_MAC, "sender MAC");
            assert_eq!(&a[14..18], &q[24..28], "sender IP = the VIP asked for");
            assert_eq!(&a[18..24], &q[8..14], "target MAC = the asker");
            assert_eq!(&a[24..28], &q[14..18], "target IP = the asker");
            assert_eq!(&r[0..6], &before[6..12], "to the asker's Ethernet address");
            let vip: [u8; 4] = q[24..28].try_into().unwrap();
            assert!(
                vip_info(Family::V4, Addr::v4(vip)).is_some_and(|v| v.answer_arp),
                "answered ARP for {vip:?}"
            );
        }
        0x0800 => {
            let p = SlicedPacket::from_ethernet(r).expect("etherparse decodes the echo reply");
            let (Some(NetSlice::Ipv4(ip)), Some(TransportSlice::Icmpv4(icmp))) =
                (&p.net, &p.transport)
            else {
                panic!("an IPv4 reply that is no ICMP: {p:?}")
            };
            let q = SlicedPacket::from_ethernet(&before[..len]).expect("the request decodes");
            let Some(NetSlice::Ipv4(qip)) = &q.net else {
                panic!("request not IPv4")
            };
            let (h, qh) = (ip.header(), qip.header());
            assert_eq!(h.source(), qh.destination());
            assert_eq!(h.destination(), qh.source());
            assert_eq!(h.ttl(), 64);
            assert_eq!(ones_sum(h.slice(), 0), 0xffff, "IPv4 header checksum");
            assert!(
                vip_info(Family::V4, Addr::v4(h.source())).is_some_and(|v| v.answer_ping),
                "answered ping for {:?}",
                h.source()
            );
            let m = ip.payload().payload;
            let qm = qip.payload().payload;
            assert_eq!((m[0], qm[0]), (0, 8), "echo request -> echo reply");
            assert_eq!(m[1], qm[1], "code");
            assert_eq!(&m[4..], &qm[4..], "identifier, sequence and data");
            assert_eq!(icmp.slice(), m);
            assert_eq!(ones_sum(m, 0), 0xffff, "ICMP checksum");
            assert_eq!(&r[0..6], &before[6..12], "to the asker's Ethernet address");
        }
        0x86dd => {
            let p = SlicedPacket::from_ethernet(r).expect("etherparse decodes the ICMPv6 reply");
            let (Some(NetSlice::Ipv6(ip)), Some(TransportSlice::Icmpv6(icmp))) =
                (&p.net, &p.transport)
            else {
                panic!("an IPv6 reply that is no ICMPv6: {p:?}")
            };
            let qb = &before[l3..];
            let (q_src, q_dst): ([u8; 16], [u8; 16]) = (
                qb[8..24].try_into().unwrap(),
                qb[24..40].try_into().unwrap(),
            );
            let h = ip.header();
            let m = icmp.slice();
            assert_eq!(
                ones_sum(
                    m,
                    pseudo6(&h.source(), &h.destination(), 58, m.len() as u32)
                ),
                0xffff,
                "ICMPv6 checksum"
            );
            let qm = &qb[40..];
            match m[0] {
                129 => {
                    assert_eq!(qm[0], 128, "echo request -> echo reply");
                    assert_eq!(h.source(), q_dst);
                    assert_eq!(h.destination(), q_src);
                    assert_eq!(h.hop_limit(), 64);
                    assert!(vip_info(Family::V6, Addr::v6(q_dst)).is_some_and(|v| v.answer_ping));
                    assert_eq!(&m[4..], &qm[4..m.len()], "identifier, sequence and data");
                    assert_eq!(&r[0..6], &before[6..12], "to the asker's Ethernet address");
                }
                136 => {
                    assert_eq!(qm[0], 135, "solicitation -> advertisement");
                    let target: [u8; 16] = qm[8..24].try_into().unwrap();
                    assert_eq!(&m[8..24], &target, "NA target = NS target");
                    assert_eq!(h.source(), target);
                    assert_eq!(h.hop_limit(), 255);
                    assert!(vip_info(Family::V6, Addr::v6(target)).is_some_and(|v| v.answer_arp));
                    if q_src == [0; 16] {
                        assert_eq!(h.destination()[..2], [0xff, 0x02], "DAD: to all nodes");
                        assert_eq!(m[4], 0x20, "DAD: override only");
                        assert_eq!(&r[0..6], &[0x33, 0x33, 0, 0, 0, 1]);
                    } else {
                        assert_eq!(h.destination(), q_src);
                        assert_eq!(m[4], 0x60, "solicited, override");
                    }
                    assert!(m.len() == 24 || m.len() == 32, "NA of {} bytes", m.len());
                    if m.len() == 32 {
                        assert_eq!(&m[24..26], &[2, 1], "target link-layer option");
                        assert_eq!(&m[26..32], &RX_MAC);
                    }
                }
                t => panic!("ICMPv6 reply of type {t}"),
            }
        }
        _ => panic!("reply to EtherType {et:#06x}"),
    }
}

/// Decides `frames` as one burst and frame by frame (each frame checked
/// with [`check_decide`]), from two copies of `state`, and asserts the same
/// verdicts, the same bytes and the same connection count. Returns the
/// verdicts.
pub fn check_burst(frames: &[Vec<u8>], tx: TxVlan, state: &OracleState) -> Vec<Verdict> {
    let mut one_by_one = state.clone();
    let (expected, bytes): (Vec<Verdict>, Vec<Vec<u8>>) = frames
        .iter()
        .map(|f| check_decide(f, tx, &mut one_by_one))
        .unzip();
    let mut burst_state = state.clone();
    let mut burst: Vec<Vec<u8>> = frames.to_vec();
    let mut refs: Vec<&mut [u8]> = burst.iter_mut().map(|f| &mut f[..]).collect();
    let mut got = vec![Verdict::Neighbour; refs.len()];
    decide_burst(&mut refs, &mut got, &ctx(tx), table(), &mut burst_state);
    assert_eq!(got, expected, "decide_burst verdicts under {tx:?}");
    assert_eq!(burst, bytes, "decide_burst bytes under {tx:?}");
    assert_eq!(burst_state.conn_count(), one_by_one.conn_count());
    got
}
