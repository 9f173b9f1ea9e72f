//! IPv4 headers (RFC 791): version, header length with options, total
//! length, fragmentation fields, TTL, protocol, header checksum, addresses.
//!
//! Two length checks: [`Packet::check_len`] for a whole packet (the buffer
//! holds `total_len` bytes; Ethernet padding after it is allowed and ignored
//! by [`Packet::payload`]) and [`Packet::check_header_len`] for the truncated
//! copy embedded in an ICMP error (only the header itself must be present).
#![forbid(unsafe_code)]

use super::{be16, checksum, put16, Error, IpProtocol, Result};

mod field {
    use crate::wire::Field;
    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const LENGTH: Field = 2..4;
    pub const IDENT: Field = 4..6;
    pub const FLG_OFF: Field = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Field = 10..12;
    pub const SRC_ADDR: Field = 12..16;
    pub const DST_ADDR: Field = 16..20;
}

/// Length of a header without options.
pub const HEADER_LEN: usize = field::DST_ADDR.end;

/// The don't-fragment bit of the flags and fragment-offset field.
pub const FLAG_DF: u16 = 0x4000;
/// The more-fragments bit of that field.
pub const FLAG_MF: u16 = 0x2000;
/// The fragment offset's bits in that field (13 bits, 8-byte units).
pub const OFFSET_MASK: u16 = 0x1fff;

/// Whether an option-less header's checksum verifies: the same test as
/// [`Packet::verify_checksum`] for a header of [`HEADER_LEN`] bytes, as
/// five native-order 32-bit words (the one's-complement sum does not
/// depend on byte order, and `0xffff` reads the same either way). For the
/// fast path, where nearly every header has no options.
#[inline(always)]
pub fn header_checksum_ok(h: &[u8; HEADER_LEN]) -> bool {
    let w = |i: usize| u64::from(u32::from_ne_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]));
    let s = w(0) + w(4) + w(8) + w(12) + w(16);
    // 64 → 32 bits: the sum of five words is below 2^35, so the high
    // word is at most 4. Where adding it wraps, the end-around carry is
    // left out: the true fold would be 1..=4 and this one is 0..=3, and
    // neither is 0xffff, so the answer is the same.
    let t = (s as u32).wrapping_add((s >> 32) as u32);
    // 32 → 16: the high half of t + t rotated by 16 is both halves' sum
    // with the low halves' carry already added (RFC 1071's end-around).
    (t.wrapping_add(t.rotate_right(16)) >> 16) == 0xffff
}

