//! The per-packet decision: parse one received frame once, find its service,
//! ask the state layer for a real server, and rewrite the frame for direct
//! routing — or build a reply, or name the reason to drop it.
//!
//! Pure function over bytes and tables: no allocation, no panic (every
//! access is after a length check or through `get`), no logging.
//!
//! # What is accepted
//! - Ethernet destination: the RX port's MAC; group addresses only for ARP
//!   and for IPv6 neighbour solicitations (solicited-node multicast).
//! - Untagged or one 802.1Q tag; a second tag or an 802.1ad outer tag is
//!   [`DropReason::QinQ`].
//! - IPv4 with a correct header checksum (checked on every packet: it costs
//!   one pass over 20 bytes and IPVS's `ip_rcv` checks it too); IPv6 with
//!   extension headers walked to the transport header.
//! - TCP, UDP and SCTP headers that fit in the IP packet as its own length
//!   says (IPv4 total length, IPv6 payload length; Ethernet padding after
//!   it is neither header nor data), see `l4_ports`. A UDP length below
//!   8 or beyond the IP payload is [`DropReason::UdpBadLength`], a TCP data
//!   offset below 5 or a header past the payload
//!   [`DropReason::TcpBadHeader`], an SCTP common header under 12 bytes
//!   [`DropReason::SctpTruncated`].
//!
//! # TTL and hop limit
//! pmdlb does not decrement them, exactly as IPVS DR: the director is the
//! local destination of the VIP (IPVS hooks `LOCAL_IN`, after the router
//! already decremented), and the frame travels to the real server over L2.
//! Only a TTL/hop limit of 0 is dropped ([`DropReason::TtlExpired`]): no
//! host may send it, and a router would have discarded it.
//!
//! # Fragments
//! IPVS sees whole datagrams (the kernel reassembles before `LOCAL_IN`);
//! pmdlb does not reassemble. The first fragment carries the ports and is
//! decided as its flow (the state layer creates or finds the connection).
//! Later fragments carry no ports: they follow the client's persistence
//! template when the VIP has persistent services for that protocol (fwmark
//! services whose rules cover the VIP first, then the VIP's address
//! services); if several templates exist and point at different servers,
//! or none exists, the fragment is dropped as
//! [`DropReason::NonFirstFragment`]. So fragmented traffic works for
//! persistent services and is counted and dropped otherwise. Fragmented
//! ICMP is never answered nor relayed ([`DropReason::IcmpFragment`]).
//!
//! # ICMP
//! Echo requests to a VIP with `answer_ping` are answered in place (IPv4:
//! TTL 64, IPv6: hop limit 64; checksum verified first). ICMP errors towards
//! a VIP (IPv4: destination unreachable incl. fragmentation needed, source
//! quench, time exceeded, parameter problem; IPv6: destination unreachable,
//! packet too big, time exceeded, parameter problem) embed the packet a real
//! server sent (VIP:vport → client:cport); the decision reverses it into
//! the client→VIP key, asks [`FlowState::lookup_conn`] and forwards the
//! error unchanged to that connection's server. Their checksum is left to
//! the real server's kernel.
//!
//! # Tunnel servers
//! A target whose `forward` is a tunnel gets the same rewrite (the MAC is
//! its next hop's, the gateway's when it is behind one) after an MTU check:
//! the packet plus the tunnel overhead must fit `tunnel_mtu`, or the
//! decision builds the ICMP fragmentation-needed / packet-too-big in place
//! ([`Verdict::TooBig`]), drops it, or — IPv4 without DF — forwards it as
//! [`Verdict::Fragment`] ([`crate::dataplane::tunnel`]). The worker then
//! writes the outer headers in the headroom (and for `Fragment` splits the
//! outer packet, [`crate::dataplane::fragment`]). The outer family
//! is taken to be the packet's (the configuration keeps servers in their
//! service's family).
//!
//! # Neighbours
//! ARP requests and neighbour solicitations for a VIP with `answer_arp` are
//! answered in place from the RX port's MAC. ARP replies, gratuitous ARP and
//! neighbour advertisements are [`Verdict::Neighbour`] (control-plane food).
#![forbid(unsafe_code)]

use crate::dataplane::neighbour::{write_na, ALL_NODES, ALL_NODES_MAC};
use crate::dataplane::rewrite::{rewrite_macs, TxVlan};
use crate::dataplane::tunnel::{self, TooBig};
use crate::dataplane::verdict::{DropReason, Verdict, VlanAction};
use crate::lb::flow::{FlowState, OnAssigned, StateDrop, Target};
use crate::lb::service::ServiceTable;
use crate::lb::spec::{Forwarding, Tunnel};
use crate::lb::types::{ip_proto, Addr, Family, FlowKey, ServiceId, TcpFlags, V4Flow};
use crate::wire::ethernet::MacAddr;
use crate::wire::{arp, be16, ethernet, icmp, icmpv6, ipv4, ipv6, sctp, tcp, udp, Error};

/// What the decision needs to know about the ports a worker serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecideCtx {
    /// MAC address of the RX port (frames must be sent to it; replies come
    /// from it).
    pub rx_mac: MacAddr,
    /// MAC address of the TX port (source of forwarded frames).
    pub tx_mac: MacAddr,
    /// VLAN policy of the TX port.
    pub tx_vlan: TxVlan,
    /// The TX MTU tunnelled packets must fit once encapsulated.
    pub tunnel_mtu: u16,
}

