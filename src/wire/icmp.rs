//! ICMP for IPv4 (RFC 792): echo request/reply and the error messages that
//! carry the start of the offending packet (destination unreachable with
//! fragmentation-needed, source quench, time exceeded, parameter problem).
#![forbid(unsafe_code)]

use super::{be16, checksum, put16, Error, Result};

mod field {
    use crate::wire::Field;
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Field = 2..4;
    pub const ECHO_IDENT: Field = 4..6;
    pub const ECHO_SEQ: Field = 6..8;
    pub const NEXT_HOP_MTU: Field = 6..8;
    pub const PAYLOAD: usize = 8;
}

/// Length of the ICMP header (type, code, checksum and the 4-byte rest).
pub const HEADER_LEN: usize = field::PAYLOAD;

/// ICMP message types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Message {
    /// Echo reply (0).
    EchoReply,
    /// Destination unreachable (3); code 4 is fragmentation needed.
    DstUnreachable,
    /// Source quench (4).
    SourceQuench,
    /// Redirect (5).
    Redirect,
    /// Echo request (8).
    EchoRequest,
    /// Time exceeded (11).
    TimeExceeded,
    /// Parameter problem (12).
    ParamProblem,
    /// Any other type.
    Unknown(u8),
}

impl From<u8> for Message {
    #[inline]
    fn from(v: u8) -> Self {
        match v {
            0 => Message::EchoReply,
            3 => Message::DstUnreachable,
            4 => Message::SourceQuench,
            5 => Message::Redirect,
            8 => Message::EchoRequest,
            11 => Message::TimeExceeded,
            12 => Message::ParamProblem,
            o => Message::Unknown(o),
        }
    }
}

impl From<Message> for u8 {
    #[inline]
    fn from(v: Message) -> u8 {
        match v {
            Message::EchoReply => 0,
            Message::DstUnreachable => 3,
            Message::SourceQuench => 4,
            Message::Redirect => 5,
            Message::EchoRequest => 8,
            Message::TimeExceeded => 11,
            Message::ParamProblem => 12,
            Message::Unknown(o) => o,
        }
    }
}

impl Message {
    /// Whether this type is an error that embeds the offending packet and
    /// that pmdlb relays to a connection's real server.
    #[inline]
    pub fn is_relayed_error(self) -> bool {
        matches!(
            self,
            Message::DstUnreachable
                | Message::SourceQuench
                | Message::TimeExceeded
                | Message::ParamProblem
        )
    }
}

/// A view of an ICMP message (the IPv4 payload).
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

    /// `Ok` when the buffer holds the 8-byte header.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
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

    /// Next-hop MTU of a fragmentation-needed message (RFC 1191).
    #[inline]
    pub fn next_hop_mtu(&self) -> u16 {
        be16(self.buffer.as_ref(), field::NEXT_HOP_MTU.start)
    }

    /// Whether the checksum over the whole buffer is correct.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        checksum::fold(checksum::sum(self.buffer.as_ref())) == 0xffff
    }

    /// What follows the header: echo data, or the embedded packet of an error.
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

    /// Computes and stores the checksum over the whole buffer.
    #[inline]
    pub fn fill_checksum(&mut self) {
        let b = self.buffer.as_mut();
        put16(b, field::CHECKSUM.start, 0);
        let c = checksum::checksum(b);
        put16(b, field::CHECKSUM.start, c);
    }

    /// The payload, mutable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Echo request id 0x1234 seq 1, payload "abcd", valid checksum.
    fn echo() -> Vec<u8> {
        let mut b = vec![8, 0, 0, 0, 0x12, 0x34, 0x00, 0x01, b'a', b'b', b'c', b'd'];
        Packet::new_unchecked(&mut b[..]).fill_checksum();
        b
    }

    #[test]
    fn parse_echo() {
        let b = echo();
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.msg_type(), Message::EchoRequest);
        assert_eq!(p.code(), 0);
        assert_eq!(p.echo_ident(), 0x1234);
        assert_eq!(p.echo_seq(), 1);
        assert!(p.verify_checksum());
        assert_eq!(p.payload(), b"abcd");
        assert_eq!(
            p.checksum(),
            !crate::wire::checksum::fold(0x0800 + 0x1234 + 1 + 0x6162 + 0x6364)
        );
    }

    #[test]
    fn truncated_at_every_length() {
        let b = echo();
        for n in 0..HEADER_LEN {
            assert_eq!(Packet::new_checked(&b[..n]).unwrap_err(), Error::Truncated);
        }
    }

    #[test]
    fn frag_needed() {
        let b = [3, 4, 0, 0, 0, 0, 0x05, 0xdc, 0x45];
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.msg_type(), Message::DstUnreachable);
        assert!(p.msg_type().is_relayed_error());
        assert_eq!(p.code(), 4);
        assert_eq!(p.next_hop_mtu(), 1500);
        assert_eq!(p.payload(), &[0x45]);
    }

    #[test]
    fn types_roundtrip_and_setters() {
        for v in 0..=255u8 {
            assert_eq!(u8::from(Message::from(v)), v);
        }
        let mut b = echo();
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        p.set_msg_type(Message::EchoReply);
        p.set_code(0);
        p.set_echo_ident(1);
        p.set_echo_seq(2);
        p.payload_mut()[0] = b'z';
        p.fill_checksum();
        assert!(p.verify_checksum());
        assert!(!Message::EchoReply.is_relayed_error());
    }
}
