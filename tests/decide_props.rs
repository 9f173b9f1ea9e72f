//! Decision tests across modules: frames built with an independent crate
//! (etherparse) are decided against a small service table and a test double
//! of the state layer; forwarded frames must come out byte-identical except
//! for the MAC addresses; arbitrary bytes never panic.

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};

use etherparse::{PacketBuilder, SlicedPacket, VlanId};
use pmdlb::dataplane::decide::decide_burst;
use pmdlb::dataplane::rewrite::apply_vlan;
use pmdlb::dataplane::{decide, DecideCtx, DropReason, TxVlan, Verdict, VlanAction};
use pmdlb::lb::flow::{FlowState, StateDrop, Target};
use pmdlb::lb::service::ServiceTable;
use pmdlb::lb::spec::{
    MarkRuleSpec, Persistence, PortRange, SchedFlags, SchedulerKind, ServiceAddr, ServiceSpec,
    VipSpec,
};
use pmdlb::lb::types::{Addr, FlowKey, RsId, ServiceId, TcpFlags};
use pmdlb::wire::ethernet::MacAddr;
use proptest::prelude::*;

const RX_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xaa];
const TX_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xbb];
const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const VIP4: [u8; 4] = [10, 0, 0, 100];
const VIP4_MARK: [u8; 4] = [10, 0, 0, 101];
const VIP4_PERSIST: [u8; 4] = [10, 0, 0, 102];
const CLIENT4: [u8; 4] = [192, 0, 2, 7];
const VIP6: [u8; 16] = [
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x64,
];
const CLIENT6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7];

/// Test double of the state layer only: a connection map, a template map for
/// persistent services and a hash of the key over a fixed server list.
struct TestState {
    servers: Vec<MacAddr>,
    persistent: HashSet<ServiceId>,
    conns: HashMap<FlowKey, Target>,
    templates: HashMap<(ServiceId, Addr), Target>,
    fail: Option<StateDrop>,
}

impl TestState {
    fn new() -> Self {
        TestState {
            servers: (1..=4).map(|i| MacAddr([0x02, 0, 0, 0, 1, i])).collect(),
            persistent: [ServiceId(3), ServiceId(4)].into_iter().collect(),
            conns: HashMap::new(),
            templates: HashMap::new(),
            fail: None,
        }
    }
}

impl FlowState for TestState {
    fn assign(
        &mut self,
        svc: ServiceId,
        key: &FlowKey,
        tcp: Option<TcpFlags>,
    ) -> Result<Target, StateDrop> {
        if let Some(e) = self.fail {
            return Err(e);
        }
        if let Some(t) = self.conns.get(key) {
            return Ok(*t);
        }
        let t = match self.templates.get(&(svc, key.client())) {
            Some(t) => *t,
            None => {
                if tcp.is_some_and(|f| !f.has(TcpFlags::SYN)) {
                    return Err(StateDrop::TcpNotSyn);
                }
                let mut h = std::collections::hash_map::DefaultHasher::new();
                key.hash(&mut h);
                let i = (h.finish() % self.servers.len() as u64) as usize;
                Target {
                    rs: RsId(i as u32),
                    mac: self.servers[i],
                    forward: Default::default(),
                }
            }
        };
        if self.persistent.contains(&svc) {
            self.templates.insert((svc, key.client()), t);
        }
        self.conns.insert(*key, t);
        Ok(t)
    }

    fn lookup_conn(&self, key: &FlowKey) -> Option<Target> {
        self.conns.get(key).copied()
    }

    fn lookup_template(&self, svc: ServiceId, client: Addr) -> Option<Target> {
        self.templates.get(&(svc, client)).copied()
    }
}

fn service(addr: ServiceAddr, persistent: bool) -> ServiceSpec {
    ServiceSpec {
        ops: false,
        addr,
        scheduler: SchedulerKind::Rr,
        sched_flags: SchedFlags::default(),
        persistence: persistent.then_some(Persistence {
            timeout_s: 300,
            prefix_len: 32,
        }),
        servers: vec![],
    }
}

fn addr(proto: u8, vip: std::net::IpAddr, port: u16) -> ServiceAddr {
    ServiceAddr::Addr { proto, vip, port }
}

/// svc0 tcp VIP4:80, svc1 udp VIP4:0, svc2 tcp [VIP6]:443, svc3 fwmark 5
/// (persistent; rule VIP4_MARK tcp 80,443), svc4 tcp VIP4_PERSIST:0 persistent,
/// svc5 udp [VIP6]:53, svc6 sctp VIP4:0.
fn table() -> ServiceTable {
    let v4 = std::net::IpAddr::from(VIP4);
    let v6 = std::net::IpAddr::from(VIP6);
    ServiceTable::new(
        &[
            service(addr(6, v4, 80), false),
            service(addr(17, v4, 0), false),
            service(addr(6, v6, 443), false),
            service(ServiceAddr::Fwmark(5), true),
            service(addr(6, VIP4_PERSIST.into(), 0), true),
            service(addr(17, v6, 53), false),
            service(addr(132, v4, 0), false),
        ],
        &[MarkRuleSpec {
            dst: VIP4_MARK.into(),
            prefix_len: 32,
            proto: Some(6),
            ports: vec![PortRange { lo: 80, hi: 80 }, PortRange { lo: 443, hi: 443 }],
            mark: 5,
        }],
        &[
            VipSpec {
                addr: v4,
                answer_arp: true,
                answer_ping: true,
            },
            VipSpec {
                addr: v6,
                answer_arp: true,
                answer_ping: true,
            },
            VipSpec {
                addr: VIP4_MARK.into(),
                answer_arp: false,
                answer_ping: false,
            },
        ],
    )
    .unwrap()
}

fn ctx(tx_vlan: TxVlan) -> DecideCtx {
    DecideCtx {
        rx_mac: MacAddr(RX_MAC),
        tx_mac: MacAddr(TX_MAC),
        tx_vlan,
        tunnel_mtu: 1500,
    }
}

fn tcp4(dst: [u8; 4], sport: u16, dport: u16, syn: bool, payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(CLIENT_MAC, RX_MAC)
        .ipv4(CLIENT4, dst, 64)
        .tcp(sport, dport, 1000, 65535);
    let b = if syn { b.syn() } else { b.ack(1) };
    let mut v = Vec::new();
    b.write(&mut v, payload).unwrap();
    v
}

fn udp4(dst: [u8; 4], sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, RX_MAC)
        .ipv4(CLIENT4, dst, 64)
        .udp(sport, dport)
        .write(&mut v, payload)
        .unwrap();
    v
}

fn run(frame: &mut [u8], tx: TxVlan, st: &mut TestState) -> Verdict {
    decide(frame, &ctx(tx), &table(), st)
}

/// The target and VLAN action of a `Forward` verdict.
fn forward_of(v: Verdict) -> Option<(Target, VlanAction)> {
    match v {
        Verdict::Forward { target, vlan, .. } => Some((target, vlan)),
        _ => None,
    }
}

/// Forwarded frames differ from the input only in the two MACs.
fn assert_dr(before: &[u8], after: &[u8], target: &Target) {
    assert_eq!(before.len(), after.len());
    assert_eq!(&after[0..6], target.mac.as_bytes());
    assert_eq!(&after[6..12], &TX_MAC);
    assert_eq!(&before[12..], &after[12..]);
}