const ETH_P_IPV4: u16 = 0x0800;
const ETH_P_ARP: u16 = 0x0806;
const ETH_P_VLAN: u16 = 0x8100;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_QINQ: u16 = 0x88a8;

/// TTL / hop limit of the echo replies pmdlb builds.
pub const REPLY_TTL: u8 = 64;

/// Largest burst [`decide_burst`] pipelines at once (longer slices are
/// decided in chunks of this size).
pub const BURST_MAX: usize = 64;

/// What the first pass of [`decide_burst`] found for one frame.
#[derive(Clone, Copy)]
enum Step {
    /// An unfragmented IPv4 TCP/UDP/SCTP packet to us, header checked,
    /// service found: only the state layer remains.
    Flow(FlowReq),
    /// Anything else: decided whole, in order, by [`decide`].
    Whole,
}

/// A transport flow waiting for its real server.
#[derive(Clone, Copy)]
struct FlowReq {
    /// The flow, in two words: its [`FlowKey`] is made where it is used.
    flow: V4Flow,
    svc: ServiceId,
    tcp: Option<TcpFlags>,
    tci: Option<u16>,
    /// The IPv4 total length: the verdict's `ip_len`.
    ip_len: u16,
    /// Where the IPv4 header starts (14, or 18 behind a tag).
    l3: u8,
    hash: u64,
    /// What the probe of step 2 found ([`FlowState::prefetch_entry`]).
    hint: u64,
}

/// Decides a whole burst: `out[i]` is the verdict of `frames[i]`, exactly
/// as calling [`decide`] on each frame in order would give it. Frames
/// beyond `out.len()` are not looked at.
///
/// A pipeline of three steps per chunk of [`BURST_MAX`], each
/// `PIPELINE_GAP` (8) frames behind the one before: parse a frame and find
/// its service (one service lookup per distinct `(dst, proto, port)` run),
/// hash its flow and prefetch its connection line; probe that line,
/// keep what the probe found and prefetch what the flow needs next
/// (further lines, or its template when it is not at home); assign and
/// rewrite, in order. The misses of a burst
/// overlap, a bounded number at a time, instead of stalling one packet at
/// a time. Frames the fast
/// parse does not cover (ARP, ICMP, IPv6, fragments, VLAN-changed or
/// malformed ones) are decided whole by [`decide`] in the last pass, in
/// their place, so ordering against the state layer is unchanged.
#[inline]
pub fn decide_burst<S: FlowState>(
    frames: &mut [&mut [u8]],
    out: &mut [Verdict],
    ctx: &DecideCtx,
    services: &ServiceTable,
    state: &mut S,
) {
    let mut memo = ServiceMemo::default();
    decide_burst_hinted(frames, 0, out, ctx, services, state, &mut memo);
}

/// The last service lookup of the fast path, kept from burst to burst by
/// its caller (a worker holds one): the run of packets to one
/// `(VIP, protocol, port)` that a busy service sees costs one lookup, not
/// one a burst (perf: `ServiceTable::lookup` 2.4 % of the core at one
/// client). It is keyed by the table's [`ServiceTable::id`], so a lookup
/// made in a table that has since been replaced is never believed.
#[derive(Clone, Copy, Debug)]
pub struct ServiceMemo {
    table: u64,
    /// IPv4 destination, protocol and destination port in one word.
    key: u64,
    svc: Option<ServiceId>,
}

impl Default for ServiceMemo {
    /// Empty: no table has id `u64::MAX` (ids count up from 1).
    fn default() -> Self {
        ServiceMemo {
            table: u64::MAX,
            key: 0,
            svc: None,
        }
    }
}

impl ServiceMemo {
    /// The service of an IPv4 `(dst, proto, dport)`: the memo's when it
    /// holds that key for this table, else looked up and kept.
    #[inline(always)]
    fn lookup_v4(
        &mut self,
        services: &ServiceTable,
        dst4: [u8; 4],
        proto: u8,
        dport: u16,
    ) -> Option<ServiceId> {
        let key =
            u64::from(u32::from_ne_bytes(dst4)) | u64::from(proto) << 32 | u64::from(dport) << 40;
        if self.key != key || self.table != services.id() {
            self.svc = services.lookup(Family::V4, proto, &Addr::v4(dst4), dport);
            self.key = key;
            self.table = services.id();
        }
        self.svc
    }
}

/// [`decide_burst`] for frames whose IPv4 header checksum the NIC has
/// already checked: bit `i` of `ip_cksum_good` set means frame `i`'s was
/// found good (`RTE_MBUF_F_RX_IP_CKSUM_GOOD`), and it is not summed again.
/// Every other frame is verified in software, so a wrong hint bit can only
/// let through a header the NIC vouched for. `memo` carries the last
/// service lookup from one call to the next ([`ServiceMemo`]).
#[inline]
pub fn decide_burst_hinted<S: FlowState>(
    frames: &mut [&mut [u8]],
    ip_cksum_good: u64,
    out: &mut [Verdict],
    ctx: &DecideCtx,
    services: &ServiceTable,
    state: &mut S,
    memo: &mut ServiceMemo,
) {
    let n = frames.len().min(out.len());
    let mut start = 0;
    while start < n {
        let end = n.min(start + BURST_MAX);
        decide_chunk(
            &mut frames[start..end],
            ip_cksum_good.checked_shr(start as u32).unwrap_or(0),
            &mut out[start..end],
            ctx,
            services,
            state,
            memo,
        );
        start = end;
    }
}

