//! Tunnel forwarding (IPVS's `-i`): the outer headers the worker writes in
//! the mbuf headroom in front of the unchanged IP packet, the outer IPv4
//! identification they carry, and the ICMP fragmentation-needed /
//! packet-too-big the decision builds instead when the encapsulated packet
//! would not fit the TX MTU. Pure functions over bytes: no allocation, no
//! panic.
//!
//! # What goes on the wire
//! `[Ethernet (+ tag), as DR builds it, to the next hop's MAC]`
//! `[outer IPv4 | IPv6]` `[UDP + GUE header, for gue]` `[the IP packet]`.
//! - Outer source: the director's tunnel address; destination: the real
//!   server's address. The family follows the server's address; the
//!   protocol is 4 (IPv4 inside) or 41 (IPv6 inside) for ipip, 17 for gue.
//! - As IPVS (`ip_vs_prepare_tunneled_skb`): the outer TTL / hop limit and
//!   TOS / traffic class are the inner packet's; an IPv4 outer header copies
//!   the inner DF bit (IPv6 inside: DF clear); fragment offset and MF 0.
//!   The outer IPv6 flow label is 0. The outer IPv4 checksum is computed.
//! - The outer IPv4 identification, as `ip_vs_tunnel_xmit` gets it from
//!   `ip_select_ident`: 0 with DF (the packet is never fragmented, RFC
//!   6864), otherwise a fresh value per packet from [`OuterIds`] — never the
//!   inner packet's, since two clients' packets with one inner ID would be
//!   one datagram to the real server's reassembly once the outer packet is
//!   fragmented (here, [`crate::dataplane::fragment`], or by a router on
//!   the way).
//! - GUE (RFC 8086 variant 0, as IPVS's `ipvs_gue_encap`): a 4-byte header
//!   with version 0, no options (hlen 0), protocol 4 or 41, flags 0. The UDP
//!   source port is [`gue_src_port`] of the inner flow, as GitHub's GLB does:
//!   one flow keeps one port, flows spread over the server's RSS queues. The
//!   UDP checksum is 0 over IPv4 unless `tun_csum`; over IPv6 (where 0 is not
//!   allowed, RFC 8200) always computed.
//!
//! # MTU
//! The encapsulated packet must fit the TX MTU. As IPVS
//! (`ensure_mtu_is_adequate`), a packet that does not gets, instead of being
//! forwarded, an ICMP error to its sender reporting the MTU minus the tunnel
//! overhead: IPv4 with DF a fragmentation-needed (type 3 code 4), IPv6 a
//! packet-too-big (type 2; IPVS never fragments an IPv6 outer packet) —
//! but never for an ICMP error (the forwarded ICMP messages are all errors)
//! nor a non-first fragment. IPv4 without DF is forwarded as IPVS does
//! (`ip_local_out` fragments the outer packet): [`too_big`] says
//! [`TooBig::Fragment`], the decision gives
//! [`crate::dataplane::Verdict::Fragment`], and the worker sends the outer
//! packet as IPv4 fragments ([`crate::dataplane::fragment`]).
#![forbid(unsafe_code)]

use crate::lb::spec::{Tunnel, TunnelKind};
use crate::wire::{checksum, IpProtocol};

/// UDP plus GUE header bytes.
pub const GUE_LEN: usize = 8 + 4;

/// The protocol numbers a tunnel writes and reads, from wire's vocabulary.
const IPPROTO_IPIP: u8 = IpProtocol::Ipip.number();
const IPPROTO_IPV6: u8 = IpProtocol::Ipv6Encap.number();
const IPPROTO_UDP: u8 = IpProtocol::Udp.number();
const IPPROTO_ICMP: u8 = IpProtocol::Icmp.number();
const IPPROTO_ICMPV6: u8 = IpProtocol::Icmpv6.number();
const IPPROTO_FRAGMENT: u8 = IpProtocol::Ipv6Frag.number();

/// Bytes a tunnel adds in front of the IP packet, for an outer IPv6
/// header (`outer_v6`) or IPv4 one.
#[inline(always)]
pub const fn overhead(kind: TunnelKind, outer_v6: bool) -> usize {
    let ip = if outer_v6 { 40 } else { 20 };
    match kind {
        TunnelKind::Ipip => ip,
        TunnelKind::Gue => ip + GUE_LEN,
    }
}