#[test]
fn tcp_v4_forward_is_dr() {
    let mut st = TestState::new();
    let orig = tcp4(VIP4, 40000, 80, true, b"hello");
    let mut f = orig.clone();
    let v = run(&mut f, TxVlan::Keep, &mut st);
    let Verdict::Forward { target, vlan, .. } = v else {
        panic!("{v:?}")
    };
    assert_eq!(vlan, VlanAction::None);
    assert_dr(&orig, &f, &target);
    // The same flow's next packet (ACK) goes to the same server.
    let mut f2 = tcp4(VIP4, 40000, 80, false, b"");
    assert_eq!(
        forward_of(run(&mut f2, TxVlan::Keep, &mut st)),
        Some((target, VlanAction::None))
    );
}

#[test]
fn forward_reports_the_ip_length_without_padding() {
    // What IPVS counts as bytes: the IP packet, not the Ethernet frame
    // and not the padding a short frame carries.
    let mut st = TestState::new();
    let mut f = udp4(VIP4, 40000, 53, b"hi");
    let ip_len = f.len() - 14;
    assert_eq!(ip_len, 20 + 8 + 2);
    f.resize(60, 0);
    let v = run(&mut f, TxVlan::Keep, &mut st);
    let Verdict::Forward { ip_len: got, .. } = v else {
        panic!("{v:?}")
    };
    assert_eq!(got as usize, ip_len);
}

#[test]
fn drops_with_reasons() {
    let mut st = TestState::new();
    // Not a VIP.
    let mut f = tcp4([10, 9, 9, 9], 1, 80, true, b"");
    assert_eq!(
        run(&mut f, TxVlan::Keep, &mut st),
        Verdict::Drop(DropReason::NotForUs)
    );
    // VIP, no service on that port.
    let mut f = tcp4(VIP4, 1, 81, true, b"");
    assert_eq!(
        run(&mut f, TxVlan::Keep, &mut st),
        Verdict::Drop(DropReason::NoService)
    );
    // UDP port-0 service takes any port.
    let mut f = udp4(VIP4, 1, 9999, b"x");
    assert!(matches!(
        run(&mut f, TxVlan::Keep, &mut st),
        Verdict::Forward { .. }
    ));
    // Wrong destination MAC.
    let mut f = tcp4(VIP4, 1, 80, true, b"");
    f[5] = 0xcc;
    assert_eq!(
        run(&mut f, TxVlan::Keep, &mut st),
        Verdict::Drop(DropReason::NotForUs)
    );
    // Broadcast IPv4.
    let mut f = tcp4(VIP4, 1, 80, true, b"");
    f[0..6].copy_from_slice(&[0xff; 6]);
    assert_eq!(
        run(&mut f, TxVlan::Keep, &mut st),
        Verdict::Drop(DropReason::NotForUs)
    );
    // Bad IPv4 header checksum.
    let mut f = tcp4(VIP4, 1, 80, true, b"");
    f[14 + 10] ^= 1;
    assert_eq!(
        run(&mut f, TxVlan::Keep, &mut st),
        Verdict::Drop(DropReason::Ipv4BadChecksum)
    );
    // TCP ACK without a connection: the state layer's reason.
    let mut f = tcp4(VIP4, 2, 80, false, b"");
    assert_eq!(
        run(&mut f, TxVlan::Keep, &mut st),
        Verdict::Drop(DropReason::TcpNotSyn)
    );
    st.fail = Some(StateDrop::TableFull);
    let mut f = tcp4(VIP4, 3, 80, true, b"");
    assert_eq!(
        run(&mut f, TxVlan::Keep, &mut st),
        Verdict::Drop(DropReason::TableFull)
    );
    st.fail = None;
    // Unknown ethertype, QinQ.
    let mut f = tcp4(VIP4, 1, 80, true, b"");
    f[12..14].copy_from_slice(&[0x88, 0xb5]);
    assert_eq!(
        run(&mut f, TxVlan::Keep, &mut st),
        Verdict::Drop(DropReason::UnknownEthertype)
    );
    f[12..14].copy_from_slice(&[0x88, 0xa8]);
    assert_eq!(
        run(&mut f, TxVlan::Keep, &mut st),
        Verdict::Drop(DropReason::QinQ)
    );
    // Unknown L4 protocol (GRE) to a VIP.
    let mut f = tcp4(VIP4, 1, 80, true, b"");
    f[14 + 9] = 47;
    fix_ipv4_checksum(&mut f, 14);
    assert_eq!(
        run(&mut f, TxVlan::Keep, &mut st),
        Verdict::Drop(DropReason::UnknownL4Proto)
    );
}

fn fix_ipv4_checksum(f: &mut [u8], l3: usize) {
    f[l3 + 10] = 0;
    f[l3 + 11] = 0;
    let hl = (f[l3] & 0xf) as usize * 4;
    let c = pmdlb::wire::checksum::checksum(&f[l3..l3 + hl]);
    f[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
}

#[test]
fn ttl_zero_dropped_ttl_one_forwarded_untouched() {
    let mut st = TestState::new();
    let mut f = tcp4(VIP4, 1, 80, true, b"");
    f[14 + 8] = 0;
    fix_ipv4_checksum(&mut f, 14);
    assert_eq!(
        run(&mut f, TxVlan::Keep, &mut st),
        Verdict::Drop(DropReason::TtlExpired)
    );
    f[14 + 8] = 1;
    fix_ipv4_checksum(&mut f, 14);
    let orig = f.clone();
    let Verdict::Forward { target, .. } = run(&mut f, TxVlan::Keep, &mut st) else {
        panic!()
    };
    assert_dr(&orig, &f, &target);
}

#[test]
fn fwmark_groups_ports_before_exact_services() {
    let mut st = TestState::new();
    let mut a = tcp4(VIP4_MARK, 5000, 80, true, b"");
    let mut b = tcp4(VIP4_MARK, 5001, 443, true, b"");
    let va = run(&mut a, TxVlan::Keep, &mut st);
    let vb = run(&mut b, TxVlan::Keep, &mut st);
    assert!(matches!(va, Verdict::Forward { .. }));
    assert_eq!(va, vb, "one client, one server across the fwmark ports");
    assert!(st
        .templates
        .contains_key(&(ServiceId(3), Addr::v4(CLIENT4))));
    let mut c = tcp4(VIP4_MARK, 5002, 8080, true, b"");
    assert_eq!(
        run(&mut c, TxVlan::Keep, &mut st),
        Verdict::Drop(DropReason::NoService)
    );
}

#[test]
fn vlan_policies() {
    let mut st = TestState::new();
    let mut tagged = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, RX_MAC)
        .single_vlan(VlanId::try_new(100).unwrap())
        .ipv4(CLIENT4, VIP4, 64)
        .tcp(40000, 80, 1, 1000)
        .syn()
        .write(&mut tagged, b"abc")
        .unwrap();
    // Keep.
    let mut f = tagged.clone();
    let Verdict::Forward { target, vlan, .. } = run(&mut f, TxVlan::Keep, &mut st) else {
        panic!()
    };
    assert_eq!(vlan, VlanAction::None);
    assert_dr(&tagged, &f, &target);
    // Set on a tagged frame: VLAN id changed in place.
    let mut f = tagged.clone();
    let Verdict::Forward { vlan, .. } = run(&mut f, TxVlan::Set(200), &mut st) else {
        panic!()
    };
    assert_eq!(vlan, VlanAction::None);
    assert_eq!(u16::from_be_bytes([f[14], f[15]]) & 0xfff, 200);
    assert_eq!(&f[16..], &tagged[16..]);
    // Untagged on a tagged frame: removal, checked against an etherparse
    // untagged frame.
    let mut f = tagged.clone();
    let Verdict::Forward { target, vlan, .. } = run(&mut f, TxVlan::Untagged, &mut st) else {
        panic!()
    };
    assert_eq!(vlan, VlanAction::Remove);
    let mut buf = vec![0u8; 8];
    buf.extend_from_slice(&f);
    let (s, l) = apply_vlan(&mut buf, 8, f.len(), vlan).unwrap();
    let mut untagged = tcp4(VIP4, 40000, 80, true, b"abc");
    untagged[0..6].copy_from_slice(target.mac.as_bytes());
    untagged[6..12].copy_from_slice(&TX_MAC);
    // etherparse's tcp4 uses seq 1000 / window 65535: compare IP headers and up.
    assert_eq!(&buf[s..s + 14], &untagged[..14]);
    assert_eq!(&buf[s + 14..s + l], &tagged[18..]);
    // Set on an untagged frame: insertion.
    let orig = tcp4(VIP4, 40001, 80, true, b"abc");
    let mut f = orig.clone();
    let Verdict::Forward { vlan, .. } = run(&mut f, TxVlan::Set(7), &mut st) else {
        panic!()
    };
    assert_eq!(vlan, VlanAction::Insert(7));
    let mut buf = vec![0u8; 4];
    buf.extend_from_slice(&f);
    let (s, l) = apply_vlan(&mut buf, 4, f.len(), vlan).unwrap();
    let out = &buf[s..s + l];
    let p = SlicedPacket::from_ethernet(out).unwrap();
    assert!(p.vlan.is_some());
    assert_eq!(&out[18..], &orig[14..]);
}