/// Frames between the steps of [`decide_chunk`]'s pipeline: a frame's
/// connection line is prefetched this many frames before it is probed,
/// and probed (its template prefetched on a miss) this many before it is
/// decided. A bounded number of misses are in flight at once (at most
/// twice this), well inside what a core can track, each with the time
/// of several decisions to arrive.
const PIPELINE_GAP: usize = 8;

#[inline(always)]
fn decide_chunk<S: FlowState>(
    frames: &mut [&mut [u8]],
    ip_cksum_good: u64,
    out: &mut [Verdict],
    ctx: &DecideCtx,
    services: &ServiceTable,
    state: &mut S,
    memo: &mut ServiceMemo,
) {
    let mut steps = [Step::Whole; BURST_MAX];
    // a local copy, kept in registers through the loop
    let mut m = *memo;
    let n = frames.len().min(out.len());
    for i in 0..n + 2 * PIPELINE_GAP {
        if i < n {
            // parse, find the service, hash, prefetch the home line
            let good = (ip_cksum_good >> i) & 1 != 0;
            if let Some(mut r) = fast_parse(frames[i], good, ctx, services, &mut m) {
                r.hash = state.prepare(&r.flow.key());
                steps[i] = Step::Flow(r);
            }
        }
        // the home line has arrived: prefetch what comes next (frames past
        // the end are `Whole`)
        if let Some(Step::Flow(r)) = i.checked_sub(PIPELINE_GAP).and_then(|j| steps.get_mut(j)) {
            r.hint = state.prefetch_entry(r.svc, &r.flow.key(), r.hash);
        }
        if let Some(j) = i.checked_sub(2 * PIPELINE_GAP) {
            decide_step(frames[j], &steps[j], ctx, services, state, &mut out[j]);
        }
    }
    *memo = m;
}

/// The last step of the pipeline for one frame, in burst order. The
/// verdict is written in place, field by field: built in a temporary and
/// copied, it was read back whole right after its narrow stores, a
/// store-forwarding stall per packet (perf: 11 % of the worker).
#[inline(always)]
fn decide_step<S: FlowState>(
    frame: &mut [u8],
    step: &Step,
    ctx: &DecideCtx,
    services: &ServiceTable,
    state: &mut S,
    out: &mut Verdict,
) {
    match step {
        Step::Whole => *out = decide(frame, ctx, services, state),
        Step::Flow(r) => {
            let then = Then { frame, r, ctx, out };
            state.assign_then(r.svc, &r.flow.key(), (r.hash, r.hint), r.tcp, then)
        }
    }
}

/// The last step's verdict writer, handed to the state layer
/// ([`FlowState::assign_then`]) so that each of its paths writes the
/// verdict with the target in registers.
struct Then<'a> {
    frame: &'a mut [u8],
    r: &'a FlowReq,
    ctx: &'a DecideCtx,
    out: &'a mut Verdict,
}

impl OnAssigned for Then<'_> {
    #[inline(always)]
    fn assigned(self, assigned: Result<Target, StateDrop>) {
        let Then { frame, r, ctx, out } = self;
        match assigned {
            Ok(t) if t.forward == Forwarding::Dr => {
                forward_dr(frame, r.tci, u32::from(r.ip_len), ctx, t, out)
            }
            Ok(t) => {
                let l2 = L2 {
                    l3: usize::from(r.l3),
                    tci: r.tci,
                    to_us: true,
                };
                forward_into(frame, &l2, ctx, t, out)
            }
            Err(e) => *out = Verdict::Drop(e.into()),
        }
    }
}

/// The common case in one straight pass: to our MAC, untagged or one
/// 802.1Q tag, IPv4 with a good 20-byte header (no options), an
/// unfragmented (or first fragment) TCP/UDP/SCTP packet with a complete
/// header and a service. `None` for anything else (then [`decide`] sees
/// the frame whole, and gives every drop reason). `memo` holds the last
/// service lookup; `ip_cksum_good`: the NIC found the IPv4 header checksum
/// good, so it is not summed again.
#[inline(always)]
fn fast_parse(
    frame: &[u8],
    ip_cksum_good: bool,
    ctx: &DecideCtx,
    services: &ServiceTable,
    memo: &mut ServiceMemo,
) -> Option<FlowReq> {
    let eth = frame.first_chunk::<{ ethernet::HEADER_LEN }>()?;
    if eth[0..6] != *ctx.rx_mac.as_bytes() {
        return None;
    }
    let (l3, tci) = match be16(eth, 12) {
        ETH_P_IPV4 => (ethernet::HEADER_LEN, None),
        ETH_P_VLAN => {
            let tag = frame.get(14..18)?;
            if be16(tag, 2) != ETH_P_IPV4 {
                return None;
            }
            (18, Some(be16(tag, 0)))
        }
        _ => return None,
    };
    let packet = frame.get(l3..)?;
    let ip = packet.first_chunk::<{ ipv4::HEADER_LEN }>()?;
    // version 4, no options; the rest (options, fragments) goes whole
    if ip[0] != 0x45 {
        return None;
    }
    let total = be16(ip, 2);
    if usize::from(total) < ipv4::HEADER_LEN || usize::from(total) > packet.len() {
        return None;
    }
    if !(ip_cksum_good || ipv4::header_checksum_ok(ip)) || ip[8] == 0 {
        return None;
    }
    let proto = ip[9];
    let frag = be16(ip, 6);
    if frag & ipv4::OFFSET_MASK != 0 {
        return None;
    }
    // source then destination address, the key's first word as it is
    let addrs = *ip.last_chunk::<8>()?;
    let dst4 = [ip[16], ip[17], ip[18], ip[19]];
    let L4Ports {
        src: sport,
        dst: dport,
        tcp,
    } = l4_ports(
        proto,
        &packet[ipv4::HEADER_LEN..usize::from(total)],
        frag & ipv4::FLAG_MF == 0,
    )
    .ok()?;
    let svc = memo.lookup_v4(services, dst4, proto, dport)?;
    Some(FlowReq {
        flow: V4Flow::from_header(addrs, proto, sport, dport),
        svc,
        tcp,
        tci,
        ip_len: total,
        l3: l3 as u8,
        hash: 0,
        hint: 0,
    })
}

