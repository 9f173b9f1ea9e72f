//! 802.1Q VLAN tags: the 4 bytes after the source MAC when the EtherType is
//! 0x8100. This view covers the tag control information and the inner
//! EtherType (the 2 bytes after the TPID); one tag only — a second tag
//! (QinQ) is reported by the caller as unsupported.
#![forbid(unsafe_code)]

use super::ethernet::EtherType;
use super::{be16, put16, Error, Result};

mod field {
    use crate::wire::Field;
    pub const TCI: Field = 0..2;
    pub const ETHERTYPE: Field = 2..4;
    pub const PAYLOAD: usize = 4;
}

/// Length of the tag as it follows the outer EtherType (TCI + inner type).
pub const HEADER_LEN: usize = field::PAYLOAD;

/// The VLAN id mask of a TCI.
pub const VID_MASK: u16 = 0x0fff;

/// A view of the 4 bytes following a 0x8100 EtherType.
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

    /// A view of a buffer long enough for the tag.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// `Ok` when the buffer holds the whole tag.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// Tag control information (PCP, DEI, VID).
    #[inline]
    pub fn tci(&self) -> u16 {
        be16(self.buffer.as_ref(), field::TCI.start)
    }

    /// The VLAN id.
    #[inline]
    pub fn vid(&self) -> u16 {
        self.tci() & VID_MASK
    }

    /// The priority code point.
    #[inline]
    pub fn pcp(&self) -> u8 {
        (self.tci() >> 13) as u8
    }

    /// The EtherType of what follows the tag.
    #[inline]
    pub fn ethertype(&self) -> EtherType {
        EtherType::from(be16(self.buffer.as_ref(), field::ETHERTYPE.start))
    }

    /// Everything after the tag.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the tag control information.
    #[inline]
    pub fn set_tci(&mut self, tci: u16) {
        put16(self.buffer.as_mut(), field::TCI.start, tci);
    }

    /// Sets the VLAN id, keeping PCP and DEI.
    #[inline]
    pub fn set_vid(&mut self, vid: u16) {
        let tci = (self.tci() & !VID_MASK) | (vid & VID_MASK);
        self.set_tci(tci);
    }

    /// Sets the inner EtherType.
    #[inline]
    pub fn set_ethertype(&mut self, t: EtherType) {
        put16(self.buffer.as_mut(), field::ETHERTYPE.start, t.into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static TAG: [u8; 6] = [0xa0, 0x64, 0x86, 0xdd, 0x60, 0x00];

    #[test]
    fn parse() {
        let p = Packet::new_checked(&TAG[..]).unwrap();
        assert_eq!(p.tci(), 0xa064);
        assert_eq!(p.vid(), 100);
        assert_eq!(p.pcp(), 5);
        assert_eq!(p.ethertype(), EtherType::Ipv6);
        assert_eq!(p.payload(), &[0x60, 0x00]);
    }

    #[test]
    fn truncated_at_every_length() {
        for n in 0..HEADER_LEN {
            assert_eq!(
                Packet::new_checked(&TAG[..n]).unwrap_err(),
                Error::Truncated
            );
        }
    }

    #[test]
    fn set_vid_keeps_pcp() {
        let mut b = TAG;
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        p.set_vid(4095);
        assert_eq!(p.tci(), 0xafff);
        p.set_ethertype(EtherType::Ipv4);
        assert_eq!(&b[..4], &[0xaf, 0xff, 0x08, 0x00]);
    }
}