#[test]
fn arp_for_vip_is_answered() {
    let mut st = TestState::new();
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&CLIENT_MAC);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&CLIENT_MAC);
    f.extend_from_slice(&CLIENT4);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&VIP4);
    f.resize(60, 0);
    let mut r = f.clone();
    assert_eq!(
        run(&mut r, TxVlan::Keep, &mut st),
        Verdict::Reply { len: 60 }
    );
    assert_eq!(&r[0..6], &CLIENT_MAC);
    assert_eq!(&r[6..12], &RX_MAC);
    assert_eq!(&r[20..22], &[0, 2]);
    assert_eq!(&r[22..28], &RX_MAC);
    assert_eq!(&r[28..32], &VIP4);
    assert_eq!(&r[32..38], &CLIENT_MAC);
    assert_eq!(&r[38..42], &CLIENT4);
    // VIP without answer_arp; not a VIP; a reply; gratuitous.
    let mut g = f.clone();
    g[38..42].copy_from_slice(&VIP4_MARK);
    assert_eq!(
        run(&mut g, TxVlan::Keep, &mut st),
        Verdict::Drop(DropReason::ArpNotForVip)
    );
    g[38..42].copy_from_slice(&[10, 0, 0, 1]);
    assert_eq!(
        run(&mut g, TxVlan::Keep, &mut st),
        Verdict::Drop(DropReason::ArpNotForVip)
    );
    g[21] = 2;
    assert_eq!(run(&mut g, TxVlan::Keep, &mut st), Verdict::Neighbour);
    g[21] = 1;
    g[28..32].copy_from_slice(&[10, 0, 0, 1]);
    assert_eq!(run(&mut g, TxVlan::Keep, &mut st), Verdict::Neighbour);
    g[21] = 9;
    assert_eq!(
        run(&mut g, TxVlan::Keep, &mut st),
        Verdict::Drop(DropReason::ArpMalformed)
    );
}

#[test]
fn ping_v4_and_v6() {
    let mut st = TestState::new();
    let mut f = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, RX_MAC)
        .ipv4(CLIENT4, VIP4, 5)
        .icmpv4_echo_request(7, 9)
        .write(&mut f, b"pingdata")
        .unwrap();
    let len = f.len();
    assert_eq!(run(&mut f, TxVlan::Keep, &mut st), Verdict::Reply { len });
    let p = SlicedPacket::from_ethernet(&f).unwrap();
    let Some(etherparse::NetSlice::Ipv4(ip)) = &p.net else {
        panic!()
    };
    assert_eq!(ip.header().source(), VIP4);
    assert_eq!(ip.header().destination(), CLIENT4);
    assert_eq!(
        ip.header().to_header().calc_header_checksum(),
        ip.header().header_checksum()
    );
    let Some(etherparse::TransportSlice::Icmpv4(icmp)) = &p.transport else {
        panic!()
    };
    assert_eq!(icmp.type_u8(), 0);
    assert_eq!(
        icmp.header().checksum,
        icmp.header().icmp_type.calc_checksum(icmp.payload())
    );
    assert_eq!(&f[0..6], &CLIENT_MAC);

    let mut f = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, RX_MAC)
        .ipv6(CLIENT6, VIP6, 5)
        .icmpv6_echo_request(7, 9)
        .write(&mut f, b"pingdata")
        .unwrap();
    let len = f.len();
    assert_eq!(run(&mut f, TxVlan::Keep, &mut st), Verdict::Reply { len });
    let p = SlicedPacket::from_ethernet(&f).unwrap();
    let Some(etherparse::TransportSlice::Icmpv6(icmp)) = &p.transport else {
        panic!()
    };
    assert_eq!(icmp.type_u8(), 129);
    let want = icmp
        .header()
        .icmp_type
        .calc_checksum(VIP6, CLIENT6, icmp.payload())
        .unwrap();
    assert_eq!(icmp.header().checksum, want);
    // Bad checksum and a VIP that does not answer ping.
    let mut f = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, RX_MAC)
        .ipv4(CLIENT4, VIP4_MARK, 5)
        .icmpv4_echo_request(7, 9)
        .write(&mut f, b"x")
        .unwrap();
    assert_eq!(
        run(&mut f, TxVlan::Keep, &mut st),
        Verdict::Drop(DropReason::IcmpNotHandled)
    );
    let mut f = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, RX_MAC)
        .ipv4(CLIENT4, VIP4, 5)
        .icmpv4_echo_request(7, 9)
        .write(&mut f, b"x")
        .unwrap();
    let n = f.len();
    f[n - 1] ^= 0xff;
    assert_eq!(
        run(&mut f, TxVlan::Keep, &mut st),
        Verdict::Drop(DropReason::IcmpBadChecksum)
    );
}