/// Decides what to do with one received frame; see the module docs. The
/// frame is modified in place for `Forward` (MACs, VLAN id) and `Reply`.
#[inline]
pub fn decide<S: FlowState>(
    frame: &mut [u8],
    ctx: &DecideCtx,
    services: &ServiceTable,
    state: &mut S,
) -> Verdict {
    let Some(eth) = frame.get(0..ethernet::HEADER_LEN) else {
        return Verdict::Drop(DropReason::TruncatedEthernet);
    };
    let dst_mac = MacAddr::from_bytes(&eth[0..6]);
    let to_us = dst_mac == ctx.rx_mac;
    if !to_us && !dst_mac.is_group() {
        return Verdict::Drop(DropReason::NotForUs);
    }
    let mut ethertype = be16(eth, 12);
    let mut l3 = ethernet::HEADER_LEN;
    let mut tci = None;
    if ethertype == ETH_P_VLAN {
        let Some(tag) = frame.get(14..18) else {
            return Verdict::Drop(DropReason::TruncatedVlan);
        };
        tci = Some(be16(tag, 0));
        ethertype = be16(tag, 2);
        l3 = 18;
        if ethertype == ETH_P_VLAN || ethertype == ETH_P_QINQ {
            return Verdict::Drop(DropReason::QinQ);
        }
    } else if ethertype == ETH_P_QINQ {
        return Verdict::Drop(DropReason::QinQ);
    }
    let l2 = L2 { l3, tci, to_us };
    match ethertype {
        ETH_P_IPV4 if to_us => ipv4_packet(frame, &l2, ctx, services, state),
        ETH_P_IPV6 => ipv6_packet(frame, &l2, ctx, services, state),
        ETH_P_ARP => arp_packet(frame, l3, ctx, services),
        ETH_P_IPV4 => Verdict::Drop(DropReason::NotForUs),
        _ => Verdict::Drop(DropReason::UnknownEthertype),
    }
}

/// What the Ethernet layer found.
struct L2 {
    l3: usize,
    tci: Option<u16>,
    to_us: bool,
}

/// DR rewrite of a frame going to `target` (for a tunnel server, after the
/// MTU check: the worker encapsulates what this leaves, and fragments the
/// outer packet for a [`Verdict::Fragment`]).
#[inline(always)]
fn forward(frame: &mut [u8], l2: &L2, ctx: &DecideCtx, target: Target) -> Verdict {
    let mut v = Verdict::Neighbour;
    forward_into(frame, l2, ctx, target, &mut v);
    v
}

/// [`forward`], writing the verdict into `out`.
#[inline(always)]
fn forward_into(frame: &mut [u8], l2: &L2, ctx: &DecideCtx, target: Target, out: &mut Verdict) {
    let mut fragment = false;
    if let Forwarding::Tunnel(t) = target.forward {
        let len = ip_len(frame, l2.l3) as usize;
        let v6 = frame.get(l2.l3).is_some_and(|b| b >> 4 == 6);
        if len + tunnel::overhead(t.kind, v6) > usize::from(ctx.tunnel_mtu) {
            match tunnel_too_big(frame, l2, ctx, len, t, v6) {
                Some(v) => {
                    *out = v;
                    return;
                }
                None => fragment = true,
            }
        }
    }
    let ip_len = ip_len(frame, l2.l3);
    forward_dr(frame, l2.tci, ip_len, ctx, target, out);
    if let (
        true,
        Verdict::Forward {
            target,
            vlan,
            ip_len,
        },
    ) = (fragment, *out)
    {
        *out = Verdict::Fragment {
            target,
            vlan,
            ip_len,
        };
    }
}

/// The rewrite and verdict of a packet that needs no MTU check (a
/// direct-routing server's; the fast path calls it with the IP length its
/// parse read, [`forward_into`] after its tunnel checks).
#[inline(always)]
fn forward_dr(
    frame: &mut [u8],
    tci: Option<u16>,
    ip_len: u32,
    ctx: &DecideCtx,
    target: Target,
    out: &mut Verdict,
) {
    rewrite_macs(frame, &target.mac, &ctx.tx_mac);
    let vlan = vlan_action(frame, ctx.tx_vlan, tci);
    *out = Verdict::Forward {
        target,
        vlan,
        ip_len,
    };
}

/// What the TX port's VLAN policy does to a frame received with tag `tci`:
/// a new VLAN id is written in place; an insert or a removal is left to
/// the worker (it changes the frame's length).
#[inline(always)]
fn vlan_action(frame: &mut [u8], tx_vlan: TxVlan, tci: Option<u16>) -> VlanAction {
    match (tx_vlan, tci) {
        (TxVlan::Keep, _) | (TxVlan::Untagged, None) => VlanAction::None,
        (TxVlan::Set(vid), Some(tci)) => {
            let new = (tci & 0xf000) | (vid & 0x0fff);
            if let Some(b) = frame.get_mut(14..16) {
                b.copy_from_slice(&new.to_be_bytes());
            }
            VlanAction::None
        }
        (TxVlan::Set(vid), None) => VlanAction::Insert(vid & 0x0fff),
        (TxVlan::Untagged, Some(_)) => VlanAction::Remove,
    }
}

