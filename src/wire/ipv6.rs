//! IPv6 headers (RFC 8200) and the walk over extension headers (hop-by-hop,
//! routing, fragment, destination options, AH) to the transport header.
//!
//! The walk stops at the first header that is not one of those (the
//! transport protocol, ESP or no-next-header) and at a fragment header whose
//! offset is not zero (what follows is fragment data, not headers). At most
//! [`MAX_EXT_HEADERS`] extension headers are walked; more is malformed.
#![forbid(unsafe_code)]

use super::{be16, put16, Error, IpProtocol, Result};

mod field {
    use crate::wire::Field;
    pub const VER_TC_FLOW: Field = 0..4;
    pub const PAYLOAD_LEN: Field = 4..6;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC_ADDR: Field = 8..24;
    pub const DST_ADDR: Field = 24..40;
}

/// Length of the fixed header.
pub const HEADER_LEN: usize = field::DST_ADDR.end;

/// How many extension headers the walk accepts before calling the packet
/// malformed.
pub const MAX_EXT_HEADERS: usize = 8;

/// Length of a fragment extension header.
pub const FRAG_HEADER_LEN: usize = 8;

/// What the fragment header of a packet says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FragInfo {
    /// Offset of this fragment's data in bytes.
    pub offset: u16,
    /// More fragments follow.
    pub more: bool,
    /// Identification.
    pub ident: u32,
}

/// Where the transport header starts, as the extension-header walk found it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transport {
    /// Protocol number of the transport header.
    pub protocol: u8,
    /// Offset of the transport header from the start of the IPv6 header.
    pub offset: usize,
    /// The fragment header, if the packet had one.
    pub frag: Option<FragInfo>,
}

/// Walks extension headers in `bytes` (a whole IPv6 packet, or a truncated
/// one) starting at offset `start` with next-header value `next`.
#[inline]
pub fn walk_ext_headers(bytes: &[u8], mut next: u8, start: usize) -> Result<Transport> {
    let mut off = start;
    let mut frag = None;
    for _ in 0..=MAX_EXT_HEADERS {
        let len = match next {
            0 | 43 | 60 => {
                let l = bytes.get(off + 1).ok_or(Error::Truncated)?;
                (*l as usize + 1) * 8
            }
            51 => {
                let l = bytes.get(off + 1).ok_or(Error::Truncated)?;
                (*l as usize + 2) * 4
            }
            44 => {
                let h = bytes
                    .get(off..off + FRAG_HEADER_LEN)
                    .ok_or(Error::Truncated)?;
                let offm = u16::from_be_bytes([h[2], h[3]]);
                let info = FragInfo {
                    offset: offm & 0xfff8,
                    more: offm & 1 != 0,
                    ident: u32::from_be_bytes([h[4], h[5], h[6], h[7]]),
                };
                if frag.is_some() {
                    return Err(Error::Malformed);
                }
                frag = Some(info);
                if info.offset != 0 {
                    return Ok(Transport {
                        protocol: h[0],
                        offset: off + FRAG_HEADER_LEN,
                        frag,
                    });
                }
                FRAG_HEADER_LEN
            }
            _ => {
                return Ok(Transport {
                    protocol: next,
                    offset: off,
                    frag,
                })
            }
        };
        if bytes.len() < off + len {
            return Err(Error::Truncated);
        }
        next = bytes[off];
        off += len;
    }
    Err(Error::Malformed)
}