#[test]
fn icmp_errors_follow_their_connection() {
    let mut st = TestState::new();
    let mut syn = tcp4(VIP4, 40000, 80, true, b"");
    let Verdict::Forward { target, .. } = run(&mut syn, TxVlan::Keep, &mut st) else {
        panic!()
    };
    // The packet the real server sent: VIP:80 -> client:40000 (IP header + 8 bytes).
    let mut inner = Vec::new();
    PacketBuilder::ipv4(VIP4, CLIENT4, 64)
        .tcp(80, 40000, 5, 100)
        .write(&mut inner, &[])
        .unwrap();
    inner.truncate(28);
    let router = [198, 51, 100, 1];
    let mut f = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, RX_MAC)
        .ipv4(router, VIP4, 60)
        .icmpv4_raw(3, 4, [0, 0, 0x05, 0x78])
        .write(&mut f, &inner)
        .unwrap();
    let orig = f.clone();
    let v = run(&mut f, TxVlan::Keep, &mut st);
    assert_eq!(forward_of(v), Some((target, VlanAction::None)));
    assert_dr(&orig, &f, &target);
    // Unknown connection.
    let mut other = orig.clone();
    let off = 14 + 20 + 8 + 20 + 2; // inner destination port
    other[off] ^= 1;
    assert_eq!(
        run(&mut other, TxVlan::Keep, &mut st),
        Verdict::Drop(DropReason::IcmpNoConnection)
    );
    // Inner packet cut short.
    let mut short = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, RX_MAC)
        .ipv4(router, VIP4, 60)
        .icmpv4_raw(11, 0, [0; 4])
        .write(&mut short, &inner[..22])
        .unwrap();
    assert_eq!(
        run(&mut short, TxVlan::Keep, &mut st),
        Verdict::Drop(DropReason::IcmpMalformed)
    );

    // IPv6 packet too big.
    let mut syn6 = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, RX_MAC)
        .ipv6(CLIENT6, VIP6, 64)
        .tcp(50000, 443, 1, 100)
        .syn()
        .write(&mut syn6, &[])
        .unwrap();
    let Verdict::Forward { target, .. } = run(&mut syn6, TxVlan::Keep, &mut st) else {
        panic!()
    };
    let mut inner6 = Vec::new();
    PacketBuilder::ipv6(VIP6, CLIENT6, 64)
        .tcp(443, 50000, 1, 100)
        .write(&mut inner6, &[0u8; 100])
        .unwrap();
    let mut f = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, RX_MAC)
        .ipv6(
            [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            VIP6,
            64,
        )
        .icmpv6_raw(2, 0, 1280u32.to_be_bytes())
        .write(&mut f, &inner6)
        .unwrap();
    let orig = f.clone();
    let v = run(&mut f, TxVlan::Keep, &mut st);
    assert_eq!(forward_of(v), Some((target, VlanAction::None)));
    assert_dr(&orig, &f, &target);
}

fn frag4(dst: [u8; 4], offset_bytes: u16, more: bool, payload: &[u8]) -> Vec<u8> {
    frag4_proto(etherparse::IpNumber::TCP, dst, offset_bytes, more, payload)
}

fn frag4_proto(
    proto: etherparse::IpNumber,
    dst: [u8; 4],
    offset_bytes: u16,
    more: bool,
    payload: &[u8],
) -> Vec<u8> {
    let mut ip =
        etherparse::Ipv4Header::new(payload.len() as u16, 64, proto, CLIENT4, dst).unwrap();
    ip.more_fragments = more;
    ip.fragment_offset = etherparse::IpFragOffset::try_new(offset_bytes / 8).unwrap();
    ip.header_checksum = ip.calc_header_checksum();
    let mut f = Vec::new();
    f.extend_from_slice(&RX_MAC);
    f.extend_from_slice(&CLIENT_MAC);
    f.extend_from_slice(&[0x08, 0x00]);
    ip.write(&mut f).unwrap();
    f.extend_from_slice(payload);
    f
}

#[test]
fn fragments() {
    let mut st = TestState::new();
    // The first fragment of a TCP SYN to the persistent port-0 service.
    let mut seg = Vec::new();
    PacketBuilder::ipv4(CLIENT4, VIP4_PERSIST, 64)
        .tcp(41000, 8443, 1, 100)
        .syn()
        .write(&mut seg, &[7u8; 40])
        .unwrap();
    let tcp_bytes = &seg[20..];
    let mut first = frag4(VIP4_PERSIST, 0, true, &tcp_bytes[..32]);
    let Verdict::Forward { target, .. } = run(&mut first, TxVlan::Keep, &mut st) else {
        panic!()
    };
    // The later fragment follows the template.
    let orig = frag4(VIP4_PERSIST, 32, false, &tcp_bytes[32..]);
    let mut later = orig.clone();
    let v = run(&mut later, TxVlan::Keep, &mut st);
    assert_eq!(forward_of(v), Some((target, VlanAction::None)));
    assert_dr(&orig, &later, &target);
    // Without persistence: counted and dropped.
    let mut later = frag4(VIP4, 32, false, &[0u8; 16]);
    assert_eq!(
        run(&mut later, TxVlan::Keep, &mut st),
        Verdict::Drop(DropReason::NonFirstFragment)
    );
    // A first fragment too short for the TCP header.
    let mut first = frag4(VIP4, 0, true, &tcp_bytes[..8]);
    assert_eq!(
        run(&mut first, TxVlan::Keep, &mut st),
        Verdict::Drop(DropReason::TcpBadHeader)
    );
}

/// Decides `frame` alone and as a one-frame burst (the fast path), each
/// with fresh state; both must give the same verdict and bytes. Returns
/// the verdict and the frame as decided.
fn decide_both(frame: &[u8]) -> (Verdict, Vec<u8>) {
    let t = table();
    let mut one = frame.to_vec();
    let v = decide(&mut one, &ctx(TxVlan::Keep), &t, &mut TestState::new());
    let mut burst = frame.to_vec();
    let mut out = [Verdict::Neighbour];
    decide_burst(
        &mut [&mut burst[..]],
        &mut out,
        &ctx(TxVlan::Keep),
        &t,
        &mut TestState::new(),
    );
    assert_eq!(out[0], v, "burst and frame-by-frame disagree");
    assert_eq!(burst, one, "burst and frame-by-frame rewrote differently");
    (v, one)
}

/// `frame` must be forwarded with only its MACs changed.
fn assert_forwarded(frame: &[u8], what: &str) {
    let (v, out) = decide_both(frame);
    let Verdict::Forward { target, .. } = v else {
        panic!("{what}: {v:?}")
    };
    assert_dr(frame, &out, &target);
}