/// A packet for a tunnel server that would exceed the MTU: the ICMP error
/// back to its sender, a drop, or (`None`: IPv4 without DF) a forward in
/// outer fragments.
#[cold]
fn tunnel_too_big(
    frame: &mut [u8],
    l2: &L2,
    ctx: &DecideCtx,
    len: usize,
    t: Tunnel,
    v6: bool,
) -> Option<Verdict> {
    let mtu = ctx
        .tunnel_mtu
        .saturating_sub(tunnel::overhead(t.kind, v6) as u16);
    match tunnel::too_big(frame, l2.l3, len, mtu) {
        TooBig::Reply(len) => {
            let client_mac = src_mac(frame);
            reply_l2(frame, ctx, client_mac);
            Some(Verdict::TooBig { len })
        }
        TooBig::Silent => Some(Verdict::Drop(DropReason::TunnelTooBig)),
        TooBig::Fragment => None,
    }
}

/// The length of the (already validated) IPv4 or IPv6 packet at `l3`:
/// the IPv4 total length, or the IPv6 payload length plus its header.
#[inline(always)]
fn ip_len(frame: &[u8], l3: usize) -> u32 {
    let field = |at: usize| {
        frame
            .get(l3 + at..l3 + at + 2)
            .map_or(0, |b| u32::from(u16::from_be_bytes([b[0], b[1]])))
    };
    match frame.get(l3).map(|b| b >> 4) {
        Some(4) => field(2),
        Some(6) => field(4) + ipv6::HEADER_LEN as u32,
        _ => 0,
    }
}

#[inline(always)]
fn is_port_proto(p: u8) -> bool {
    matches!(p, ip_proto::TCP | ip_proto::UDP | ip_proto::SCTP)
}

/// Not a VIP (and no service matched) → not for us; a VIP → `reason`.
#[inline]
fn vip_or(services: &ServiceTable, family: Family, dst: &Addr, reason: DropReason) -> Verdict {
    if services.vip(family, dst).is_some() {
        Verdict::Drop(reason)
    } else {
        Verdict::Drop(DropReason::NotForUs)
    }
}

/// What a TCP, UDP or SCTP header says for the decision.
#[derive(Clone, Copy)]
struct L4Ports {
    src: u16,
    dst: u16,
    /// TCP's flags (`None` for UDP and SCTP).
    tcp: Option<TcpFlags>,
}

/// Checks and reads the transport header of a TCP, UDP or SCTP packet.
/// `l4` is the IP payload as the IP header bounds it (IPv4 total length,
/// IPv6 payload length), never the rest of the frame: Ethernet padding is
/// neither TCP options nor UDP data. `whole` is false for a first fragment,
/// whose UDP length counts the data of every fragment and so is only
/// checked against the header's 8 bytes.
///
/// A UDP length shorter than the IP payload, but at least 8, is accepted
/// and the datagram forwarded untouched. Linux's `udp_rcv` accepts it too
/// and trims the datagram to the UDP length (`pskb_trim_rcsum`), so the
/// real server reads the same datagram from pmdlb as from an IPVS director,
/// which forwards the IP packet unchanged as well; dropping it would refuse
/// what the receiver's own stack takes. A length below 8 or beyond the
/// payload is what `udp_rcv` itself discards as a short packet: it is
/// dropped here, and counted, before it reaches a real server. (IPv6's
/// length 0 announces a jumbogram, RFC 2675, which needs a jumbo payload
/// option pmdlb does not carry: below 8 like the rest, although Linux's
/// IPv6 receive path takes 0 as "the rest of the packet".)
#[inline(always)]
fn l4_ports(proto: u8, l4: &[u8], whole: bool) -> Result<L4Ports, DropReason> {
    match proto {
        ip_proto::TCP => {
            let t = tcp::Packet::new_checked(l4).map_err(|_| DropReason::TcpBadHeader)?;
            Ok(L4Ports {
                src: t.src_port(),
                dst: t.dst_port(),
                tcp: Some(TcpFlags(t.flags())),
            })
        }
        ip_proto::UDP => {
            let u = udp::Packet::new_unchecked(l4);
            let checked = if whole {
                u.check_len()
            } else {
                u.check_header_len()
            };
            checked.map_err(|_| DropReason::UdpBadLength)?;
            Ok(L4Ports {
                src: u.src_port(),
                dst: u.dst_port(),
                tcp: None,
            })
        }
        ip_proto::SCTP => {
            let s = sctp::Packet::new_checked(l4).map_err(|_| DropReason::SctpTruncated)?;
            Ok(L4Ports {
                src: s.src_port(),
                dst: s.dst_port(),
                tcp: None,
            })
        }
        _ => Err(DropReason::UnknownL4Proto),
    }
}