/// The outer addresses of one tunnelled packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outer {
    /// An outer IPv4 header from `src` (the director) to `dst` (the server).
    V4 {
        /// The director's tunnel address.
        src: [u8; 4],
        /// The real server.
        dst: [u8; 4],
    },
    /// An outer IPv6 header.
    V6 {
        /// The director's tunnel address.
        src: [u8; 16],
        /// The real server.
        dst: [u8; 16],
    },
}

impl Outer {
    /// Whether the outer header is IPv6.
    #[inline(always)]
    pub fn is_v6(&self) -> bool {
        matches!(self, Outer::V6 { .. })
    }
}

/// Why a frame could not be encapsulated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncapError {
    /// The buffer is shorter than the headroom, the Ethernet header and
    /// the IP packet together, or the IP packet is too long for the outer
    /// length field.
    TooShort,
    /// The IP packet is neither IPv4 nor IPv6.
    NotIp,
}

/// A 32-bit hash of the inner packet's flow: addresses, protocol and (for a
/// whole TCP/UDP/SCTP packet or first fragment whose transport header
/// follows the fixed IP header) the ports. The same for every packet of a
/// flow, whatever its length or flags.
#[inline]
pub fn flow_hash(ip: &[u8]) -> u32 {
    let word = |b: &[u8], at: usize| {
        b.get(at..at + 4)
            .map_or(0, |w| u32::from_be_bytes([w[0], w[1], w[2], w[3]]))
    };
    let mut h: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut mix = |w: u32| {
        h = (h ^ u64::from(w)).wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 31;
    };
    let ports = |proto: u8| matches!(proto, 6 | 17 | 132);
    match ip.first().map(|b| b >> 4) {
        Some(4) => {
            let ihl = usize::from(ip[0] & 0x0f) * 4;
            let proto = ip.get(9).copied().unwrap_or(0);
            let frag_off = ip
                .get(6..8)
                .map_or(0, |f| u16::from_be_bytes([f[0], f[1]]) & 0x1fff);
            mix(word(ip, 12));
            mix(word(ip, 16));
            mix(u32::from(proto));
            if ports(proto) && frag_off == 0 {
                mix(word(ip, ihl));
            }
        }
        Some(6) => {
            let nh = ip.get(6).copied().unwrap_or(0);
            for at in (8..40).step_by(4) {
                mix(word(ip, at));
            }
            mix(u32::from(nh));
            if ports(nh) {
                mix(word(ip, 40));
            }
        }
        _ => {}
    }
    (h >> 32) as u32
}

/// The GUE UDP source port of a flow: in the dynamic range 49152..=65535
/// (RFC 6335), from [`flow_hash`].
#[inline(always)]
pub fn gue_src_port(hash: u32) -> u16 {
    0xc000 | (hash as u16 & 0x3fff)
}

/// Buckets of [`OuterIds`] (outer destinations hash into them).
const ID_BUCKETS: usize = 64;

/// The outer IPv4 identification of one worker's non-DF tunnelled
/// packets. As Linux's `__ip_select_ident` (which IPVS's tunnel transmitter
/// calls), a counter per bucket of (hashed) destinations, so that a real
/// server shares its sequence only with the few others of its bucket, and
/// 65,536 of their packets pass before a value comes back; the start
/// values are random (here: from a seed). Unlike the kernel's shared
/// table, each worker has its own, and the workers' values never meet:
/// worker `i` of `n` hands out only values `≡ i (mod 2^⌈log2 n⌉)`, stepping
/// by that power of two (so with 2 workers each has 32,768 values per
/// bucket before one repeats). Two packets to one server share an
/// identification only that many packets apart, the limit any 16-bit IPv4
/// identification has (RFC 4963). Unlike the kernel, a bucket does not
/// skip a random number of values after an idle time: who sees the outer
/// packets on the director-to-server path can predict the next values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OuterIds {
    next: [u16; ID_BUCKETS],
    step: u16,
}

