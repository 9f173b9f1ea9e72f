//! Identifiers and keys shared by the service lookup, the state layer and the
//! per-packet decision. Plain `Copy` data, no behaviour.

use core::fmt;

/// Index of a virtual service in one service-table snapshot (dense, 0-based).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceId(pub u32);

impl fmt::Debug for ServiceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "svc{}", self.0)
    }
}

/// Index of a real server in one service-table snapshot (dense, 0-based,
/// global over all services: the same address under two services is two ids).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RsId(pub u32);

impl fmt::Debug for RsId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rs{}", self.0)
    }
}

/// Address family of a flow.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Family {
    /// IPv4; addresses are stored in the first 4 bytes of an [`Addr`].
    V4,
    /// IPv6.
    V6,
}

/// An IPv4 or IPv6 address in a fixed 16-byte form (IPv4 in bytes 0..4, the
/// rest zero), so keys hash and compare without branching on the family.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Addr(pub [u8; 16]);

impl Addr {
    /// An IPv4 address.
    #[inline(always)]
    pub const fn v4(octets: [u8; 4]) -> Self {
        // One 16-byte value, not four byte stores: the hash and compares
        // read it back as words, which would stall store forwarding.
        Addr((u32::from_le_bytes(octets) as u128).to_le_bytes())
    }

    /// An IPv6 address.
    pub const fn v6(octets: [u8; 16]) -> Self {
        Addr(octets)
    }

    /// From a std address.
    pub fn from_ip(ip: std::net::IpAddr) -> (Family, Self) {
        match ip {
            std::net::IpAddr::V4(a) => (Family::V4, Addr::v4(a.octets())),
            std::net::IpAddr::V6(a) => (Family::V6, Addr::v6(a.octets())),
        }
    }

    /// To a std address of the given family.
    pub fn to_ip(self, family: Family) -> std::net::IpAddr {
        match family {
            Family::V4 => std::net::IpAddr::V4(std::net::Ipv4Addr::new(
                self.0[0], self.0[1], self.0[2], self.0[3],
            )),
            Family::V6 => std::net::IpAddr::V6(std::net::Ipv6Addr::from(self.0)),
        }
    }

    /// This address with all but the first `prefix_len` bits cleared.
    #[inline(always)]
    pub fn masked(self, prefix_len: u8) -> Self {
        // one 128-bit mask, not a copy of a variable number of bytes (a
        // call to memcpy on every new persistent client)
        let keep = match prefix_len {
            0 => 0,
            p if p >= 128 => u128::MAX,
            p => u128::MAX << (128 - u32::from(p)),
        };
        Addr((u128::from_be_bytes(self.0) & keep).to_be_bytes())
    }
}

impl fmt::Debug for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0[4..].iter().all(|&b| b == 0) {
            write!(f, "{}.{}.{}.{}", self.0[0], self.0[1], self.0[2], self.0[3])
        } else {
            write!(f, "{}", std::net::Ipv6Addr::from(self.0))
        }
    }
}

/// IP protocol numbers pmdlb handles as transport protocols of a service.
pub mod ip_proto {
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// SCTP (balanced by ports like UDP; no state machine).
    pub const SCTP: u8 = 132;
}

/// The 5-tuple of a client→VIP flow, as the director sees it, packed in
/// words. An IPv4 flow is whole in the first two: both addresses as they
/// sit in the IPv4 header (client then VIP, one load from the packet),
/// then ports, protocol and family; its other three words are zero. An
/// IPv6 flow keeps the rest of its 32 address bytes in those three words.
/// So an IPv4 key hashes as two words and compares as two, with its
/// 13 bytes of 5-tuple not spread over two 16-byte addresses; the
/// connection table stores the key as it is, first in an entry's line.
#[derive(Clone, Copy, Eq)]
#[repr(C)]
pub struct FlowKey {
    /// IPv4: the client's 4 address bytes then the VIP's; IPv6: the
    /// client's first 8 bytes.
    addrs: u64,
    /// `cport | vport << 16 | proto << 32 | family << 40`; bits 48..64
    /// are zero, or where a table placed the key ([`FlowKey::placed`]).
    tail: u64,
    /// IPv6: the client's last 8 bytes and the VIP's 16; IPv4: zero.
    wide: [u64; 3],
}