/// A view of an IPv6 packet.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// A view without checking anything.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    /// A view of a whole packet (see [`Packet::check_len`]).
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// `Ok` when the version is 6 and the buffer holds the fixed header and
    /// the payload length it claims (padding after it is allowed).
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        self.check_header_len()?;
        if self.buffer.as_ref().len() < HEADER_LEN + self.payload_len() as usize {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// `Ok` when the version is 6 and the buffer holds the fixed header
    /// (for packets embedded in ICMPv6 errors, which are truncated).
    #[inline]
    pub fn check_header_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            Err(Error::Truncated)
        } else if b[0] >> 4 != 6 {
            Err(Error::Malformed)
        } else {
            Ok(())
        }
    }

    /// IP version.
    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[0] >> 4
    }

    /// Traffic class.
    #[inline]
    pub fn traffic_class(&self) -> u8 {
        (be16(self.buffer.as_ref(), 0) >> 4) as u8
    }

    /// Flow label.
    #[inline]
    pub fn flow_label(&self) -> u32 {
        let b = &self.buffer.as_ref()[field::VER_TC_FLOW];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]]) & 0x000f_ffff
    }

    /// Payload length (extension headers included).
    #[inline]
    pub fn payload_len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::PAYLOAD_LEN.start)
    }

    /// Next header of the fixed header.
    #[inline]
    pub fn next_header(&self) -> IpProtocol {
        IpProtocol::from(self.buffer.as_ref()[field::NEXT_HEADER])
    }

    /// Hop limit.
    #[inline]
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    /// Source address.
    #[inline]
    pub fn src_addr(&self) -> [u8; 16] {
        let mut a = [0u8; 16];
        a.copy_from_slice(&self.buffer.as_ref()[field::SRC_ADDR]);
        a
    }

    /// Destination address.
    #[inline]
    pub fn dst_addr(&self) -> [u8; 16] {
        let mut a = [0u8; 16];
        a.copy_from_slice(&self.buffer.as_ref()[field::DST_ADDR]);
        a
    }

    /// The packet up to the end of its payload (requires `check_len`).
    #[inline]
    pub fn packet(&self) -> &[u8] {
        &self.buffer.as_ref()[..HEADER_LEN + self.payload_len() as usize]
    }

    /// Walks the extension headers of a whole packet (requires `check_len`).
    #[inline]
    pub fn transport(&self) -> Result<Transport> {
        walk_ext_headers(
            self.packet(),
            self.buffer.as_ref()[field::NEXT_HEADER],
            HEADER_LEN,
        )
    }

    /// Walks the extension headers of a truncated packet (requires
    /// `check_header_len`), bounded by the buffer.
    #[inline]
    pub fn transport_truncated(&self) -> Result<Transport> {
        let b = self.buffer.as_ref();
        walk_ext_headers(b, b[field::NEXT_HEADER], HEADER_LEN)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets version 6, traffic class 0 and flow label 0.
    #[inline]
    pub fn set_version(&mut self) {
        self.buffer.as_mut()[field::VER_TC_FLOW].copy_from_slice(&[0x60, 0, 0, 0]);
    }

    /// Sets the payload length.
    #[inline]
    pub fn set_payload_len(&mut self, len: u16) {
        put16(self.buffer.as_mut(), field::PAYLOAD_LEN.start, len);
    }

    /// Sets the next header.
    #[inline]
    pub fn set_next_header(&mut self, p: IpProtocol) {
        self.buffer.as_mut()[field::NEXT_HEADER] = p.into();
    }

    /// Sets the hop limit.
    #[inline]
    pub fn set_hop_limit(&mut self, h: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = h;
    }

    /// Sets the source address.
    #[inline]
    pub fn set_src_addr(&mut self, a: [u8; 16]) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&a);
    }

    /// Sets the destination address.
    #[inline]
    pub fn set_dst_addr(&mut self, a: [u8; 16]) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&a);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(next: u8, payload: &[u8]) -> Vec<u8> {
        let mut b = vec![0x60, 0x00, 0x00, 0x01];
        b.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        b.push(next);
        b.push(64);
        b.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        b.extend_from_slice(&[0; 11]);
        b.push(1);
        b.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        b.extend_from_slice(&[0; 11]);
        b.push(0x64);
        b.extend_from_slice(payload);
        b
    }

    #[test]
    fn parse_plain() {
        let b = header(6, &[0u8; 20]);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.version(), 6);
        assert_eq!(p.flow_label(), 1);
        assert_eq!(p.traffic_class(), 0);
        assert_eq!(p.payload_len(), 20);
        assert_eq!(p.next_header(), IpProtocol::Tcp);
        assert_eq!(p.hop_limit(), 64);
        assert_eq!(p.src_addr()[15], 1);
        assert_eq!(p.dst_addr()[15], 0x64);
        let t = p.transport().unwrap();
        assert_eq!((t.protocol, t.offset, t.frag), (6, 40, None));
    }

    #[test]
    fn truncated_at_every_length() {
        let b = header(17, &[0u8; 8]);
        for n in 0..b.len() {
            assert_eq!(Packet::new_checked(&b[..n]).unwrap_err(), Error::Truncated);
        }
        let mut v = b.clone();
        v[0] = 0x40;
        assert_eq!(Packet::new_checked(&v[..]).unwrap_err(), Error::Malformed);
    }

    #[test]
    fn extension_headers() {
        // hop-by-hop (8 bytes) → dest opts (16 bytes) → fragment (first, MF) → UDP
        let mut pl = vec![60, 0, 1, 4, 0, 0, 0, 0];
        pl.extend_from_slice(&[44, 1, 1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        pl.extend_from_slice(&[17, 0, 0x00, 0x01, 0xde, 0xad, 0xbe, 0xef]);
        pl.extend_from_slice(&[0x30, 0x39, 0x00, 0x35, 0x00, 0x08, 0x00, 0x00]);
        let b = header(0, &pl);
        let p = Packet::new_checked(&b[..]).unwrap();
        let t = p.transport().unwrap();
        assert_eq!(t.protocol, 17);
        assert_eq!(t.offset, 40 + 8 + 16 + 8);
        assert_eq!(
            t.frag,
            Some(FragInfo {
                offset: 0,
                more: true,
                ident: 0xdeadbeef
            })
        );
        // Truncating the packet inside the headers is reported, never a panic.
        for n in 40..72 {
            let r = Packet::new_unchecked(&b[..n]).transport_truncated();
            assert_eq!(r.unwrap_err(), Error::Truncated, "len {n}");
        }
    }

    #[test]
    fn later_fragment_stops_the_walk() {
        let pl = [6, 0, 0x05, 0xa8, 0, 0, 0, 9, 1, 2, 3, 4];
        let b = header(44, &pl);
        let t = Packet::new_checked(&b[..]).unwrap().transport().unwrap();
        assert_eq!(t.protocol, 6);
        assert_eq!(t.offset, 48);
        assert_eq!(t.frag.unwrap().offset, 1448);
        assert!(!t.frag.unwrap().more);
    }

    #[test]
    fn ah_and_too_many_headers() {
        // AH with payload length 1 → (1+2)*4 = 12 bytes.
        let mut pl = vec![58, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        pl.extend_from_slice(&[128, 0, 0, 0]);
        let b = header(51, &pl);
        let t = Packet::new_checked(&b[..]).unwrap().transport().unwrap();
        assert_eq!((t.protocol, t.offset), (58, 52));
        let mut pl = Vec::new();
        for _ in 0..12 {
            pl.extend_from_slice(&[60, 0, 0, 0, 0, 0, 0, 0]);
        }
        let b = header(60, &pl);
        let r = Packet::new_checked(&b[..]).unwrap().transport();
        assert_eq!(r.unwrap_err(), Error::Malformed);
        // Two fragment headers are malformed.
        let b = header(44, &[44, 0, 0, 1, 0, 0, 0, 0, 6, 0, 0, 1, 0, 0, 0, 0]);
        let r = Packet::new_checked(&b[..]).unwrap().transport();
        assert_eq!(r.unwrap_err(), Error::Malformed);
    }

    #[test]
    fn setters() {
        let mut b = [0u8; 40];
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.set_version();
        p.set_payload_len(0);
        p.set_next_header(IpProtocol::Icmpv6);
        p.set_hop_limit(255);
        p.set_src_addr([1; 16]);
        p.set_dst_addr([2; 16]);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.next_header(), IpProtocol::Icmpv6);
        assert_eq!(p.hop_limit(), 255);
        assert_eq!(p.src_addr(), [1; 16]);
        assert_eq!(p.dst_addr(), [2; 16]);
    }
}
