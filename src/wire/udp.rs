//! UDP headers (RFC 768): ports, length, checksum.
#![forbid(unsafe_code)]

use super::{be16, put16, Error, Result};

mod field {
    use crate::wire::Field;
    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    pub const LENGTH: Field = 4..6;
    pub const CHECKSUM: Field = 6..8;
}

/// Length of the UDP header.
pub const HEADER_LEN: usize = field::CHECKSUM.end;

/// A view of a UDP datagram.
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

    /// A view of a buffer holding at least the header.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// `Ok` when the buffer holds the 8-byte header and the length field
    /// says `8 ≤ length ≤ buffer`: a length below 8 is
    /// [`Error::Malformed`], one beyond the buffer [`Error::Truncated`].
    ///
    /// The buffer must be the IP payload as the IP header bounds it (IPv4
    /// total length, IPv6 payload length), never the rest of the frame,
    /// which may carry Ethernet padding. A length shorter than the buffer
    /// is accepted: Linux's `udp_rcv` (and so a real server behind IPVS)
    /// trims the datagram to it.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        self.check_header_len()?;
        if self.buffer.as_ref().len() < self.len() as usize {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// `Ok` when the buffer holds the 8-byte header and the length field is
    /// at least 8, whatever the buffer's length: for the first fragment of
    /// a datagram, whose length field counts the data of every fragment.
    #[inline]
    pub fn check_header_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(Error::Truncated)
        } else if (self.len() as usize) < HEADER_LEN {
            Err(Error::Malformed)
        } else {
            Ok(())
        }
    }

    /// Source port.
    #[inline]
    pub fn src_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::SRC_PORT.start)
    }

    /// Destination port.
    #[inline]
    pub fn dst_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::DST_PORT.start)
    }

    /// Length field (header + data).
    #[inline]
    pub fn len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::LENGTH.start)
    }

    /// Whether the length field says there is no data.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() as usize <= HEADER_LEN
    }

    /// Checksum field (0 = none, IPv4 only).
    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM.start)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the source port.
    #[inline]
    pub fn set_src_port(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::SRC_PORT.start, v);
    }

    /// Sets the destination port.
    #[inline]
    pub fn set_dst_port(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::DST_PORT.start, v);
    }

    /// Sets the length field.
    #[inline]
    pub fn set_len(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::LENGTH.start, v);
    }

    /// Sets the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::CHECKSUM.start, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static DGRAM: [u8; 10] = [0x30, 0x39, 0x00, 0x35, 0x00, 0x0a, 0xab, 0xcd, 1, 2];

    #[test]
    fn parse() {
        let p = Packet::new_checked(&DGRAM[..]).unwrap();
        assert_eq!(p.src_port(), 12345);
        assert_eq!(p.dst_port(), 53);
        assert_eq!(p.len(), 10);
        assert!(!p.is_empty());
        assert_eq!(p.checksum(), 0xabcd);
    }

    #[test]
    fn truncated_at_every_length() {
        for n in 0..HEADER_LEN {
            assert_eq!(
                Packet::new_checked(&DGRAM[..n]).unwrap_err(),
                Error::Truncated
            );
        }
    }

    #[test]
    fn length_field_below_the_header_is_malformed() {
        for len in 0..HEADER_LEN as u8 {
            let mut b = DGRAM;
            b[5] = len;
            let p = Packet::new_unchecked(&b[..]);
            assert_eq!(p.check_len().unwrap_err(), Error::Malformed, "length {len}");
            assert_eq!(p.check_header_len().unwrap_err(), Error::Malformed);
        }
    }

    #[test]
    fn length_field_beyond_the_buffer_is_truncated() {
        // The 10-byte datagram claims 11; and a buffer cut to the IP payload
        // (8 bytes) under a 10-byte claim, as Ethernet padding would hide.
        let mut b = DGRAM;
        b[5] = 11;
        assert_eq!(Packet::new_checked(&b[..]).unwrap_err(), Error::Truncated);
        assert_eq!(
            Packet::new_checked(&DGRAM[..8]).unwrap_err(),
            Error::Truncated
        );
        // A first fragment: only the header and the length's minimum count.
        Packet::new_unchecked(&b[..]).check_header_len().unwrap();
        Packet::new_unchecked(&DGRAM[..8])
            .check_header_len()
            .unwrap();
    }

    #[test]
    fn length_field_shorter_than_the_buffer_is_accepted() {
        // 8 ≤ length < buffer: the receiver trims to the length field.
        for len in HEADER_LEN as u8..=DGRAM.len() as u8 {
            let mut b = DGRAM;
            b[5] = len;
            let p = Packet::new_checked(&b[..]).unwrap();
            assert_eq!(p.len(), u16::from(len));
            assert_eq!(p.is_empty(), len == 8);
        }
    }

    #[test]
    fn setters() {
        let mut b = [0u8; 8];
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.set_src_port(1);
        p.set_dst_port(2);
        p.set_len(8);
        p.set_checksum(3);
        assert_eq!(b, [0, 1, 0, 2, 0, 8, 0, 3]);
    }
}
