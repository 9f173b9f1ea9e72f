//! ICMPv6 (RFC 4443) and the neighbour-discovery messages pmdlb handles
//! (RFC 4861): echo request/reply, the errors that embed the offending
//! packet (destination unreachable, packet too big, time exceeded, parameter
//! problem), neighbour solicitation and advertisement with their link-layer
//! address options.
#![forbid(unsafe_code)]

use super::ethernet::MacAddr;
use super::{be16, checksum, put16, Error, Result};

mod field {
    use crate::wire::Field;
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Field = 2..4;
    pub const ECHO_IDENT: Field = 4..6;
    pub const ECHO_SEQ: Field = 6..8;
    pub const MTU: Field = 4..8;
    pub const ND_FLAGS: usize = 4;
    pub const ND_TARGET: Field = 8..24;
    pub const ND_OPTIONS: usize = 24;
    pub const PAYLOAD: usize = 8;
}

/// Length of the ICMPv6 header (type, code, checksum, 4 bytes of body).
pub const HEADER_LEN: usize = field::PAYLOAD;

/// Length of a neighbour solicitation/advertisement without options.
pub const ND_LEN: usize = field::ND_OPTIONS;

/// Length of a link-layer address option for Ethernet.
pub const LLADDR_OPT_LEN: usize = 8;

/// NA flag: sender is a router.
pub const NA_FLAG_ROUTER: u8 = 0x80;
/// NA flag: sent in response to a solicitation.
pub const NA_FLAG_SOLICITED: u8 = 0x40;
/// NA flag: override an existing cache entry.
pub const NA_FLAG_OVERRIDE: u8 = 0x20;

/// ND option type: source link-layer address.
pub const OPT_SOURCE_LLADDR: u8 = 1;
/// ND option type: target link-layer address.
pub const OPT_TARGET_LLADDR: u8 = 2;

/// ICMPv6 message types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Message {
    /// Destination unreachable (1).
    DstUnreachable,
    /// Packet too big (2).
    PacketTooBig,
    /// Time exceeded (3).
    TimeExceeded,
    /// Parameter problem (4).
    ParamProblem,
    /// Echo request (128).
    EchoRequest,
    /// Echo reply (129).
    EchoReply,
    /// Router solicitation (133).
    RouterSolicit,
    /// Router advertisement (134).
    RouterAdvert,
    /// Neighbour solicitation (135).
    NeighborSolicit,
    /// Neighbour advertisement (136).
    NeighborAdvert,
    /// Redirect (137).
    Redirect,
    /// Any other type.
    Unknown(u8),
}

impl From<u8> for Message {
    #[inline]
    fn from(v: u8) -> Self {
        match v {
            1 => Message::DstUnreachable,
            2 => Message::PacketTooBig,
            3 => Message::TimeExceeded,
            4 => Message::ParamProblem,
            128 => Message::EchoRequest,
            129 => Message::EchoReply,
            133 => Message::RouterSolicit,
            134 => Message::RouterAdvert,
            135 => Message::NeighborSolicit,
            136 => Message::NeighborAdvert,
            137 => Message::Redirect,
            o => Message::Unknown(o),
        }
    }
}

impl From<Message> for u8 {
    #[inline]
    fn from(v: Message) -> u8 {
        match v {
            Message::DstUnreachable => 1,
            Message::PacketTooBig => 2,
            Message::TimeExceeded => 3,
            Message::ParamProblem => 4,
            Message::EchoRequest => 128,
            Message::EchoReply => 129,
            Message::RouterSolicit => 133,
            Message::RouterAdvert => 134,
            Message::NeighborSolicit => 135,
            Message::NeighborAdvert => 136,
            Message::Redirect => 137,
            Message::Unknown(o) => o,
        }
    }
}

impl Message {
    /// Whether this type is an error that embeds the offending packet.
    #[inline]
    pub fn is_error(self) -> bool {
        matches!(
            self,
            Message::DstUnreachable
                | Message::PacketTooBig
                | Message::TimeExceeded
                | Message::ParamProblem
        )
    }
}

