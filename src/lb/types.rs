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
    pub fn masked(self, prefix_len: u8) -> Self {
        let mut out = [0u8; 16];
        let full = (prefix_len as usize / 8).min(16);
        out[..full].copy_from_slice(&self.0[..full]);
        let rem = prefix_len % 8;
        if rem != 0 && full < 16 {
            out[full] = self.0[full] & (0xffu8 << (8 - rem));
        }
        Addr(out)
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

/// The 5-tuple of a client→VIP flow, as the director sees it.
#[derive(Clone, Copy, Eq, Debug)]
pub struct FlowKey {
    /// Client (source) address.
    pub client: Addr,
    /// Virtual IP (destination) address.
    pub vip: Addr,
    /// Client (source) port; 0 for protocols without ports.
    pub cport: u16,
    /// Virtual (destination) port.
    pub vport: u16,
    /// IP protocol number ([`ip_proto`]).
    pub proto: u8,
    /// Address family.
    pub family: Family,
}

impl FlowKey {
    /// The ports, protocol and family in one word: with the two addresses,
    /// everything the key compares.
    #[inline(always)]
    fn tail(&self) -> u64 {
        self.cport as u64
            | (self.vport as u64) << 16
            | (self.proto as u64) << 32
            | (self.family as u64) << 40
    }
}

/// Field by field, as a derived `PartialEq` would, but without a branch
/// per field: the lookups compare a key on every packet; the addresses
/// compare as two 16-byte vectors, the rest as one word.
impl PartialEq for FlowKey {
    #[inline(always)]
    fn eq(&self, o: &Self) -> bool {
        (self.client.0 == o.client.0) & (self.vip.0 == o.vip.0) & (self.tail() == o.tail())
    }
}

/// Hashes exactly what [`PartialEq`] compares.
impl core::hash::Hash for FlowKey {
    fn hash<H: core::hash::Hasher>(&self, h: &mut H) {
        self.client.hash(h);
        self.vip.hash(h);
        self.tail().hash(h);
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

    #[test]
    fn flow_keys_are_equal_exactly_when_every_field_is() {
        let base = FlowKey {
            client: Addr::v4([10, 1, 2, 3]),
            vip: Addr::v4([10, 0, 0, 100]),
            cport: 40000,
            vport: 80,
            proto: ip_proto::TCP,
            family: Family::V4,
        };
        assert_eq!(base, base);
        let mut others = Vec::new();
        for i in 0..16 {
            let mut k = base;
            k.client.0[i] ^= 0x80;
            others.push(k);
            let mut k = base;
            k.vip.0[i] ^= 1;
            others.push(k);
        }
        for change in [
            |k: &mut FlowKey| k.cport ^= 0x8000,
            |k: &mut FlowKey| k.cport ^= 1,
            |k: &mut FlowKey| k.vport ^= 0x0100,
            |k: &mut FlowKey| k.proto = ip_proto::UDP,
            |k: &mut FlowKey| k.family = Family::V6,
            |k: &mut FlowKey| std::mem::swap(&mut k.cport, &mut k.vport),
        ] {
            let mut k = base;
            change(&mut k);
            others.push(k);
        }
        for k in &others {
            assert_ne!(*k, base, "{k:?}");
        }
    }

    #[test]
    fn masks() {
        let a = Addr::v4([10, 1, 2, 3]);
        assert_eq!(a.masked(24), Addr::v4([10, 1, 2, 0]));
        assert_eq!(a.masked(0), Addr::default());
        assert_eq!(a.masked(32), a);
        assert_eq!(a.masked(20), Addr::v4([10, 1, 0, 0]));
        let b = Addr::v6([0xff; 16]);
        assert_eq!(b.masked(128), b);
        assert_eq!(b.masked(64).0[7], 0xff);
        assert_eq!(b.masked(64).0[8], 0);
        assert_eq!(b.masked(65).0[8], 0x80);
    }
}