/// A first fragment or whole packet of TCP/UDP/SCTP; `whole` is false for
/// a first fragment (see [`l4_ports`]).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn transport<S: FlowState>(
    frame: &mut [u8],
    l2: &L2,
    ctx: &DecideCtx,
    services: &ServiceTable,
    state: &mut S,
    family: Family,
    proto: u8,
    src: Addr,
    dst: Addr,
    l4: core::ops::Range<usize>,
    whole: bool,
) -> Verdict {
    // The IP layer checked that the frame holds `l4`; were it not so, an
    // empty payload gets the protocol's own reason.
    let ports = match l4_ports(proto, frame.get(l4).unwrap_or(&[]), whole) {
        Ok(p) => p,
        Err(r) => return Verdict::Drop(r),
    };
    let (sport, dport, flags) = (ports.src, ports.dst, ports.tcp);
    let Some(svc) = services.lookup(family, proto, &dst, dport) else {
        return vip_or(services, family, &dst, DropReason::NoService);
    };
    let key = FlowKey::new(family, proto, src, sport, dst, dport);
    match state.assign(svc, &key, flags) {
        Ok(t) => forward(frame, l2, ctx, t),
        Err(e) => Verdict::Drop(e.into()),
    }
}

/// A later fragment: follow a persistence template or drop.
#[allow(clippy::too_many_arguments)]
fn later_fragment<S: FlowState>(
    frame: &mut [u8],
    l2: &L2,
    ctx: &DecideCtx,
    services: &ServiceTable,
    state: &mut S,
    family: Family,
    proto: u8,
    src: Addr,
    dst: Addr,
) -> Verdict {
    let candidates = services.fragment_candidates(family, proto, &dst);
    let mut found: Option<Target> = None;
    for &svc in candidates {
        if let Some(t) = state.lookup_template(svc, src) {
            match found {
                None => found = Some(t),
                Some(f) if !same_server(&f, &t) => {
                    return Verdict::Drop(DropReason::NonFirstFragment);
                }
                Some(_) => {}
            }
        }
    }
    match found {
        Some(t) => forward(frame, l2, ctx, t),
        None => vip_or(services, family, &dst, DropReason::NonFirstFragment),
    }
}

/// Whether two targets are one server: the same MAC for DR (one server in
/// several services has one id per service), the same id when a tunnel is
/// involved (every tunnel server behind a gateway has the gateway's MAC).
#[inline]
fn same_server(a: &Target, b: &Target) -> bool {
    match (a.forward, b.forward) {
        (Forwarding::Dr, Forwarding::Dr) => a.mac == b.mac,
        _ => a.rs == b.rs,
    }
}

/// The reversed key of the packet embedded in an ICMP error
/// (`inner_src` = VIP, `inner_dst` = client), from its first 4 L4 bytes.
#[inline]
fn inner_key(
    family: Family,
    proto: u8,
    inner_src: Addr,
    inner_dst: Addr,
    l4: &[u8],
) -> Result<FlowKey, DropReason> {
    if !is_port_proto(proto) {
        return Err(DropReason::IcmpNotHandled);
    }
    // Only the ports are read, from the quote as the outer IP length bounds
    // it. The quoted packet's own lengths (IPv4 total length, UDP length,
    // TCP data offset) describe the whole packet the server sent, of which
    // an ICMP error carries only the start; the decision does not rely on
    // them, and they are not checked against the quote.
    let Some(p) = l4.get(0..4) else {
        return Err(DropReason::IcmpMalformed);
    };
    Ok(FlowKey::new(
        family,
        proto,
        inner_dst,
        be16(p, 2),
        inner_src,
        be16(p, 0),
    ))
}

fn relay_error<S: FlowState>(
    frame: &mut [u8],
    l2: &L2,
    ctx: &DecideCtx,
    state: &S,
    key: Result<FlowKey, DropReason>,
    to_vip: bool,
) -> Verdict {
    let r = match key {
        Ok(k) => match state.lookup_conn(&k) {
            Some(t) => return forward(frame, l2, ctx, t),
            None => DropReason::IcmpNoConnection,
        },
        Err(r) => r,
    };
    // Errors to addresses only a mark rule covers still reach their
    // connection; anything else to a non-VIP is simply not ours.
    Verdict::Drop(if to_vip { r } else { DropReason::NotForUs })
}

/// Turns the Ethernet header around for a reply from the RX port.
#[inline]
fn reply_l2(frame: &mut [u8], ctx: &DecideCtx, dst: MacAddr) {
    rewrite_macs(frame, &dst, &ctx.rx_mac);
}

fn src_mac(frame: &[u8]) -> MacAddr {
    match frame.get(6..12) {
        Some(m) => MacAddr::from_bytes(m),
        None => MacAddr::default(),
    }
}