fn set_be16(f: &mut [u8], at: usize, v: u16) {
    f[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

/// Offset of the UDP length field in an untagged IPv4 frame without options.
const UDP4_LEN_AT: usize = 14 + 20 + 4;
/// Offset of the TCP data offset byte in an untagged IPv4 frame.
const TCP4_DOFF_AT: usize = 14 + 20 + 12;

#[test]
fn udp_length_is_checked_against_the_ip_length() {
    let good = udp4(VIP4, 4000, 9999, b"abcd");
    assert_forwarded(&good, "a good datagram");
    // Below the header, or beyond the 12-byte IP payload.
    for len in [0u16, 1, 7, 13, 14, 0xffff] {
        let mut f = good.clone();
        set_be16(&mut f, UDP4_LEN_AT, len);
        assert_eq!(
            decide_both(&f).0,
            Verdict::Drop(DropReason::UdpBadLength),
            "UDP length {len}"
        );
    }
    // Shorter than the IP payload but at least 8: legal (Linux's udp_rcv
    // trims to it); forwarded untouched, the real server trims.
    for len in [8u16, 11] {
        let mut f = good.clone();
        set_be16(&mut f, UDP4_LEN_AT, len);
        assert_forwarded(&f, "UDP length shorter than the IP payload");
    }
    // Ethernet padding is not IP payload: a 42-byte packet in a 60-byte
    // frame whose UDP length claims some of the padding.
    let mut padded = udp4(VIP4, 4001, 9999, b"");
    padded.resize(60, 0);
    assert_forwarded(&padded, "a padded datagram");
    for len in [9u16, 26] {
        let mut f = padded.clone();
        set_be16(&mut f, UDP4_LEN_AT, len);
        assert_eq!(
            decide_both(&f).0,
            Verdict::Drop(DropReason::UdpBadLength),
            "UDP length {len} in padding"
        );
    }
    // Tagged frames take the same path.
    let mut tagged = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, RX_MAC)
        .single_vlan(VlanId::try_new(100).unwrap())
        .ipv4(CLIENT4, VIP4, 64)
        .udp(4002, 9999)
        .write(&mut tagged, b"abcd")
        .unwrap();
    assert_forwarded(&tagged, "a tagged datagram");
    set_be16(&mut tagged, UDP4_LEN_AT + 4, 13);
    assert_eq!(
        decide_both(&tagged).0,
        Verdict::Drop(DropReason::UdpBadLength)
    );
}

#[test]
fn udp_length_of_a_first_fragment_counts_the_whole_datagram() {
    // The first 32 bytes of a 108-byte datagram: its length is beyond this
    // fragment's IP payload, and legal.
    let mut dgram = vec![0x0f, 0xa0, 0x00, 0x35, 0, 108, 0, 0];
    dgram.extend_from_slice(&[7u8; 24]);
    let first = frag4_proto(etherparse::IpNumber::UDP, VIP4, 0, true, &dgram);
    assert_forwarded(&first, "a first UDP fragment");
    // Still at least 8.
    let mut bad = dgram.clone();
    bad[5] = 7;
    let f = frag4_proto(etherparse::IpNumber::UDP, VIP4, 0, true, &bad);
    assert_eq!(decide_both(&f).0, Verdict::Drop(DropReason::UdpBadLength));
    // Not a fragment: the length must fit.
    let whole = frag4_proto(etherparse::IpNumber::UDP, VIP4, 0, false, &dgram);
    assert_eq!(
        decide_both(&whole).0,
        Verdict::Drop(DropReason::UdpBadLength)
    );
    // IPv6: a fragment header (offset 0, more fragments) before the same
    // datagram, to the UDP 53 service.
    let mut payload = vec![17, 0, 0x00, 0x01, 0, 0, 0, 9];
    payload.extend_from_slice(&dgram);
    let f6 = ipv6_frame(44, &payload);
    assert_forwarded(&f6, "a first IPv6 UDP fragment");
    // An atomic fragment (offset 0, no more fragments) is a whole datagram.
    let mut atomic = f6.clone();
    atomic[14 + 40 + 3] = 0;
    assert_eq!(
        decide_both(&atomic).0,
        Verdict::Drop(DropReason::UdpBadLength)
    );
}

/// An untagged IPv6 frame from CLIENT6 to VIP6 with `next` and `payload`.
fn ipv6_frame(next: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = RX_MAC.to_vec();
    f.extend_from_slice(&CLIENT_MAC);
    f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
    f.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    f.extend_from_slice(&[next, 64]);
    f.extend_from_slice(&CLIENT6);
    f.extend_from_slice(&VIP6);
    f.extend_from_slice(payload);
    f
}

#[test]
fn udp_length_is_checked_against_the_ipv6_payload_length() {
    const LEN_AT: usize = 14 + 40 + 4;
    let mut good = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, RX_MAC)
        .ipv6(CLIENT6, VIP6, 64)
        .udp(4000, 53)
        .write(&mut good, b"abcd")
        .unwrap();
    assert_forwarded(&good, "a good IPv6 datagram");
    // 0 would announce a jumbogram (RFC 2675), which needs a jumbo payload
    // option pmdlb does not carry: below 8 like the rest.
    for len in [0u16, 7, 13] {
        let mut f = good.clone();
        set_be16(&mut f, LEN_AT, len);
        assert_eq!(
            decide_both(&f).0,
            Verdict::Drop(DropReason::UdpBadLength),
            "UDP length {len}"
        );
    }
    let mut f = good.clone();
    set_be16(&mut f, LEN_AT, 8);
    assert_forwarded(&f, "UDP length shorter than the IPv6 payload");
    // Padding after the payload length is not payload.
    let mut padded = good.clone();
    padded.resize(padded.len() + 8, 0);
    assert_forwarded(&padded, "a padded IPv6 datagram");
    set_be16(&mut padded, LEN_AT, 20);
    assert_eq!(
        decide_both(&padded).0,
        Verdict::Drop(DropReason::UdpBadLength)
    );
    // And a payload length beyond the frame is the IPv6 layer's.
    let mut long = good.clone();
    set_be16(&mut long, 14 + 4, 13);
    assert_eq!(
        decide_both(&long).0,
        Verdict::Drop(DropReason::Ipv6Truncated)
    );
}

#[test]
fn tcp_header_is_checked_against_the_ip_length() {
    let good = tcp4(VIP4, 40000, 80, true, b"");
    assert_forwarded(&good, "a good SYN");
    // Data offset below 5, or options beyond the 20-byte IP payload.
    for doff in [0u8, 4, 6, 15] {
        let mut f = good.clone();
        f[TCP4_DOFF_AT] = doff << 4;
        assert_eq!(
            decide_both(&f).0,
            Verdict::Drop(DropReason::TcpBadHeader),
            "data offset {doff}"
        );
    }
    // Options in the Ethernet padding are not options.
    let mut padded = good.clone();
    padded.resize(60, 0);
    assert_forwarded(&padded, "a padded SYN");
    padded[TCP4_DOFF_AT] = 6 << 4;
    assert_eq!(
        decide_both(&padded).0,
        Verdict::Drop(DropReason::TcpBadHeader)
    );
    // With 20 bytes of data: a 40-byte header fits, a 60-byte one does not.
    let data = tcp4(VIP4, 40001, 80, true, &[1u8; 20]);
    let mut f = data.clone();
    f[TCP4_DOFF_AT] = 10 << 4;
    assert_forwarded(&f, "options covering the data");
    f[TCP4_DOFF_AT] = 15 << 4;
    assert_eq!(decide_both(&f).0, Verdict::Drop(DropReason::TcpBadHeader));
    // IPv6 and tagged frames alike.
    let mut v6 = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, RX_MAC)
        .ipv6(CLIENT6, VIP6, 64)
        .tcp(50000, 443, 1, 100)
        .syn()
        .write(&mut v6, &[])
        .unwrap();
    assert_forwarded(&v6, "an IPv6 SYN");
    v6[14 + 40 + 12] = 4 << 4;
    assert_eq!(decide_both(&v6).0, Verdict::Drop(DropReason::TcpBadHeader));
    let mut tagged = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, RX_MAC)
        .single_vlan(VlanId::try_new(100).unwrap())
        .ipv4(CLIENT4, VIP4, 64)
        .tcp(40002, 80, 1, 1000)
        .syn()
        .write(&mut tagged, b"")
        .unwrap();
    tagged[TCP4_DOFF_AT + 4] = 4 << 4;
    assert_eq!(
        decide_both(&tagged).0,
        Verdict::Drop(DropReason::TcpBadHeader)
    );
}