impl OuterIds {
    /// The source of worker `index` of `workers` (`index < workers`), its
    /// start values drawn from `seed`.
    pub fn new(index: u16, workers: u16, seed: u64) -> OuterIds {
        let step = u32::from(workers.max(1)).next_power_of_two().min(1 << 15) as u16;
        let mask = step - 1;
        let mut s = seed;
        let next = std::array::from_fn(|_| {
            s = (s ^ (s >> 29))
                .wrapping_mul(0xbf58_476d_1ce4_e5b9)
                .wrapping_add(0x9e37_79b9);
            ((s >> 32) as u16 & !mask) | (index & mask)
        });
        OuterIds { next, step }
    }

    /// The identification of the next non-DF packet to `dst`.
    #[inline(always)]
    pub fn next(&mut self, dst: [u8; 4]) -> u16 {
        let b = (u32::from_be_bytes(dst).wrapping_mul(0x9e37_79b1) >> 26) as usize;
        let slot = &mut self.next[b & (ID_BUCKETS - 1)];
        let id = *slot;
        *slot = id.wrapping_add(self.step);
        id
    }
}

/// Completes an encapsulation after the worker prepended
/// `overhead(t.kind, outer.is_v6())` bytes: `data` starts with those bytes,
/// then the frame as the decision left it (Ethernet header, optional
/// 802.1Q tag, the IP packet of `ip_len` bytes, maybe padding). Moves the
/// Ethernet header (and tag) to the front and writes the outer headers
/// between it and the IP packet; returns the new frame length (anything
/// after it, the old padding, is to be trimmed). An outer IPv4 header
/// without DF takes its identification from `ids`.
#[inline]
pub fn encapsulate(
    data: &mut [u8],
    outer: &Outer,
    t: Tunnel,
    ip_len: usize,
    ids: &mut OuterIds,
) -> Result<usize, EncapError> {
    let h = overhead(t.kind, outer.is_v6());
    let tagged = data.get(h + 12..h + 14) == Some(&[0x81, 0x00][..]);
    let l2 = if tagged { 18 } else { 14 };
    let end = h + l2 + ip_len;
    if data.len() < end || ip_len < 20 || h + ip_len > usize::from(u16::MAX) {
        return Err(EncapError::TooShort);
    }
    data.copy_within(h..h + l2, 0);
    let (head, inner) = data[l2..end].split_at_mut(h);
    // What the outer header copies from the inner packet.
    let (inner_proto, ttl, tos, df) = match inner[0] >> 4 {
        4 => (IPPROTO_IPIP, inner[8], inner[1], inner[6] & 0x40 != 0),
        6 => (
            IPPROTO_IPV6,
            inner[7],
            (inner[0] << 4) | (inner[1] >> 4),
            false,
        ),
        _ => return Err(EncapError::NotIp),
    };
    let proto = match t.kind {
        TunnelKind::Ipip => inner_proto,
        TunnelKind::Gue => IPPROTO_UDP,
    };
    let (ip_hdr, rest) = head.split_at_mut(if outer.is_v6() { 40 } else { 20 });
    match outer {
        Outer::V4 { src, dst } => {
            let total = (h + ip_len) as u16;
            let ident = if df { 0 } else { ids.next(*dst) };
            ip_hdr[0] = 0x45;
            ip_hdr[1] = tos;
            ip_hdr[2..4].copy_from_slice(&total.to_be_bytes());
            ip_hdr[4..6].copy_from_slice(&ident.to_be_bytes());
            ip_hdr[6] = if df { 0x40 } else { 0 };
            ip_hdr[7] = 0;
            ip_hdr[8] = ttl;
            ip_hdr[9] = proto;
            ip_hdr[10..12].copy_from_slice(&[0, 0]);
            ip_hdr[12..16].copy_from_slice(src);
            ip_hdr[16..20].copy_from_slice(dst);
            let c = checksum::checksum(ip_hdr);
            ip_hdr[10..12].copy_from_slice(&c.to_be_bytes());
        }
        Outer::V6 { src, dst } => {
            let payload = (h - 40 + ip_len) as u16;
            ip_hdr[0] = 0x60 | (tos >> 4);
            ip_hdr[1] = tos << 4;
            ip_hdr[2..4].copy_from_slice(&[0, 0]);
            ip_hdr[4..6].copy_from_slice(&payload.to_be_bytes());
            ip_hdr[6] = proto;
            ip_hdr[7] = ttl;
            ip_hdr[8..24].copy_from_slice(src);
            ip_hdr[24..40].copy_from_slice(dst);
        }
    }
    if t.kind == TunnelKind::Gue {
        let udp_len = (GUE_LEN + ip_len) as u16;
        let sport = gue_src_port(flow_hash(inner));
        rest[0..2].copy_from_slice(&sport.to_be_bytes());
        rest[2..4].copy_from_slice(&t.port.to_be_bytes());
        rest[4..6].copy_from_slice(&udp_len.to_be_bytes());
        rest[6..8].copy_from_slice(&[0, 0]);
        // GUE variant 0: version 0, C 0, hlen 0; protocol; flags 0.
        rest[8..12].copy_from_slice(&[0, inner_proto, 0, 0]);
        let csum = match outer {
            Outer::V4 { .. } if !t.csum => None,
            Outer::V4 { src, dst } => Some(checksum::pseudo_v4(src, dst, IPPROTO_UDP, udp_len)),
            Outer::V6 { src, dst } => Some(checksum::pseudo_v6(
                src,
                dst,
                IPPROTO_UDP,
                u32::from(udp_len),
            )),
        };
        if let Some(pseudo) = csum {
            let s = checksum::add(
                pseudo,
                checksum::add(checksum::sum(rest), checksum::sum(inner)),
            );
            let c = match !checksum::fold(s) {
                0 => 0xffff,
                c => c,
            };
            rest[6..8].copy_from_slice(&c.to_be_bytes());
        }
    }
    Ok(end)
}