fn ipv4_packet<S: FlowState>(
    frame: &mut [u8],
    l2: &L2,
    ctx: &DecideCtx,
    services: &ServiceTable,
    state: &mut S,
) -> Verdict {
    let l3 = l2.l3;
    let Some(ipb) = frame.get(l3..) else {
        return Verdict::Drop(DropReason::Ipv4Truncated);
    };
    let ip = ipv4::Packet::new_unchecked(ipb);
    match ip.check_len() {
        Ok(()) => {}
        Err(Error::Truncated) => return Verdict::Drop(DropReason::Ipv4Truncated),
        Err(Error::Malformed) => return Verdict::Drop(DropReason::Ipv4Malformed),
    }
    if !ip.verify_checksum() {
        return Verdict::Drop(DropReason::Ipv4BadChecksum);
    }
    if ip.ttl() == 0 {
        return Verdict::Drop(DropReason::TtlExpired);
    }
    let (src4, dst4) = (ip.src_addr(), ip.dst_addr());
    let src = Addr::v4(src4);
    let dst = Addr::v4(dst4);
    let proto = ip.protocol_number();
    let hl = ip.header_len();
    let end = l3 + ip.total_len() as usize;
    let frag_off = ip.frag_offset();
    let is_frag = ip.is_fragment();
    if is_port_proto(proto) {
        if frag_off != 0 {
            return later_fragment(frame, l2, ctx, services, state, Family::V4, proto, src, dst);
        }
        return transport(
            frame,
            l2,
            ctx,
            services,
            state,
            Family::V4,
            proto,
            src,
            dst,
            l3 + hl..end,
            !is_frag,
        );
    }
    if proto != 1 {
        return vip_or(services, Family::V4, &dst, DropReason::UnknownL4Proto);
    }
    // ICMP.
    let vip = services.vip(Family::V4, &dst);
    if is_frag {
        return vip_or(services, Family::V4, &dst, DropReason::IcmpFragment);
    }
    let icmp_range = l3 + hl..end;
    let Some(Ok(msg)) = frame.get(icmp_range.clone()).map(icmp::Packet::new_checked) else {
        return Verdict::Drop(DropReason::IcmpMalformed);
    };
    let ty = msg.msg_type();
    if ty == icmp::Message::EchoRequest {
        let Some(vip) = vip else {
            return Verdict::Drop(DropReason::NotForUs);
        };
        if !vip.answer_ping {
            return Verdict::Drop(DropReason::IcmpNotHandled);
        }
        if !msg.verify_checksum() {
            return Verdict::Drop(DropReason::IcmpBadChecksum);
        }
        let client_mac = src_mac(frame);
        let len = frame.len();
        if let Some(ipb) = frame.get_mut(l3..end) {
            let mut ip = ipv4::Packet::new_unchecked(&mut *ipb);
            ip.set_src_addr(dst4);
            ip.set_dst_addr(src4);
            ip.set_ttl(REPLY_TTL);
            ip.fill_checksum();
            if let Some(ib) = ipb.get_mut(hl..) {
                let mut m = icmp::Packet::new_unchecked(ib);
                m.set_msg_type(icmp::Message::EchoReply);
                m.fill_checksum();
            }
        }
        reply_l2(frame, ctx, client_mac);
        return Verdict::Reply { len };
    }
    if !ty.is_relayed_error() {
        return vip_or(services, Family::V4, &dst, DropReason::IcmpNotHandled);
    }
    let inner = ipv4::Packet::new_unchecked(msg.payload());
    let key = match inner.check_header_len() {
        Err(_) => Err(DropReason::IcmpMalformed),
        Ok(()) if inner.frag_offset() != 0 => Err(DropReason::IcmpNoConnection),
        Ok(()) => inner_key(
            Family::V4,
            inner.protocol_number(),
            Addr::v4(inner.src_addr()),
            Addr::v4(inner.dst_addr()),
            inner.payload_truncated(),
        ),
    };
    relay_error(frame, l2, ctx, state, key, vip.is_some())
}