/// `FlowKey::tail`'s family byte of an IPv4 flow.
const TAIL_V4: u64 = 4 << 40;
/// ... and of an IPv6 flow.
const TAIL_V6: u64 = 6 << 40;
/// The bits of `FlowKey::tail` below the family byte.
const TAIL_LOW: u64 = (1 << 40) - 1;
/// Where a table's tag sits in `FlowKey::tail`; its displacement is the
/// byte above.
const TAG_SHIFT: u32 = 48;
const DISP_SHIFT: u32 = 56;

impl FlowKey {
    /// The key of a flow from `client:cport` to `vip:vport` of IP protocol
    /// `proto` (ports 0 for protocols without ports).
    #[inline(always)]
    pub fn new(family: Family, proto: u8, client: Addr, cport: u16, vip: Addr, vport: u16) -> Self {
        let (c, v) = (&client.0, &vip.0);
        match family {
            Family::V4 => Self::v4(
                proto,
                [c[0], c[1], c[2], c[3]],
                cport,
                [v[0], v[1], v[2], v[3]],
                vport,
            ),
            Family::V6 => {
                let (c0, c1) = words_of(client);
                let (v0, v1) = words_of(vip);
                FlowKey {
                    addrs: c0,
                    tail: ports_proto(proto, cport, vport) | TAIL_V6,
                    wide: [c1, v0, v1],
                }
            }
        }
    }

    /// An IPv4 flow.
    #[inline(always)]
    pub fn v4(proto: u8, client: [u8; 4], cport: u16, vip: [u8; 4], vport: u16) -> Self {
        let [a, b, c, d] = client;
        let [e, f, g, h] = vip;
        V4Flow::from_header([a, b, c, d, e, f, g, h], proto, cport, vport).key()
    }

    #[inline(always)]
    fn v4_packed(addrs: u64, low: u64) -> Self {
        FlowKey {
            addrs,
            tail: (low & TAIL_LOW) | TAIL_V4,
            wide: [0; 3],
        }
    }

    /// Address family.
    #[inline(always)]
    pub fn family(&self) -> Family {
        if self.is_v4() {
            Family::V4
        } else {
            Family::V6
        }
    }

    #[inline(always)]
    fn is_v4(&self) -> bool {
        (self.tail >> 40) as u8 == (TAIL_V4 >> 40) as u8
    }

    /// A key that is no flow (all zero, untagged): a free table slot's.
    pub(crate) const NONE: FlowKey = FlowKey {
        addrs: 0,
        tail: 0,
        wide: [0; 3],
    };

    /// This key as a table stores it: carrying `tag` (a byte of the
    /// table's hash, never 0 for a key in use) and `disp` (how far from
    /// its home slot it sits) in the bits of its tail no constructor uses,
    /// so that a lookup compares key, tag and place at once. `self` is a
    /// key as constructed (not placed). Placed keys are equal exactly when
    /// key, tag and displacement are.
    #[inline(always)]
    pub(crate) fn placed(self, tag: u8, disp: u8) -> FlowKey {
        FlowKey {
            tail: self.tail | (tag as u64) << TAG_SHIFT | (disp as u64) << DISP_SHIFT,
            ..self
        }
    }

    /// The key a table [`FlowKey::placed`], as constructed.
    #[inline(always)]
    pub(crate) fn unplaced(self) -> FlowKey {
        FlowKey {
            tail: self.tail & !(0xffff << TAG_SHIFT),
            ..self
        }
    }

    /// The displacement [`FlowKey::placed`] set.
    #[inline(always)]
    pub(crate) fn disp(&self) -> u8 {
        (self.tail >> DISP_SHIFT) as u8
    }

    /// The tag [`FlowKey::placed`] set (0: none, a key as constructed).
    #[inline(always)]
    pub(crate) fn tag(&self) -> u8 {
        (self.tail >> TAG_SHIFT) as u8
    }

    /// Client (source) address.
    #[inline(always)]
    pub fn client(&self) -> Addr {
        if self.is_v4() {
            let a = self.addrs.to_ne_bytes();
            return Addr::v4([a[0], a[1], a[2], a[3]]);
        }
        addr_of(self.addrs, self.wide[0])
    }

    /// Virtual IP (destination) address.
    #[inline(always)]
    pub fn vip(&self) -> Addr {
        if self.is_v4() {
            let a = self.addrs.to_ne_bytes();
            return Addr::v4([a[4], a[5], a[6], a[7]]);
        }
        addr_of(self.wide[1], self.wide[2])
    }

