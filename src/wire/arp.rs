//! ARP for IPv4 over Ethernet (RFC 826): the only hardware/protocol pair
//! pmdlb answers; other pairs parse but are reported by `is_ethernet_ipv4`.
#![forbid(unsafe_code)]

use super::ethernet::MacAddr;
use super::{be16, put16, Error, Result};

mod field {
    use crate::wire::Field;
    pub const HTYPE: Field = 0..2;
    pub const PTYPE: Field = 2..4;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: Field = 6..8;
    pub const SHA: Field = 8..14;
    pub const SPA: Field = 14..18;
    pub const THA: Field = 18..24;
    pub const TPA: Field = 24..28;
}

/// Length of an Ethernet/IPv4 ARP packet.
pub const PACKET_LEN: usize = field::TPA.end;

/// ARP operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// Request (1).
    Request,
    /// Reply (2).
    Reply,
    /// Any other value.
    Unknown(u16),
}

impl From<u16> for Operation {
    #[inline]
    fn from(v: u16) -> Self {
        match v {
            1 => Operation::Request,
            2 => Operation::Reply,
            o => Operation::Unknown(o),
        }
    }
}

impl From<Operation> for u16 {
    #[inline]
    fn from(v: Operation) -> u16 {
        match v {
            Operation::Request => 1,
            Operation::Reply => 2,
            Operation::Unknown(o) => o,
        }
    }
}

/// A view of an ARP packet.
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

    /// A view of a buffer long enough for an Ethernet/IPv4 ARP packet.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// `Ok` when the buffer holds the 28 bytes of an Ethernet/IPv4 ARP packet.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < PACKET_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// Hardware type (1 = Ethernet).
    #[inline]
    pub fn hardware_type(&self) -> u16 {
        be16(self.buffer.as_ref(), field::HTYPE.start)
    }

    /// Protocol type (0x0800 = IPv4).
    #[inline]
    pub fn protocol_type(&self) -> u16 {
        be16(self.buffer.as_ref(), field::PTYPE.start)
    }

    /// Hardware address length.
    #[inline]
    pub fn hardware_len(&self) -> u8 {
        self.buffer.as_ref()[field::HLEN]
    }

    /// Protocol address length.
    #[inline]
    pub fn protocol_len(&self) -> u8 {
        self.buffer.as_ref()[field::PLEN]
    }

    /// Whether this is Ethernet/IPv4 ARP (the only kind the fields below
    /// describe correctly).
    #[inline]
    pub fn is_ethernet_ipv4(&self) -> bool {
        self.hardware_type() == 1
            && self.protocol_type() == 0x0800
            && self.hardware_len() == 6
            && self.protocol_len() == 4
    }

    /// Operation.
    #[inline]
    pub fn operation(&self) -> Operation {
        Operation::from(be16(self.buffer.as_ref(), field::OPER.start))
    }

    /// Sender hardware address.
    #[inline]
    pub fn sender_hw(&self) -> MacAddr {
        MacAddr::from_bytes(&self.buffer.as_ref()[field::SHA])
    }

    /// Sender protocol address.
    #[inline]
    pub fn sender_ip(&self) -> [u8; 4] {
        let b = &self.buffer.as_ref()[field::SPA];
        [b[0], b[1], b[2], b[3]]
    }

    /// Target hardware address.
    #[inline]
    pub fn target_hw(&self) -> MacAddr {
        MacAddr::from_bytes(&self.buffer.as_ref()[field::THA])
    }

    /// Target protocol address.
    #[inline]
    pub fn target_ip(&self) -> [u8; 4] {
        let b = &self.buffer.as_ref()[field::TPA];
        [b[0], b[1], b[2], b[3]]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Writes the Ethernet/IPv4 constants (types and lengths).
    #[inline]
    pub fn set_ethernet_ipv4(&mut self) {
        let b = self.buffer.as_mut();
        put16(b, field::HTYPE.start, 1);
        put16(b, field::PTYPE.start, 0x0800);
        b[field::HLEN] = 6;
        b[field::PLEN] = 4;
    }

    /// Sets the operation.
    #[inline]
    pub fn set_operation(&mut self, op: Operation) {
        put16(self.buffer.as_mut(), field::OPER.start, op.into());
    }

    /// Sets the sender hardware address.
    #[inline]
    pub fn set_sender_hw(&mut self, mac: MacAddr) {
        self.buffer.as_mut()[field::SHA].copy_from_slice(mac.as_bytes());
    }

    /// Sets the sender protocol address.
    #[inline]
    pub fn set_sender_ip(&mut self, ip: [u8; 4]) {
        self.buffer.as_mut()[field::SPA].copy_from_slice(&ip);
    }

    /// Sets the target hardware address.
    #[inline]
    pub fn set_target_hw(&mut self, mac: MacAddr) {
        self.buffer.as_mut()[field::THA].copy_from_slice(mac.as_bytes());
    }

    /// Sets the target protocol address.
    #[inline]
    pub fn set_target_ip(&mut self, ip: [u8; 4]) {
        self.buffer.as_mut()[field::TPA].copy_from_slice(&ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Who has 10.0.0.100? Tell 10.0.0.1 (02:00:00:00:00:01).
    static REQ: [u8; 28] = [
        0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01, // htype ptype hlen plen oper
        2, 0, 0, 0, 0, 1, 10, 0, 0, 1, // sha spa
        0, 0, 0, 0, 0, 0, 10, 0, 0, 100, // tha tpa
    ];

    #[test]
    fn parse() {
        let p = Packet::new_checked(&REQ[..]).unwrap();
        assert!(p.is_ethernet_ipv4());
        assert_eq!(p.operation(), Operation::Request);
        assert_eq!(p.sender_hw(), MacAddr([2, 0, 0, 0, 0, 1]));
        assert_eq!(p.sender_ip(), [10, 0, 0, 1]);
        assert_eq!(p.target_hw(), MacAddr([0; 6]));
        assert_eq!(p.target_ip(), [10, 0, 0, 100]);
    }

    #[test]
    fn truncated_at_every_length() {
        for n in 0..PACKET_LEN {
            assert_eq!(
                Packet::new_checked(&REQ[..n]).unwrap_err(),
                Error::Truncated
            );
        }
    }

    #[test]
    fn not_ethernet_ipv4() {
        let mut b = REQ;
        b[5] = 16;
        assert!(!Packet::new_checked(&b[..]).unwrap().is_ethernet_ipv4());
    }

    #[test]
    fn build_reply() {
        let mut b = [0u8; 28];
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.set_ethernet_ipv4();
        p.set_operation(Operation::Reply);
        p.set_sender_hw(MacAddr([2, 0, 0, 0, 0, 9]));
        p.set_sender_ip([10, 0, 0, 100]);
        p.set_target_hw(MacAddr([2, 0, 0, 0, 0, 1]));
        p.set_target_ip([10, 0, 0, 1]);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert!(p.is_ethernet_ipv4());
        assert_eq!(p.operation(), Operation::Reply);
        assert_eq!(u16::from(Operation::Unknown(7)), 7);
        assert_eq!(
            &b[..8],
            &REQ[..6].iter().chain(&[0, 2]).copied().collect::<Vec<_>>()[..]
        );
    }
}