fn ipv6_packet<S: FlowState>(
    frame: &mut [u8],
    l2: &L2,
    ctx: &DecideCtx,
    services: &ServiceTable,
    state: &mut S,
) -> Verdict {
    let l3 = l2.l3;
    let Some(ipb) = frame.get(l3..) else {
        return Verdict::Drop(DropReason::Ipv6Truncated);
    };
    let ip = ipv6::Packet::new_unchecked(ipb);
    match ip.check_len() {
        Ok(()) => {}
        Err(Error::Truncated) => return Verdict::Drop(DropReason::Ipv6Truncated),
        Err(Error::Malformed) => return Verdict::Drop(DropReason::Ipv6Malformed),
    }
    let hop_limit = ip.hop_limit();
    if hop_limit == 0 {
        return Verdict::Drop(DropReason::TtlExpired);
    }
    let t = match ip.transport() {
        Ok(t) => t,
        Err(Error::Truncated) => return Verdict::Drop(DropReason::Ipv6Truncated),
        Err(Error::Malformed) => return Verdict::Drop(DropReason::Ipv6Malformed),
    };
    let src_b = ip.src_addr();
    let dst_b = ip.dst_addr();
    let src = Addr::v6(src_b);
    let dst = Addr::v6(dst_b);
    let end = l3 + ipv6::HEADER_LEN + ip.payload_len() as usize;
    let l4 = l3 + t.offset..end;
    let proto = t.protocol;
    if proto != 58 && !l2.to_us {
        return Verdict::Drop(DropReason::NotForUs);
    }
    if is_port_proto(proto) {
        if t.frag.is_some_and(|f| f.offset != 0) {
            return later_fragment(frame, l2, ctx, services, state, Family::V6, proto, src, dst);
        }
        return transport(
            frame,
            l2,
            ctx,
            services,
            state,
            Family::V6,
            proto,
            src,
            dst,
            l4,
            !t.frag.is_some_and(|f| f.more),
        );
    }
    if proto != 58 {
        return vip_or(services, Family::V6, &dst, DropReason::UnknownL4Proto);
    }
    // ICMPv6.
    let Some(Ok(msg)) = frame.get(l4.clone()).map(icmpv6::Packet::new_checked) else {
        return Verdict::Drop(DropReason::IcmpMalformed);
    };
    let ty = msg.msg_type();
    match ty {
        icmpv6::Message::NeighborAdvert => return Verdict::Neighbour,
        icmpv6::Message::NeighborSolicit => {}
        _ if !l2.to_us => return Verdict::Drop(DropReason::NotForUs),
        _ => {}
    }
    if t.frag.is_some() {
        return vip_or(services, Family::V6, &dst, DropReason::IcmpFragment);
    }
    if ty == icmpv6::Message::NeighborSolicit {
        if hop_limit != 255 || msg.code() != 0 || msg.check_nd_len().is_err() {
            return Verdict::Drop(DropReason::NdMalformed);
        }
        if t.offset != ipv6::HEADER_LEN {
            return Verdict::Drop(DropReason::NdMalformed);
        }
        if !msg.verify_checksum(&src_b, &dst_b) {
            return Verdict::Drop(DropReason::IcmpBadChecksum);
        }
        let target = msg.nd_target();
        match services.vip(Family::V6, &Addr::v6(target)) {
            Some(v) if v.answer_arp => {}
            _ => return Verdict::Drop(DropReason::NdNotForVip),
        }
        let dad = src_b == [0; 16];
        let (reply_dst, reply_mac, flags) = if dad {
            (ALL_NODES, ALL_NODES_MAC, icmpv6::NA_FLAG_OVERRIDE)
        } else {
            let mac = msg
                .nd_lladdr_option(icmpv6::OPT_SOURCE_LLADDR)
                .unwrap_or_else(|| src_mac(frame));
            (
                src_b,
                mac,
                icmpv6::NA_FLAG_SOLICITED | icmpv6::NA_FLAG_OVERRIDE,
            )
        };
        let with_option = l4.len() >= icmpv6::ND_LEN + icmpv6::LLADDR_OPT_LEN;
        let Some(out) = frame.get_mut(l3..end) else {
            return Verdict::Drop(DropReason::NdMalformed);
        };
        let n = write_na(out, ctx.rx_mac, target, reply_dst, flags, with_option);
        reply_l2(frame, ctx, reply_mac);
        return Verdict::Reply { len: l3 + n };
    }
    let vip = services.vip(Family::V6, &dst);
    if ty == icmpv6::Message::EchoRequest {
        let Some(vip) = vip else {
            return Verdict::Drop(DropReason::NotForUs);
        };
        if !vip.answer_ping || t.offset != ipv6::HEADER_LEN {
            return Verdict::Drop(DropReason::IcmpNotHandled);
        }
        if !msg.verify_checksum(&src_b, &dst_b) {
            return Verdict::Drop(DropReason::IcmpBadChecksum);
        }
        let client_mac = src_mac(frame);
        let len = frame.len();
        if let Some(ipb) = frame.get_mut(l3..end) {
            let (h, rest) = ipb.split_at_mut(ipv6::HEADER_LEN);
            let mut ip = ipv6::Packet::new_unchecked(h);
            ip.set_src_addr(dst_b);
            ip.set_dst_addr(src_b);
            ip.set_hop_limit(REPLY_TTL);
            let mut m = icmpv6::Packet::new_unchecked(rest);
            m.set_msg_type(icmpv6::Message::EchoReply);
            m.fill_checksum(&dst_b, &src_b);
        }
        reply_l2(frame, ctx, client_mac);
        return Verdict::Reply { len };
    }
    if !ty.is_error() {
        return vip_or(services, Family::V6, &dst, DropReason::IcmpNotHandled);
    }
    let inner = ipv6::Packet::new_unchecked(msg.payload());
    let key = match inner
        .check_header_len()
        .and_then(|_| inner.transport_truncated())
    {
        Err(_) => Err(DropReason::IcmpMalformed),
        Ok(it) if it.frag.is_some_and(|f| f.offset != 0) => Err(DropReason::IcmpNoConnection),
        Ok(it) => inner_key(
            Family::V6,
            it.protocol,
            Addr::v6(inner.src_addr()),
            Addr::v6(inner.dst_addr()),
            msg.payload().get(it.offset..).unwrap_or(&[]),
        ),
    };
    relay_error(frame, l2, ctx, state, key, vip.is_some())
}

fn arp_packet(frame: &mut [u8], l3: usize, ctx: &DecideCtx, services: &ServiceTable) -> Verdict {
    let Some(Ok(a)) = frame.get(l3..).map(arp::Packet::new_checked) else {
        return Verdict::Drop(DropReason::ArpMalformed);
    };
    if !a.is_ethernet_ipv4() {
        return Verdict::Drop(DropReason::ArpMalformed);
    }
    let (sha, spa, tpa) = (a.sender_hw(), a.sender_ip(), a.target_ip());
    match a.operation() {
        arp::Operation::Reply => return Verdict::Neighbour,
        arp::Operation::Request if spa == tpa => return Verdict::Neighbour,
        arp::Operation::Request => {}
        arp::Operation::Unknown(_) => return Verdict::Drop(DropReason::ArpMalformed),
    }
    match services.vip(Family::V4, &Addr::v4(tpa)) {
        Some(v) if v.answer_arp => {}
        _ => return Verdict::Drop(DropReason::ArpNotForVip),
    }
    let len = frame.len();
    if let Some(b) = frame.get_mut(l3..l3 + arp::PACKET_LEN) {
        let mut r = arp::Packet::new_unchecked(b);
        r.set_operation(arp::Operation::Reply);
        r.set_sender_hw(ctx.rx_mac);
        r.set_sender_ip(tpa);
        r.set_target_hw(sha);
        r.set_target_ip(spa);
    }
    let eth_src = src_mac(frame);
    reply_l2(frame, ctx, eth_src);
    Verdict::Reply { len }
}
