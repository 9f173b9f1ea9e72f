//! SCTP common headers (RFC 9260 §3.1): ports, verification tag, checksum.
//! pmdlb balances SCTP by its ports only; chunks are not parsed.
#![forbid(unsafe_code)]

use super::{be16, Error, Result};

mod field {
    use crate::wire::Field;
    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    pub const VERIFICATION_TAG: Field = 4..8;
    pub const CHECKSUM: Field = 8..12;
}

/// Length of the common header.
pub const HEADER_LEN: usize = field::CHECKSUM.end;

/// A view of an SCTP packet.
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

    /// A view of a buffer holding at least the common header.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// `Ok` when the buffer holds the 12-byte common header. The buffer
    /// must be the IP payload as the IP header bounds it, not the rest of
    /// the frame (Ethernet padding).
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(Error::Truncated)
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

    /// Verification tag.
    #[inline]
    pub fn verification_tag(&self) -> u32 {
        let b = &self.buffer.as_ref()[field::VERIFICATION_TAG];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    /// Checksum field (CRC32c).
    #[inline]
    pub fn checksum(&self) -> u32 {
        let b = &self.buffer.as_ref()[field::CHECKSUM];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 5000 → 3000, tag 0x01020304, checksum 0xa1b2c3d4, then an INIT chunk
    // header (type 1, flags 0, length 20) cut short.
    static PKT: [u8; 16] = [
        0x13, 0x88, 0x0b, 0xb8, 1, 2, 3, 4, 0xa1, 0xb2, 0xc3, 0xd4, 1, 0, 0, 20,
    ];

    #[test]
    fn parse() {
        let p = Packet::new_checked(&PKT[..]).unwrap();
        assert_eq!(p.src_port(), 5000);
        assert_eq!(p.dst_port(), 3000);
        assert_eq!(p.verification_tag(), 0x0102_0304);
        assert_eq!(p.checksum(), 0xa1b2_c3d4);
        Packet::new_checked(&PKT[..HEADER_LEN]).unwrap();
    }

    #[test]
    fn truncated_at_every_length() {
        for n in 0..HEADER_LEN {
            assert_eq!(
                Packet::new_checked(&PKT[..n]).unwrap_err(),
                Error::Truncated
            );
        }
    }
}