/// A view of an IPv4 packet.
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

    /// `Ok` when the version is 4, the header length is at least 20, and the
    /// buffer holds the header and the `total_len` the header claims (which
    /// must cover the header).
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        self.check_header_len()?;
        let len = self.buffer.as_ref().len();
        let total = self.total_len() as usize;
        if total < self.header_len() {
            Err(Error::Malformed)
        } else if len < total {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// `Ok` when the version is 4, the header length is at least 20 and the
    /// buffer holds the header (options included); `total_len` is not
    /// checked. Once `Ok`, all header accessors are safe; use
    /// [`Packet::payload_truncated`] for what follows.
    #[inline]
    pub fn check_header_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if b[field::VER_IHL] >> 4 != 4 {
            return Err(Error::Malformed);
        }
        let hl = self.header_len();
        if hl < HEADER_LEN {
            Err(Error::Malformed)
        } else if b.len() < hl {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// IP version (4 for a valid packet).
    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// Header length in bytes (IHL × 4).
    #[inline]
    pub fn header_len(&self) -> usize {
        ((self.buffer.as_ref()[field::VER_IHL] & 0x0f) as usize) * 4
    }

    /// DSCP and ECN byte.
    #[inline]
    pub fn dscp_ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN]
    }

    /// Total length (header + payload).
    #[inline]
    pub fn total_len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::LENGTH.start)
    }

    /// Identification.
    #[inline]
    pub fn ident(&self) -> u16 {
        be16(self.buffer.as_ref(), field::IDENT.start)
    }

    /// Don't-fragment flag.
    #[inline]
    pub fn dont_frag(&self) -> bool {
        be16(self.buffer.as_ref(), field::FLG_OFF.start) & FLAG_DF != 0
    }

    /// More-fragments flag.
    #[inline]
    pub fn more_frags(&self) -> bool {
        be16(self.buffer.as_ref(), field::FLG_OFF.start) & FLAG_MF != 0
    }

    /// Fragment offset in bytes.
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        (be16(self.buffer.as_ref(), field::FLG_OFF.start) & OFFSET_MASK) << 3
    }

    /// Whether the packet is a fragment (first or later).
    #[inline]
    pub fn is_fragment(&self) -> bool {
        be16(self.buffer.as_ref(), field::FLG_OFF.start) & (FLAG_MF | OFFSET_MASK) != 0
    }

    /// Time to live.
    #[inline]
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    /// Protocol of the payload.
    #[inline]
    pub fn protocol(&self) -> IpProtocol {
        IpProtocol::from(self.buffer.as_ref()[field::PROTOCOL])
    }

    /// Protocol number of the payload.
    #[inline]
    pub fn protocol_number(&self) -> u8 {
        self.buffer.as_ref()[field::PROTOCOL]
    }

    /// Header checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    /// Source address.
    #[inline]
    pub fn src_addr(&self) -> [u8; 4] {
        let b = &self.buffer.as_ref()[field::SRC_ADDR];
        [b[0], b[1], b[2], b[3]]
    }

    /// Destination address.
    #[inline]
    pub fn dst_addr(&self) -> [u8; 4] {
        let b = &self.buffer.as_ref()[field::DST_ADDR];
        [b[0], b[1], b[2], b[3]]
    }

    /// Whether the header checksum (options included) is correct.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        let hl = self.header_len();
        checksum::fold(checksum::sum(&self.buffer.as_ref()[..hl])) == 0xffff
    }

    /// The payload, up to `total_len` (requires `check_len`).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        &b[self.header_len()..self.total_len() as usize]
    }

    /// What follows the header in the buffer, whatever `total_len` says
    /// (requires `check_header_len`; for embedded packets in ICMP errors).
    #[inline]
    pub fn payload_truncated(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets version 4 and the header length in bytes (a multiple of 4).
    #[inline]
    pub fn set_version_and_header_len(&mut self, header_len: usize) {
        self.buffer.as_mut()[field::VER_IHL] = 0x40 | ((header_len / 4) as u8 & 0x0f);
    }

    /// Sets the total length.
    #[inline]
    pub fn set_total_len(&mut self, len: u16) {
        put16(self.buffer.as_mut(), field::LENGTH.start, len);
    }

    /// Sets the identification.
    #[inline]
    pub fn set_ident(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::IDENT.start, v);
    }

    /// Sets flags and fragment offset (bytes, a multiple of 8).
    #[inline]
    pub fn set_frag(&mut self, dont_frag: bool, more_frags: bool, offset: u16) {
        let v = (if dont_frag { FLAG_DF } else { 0 })
            | (if more_frags { FLAG_MF } else { 0 })
            | ((offset >> 3) & OFFSET_MASK);
        put16(self.buffer.as_mut(), field::FLG_OFF.start, v);
    }

    /// Sets the time to live.
    #[inline]
    pub fn set_ttl(&mut self, ttl: u8) {
        self.buffer.as_mut()[field::TTL] = ttl;
    }

    /// Sets the protocol.
    #[inline]
    pub fn set_protocol(&mut self, p: IpProtocol) {
        self.buffer.as_mut()[field::PROTOCOL] = p.into();
    }

    /// Sets the source address.
    #[inline]
    pub fn set_src_addr(&mut self, a: [u8; 4]) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&a);
    }

    /// Sets the destination address.
    #[inline]
    pub fn set_dst_addr(&mut self, a: [u8; 4]) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&a);
    }

    /// Computes and stores the header checksum.
    #[inline]
    pub fn fill_checksum(&mut self) {
        let hl = self.header_len();
        let b = self.buffer.as_mut();
        put16(b, field::CHECKSUM.start, 0);
        let c = checksum::checksum(&b[..hl]);
        put16(b, field::CHECKSUM.start, c);
    }

    /// The payload up to `total_len`, mutable (requires `check_len`).
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (hl, tl) = (self.header_len(), self.total_len() as usize);
        &mut self.buffer.as_mut()[hl..tl]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 10.0.0.1 -> 10.0.0.100, UDP, 8 bytes payload, DF, TTL 64.
    static PKT: [u8; 28] = [
        0x45, 0x00, 0x00, 0x1c, 0x12, 0x34, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 10, 0, 0, 1, 10, 0,
        0, 100, 0x30, 0x39, 0x00, 0x50, 0x00, 0x08, 0x00, 0x00,
    ];

    fn with_checksum(mut b: Vec<u8>) -> Vec<u8> {
        Packet::new_unchecked(&mut b[..]).fill_checksum();
        b
    }

    #[test]
    fn twenty_byte_checksum_agrees_with_the_general_one() {
        let good = with_checksum(PKT.to_vec());
        let mut headers = vec![good[..HEADER_LEN].to_vec()];
        // every single-bit error (but in the version/length byte, which
        // the fast path checks for 0x45 first), a swapped byte pair, and
        // sums that fold through every carry (all-ones words, all zeros)
        for bit in 8..HEADER_LEN * 8 {
            let mut h = headers[0].clone();
            h[bit / 8] ^= 1 << (bit % 8);
            headers.push(h);
        }
        let mut swapped = headers[0].clone();
        swapped.swap(12, 16);
        headers.push(swapped);
        let mut ones = vec![0xff; HEADER_LEN];
        ones[0] = 0x45;
        headers.push(ones.clone());
        headers.push(with_checksum(ones)[..HEADER_LEN].to_vec());
        let mut zeros = vec![0; HEADER_LEN];
        zeros[0] = 0x45;
        headers.push(zeros);
        let mut n_ok = 0;
        for h in &headers {
            let fixed: &[u8; HEADER_LEN] = h[..].try_into().unwrap();
            let general = Packet::new_unchecked(&h[..]).verify_checksum();
            assert_eq!(header_checksum_ok(fixed), general, "{h:02x?}");
            n_ok += usize::from(general);
        }
        // the good header, the swapped addresses and the fixed all-ones one
        assert_eq!(n_ok, 3);
    }

    proptest::proptest! {
        #[test]
        fn twenty_byte_checksum_agrees_with_etherparse_and_the_general_one(
            mut h in proptest::array::uniform20(proptest::num::u8::ANY),
            fix in proptest::bool::ANY,
        ) {
            h[0] = 0x45;
            if fix {
                // etherparse keeps no field for the reserved flag bit, and
                // takes a total length of at least the header's 20 bytes
                h[6] &= 0x7f;
                h[2] = h[2].max(1);
                // the checksum etherparse computes for these fields
                let v = etherparse::Ipv4HeaderSlice::from_slice(&h);
                proptest::prop_assert!(v.is_ok(), "{:?}", v);
                let ck = v.map(|v| v.to_header().calc_header_checksum()).unwrap_or_default();
                h[10..12].copy_from_slice(&ck.to_be_bytes());
                proptest::prop_assert!(header_checksum_ok(&h));
            }
            // and the general check (RFC 1071's sum, any header length)
            let general = Packet::new_unchecked(&h[..]).verify_checksum();
            proptest::prop_assert_eq!(header_checksum_ok(&h), general);
        }
    }

    #[test]
    fn parse() {
        let b = with_checksum(PKT.to_vec());
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.total_len(), 28);
        assert_eq!(p.ident(), 0x1234);
        assert!(p.dont_frag());
        assert!(!p.more_frags());
        assert!(!p.is_fragment());
        assert_eq!(p.frag_offset(), 0);
        assert_eq!(p.ttl(), 64);
        assert_eq!(p.protocol(), IpProtocol::Udp);
        assert_eq!(p.src_addr(), [10, 0, 0, 1]);
        assert_eq!(p.dst_addr(), [10, 0, 0, 100]);
        assert!(p.verify_checksum());
        assert_eq!(p.payload().len(), 8);
        assert_eq!(p.dscp_ecn(), 0);
    }

    #[test]
    fn bad_checksum() {
        let mut b = with_checksum(PKT.to_vec());
        b[8] = 63;
        assert!(!Packet::new_checked(&b[..]).unwrap().verify_checksum());
    }

    #[test]
    fn truncated_at_every_length() {
        for n in 0..PKT.len() {
            let r = Packet::new_checked(&PKT[..n]);
            assert_eq!(r.unwrap_err(), Error::Truncated, "len {n}");
        }
        for n in 0..HEADER_LEN {
            let p = Packet::new_unchecked(&PKT[..n]);
            assert_eq!(p.check_header_len().unwrap_err(), Error::Truncated);
        }
        assert!(Packet::new_unchecked(&PKT[..20]).check_header_len().is_ok());
    }

    #[test]
    fn padding_is_ignored() {
        let mut b = with_checksum(PKT.to_vec());
        b.extend_from_slice(&[0xee; 18]);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.payload().len(), 8);
        assert_eq!(p.payload_truncated().len(), 26);
    }

    #[test]
    fn options_ihl_6() {
        // IHL 6: one 4-byte option (NOP NOP NOP EOL), then 4 bytes of payload.
        let mut b = vec![
            0x46, 0, 0, 28, 0, 1, 0x20, 0x01, 1, 6, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 1, 1, 1, 0, 0xde,
            0xad, 0xbe, 0xef,
        ];
        Packet::new_unchecked(&mut b[..]).fill_checksum();
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.header_len(), 24);
        assert!(p.verify_checksum());
        assert_eq!(p.payload(), &[0xde, 0xad, 0xbe, 0xef]);
        assert!(p.more_frags());
        assert_eq!(p.frag_offset(), 8);
        assert!(p.is_fragment());
        for n in 0..28 {
            assert!(Packet::new_checked(&b[..n]).is_err());
        }
    }

    #[test]
    fn malformed() {
        let mut b = PKT;
        b[0] = 0x65;
        assert_eq!(Packet::new_checked(&b[..]).unwrap_err(), Error::Malformed);
        b[0] = 0x44;
        assert_eq!(Packet::new_checked(&b[..]).unwrap_err(), Error::Malformed);
        b[0] = 0x45;
        b[3] = 19; // total length < header length
        assert_eq!(Packet::new_checked(&b[..]).unwrap_err(), Error::Malformed);
    }

    #[test]
    fn setters() {
        let mut b = [0u8; 20];
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.set_version_and_header_len(20);
        p.set_total_len(20);
        p.set_ident(7);
        p.set_frag(false, true, 16);
        p.set_ttl(1);
        p.set_protocol(IpProtocol::Tcp);
        p.set_src_addr([1, 2, 3, 4]);
        p.set_dst_addr([5, 6, 7, 8]);
        p.fill_checksum();
        assert!(p.verify_checksum());
        assert_eq!(p.frag_offset(), 16);
        assert!(p.more_frags());
        assert!(p.payload_mut().is_empty());
    }
}