/// A view of an ICMPv6 message (the payload after the IPv6 headers).
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// A view without checking the length.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    /// A view of a buffer holding at least the 8-byte header.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// `Ok` when the buffer holds the 8-byte header. Neighbour-discovery
    /// accessors additionally need [`Packet::check_nd_len`].
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// `Ok` when the buffer holds a whole NS/NA body (24 bytes) and its
    /// options are well formed (each at least 8 bytes, none past the end).
    #[inline]
    pub fn check_nd_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < ND_LEN {
            return Err(Error::Truncated);
        }
        let mut off = ND_LEN;
        while off < b.len() {
            let len = *b.get(off + 1).ok_or(Error::Truncated)? as usize * 8;
            if len == 0 {
                return Err(Error::Malformed);
            }
            if off + len > b.len() {
                return Err(Error::Truncated);
            }
            off += len;
        }
        Ok(())
    }

    /// Message type.
    #[inline]
    pub fn msg_type(&self) -> Message {
        Message::from(self.buffer.as_ref()[field::TYPE])
    }

    /// Code.
    #[inline]
    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    /// Checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    /// Echo identifier.
    #[inline]
    pub fn echo_ident(&self) -> u16 {
        be16(self.buffer.as_ref(), field::ECHO_IDENT.start)
    }

    /// Echo sequence number.
    #[inline]
    pub fn echo_seq(&self) -> u16 {
        be16(self.buffer.as_ref(), field::ECHO_SEQ.start)
    }

    /// MTU of a packet-too-big message.
    #[inline]
    pub fn mtu(&self) -> u32 {
        let b = &self.buffer.as_ref()[field::MTU];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    /// NA flags byte (requires `check_nd_len`).
    #[inline]
    pub fn nd_flags(&self) -> u8 {
        self.buffer.as_ref()[field::ND_FLAGS]
    }

    /// NS/NA target address (requires `check_nd_len`).
    #[inline]
    pub fn nd_target(&self) -> [u8; 16] {
        let mut a = [0u8; 16];
        a.copy_from_slice(&self.buffer.as_ref()[field::ND_TARGET]);
        a
    }

    /// The Ethernet address of the first link-layer option of type
    /// `opt_type` (requires `check_nd_len`).
    #[inline]
    pub fn nd_lladdr_option(&self, opt_type: u8) -> Option<MacAddr> {
        let b = self.buffer.as_ref();
        let mut off = ND_LEN;
        while let (Some(&t), Some(&l)) = (b.get(off), b.get(off + 1)) {
            let len = l as usize * 8;
            if len == 0 {
                return None;
            }
            if t == opt_type && len == LLADDR_OPT_LEN {
                return b.get(off + 2..off + 8).map(MacAddr::from_bytes);
            }
            off += len;
        }
        None
    }

    /// Whether the checksum is correct, given the IPv6 addresses.
    #[inline]
    pub fn verify_checksum(&self, src: &[u8; 16], dst: &[u8; 16]) -> bool {
        let b = self.buffer.as_ref();
        let s = checksum::pseudo_v6(src, dst, 58, b.len() as u32);
        checksum::fold(checksum::add(s, checksum::sum(b))) == 0xffff
    }

    /// What follows the 8-byte header (echo data, or an error's packet).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the type.
    #[inline]
    pub fn set_msg_type(&mut self, m: Message) {
        self.buffer.as_mut()[field::TYPE] = m.into();
    }

    /// Sets the code.
    #[inline]
    pub fn set_code(&mut self, c: u8) {
        self.buffer.as_mut()[field::CODE] = c;
    }

    /// Sets the echo identifier.
    #[inline]
    pub fn set_echo_ident(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::ECHO_IDENT.start, v);
    }

    /// Sets the echo sequence number.
    #[inline]
    pub fn set_echo_seq(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::ECHO_SEQ.start, v);
    }

    /// Sets the NA flags byte and clears the reserved bytes after it.
    #[inline]
    pub fn set_nd_flags(&mut self, flags: u8) {
        self.buffer.as_mut()[field::ND_FLAGS..field::ND_FLAGS + 4]
            .copy_from_slice(&[flags, 0, 0, 0]);
    }

    /// Sets the NS/NA target.
    #[inline]
    pub fn set_nd_target(&mut self, a: [u8; 16]) {
        self.buffer.as_mut()[field::ND_TARGET].copy_from_slice(&a);
    }

    /// Writes a link-layer address option at the start of the options (the
    /// buffer must hold `ND_LEN + LLADDR_OPT_LEN` bytes).
    #[inline]
    pub fn set_nd_lladdr_option(&mut self, opt_type: u8, mac: MacAddr) {
        let b = &mut self.buffer.as_mut()[field::ND_OPTIONS..field::ND_OPTIONS + LLADDR_OPT_LEN];
        b[0] = opt_type;
        b[1] = 1;
        b[2..8].copy_from_slice(mac.as_bytes());
    }

    /// Computes and stores the checksum, given the IPv6 addresses.
    #[inline]
    pub fn fill_checksum(&mut self, src: &[u8; 16], dst: &[u8; 16]) {
        let b = self.buffer.as_mut();
        put16(b, field::CHECKSUM.start, 0);
        let s = checksum::pseudo_v6(src, dst, 58, b.len() as u32);
        let c = !checksum::fold(checksum::add(s, checksum::sum(b)));
        put16(b, field::CHECKSUM.start, c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: [u8; 16] = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    const DST: [u8; 16] = [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0, 0, 0x64];

    // NS for 2001:db8::64 with a source link-layer option 02:00:00:00:00:01.
    fn ns() -> Vec<u8> {
        let mut b = vec![135, 0, 0, 0, 0, 0, 0, 0];
        b.extend_from_slice(&[
            0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x64,
        ]);
        b.extend_from_slice(&[1, 1, 2, 0, 0, 0, 0, 1]);
        Packet::new_unchecked(&mut b[..]).fill_checksum(&SRC, &DST);
        b
    }

    #[test]
    fn parse_ns() {
        let b = ns();
        let p = Packet::new_checked(&b[..]).unwrap();
        p.check_nd_len().unwrap();
        assert_eq!(p.msg_type(), Message::NeighborSolicit);
        assert_eq!(p.code(), 0);
        assert_eq!(p.nd_target()[15], 0x64);
        assert_eq!(
            p.nd_lladdr_option(OPT_SOURCE_LLADDR),
            Some(MacAddr([2, 0, 0, 0, 0, 1]))
        );
        assert_eq!(p.nd_lladdr_option(OPT_TARGET_LLADDR), None);
        assert!(p.verify_checksum(&SRC, &DST));
    }

    #[test]
    fn truncated_at_every_length() {
        let b = ns();
        for n in 0..HEADER_LEN {
            assert_eq!(Packet::new_checked(&b[..n]).unwrap_err(), Error::Truncated);
        }
        for n in HEADER_LEN..b.len() {
            if n == ND_LEN {
                continue; // no options at all is valid
            }
            let p = Packet::new_checked(&b[..n]).unwrap();
            assert_eq!(p.check_nd_len().unwrap_err(), Error::Truncated, "len {n}");
            assert_eq!(p.nd_lladdr_option(OPT_SOURCE_LLADDR), None, "len {n}");
        }
    }

    #[test]
    fn zero_length_option_is_malformed() {
        let mut b = ns();
        b[25] = 0;
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.check_nd_len().unwrap_err(), Error::Malformed);
        assert_eq!(p.nd_lladdr_option(OPT_SOURCE_LLADDR), None);
    }

    #[test]
    fn build_na() {
        let mut b = [0u8; ND_LEN + LLADDR_OPT_LEN];
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.set_msg_type(Message::NeighborAdvert);
        p.set_code(0);
        p.set_nd_flags(NA_FLAG_SOLICITED | NA_FLAG_OVERRIDE);
        p.set_nd_target([7; 16]);
        p.set_nd_lladdr_option(OPT_TARGET_LLADDR, MacAddr([2, 0, 0, 0, 0, 9]));
        p.fill_checksum(&SRC, &DST);
        let p = Packet::new_checked(&b[..]).unwrap();
        p.check_nd_len().unwrap();
        assert_eq!(p.nd_flags(), 0x60);
        assert_eq!(
            p.nd_lladdr_option(OPT_TARGET_LLADDR),
            Some(MacAddr([2, 0, 0, 0, 0, 9]))
        );
        assert!(p.verify_checksum(&SRC, &DST));
    }

    #[test]
    fn echo_and_errors() {
        let mut b = [128u8, 0, 0, 0, 0, 1, 0, 2, 9, 9];
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.set_echo_ident(5);
        p.set_echo_seq(6);
        p.fill_checksum(&SRC, &SRC);
        assert!(p.verify_checksum(&SRC, &SRC));
        assert_eq!((p.echo_ident(), p.echo_seq()), (5, 6));
        assert_eq!(p.payload(), &[9, 9]);
        let ptb = [2u8, 0, 0, 0, 0, 0, 0x05, 0x00];
        let p = Packet::new_checked(&ptb[..]).unwrap();
        assert_eq!(p.mtu(), 1280);
        assert!(p.msg_type().is_error());
        assert!(!Message::EchoRequest.is_error());
        for v in 0..=255u8 {
            assert_eq!(u8::from(Message::from(v)), v);
        }
    }
}