/// Largest IPv4 ICMP error (RFC 1812: 576 bytes), as Linux's `icmp_send`.
const ICMP4_MAX: usize = 576;
/// Largest ICMPv6 error (the IPv6 minimum MTU, RFC 4443).
const ICMP6_MAX: usize = 1280;

/// What to do with an IP packet too big for its tunnel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TooBig {
    /// An ICMP error to the sender was built in place; the frame's new
    /// length (the Ethernet header is left to the caller).
    Reply(usize),
    /// No error is sent (ICMP error, later fragment, no room): drop.
    Silent,
    /// IPv4 without DF: forward it, the outer packet in fragments (the
    /// frame is untouched).
    Fragment,
}

/// Builds, in place of the IP packet at `frame[l3..l3 + ip_len]`, the ICMP
/// error telling its sender that at most `mtu` bytes fit (see the module
/// docs for when none is sent). The reply goes from the packet's
/// destination (the VIP) to its source, TTL / hop limit 64, quoting the
/// start of the packet as far as the received frame's length and the ICMP
/// size limit allow. `frame[..l3]` is untouched.
pub fn too_big(frame: &mut [u8], l3: usize, ip_len: usize, mtu: u16) -> TooBig {
    let Some(ip) = frame.get(l3..) else {
        return TooBig::Silent;
    };
    let room = ip.len().min(ip_len);
    match ip.first().map(|b| b >> 4) {
        Some(4) if ip.len() >= 20 => {
            let ihl = usize::from(ip[0] & 0x0f) * 4;
            let frag = u16::from_be_bytes([ip[6], ip[7]]);
            if frag & 0x4000 == 0 {
                return TooBig::Fragment;
            }
            if frag & 0x1fff != 0 || ip[9] == IPPROTO_ICMP {
                return TooBig::Silent;
            }
            let quote = room.saturating_sub(28).min(ICMP4_MAX - 28);
            if quote < ihl + 8 {
                return TooBig::Silent;
            }
            let (src, dst) = (
                [ip[12], ip[13], ip[14], ip[15]],
                [ip[16], ip[17], ip[18], ip[19]],
            );
            let b = &mut frame[l3..];
            b.copy_within(0..quote, 28);
            let total = (28 + quote) as u16;
            b[0..20].copy_from_slice(&[
                0x45,
                0xc0,
                0,
                0,
                0,
                0,
                0,
                0,
                64,
                IPPROTO_ICMP,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
            ]);
            b[2..4].copy_from_slice(&total.to_be_bytes());
            b[12..16].copy_from_slice(&dst);
            b[16..20].copy_from_slice(&src);
            let c = checksum::checksum(&b[0..20]);
            b[10..12].copy_from_slice(&c.to_be_bytes());
            b[20..28].copy_from_slice(&[3, 4, 0, 0, 0, 0, 0, 0]);
            b[26..28].copy_from_slice(&mtu.to_be_bytes());
            let c = checksum::checksum(&b[20..28 + quote]);
            b[22..24].copy_from_slice(&c.to_be_bytes());
            TooBig::Reply(l3 + 28 + quote)
        }
        Some(6) if ip.len() >= 48 => {
            let nh = ip[6];
            if nh == IPPROTO_ICMPV6
                || (nh == IPPROTO_FRAGMENT && u16::from_be_bytes([ip[42], ip[43]]) & 0xfff8 != 0)
            {
                return TooBig::Silent;
            }
            let quote = room.saturating_sub(48).min(ICMP6_MAX - 48);
            if quote < 40 {
                return TooBig::Silent;
            }
            let mut src = [0u8; 16];
            let mut dst = [0u8; 16];
            src.copy_from_slice(&ip[8..24]);
            dst.copy_from_slice(&ip[24..40]);
            let b = &mut frame[l3..];
            b.copy_within(0..quote, 48);
            let plen = (8 + quote) as u16;
            b[0..8].copy_from_slice(&[0x60, 0, 0, 0, 0, 0, IPPROTO_ICMPV6, 64]);
            b[4..6].copy_from_slice(&plen.to_be_bytes());
            b[8..24].copy_from_slice(&dst);
            b[24..40].copy_from_slice(&src);
            b[40..48].copy_from_slice(&[2, 0, 0, 0, 0, 0, 0, 0]);
            b[44..48].copy_from_slice(&u32::from(mtu).to_be_bytes());
            let s = checksum::add(
                checksum::pseudo_v6(&dst, &src, IPPROTO_ICMPV6, u32::from(plen)),
                checksum::sum(&b[40..48 + quote]),
            );
            b[42..44].copy_from_slice(&(!checksum::fold(s)).to_be_bytes());
            TooBig::Reply(l3 + 48 + quote)
        }
        _ => TooBig::Silent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipv4_udp(sport: u16, len: usize, df: bool) -> Vec<u8> {
        let mut p = vec![0u8; len];
        p[0] = 0x45;
        p[1] = 0x28;
        p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        p[4..6].copy_from_slice(&[0x12, 0x34]);
        p[6] = if df { 0x40 } else { 0 };
        p[8] = 61;
        p[9] = 17;
        p[12..16].copy_from_slice(&[192, 0, 2, 7]);
        p[16..20].copy_from_slice(&[10, 0, 0, 100]);
        let c = checksum::checksum(&p[0..20]);
        p[10..12].copy_from_slice(&c.to_be_bytes());
        p[20..22].copy_from_slice(&sport.to_be_bytes());
        p[22..24].copy_from_slice(&53u16.to_be_bytes());
        p
    }

    const GUE: Tunnel = Tunnel {
        kind: TunnelKind::Gue,
        port: 6080,
        csum: true,
    };
    const IPIP: Tunnel = Tunnel {
        kind: TunnelKind::Ipip,
        port: 0,
        csum: false,
    };
    const OUT4: Outer = Outer::V4 {
        src: [10, 0, 1, 1],
        dst: [10, 9, 0, 1],
    };

    fn encap(ip: &[u8], t: Tunnel, outer: &Outer, tag: bool) -> Vec<u8> {
        let h = overhead(t.kind, outer.is_v6());
        let mut buf = vec![0xeeu8; h];
        buf.extend_from_slice(&[1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2]);
        if tag {
            buf.extend_from_slice(&[0x81, 0, 0, 7]);
        }
        buf.extend_from_slice(&[0x08, 0x00]);
        buf.extend_from_slice(ip);
        buf.extend_from_slice(&[0; 6]); // padding
        let mut ids = OuterIds::new(0, 1, 7);
        let n = encapsulate(&mut buf, outer, t, ip.len(), &mut ids).unwrap();
        buf.truncate(n);
        buf
    }

    #[test]
    fn ipip_header() {
        let ip = ipv4_udp(1000, 60, true);
        let f = encap(&ip, IPIP, &OUT4, false);
        assert_eq!(f.len(), 14 + 20 + 60);
        assert_eq!(&f[0..14], &[1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 8, 0]);
        let o = &f[14..34];
        assert_eq!(o[0], 0x45);
        assert_eq!(o[1], 0x28, "TOS copied");
        assert_eq!(u16::from_be_bytes([o[2], o[3]]), 80);
        assert_eq!(&o[4..6], &[0, 0], "DF: identification 0, as Linux");
        assert_eq!(o[6], 0x40, "DF copied");
        assert_eq!((o[8], o[9]), (61, 4), "TTL copied, protocol 4");
        assert_eq!(&o[12..20], &[10, 0, 1, 1, 10, 9, 0, 1]);
        assert_eq!(checksum::checksum(o), 0);
        assert_eq!(&f[34..], &ip[..]);
        let f = encap(&ipv4_udp(1000, 60, false), IPIP, &OUT4, true);
        assert_eq!(&f[12..18], &[0x81, 0, 0, 7, 8, 0], "the tag stays");
        assert_eq!(f[18 + 6], 0, "no DF inside, none outside");
        let mut ids = OuterIds::new(0, 1, 7);
        let want = ids.next([10, 9, 0, 1]);
        assert_eq!(
            u16::from_be_bytes([f[18 + 4], f[18 + 5]]),
            want,
            "no DF: the identification from OuterIds, not the inner 0x1234"
        );
    }

    #[test]
    fn gue_header_and_ports() {
        let ip = ipv4_udp(1000, 61, true);
        let f = encap(&ip, GUE, &OUT4, false);
        assert_eq!(f.len(), 14 + 32 + 61);
        assert_eq!(f[14 + 9], 17);
        let u = &f[34..46];
        assert_eq!(u16::from_be_bytes([u[2], u[3]]), 6080);
        assert_eq!(u16::from_be_bytes([u[4], u[5]]) as usize, 12 + 61);
        assert_eq!(&u[8..12], &[0, 4, 0, 0]);
        let sport = u16::from_be_bytes([u[0], u[1]]);
        assert!(sport >= 49152);
        let pseudo = checksum::pseudo_v4(&[10, 0, 1, 1], &[10, 9, 0, 1], 17, 73);
        assert_eq!(
            checksum::fold(checksum::add(pseudo, checksum::sum(&f[34..]))),
            0xffff
        );
        // Same flow, other length: same port; other flow: (here) another.
        let g = encap(&ipv4_udp(1000, 200, true), GUE, &OUT4, false);
        assert_eq!(&g[34..36], &u[0..2]);
        let ports: std::collections::HashSet<[u8; 2]> = (0..64)
            .map(|p| {
                let g = encap(&ipv4_udp(2000 + p, 60, true), GUE, &OUT4, false);
                [g[34], g[35]]
            })
            .collect();
        assert!(ports.len() > 32, "{} ports for 64 flows", ports.len());
        // No checksum over IPv4 without tun_csum.
        let nocsum = Tunnel { csum: false, ..GUE };
        let f = encap(&ip, nocsum, &OUT4, false);
        assert_eq!(&f[40..42], &[0, 0]);
    }

    #[test]
    fn ip6_outer() {
        let mut ip = vec![0u8; 60];
        ip[0] = 0x6a;
        ip[1] = 0xb0;
        ip[4..6].copy_from_slice(&20u16.to_be_bytes());
        ip[6] = 17;
        ip[7] = 33;
        let out = Outer::V6 {
            src: [0xfd; 16],
            dst: [0xfe; 16],
        };
        let f = encap(&ip, IPIP, &out, false);
        let o = &f[14..54];
        assert_eq!((o[0], o[1]), (0x6a, 0xb0), "traffic class copied, flow 0");
        assert_eq!(u16::from_be_bytes([o[4], o[5]]), 60);
        assert_eq!((o[6], o[7]), (41, 33));
        let f = encap(&ip, Tunnel { csum: false, ..GUE }, &out, false);
        assert_ne!(
            &f[54 + 6..54 + 8],
            &[0, 0],
            "IPv6 always has a UDP checksum"
        );
        assert_eq!(f[54 + 9], 41);
    }

    #[test]
    fn outer_ids() {
        // One worker: consecutive values per destination, other
        // destinations on their own counters.
        let mut one = OuterIds::new(0, 1, 99);
        let a: Vec<u16> = (0..4).map(|_| one.next([10, 9, 0, 1])).collect();
        assert!(a.windows(2).all(|w| w[1] == w[0].wrapping_add(1)), "{a:?}");
        let b = one.next([10, 9, 0, 2]);
        assert_eq!(one.next([10, 9, 0, 1]), a[3].wrapping_add(1));
        let mut seen = std::collections::HashSet::from([b]);
        assert!((1..=u16::MAX).all(|_| seen.insert(one.next([10, 9, 0, 2]))));
        // Three workers (step 4): disjoint values, each worker's own
        // residue; the same seed gives the same start per worker.
        let mut w: Vec<OuterIds> = (0..3).map(|i| OuterIds::new(i, 3, 5)).collect();
        let mut all = std::collections::HashSet::new();
        for (i, ids) in w.iter_mut().enumerate() {
            for _ in 0..1000 {
                let id = ids.next([10, 9, 3, 1]);
                assert_eq!(usize::from(id % 4), i);
                assert!(all.insert(id), "{id} twice");
            }
        }
        assert_eq!(OuterIds::new(1, 3, 5), OuterIds::new(1, 3, 5));
        assert_ne!(OuterIds::new(1, 3, 5), OuterIds::new(1, 3, 6));
    }

    #[test]
    fn errors() {
        let mut short = vec![0u8; 40];
        assert_eq!(
            encapsulate(&mut short, &OUT4, IPIP, 60, &mut OuterIds::new(0, 1, 0)),
            Err(EncapError::TooShort)
        );
        let mut not_ip = vec![0u8; 20 + 14 + 40];
        assert_eq!(
            encapsulate(&mut not_ip, &OUT4, IPIP, 40, &mut OuterIds::new(0, 1, 0)),
            Err(EncapError::NotIp)
        );
    }

    #[test]
    fn too_big_v4() {
        let ip = ipv4_udp(1000, 1000, true);
        let mut f = vec![7u8; 14];
        f.extend_from_slice(&ip);
        let TooBig::Reply(n) = too_big(&mut f, 14, 1000, 1480) else {
            panic!("no reply")
        };
        assert_eq!(n, 14 + 576);
        let r = &f[14..n];
        assert_eq!(checksum::checksum(&r[0..20]), 0);
        assert_eq!(&r[12..20], &[10, 0, 0, 100, 192, 0, 2, 7]);
        assert_eq!(&r[20..22], &[3, 4]);
        assert_eq!(u16::from_be_bytes([r[26], r[27]]), 1480);
        assert_eq!(checksum::checksum(&r[20..]), 0);
        assert_eq!(&r[28..], &ip[..548]);
        let mut f = vec![0u8; 14];
        f.extend_from_slice(&ipv4_udp(1000, 1000, false));
        let before = f.clone();
        assert_eq!(too_big(&mut f, 14, 1000, 1480), TooBig::Fragment);
        assert_eq!(f, before, "left as it is");
        let mut icmp = ipv4_udp(1000, 1000, true);
        icmp[9] = 1;
        assert_eq!(too_big(&mut icmp, 0, 1000, 1480), TooBig::Silent);
    }

    #[test]
    fn too_big_v6() {
        let mut ip = vec![0u8; 1480];
        ip[0] = 0x60;
        ip[4..6].copy_from_slice(&1440u16.to_be_bytes());
        ip[6] = 6;
        ip[7] = 50;
        ip[8..24].copy_from_slice(&[0x20; 16]);
        ip[24..40].copy_from_slice(&[0x30; 16]);
        let orig = ip.clone();
        let TooBig::Reply(n) = too_big(&mut ip, 0, 1480, 1460) else {
            panic!("no reply")
        };
        assert_eq!(n, 1280);
        assert_eq!(&ip[8..24], &[0x30; 16], "from the VIP");
        assert_eq!(&ip[24..40], &[0x20; 16], "to the client");
        assert_eq!((ip[6], ip[7]), (58, 64));
        assert_eq!(ip[40], 2, "packet too big");
        assert_eq!(&ip[44..48], &1460u32.to_be_bytes());
        let s = checksum::add(
            checksum::pseudo_v6(&[0x30; 16], &[0x20; 16], 58, 1240),
            checksum::sum(&ip[40..1280]),
        );
        assert_eq!(checksum::fold(s), 0xffff, "ICMPv6 checksum");
        assert_eq!(&ip[48..1280], &orig[..1232]);
        let mut icmp = orig.clone();
        icmp[6] = 58;
        assert_eq!(too_big(&mut icmp, 0, 1480, 1460), TooBig::Silent);
    }
}