#[test]
fn icmp_error_ports_are_bounded_by_the_outer_ip_length() {
    let mut st = TestState::new();
    let mut syn = tcp4(VIP4, 40000, 80, true, b"");
    let Verdict::Forward { .. } = run(&mut syn, TxVlan::Keep, &mut st) else {
        panic!()
    };
    // The real server's packet, its IP header and the first 2 bytes of TCP
    // inside the ICMP error; its ports follow in the Ethernet padding, where
    // they are not part of the message.
    let mut inner = Vec::new();
    PacketBuilder::ipv4(VIP4, CLIENT4, 64)
        .tcp(80, 40000, 5, 100)
        .write(&mut inner, &[])
        .unwrap();
    let mut f = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, RX_MAC)
        .ipv4([198, 51, 100, 1], VIP4, 60)
        .icmpv4_raw(3, 4, [0, 0, 0x05, 0x78])
        .write(&mut f, &inner[..22])
        .unwrap();
    f.extend_from_slice(&inner[22..28]);
    assert_eq!(
        run(&mut f, TxVlan::Keep, &mut st),
        Verdict::Drop(DropReason::IcmpMalformed)
    );
}

#[test]
fn ipv6_with_extension_headers_is_forwarded_untouched() {
    let mut st = TestState::new();
    // Hand-built: IPv6 → hop-by-hop (8) → destination options (8) → UDP 53.
    let mut payload = vec![60, 0, 1, 4, 0, 0, 0, 0, 17, 0, 1, 4, 0, 0, 0, 0];
    payload.extend_from_slice(&[0xc3, 0x50, 0x00, 0x35, 0x00, 0x0c, 0, 0, 1, 2, 3, 4]);
    let mut f = Vec::new();
    f.extend_from_slice(&RX_MAC);
    f.extend_from_slice(&CLIENT_MAC);
    f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
    f.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    f.extend_from_slice(&[0, 64]);
    f.extend_from_slice(&CLIENT6);
    f.extend_from_slice(&VIP6);
    f.extend_from_slice(&payload);
    let orig = f.clone();
    let Verdict::Forward { target, .. } = run(&mut f, TxVlan::Keep, &mut st) else {
        panic!()
    };
    assert_dr(&orig, &f, &target);
    // Truncated inside the extension headers.
    for n in 14..orig.len() {
        let mut t = orig[..n].to_vec();
        assert!(
            matches!(run(&mut t, TxVlan::Keep, &mut st), Verdict::Drop(_)),
            "len {n}"
        );
    }
}

#[test]
fn neighbour_solicitation_is_answered() {
    let mut st = TestState::new();
    let sn = [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0, 0, 0x64];
    let mut icmp = vec![135, 0, 0, 0, 0, 0, 0, 0];
    icmp.extend_from_slice(&VIP6);
    icmp.extend_from_slice(&[1, 1]);
    icmp.extend_from_slice(&CLIENT_MAC);
    let mut c = pmdlb::wire::icmpv6::Packet::new_unchecked(&mut icmp[..]);
    c.fill_checksum(&CLIENT6, &sn);
    let mut f = vec![0x33, 0x33, 0xff, 0, 0, 0x64];
    f.extend_from_slice(&CLIENT_MAC);
    f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0, 0, 32, 58, 255]);
    f.extend_from_slice(&CLIENT6);
    f.extend_from_slice(&sn);
    f.extend_from_slice(&icmp);
    let mut r = f.clone();
    assert_eq!(
        run(&mut r, TxVlan::Keep, &mut st),
        Verdict::Reply { len: 86 }
    );
    let p = SlicedPacket::from_ethernet(&r).unwrap();
    let Some(etherparse::TransportSlice::Icmpv6(na)) = &p.transport else {
        panic!()
    };
    assert_eq!(na.type_u8(), 136);
    let want = na
        .header()
        .icmp_type
        .calc_checksum(VIP6, CLIENT6, na.payload())
        .unwrap();
    assert_eq!(na.header().checksum, want);
    assert_eq!(&r[0..6], &CLIENT_MAC);
    assert_eq!(&r[6..12], &RX_MAC);
    assert_eq!(r[14 + 40 + 4], 0x60);
    assert_eq!(&r[14 + 40 + 24..], &[2, 1, 2, 0, 0, 0, 0, 0xaa]);
    // Hop limit not 255.
    let mut g = f.clone();
    g[21] = 64;
    assert_eq!(
        run(&mut g, TxVlan::Keep, &mut st),
        Verdict::Drop(DropReason::NdMalformed)
    );
    // Not a VIP.
    let mut g = f.clone();
    g[14 + 40 + 8 + 15] = 0x65;
    assert!(matches!(
        run(&mut g, TxVlan::Keep, &mut st),
        Verdict::Drop(_)
    ));
}

fn base_frames() -> Vec<Vec<u8>> {
    let mut v = vec![
        tcp4(VIP4, 40000, 80, true, b"x"),
        udp4(VIP4, 1, 2, b"y"),
        frag4(VIP4_PERSIST, 8, false, &[0; 8]),
    ];
    let mut f = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, RX_MAC)
        .single_vlan(VlanId::try_new(5).unwrap())
        .ipv6(CLIENT6, VIP6, 64)
        .udp(1, 53)
        .write(&mut f, b"q")
        .unwrap();
    v.push(f);
    v
}