    /// Client (source) port; 0 for protocols without ports.
    #[inline(always)]
    pub fn cport(&self) -> u16 {
        self.tail as u16
    }

    /// Virtual (destination) port.
    #[inline(always)]
    pub fn vport(&self) -> u16 {
        (self.tail >> 16) as u16
    }

    /// IP protocol number ([`ip_proto`]).
    #[inline(always)]
    pub fn proto(&self) -> u8 {
        (self.tail >> 32) as u8
    }

    /// The key as words for hashing: the first two, and for an IPv6 flow
    /// the other three (an IPv4 flow has none: they are zero).
    #[inline(always)]
    pub fn words(&self) -> (u64, u64, Option<&[u64; 3]>) {
        (self.addrs, self.tail, (!self.is_v4()).then_some(&self.wide))
    }
}

/// `FlowKey::tail` below the family byte.
#[inline(always)]
fn ports_proto(proto: u8, cport: u16, vport: u16) -> u64 {
    cport as u64 | (vport as u64) << 16 | (proto as u64) << 32
}

/// An IPv6 address's 16 bytes as the two words a key keeps, and back.
#[inline(always)]
fn words_of(a: Addr) -> (u64, u64) {
    let w = u128::from_ne_bytes(a.0);
    (w as u64, (w >> 64) as u64)
}

/// See [`words_of`].
#[inline(always)]
fn addr_of(lo: u64, hi: u64) -> Addr {
    Addr((lo as u128 | (hi as u128) << 64).to_ne_bytes())
}

/// An IPv4 flow's key as its two words only, for a caller that keeps many
/// (the burst decision keeps one per frame of a burst): 16 bytes instead
/// of [`FlowKey`]'s 40, and a [`V4Flow::key`] made from it is known to be
/// IPv4 wherever it is used, so hashes and compares of it read no more.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct V4Flow {
    addrs: u64,
    /// `cport | vport << 16 | proto << 32`.
    low: u64,
}

impl V4Flow {
    /// An IPv4 flow from bytes 12..20 of its IPv4 header (source then
    /// destination address, as they are on the wire) and its ports.
    #[inline(always)]
    pub fn from_header(addrs: [u8; 8], proto: u8, cport: u16, vport: u16) -> Self {
        V4Flow {
            addrs: u64::from_ne_bytes(addrs),
            low: ports_proto(proto, cport, vport),
        }
    }

    /// The flow's key.
    #[inline(always)]
    pub fn key(self) -> FlowKey {
        FlowKey::v4_packed(self.addrs, self.low)
    }
}

/// Field by field, as a derived `PartialEq` would: two words for an IPv4
/// flow (whose other words are zero in every key), five for an IPv6 one.
/// The lookups compare a key on every packet.
impl PartialEq for FlowKey {
    #[inline(always)]
    fn eq(&self, o: &Self) -> bool {
        // word by word, not as arrays: an array compare wants both in
        // memory, and the burst decision's key lives in registers
        let (w, v) = (&self.wide, &o.wide);
        ((self.addrs == o.addrs) & (self.tail == o.tail))
            && (self.is_v4() || (w[0] ^ v[0]) | (w[1] ^ v[1]) | (w[2] ^ v[2]) == 0)
    }
}

/// Hashes every word: the ones [`PartialEq`] skips for an IPv4 flow are
/// zero in every IPv4 key.
impl core::hash::Hash for FlowKey {
    fn hash<H: core::hash::Hasher>(&self, h: &mut H) {
        self.addrs.hash(h);
        self.tail.hash(h);
        self.wide.hash(h);
    }
}

impl fmt::Debug for FlowKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlowKey")
            .field("client", &self.client())
            .field("vip", &self.vip())
            .field("cport", &self.cport())
            .field("vport", &self.vport())
            .field("proto", &self.proto())
            .field("family", &self.family())
            .finish()
    }
}