proptest! {
    #[test]
    fn any_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let mut st = TestState::new();
        let t = table();
        for tx in [TxVlan::Keep, TxVlan::Set(3), TxVlan::Untagged] {
            let mut f = bytes.clone();
            let _ = decide(&mut f, &ctx(tx), &t, &mut st);
        }
        // With our MAC and an IP ethertype, to get past the first checks.
        for et in [[0x08u8, 0x00], [0x86, 0xdd], [0x08, 0x06], [0x81, 0x00]] {
            let mut f = RX_MAC.to_vec();
            f.extend_from_slice(&CLIENT_MAC);
            f.extend_from_slice(&et);
            f.extend_from_slice(&bytes);
            let _ = decide(&mut f, &ctx(TxVlan::Keep), &t, &mut st);
        }
    }

    #[test]
    fn mutated_frames_never_panic(which in 0usize..4, pos in any::<prop::sample::Index>(),
                                  val in any::<u8>(), cut in any::<prop::sample::Index>()) {
        let mut st = TestState::new();
        let t = table();
        let mut f = base_frames()[which].clone();
        let i = pos.index(f.len());
        f[i] = val;
        let n = cut.index(f.len() + 1);
        let _ = decide(&mut f[..n], &ctx(TxVlan::Keep), &t, &mut st);
    }

    /// Whatever a mutated frame becomes, a forwarded one is a frame
    /// etherparse's strict slicer accepts (IP lengths, TCP data offset, UDP
    /// length): nothing malformed reaches a real server.
    #[test]
    fn forwarded_mutants_parse_with_etherparse(which in 0usize..4, pos in any::<prop::sample::Index>(),
                                               val in any::<u8>()) {
        let mut f = base_frames()[which].clone();
        let i = pos.index(f.len());
        f[i] = val;
        let (v, out) = decide_both(&f);
        if let Verdict::Forward { .. } = v {
            let p = SlicedPacket::from_ethernet(&out);
            prop_assert!(p.is_ok(), "forwarded {:02x?}: {:?}", out, p.err());
        }
    }

    #[test]
    fn forwarded_frames_change_only_macs(v6 in any::<bool>(), udp in any::<bool>(), tagged in any::<bool>(),
                                         sport in 1u16.., client in any::<[u8; 4]>(),
                                         payload in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut st = TestState::new();
        let b = PacketBuilder::ethernet2(CLIENT_MAC, RX_MAC);
        let mut f = Vec::new();
        macro_rules! finish {
            ($ip:expr) => {
                if udp {
                    $ip.udp(sport, if v6 { 53 } else { 9 }).write(&mut f, &payload).unwrap()
                } else {
                    $ip.tcp(sport, if v6 { 443 } else { 80 }, 1, 100).syn().write(&mut f, &payload).unwrap()
                }
            };
        }
        let mut c6 = CLIENT6;
        c6[12..16].copy_from_slice(&client);
        match (tagged, v6) {
            (false, false) => finish!(b.ipv4(client, VIP4, 64)),
            (false, true) => finish!(b.ipv6(c6, VIP6, 64)),
            (true, false) => finish!(b.single_vlan(VlanId::try_new(9).unwrap()).ipv4(client, VIP4, 64)),
            (true, true) => finish!(b.single_vlan(VlanId::try_new(9).unwrap()).ipv6(c6, VIP6, 64)),
        }
        let orig = f.clone();
        let v = run(&mut f, TxVlan::Keep, &mut st);
        let Verdict::Forward { target, vlan, .. } = v else {
            return Err(TestCaseError::fail(format!("{v:?}")));
        };
        prop_assert_eq!(vlan, VlanAction::None);
        prop_assert_eq!(&f[0..6], &target.mac.as_bytes()[..]);
        prop_assert_eq!(&f[6..12], &TX_MAC[..]);
        prop_assert_eq!(&f[12..], &orig[12..]);
    }
}

#[test]
fn sctp_is_balanced_by_ports() {
    let mut st = TestState::new();
    let mut seg = vec![0x13, 0x88, 0x0b, 0xb8, 0, 0, 0, 1, 0, 0, 0, 0, 1, 2, 3, 4];
    let ip = etherparse::Ipv4Header::new(
        seg.len() as u16,
        64,
        etherparse::IpNumber::SCTP,
        CLIENT4,
        VIP4,
    )
    .unwrap();
    let mut f = RX_MAC.to_vec();
    f.extend_from_slice(&CLIENT_MAC);
    f.extend_from_slice(&[0x08, 0x00]);
    ip.write(&mut f).unwrap();
    f.append(&mut seg);
    let orig = f.clone();
    let Verdict::Forward { target, .. } = run(&mut f, TxVlan::Keep, &mut st) else {
        panic!()
    };
    assert_dr(&orig, &f, &target);
    let key = st.conns.keys().next().unwrap();
    assert_eq!((key.cport(), key.vport(), key.proto()), (5000, 3000, 132));
    // An SCTP common header cut short.
    let mut short = orig[..orig.len() - 6].to_vec();
    short[14 + 3] = (short.len() - 14) as u8;
    fix_ipv4_checksum(&mut short, 14);
    assert_eq!(
        run(&mut short, TxVlan::Keep, &mut st),
        Verdict::Drop(DropReason::SctpTruncated)
    );
    // Ethernet padding is not part of the IP packet: the same short header
    // in a frame padded to 60 bytes.
    short.resize(60, 0);
    assert_eq!(
        decide_both(&short).0,
        Verdict::Drop(DropReason::SctpTruncated)
    );
}

#[test]
fn truncation_at_every_length_is_a_counted_drop() {
    let mut st = TestState::new();
    let mut counters = pmdlb::dataplane::DropCounters::default();
    let full = tcp4(VIP4, 40000, 80, true, b"");
    for n in 0..full.len() {
        let mut f = full[..n].to_vec();
        let v = run(&mut f, TxVlan::Keep, &mut st);
        let Verdict::Drop(r) = v else {
            panic!("len {n}: {v:?}")
        };
        let want = if n < 14 {
            DropReason::TruncatedEthernet
        } else if n < 14 + 40 {
            DropReason::Ipv4Truncated
        } else {
            unreachable!()
        };
        assert_eq!(r, want, "len {n}");
        counters.inc(r);
    }
    assert_eq!(counters.get(DropReason::TruncatedEthernet), 14);
    assert_eq!(counters.get(DropReason::Ipv4Truncated), 40);
    // The same for IPv6 + UDP.
    let mut full = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, RX_MAC)
        .ipv6(CLIENT6, VIP6, 64)
        .udp(1, 53)
        .write(&mut full, b"")
        .unwrap();
    for n in 14..full.len() {
        let mut f = full[..n].to_vec();
        assert_eq!(
            run(&mut f, TxVlan::Keep, &mut st),
            Verdict::Drop(DropReason::Ipv6Truncated),
            "len {n}"
        );
    }
    let mut f = full.clone();
    assert!(matches!(
        run(&mut f, TxVlan::Keep, &mut st),
        Verdict::Forward { .. }
    ));
}

#[test]
fn ipv6_later_fragment_without_template_is_dropped() {
    let mut st = TestState::new();
    let mut payload = vec![17, 0, 0x00, 0x08, 0, 0, 0, 1];
    payload.extend_from_slice(&[0u8; 16]);
    let mut f = RX_MAC.to_vec();
    f.extend_from_slice(&CLIENT_MAC);
    f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
    f.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    f.extend_from_slice(&[44, 64]);
    f.extend_from_slice(&CLIENT6);
    f.extend_from_slice(&VIP6);
    f.extend_from_slice(&payload);
    assert_eq!(
        run(&mut f, TxVlan::Keep, &mut st),
        Verdict::Drop(DropReason::NonFirstFragment)
    );
}