/// TCP flags of a packet, as the input-only state machine needs them.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    /// FIN.
    pub const FIN: u8 = 0x01;
    /// SYN.
    pub const SYN: u8 = 0x02;
    /// RST.
    pub const RST: u8 = 0x04;
    /// ACK.
    pub const ACK: u8 = 0x10;

    /// Whether every bit of `mask` is set.
    pub fn has(self, mask: u8) -> bool {
        self.0 & mask == mask
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key's fields, as the constructor takes them.
    type Parts = (Family, u8, Addr, u16, Addr, u16);

    fn build(p: Parts) -> FlowKey {
        FlowKey::new(p.0, p.1, p.2, p.3, p.4, p.5)
    }

    fn parts_of(k: &FlowKey) -> Parts {
        (
            k.family(),
            k.proto(),
            k.client(),
            k.cport(),
            k.vip(),
            k.vport(),
        )
    }

    /// Every one-bit change of a field of `base`, and a swap of the ports.
    fn variants(base: Parts) -> Vec<Parts> {
        let bytes = if base.0 == Family::V4 { 4 } else { 16 };
        let mut out = Vec::new();
        for i in 0..bytes {
            for bit in [0x01, 0x80] {
                let mut p = base;
                p.2 .0[i] ^= bit;
                out.push(p);
                let mut p = base;
                p.4 .0[i] ^= bit;
                out.push(p);
            }
        }
        for bit in [1u16, 0x0100, 0x8000] {
            let mut p = base;
            p.3 ^= bit;
            out.push(p);
            let mut p = base;
            p.5 ^= bit;
            out.push(p);
        }
        let mut p = base;
        p.1 = ip_proto::UDP;
        out.push(p);
        let mut p = base;
        std::mem::swap(&mut p.3, &mut p.5);
        out.push(p);
        out
    }

    #[test]
    fn flow_keys_are_equal_exactly_when_every_field_is() {
        let v4: Parts = (
            Family::V4,
            ip_proto::TCP,
            Addr::v4([10, 1, 2, 3]),
            40000,
            Addr::v4([10, 0, 0, 100]),
            80,
        );
        let v6: Parts = (
            Family::V6,
            ip_proto::TCP,
            Addr::v6([0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7]),
            40000,
            Addr::v6([0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x64]),
            80,
        );
        for base in [v4, v6] {
            let k = build(base);
            assert_eq!(k, k);
            assert_eq!(parts_of(&k), base, "the fields come back");
            for p in variants(base) {
                assert_eq!(parts_of(&build(p)), p);
                assert_ne!(build(p), k, "{p:?}");
            }
        }
        // the same addresses bytes in the other family are another flow
        let mut as_v6 = v4;
        as_v6.0 = Family::V6;
        assert_ne!(build(as_v6), build(v4));
        assert_eq!(parts_of(&build(as_v6)), as_v6);
    }

    #[test]
    fn an_ipv4_key_is_the_header_bytes_as_they_are() {
        let header = [192, 0, 2, 7, 198, 51, 100, 1];
        let k = V4Flow::from_header(header, ip_proto::UDP, 5353, 53).key();
        assert_eq!(
            k,
            FlowKey::v4(ip_proto::UDP, [192, 0, 2, 7], 5353, [198, 51, 100, 1], 53)
        );
        assert_eq!(k.client(), Addr::v4([192, 0, 2, 7]));
        assert_eq!(k.vip(), Addr::v4([198, 51, 100, 1]));
        assert_eq!((k.cport(), k.vport(), k.family()), (5353, 53, Family::V4));
        assert!(k.words().2.is_none(), "an IPv4 key is two words");
        assert_eq!(k.words().0, u64::from_ne_bytes(header), "addresses word");
    }

    #[test]
    fn placed_keys_are_equal_when_key_tag_and_place_are() {
        let k = FlowKey::v4(ip_proto::TCP, [10, 1, 2, 3], 40000, [10, 0, 0, 100], 80);
        let v6 = FlowKey::new(
            Family::V6,
            ip_proto::TCP,
            Addr::v6([7; 16]),
            1,
            Addr::v6([9; 16]),
            2,
        );
        for k in [k, v6] {
            assert_eq!((k.tag(), k.disp()), (0, 0));
            let t = k.placed(0xa5, 3);
            assert_eq!((t.tag(), t.disp()), (0xa5, 3));
            assert_eq!(t, k.placed(0xa5, 3));
            assert_ne!(t, k);
            assert_ne!(t, k.placed(0x5a, 3));
            assert_ne!(t, k.placed(0xa5, 4));
            assert_eq!(t.unplaced(), k, "the key comes back");
            assert_eq!(parts_of(&t), parts_of(&k), "the place changes no field");
        }
    }
}