#[test]
fn duplicate_address_detection_gets_an_all_nodes_na() {
    let mut st = TestState::new();
    let sn = [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0, 0, 0x64];
    let mut icmp = vec![135, 0, 0, 0, 0, 0, 0, 0];
    icmp.extend_from_slice(&VIP6);
    pmdlb::wire::icmpv6::Packet::new_unchecked(&mut icmp[..]).fill_checksum(&[0; 16], &sn);
    let mut f = vec![0x33, 0x33, 0xff, 0, 0, 0x64];
    f.extend_from_slice(&CLIENT_MAC);
    f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0, 0, 24, 58, 255]);
    f.extend_from_slice(&[0; 16]);
    f.extend_from_slice(&sn);
    f.extend_from_slice(&icmp);
    // No room for the target link-layer option in a 24-byte NS: NA without it.
    assert_eq!(
        run(&mut f, TxVlan::Keep, &mut st),
        Verdict::Reply { len: 14 + 40 + 24 }
    );
    assert_eq!(
        &f[0..6],
        pmdlb::dataplane::neighbour::ALL_NODES_MAC.as_bytes()
    );
    assert_eq!(
        &f[14 + 24..14 + 40],
        &pmdlb::dataplane::neighbour::ALL_NODES
    );
    assert_eq!(f[14 + 40 + 4], 0x20, "override only, not solicited");
}

/// The NIC's checksum report: a frame whose bit is set is not summed
/// again on the fast path (so even a header the NIC wrongly vouched for
/// is forwarded), every other one is verified in software; a set bit on a
/// frame the fast path leaves to `decide` changes nothing.
#[test]
fn nic_checked_ip_checksums_are_trusted_the_rest_verified() {
    use pmdlb::dataplane::decide::{decide_burst_hinted, ServiceMemo};
    let t = table();
    let mut bad = udp4(VIP4, 1, 9, b"b");
    bad[14 + 10] ^= 0xff;
    let mut bad_fragment = base_frames()[2].clone();
    bad_fragment[14 + 10] ^= 0xff;
    let frames = [
        bad.clone(),
        bad.clone(),
        udp4(VIP4, 2, 9, b"b"),
        bad_fragment,
    ];
    let decided = |hint: u64| {
        let mut bytes = frames.to_vec();
        let mut refs: Vec<&mut [u8]> = bytes.iter_mut().map(|f| &mut f[..]).collect();
        let mut got = vec![Verdict::Neighbour; refs.len()];
        let mut st = TestState::new();
        let mut memo = ServiceMemo::default();
        decide_burst_hinted(
            &mut refs,
            hint,
            &mut got,
            &ctx(TxVlan::Keep),
            &t,
            &mut st,
            &mut memo,
        );
        got
    };
    let plain = decided(0);
    assert_eq!(plain[0], Verdict::Drop(DropReason::Ipv4BadChecksum));
    assert_eq!(plain[1], Verdict::Drop(DropReason::Ipv4BadChecksum));
    assert!(forward_of(plain[2]).is_some());
    let hinted = decided(0b1101);
    assert!(forward_of(hinted[0]).is_some(), "trusted: {:?}", hinted[0]);
    assert_eq!(
        hinted[1],
        Verdict::Drop(DropReason::Ipv4BadChecksum),
        "bit clear: verified"
    );
    assert_eq!(hinted[2], plain[2]);
    assert_eq!(
        hinted[3], plain[3],
        "not the fast path: verified whatever the bit"
    );
}

proptest! {
    /// `decide_burst` gives exactly the verdicts and frames of `decide` on
    /// each frame in order — including flows opened and continued within
    /// one burst, bursts longer than its chunk, and frames its fast path
    /// leaves to `decide` (fragments, IPv6, VLAN, mutated bytes).
    #[test]
    fn burst_equals_frame_by_frame(
        frames in proptest::collection::vec(
            (0usize..7, 1u16..4, any::<bool>(), any::<Option<(prop::sample::Index, u8)>>()),
            0..80,
        ),
        tx in prop_oneof![Just(TxVlan::Keep), Just(TxVlan::Set(7)), Just(TxVlan::Untagged)],
    ) {
        let t = table();
        let mut bytes: Vec<Vec<u8>> = frames
            .iter()
            .map(|&(kind, sport, syn, mutation)| {
                let mut f = match kind {
                    0 => tcp4(VIP4, sport, 80, syn, b"a"),
                    1 => udp4(VIP4, sport, 9, b"b"),
                    2 => tcp4(VIP4_MARK, sport, 443, syn, b"c"),
                    3 => tcp4(VIP4_PERSIST, sport, 22, syn, b""),
                    4 => udp4([10, 9, 9, 9], sport, 9, b"not ours"),
                    k => base_frames()[k - 3].clone(),
                };
                if let Some((at, val)) = mutation {
                    let i = at.index(f.len());
                    f[i] = val;
                }
                f
            })
            .collect();
        let mut one_by_one = bytes.clone();
        let mut st = TestState::new();
        let expected: Vec<Verdict> = one_by_one
            .iter_mut()
            .map(|f| decide(f, &ctx(tx), &t, &mut st))
            .collect();
        let mut st = TestState::new();
        let mut refs: Vec<&mut [u8]> = bytes.iter_mut().map(|f| &mut f[..]).collect();
        let mut got = vec![Verdict::Neighbour; refs.len()];
        decide_burst(&mut refs, &mut got, &ctx(tx), &t, &mut st);
        prop_assert_eq!(got, expected);
        prop_assert_eq!(bytes, one_by_one);
    }
}

/// The service memo a worker keeps from burst to burst: believed while the
/// table is the one it was filled from, never after the table is replaced
/// (here by one without VIP4's UDP service, and back), and each burst
/// decides as `decide_burst`, which starts from an empty memo, does.
#[test]
fn service_memo_is_not_believed_across_a_table_change() {
    use pmdlb::dataplane::decide::{decide_burst_hinted, ServiceMemo};
    let with = table();
    let v4 = std::net::IpAddr::from(VIP4);
    let without = ServiceTable::new(
        &[service(addr(6, v4, 80), false)],
        &[],
        &[VipSpec {
            addr: v4,
            answer_arp: true,
            answer_ping: true,
        }],
    )
    .unwrap();
    let frames: Vec<Vec<u8>> = (0..4).map(|i| udp4(VIP4, 1000 + i, 53, b"m")).collect();
    let burst = |t: &ServiceTable, memo: Option<&mut ServiceMemo>| {
        let mut bytes = frames.clone();
        let mut refs: Vec<&mut [u8]> = bytes.iter_mut().map(|f| &mut f[..]).collect();
        let mut got = vec![Verdict::Neighbour; refs.len()];
        let mut st = TestState::new();
        match memo {
            Some(m) => {
                decide_burst_hinted(&mut refs, 0, &mut got, &ctx(TxVlan::Keep), t, &mut st, m)
            }
            None => decide_burst(&mut refs, &mut got, &ctx(TxVlan::Keep), t, &mut st),
        }
        got
    };
    let mut memo = ServiceMemo::default();
    for t in [&with, &with, &without, &without, &with] {
        let kept = burst(t, Some(&mut memo));
        assert_eq!(kept, burst(t, None));
        let forwarded = kept.iter().all(|v| matches!(v, Verdict::Forward { .. }));
        let no_service = kept
            .iter()
            .all(|v| *v == Verdict::Drop(DropReason::NoService));
        assert!(
            if std::ptr::eq(t, &with) {
                forwarded
            } else {
                no_service
            },
            "{kept:?}"
        );
    }
    // a clone is the same table: its memo holds
    let copy = with.clone();
    assert_eq!(copy.id(), with.id());
    assert_ne!(with.id(), without.id());
}
