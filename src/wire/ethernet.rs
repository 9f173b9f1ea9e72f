//! Ethernet II frames (destination, source, EtherType) and `MacAddr`, the
//! Ethernet address with its `aa:bb:cc:dd:ee:ff` text form.
#![forbid(unsafe_code)]

use core::fmt;
use core::str::FromStr;

use super::{be16, put16, Error, Result};

mod field {
    use crate::wire::Field;
    pub const DST: Field = 0..6;
    pub const SRC: Field = 6..12;
    pub const ETHERTYPE: Field = 12..14;
    pub const PAYLOAD: usize = 14;
}

/// Length of an untagged Ethernet header.
pub const HEADER_LEN: usize = field::PAYLOAD;

/// A 6-byte Ethernet (MAC) address, written `02:00:00:00:01:0b`.
///
/// A plain newtype over the bytes: copying and comparing it costs what
/// `[u8; 6]` costs, so the data path passes it by value.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(transparent)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// The broadcast address `ff:ff:ff:ff:ff:ff`.
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);

    /// The address in `data`, which must be exactly 6 bytes long.
    ///
    /// # Panics
    /// When `data` is not 6 bytes long.
    #[inline]
    pub fn from_bytes(data: &[u8]) -> MacAddr {
        let mut a = [0u8; 6];
        a.copy_from_slice(data);
        MacAddr(a)
    }

    /// The address as bytes.
    #[inline]
    pub const fn as_bytes(&self) -> &[u8; 6] {
        &self.0
    }

    /// Whether this is a group (multicast or broadcast) address: the I/G bit
    /// of the first octet is set.
    #[inline]
    pub const fn is_group(&self) -> bool {
        self.0[0] & 1 != 0
    }

    /// Whether this is the broadcast address.
    #[inline]
    pub fn is_broadcast(&self) -> bool {
        *self == Self::BROADCAST
    }

    /// Whether this is `00:00:00:00:00:00`.
    #[inline]
    pub fn is_zero(&self) -> bool {
        self.0 == [0; 6]
    }
}

impl fmt::Display for MacAddr {
    /// Six lower-case hex pairs separated by colons: `02:00:00:00:01:0b`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl fmt::Debug for MacAddr {
    /// As `Display`: `02:00:00:00:01:0b`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Why a string is not a MAC address (from `MacAddr::from_str`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("\"{text}\" is not a MAC address; write six hex pairs like \"02:00:00:00:01:0b\"")]
pub struct ParseMacAddrError {
    /// The text that was refused.
    pub text: String,
}

impl FromStr for MacAddr {
    type Err = ParseMacAddrError;

    /// Parses six hex pairs separated by `:` (either case), nothing around.
    fn from_str(text: &str) -> core::result::Result<Self, Self::Err> {
        let bad = || ParseMacAddrError {
            text: text.to_owned(),
        };
        let mut mac = [0u8; 6];
        let mut parts = text.split(':');
        for byte in &mut mac {
            let p = parts.next().ok_or_else(bad)?;
            if p.len() != 2 || !p.bytes().all(|c| c.is_ascii_hexdigit()) {
                return Err(bad());
            }
            *byte = u8::from_str_radix(p, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(MacAddr(mac))
    }
}

/// EtherType values pmdlb distinguishes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EtherType {
    /// IPv4 (0x0800).
    Ipv4,
    /// ARP (0x0806).
    Arp,
    /// 802.1Q VLAN tag (0x8100).
    Vlan,
    /// IPv6 (0x86dd).
    Ipv6,
    /// 802.1ad service tag, QinQ (0x88a8).
    QinQ,
    /// Any other value.
    Unknown(u16),
}

impl From<u16> for EtherType {
    #[inline]
    fn from(v: u16) -> Self {
        match v {
            0x0800 => EtherType::Ipv4,
            0x0806 => EtherType::Arp,
            0x8100 => EtherType::Vlan,
            0x86dd => EtherType::Ipv6,
            0x88a8 => EtherType::QinQ,
            other => EtherType::Unknown(other),
        }
    }
}

impl From<EtherType> for u16 {
    #[inline]
    fn from(v: EtherType) -> u16 {
        match v {
            EtherType::Ipv4 => 0x0800,
            EtherType::Arp => 0x0806,
            EtherType::Vlan => 0x8100,
            EtherType::Ipv6 => 0x86dd,
            EtherType::QinQ => 0x88a8,
            EtherType::Unknown(other) => other,
        }
    }
}

/// A view of an Ethernet II frame.
#[derive(Debug, Clone)]
pub struct Frame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Frame<T> {
    /// A view without checking the length.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        Frame { buffer }
    }

    /// A view of a buffer long enough for the header.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        let f = Self::new_unchecked(buffer);
        f.check_len()?;
        Ok(f)
    }

    /// `Ok` when the buffer holds the whole header.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// The underlying buffer.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Destination address.
    #[inline]
    pub fn dst_addr(&self) -> MacAddr {
        MacAddr::from_bytes(&self.buffer.as_ref()[field::DST])
    }

    /// Source address.
    #[inline]
    pub fn src_addr(&self) -> MacAddr {
        MacAddr::from_bytes(&self.buffer.as_ref()[field::SRC])
    }

    /// EtherType.
    #[inline]
    pub fn ethertype(&self) -> EtherType {
        EtherType::from(be16(self.buffer.as_ref(), field::ETHERTYPE.start))
    }

    /// Everything after the header.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Frame<T> {
    /// Sets the destination address.
    #[inline]
    pub fn set_dst_addr(&mut self, mac: MacAddr) {
        self.buffer.as_mut()[field::DST].copy_from_slice(mac.as_bytes());
    }

    /// Sets the source address.
    #[inline]
    pub fn set_src_addr(&mut self, mac: MacAddr) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(mac.as_bytes());
    }

    /// Sets the EtherType.
    #[inline]
    pub fn set_ethertype(&mut self, t: EtherType) {
        put16(self.buffer.as_mut(), field::ETHERTYPE.start, t.into());
    }

    /// Everything after the header, mutable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static FRAME: [u8; 18] = [
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, // dst
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, // src
        0x08, 0x00, // IPv4
        0xaa, 0xbb, 0xcc, 0xdd,
    ];

    #[test]
    fn parse() {
        let f = Frame::new_checked(&FRAME[..]).unwrap();
        assert_eq!(f.dst_addr(), MacAddr([2, 0, 0, 0, 0, 1]));
        assert_eq!(f.src_addr(), MacAddr([2, 0, 0, 0, 0, 2]));
        assert_eq!(f.ethertype(), EtherType::Ipv4);
        assert_eq!(f.payload(), &[0xaa, 0xbb, 0xcc, 0xdd]);
        assert!(!f.dst_addr().is_group());
        assert!(MacAddr::BROADCAST.is_group());
        assert!(MacAddr([0x33, 0x33, 0, 0, 0, 1]).is_group());
        assert!(MacAddr::BROADCAST.is_broadcast());
        assert!(!f.dst_addr().is_broadcast());
    }

    #[test]
    fn truncated_at_every_length() {
        for n in 0..HEADER_LEN {
            assert_eq!(
                Frame::new_checked(&FRAME[..n]).unwrap_err(),
                Error::Truncated
            );
        }
        let f = Frame::new_checked(&FRAME[..HEADER_LEN]).unwrap();
        assert!(f.payload().is_empty());
    }

    #[test]
    fn set_fields() {
        let mut b = FRAME;
        let mut f = Frame::new_checked(&mut b[..]).unwrap();
        f.set_dst_addr(MacAddr([1; 6]));
        f.set_src_addr(MacAddr([3; 6]));
        f.set_ethertype(EtherType::Ipv6);
        f.payload_mut()[0] = 0;
        assert_eq!(&b[..14], &[1, 1, 1, 1, 1, 1, 3, 3, 3, 3, 3, 3, 0x86, 0xdd]);
        assert_eq!(b[14], 0);
    }

    #[test]
    fn ethertypes() {
        for v in [0x0800u16, 0x0806, 0x8100, 0x86dd, 0x88a8, 0x1234] {
            assert_eq!(u16::from(EtherType::from(v)), v);
        }
        assert_eq!(EtherType::from(0x1234), EtherType::Unknown(0x1234));
    }

    #[test]
    fn mac_display_and_debug() {
        let m = MacAddr([0x02, 0, 0, 0, 0x01, 0x0b]);
        assert_eq!(m.to_string(), "02:00:00:00:01:0b");
        assert_eq!(format!("{m:?}"), "02:00:00:00:01:0b");
        assert_eq!(MacAddr::BROADCAST.to_string(), "ff:ff:ff:ff:ff:ff");
        assert_eq!(MacAddr::default().to_string(), "00:00:00:00:00:00");
        assert!(MacAddr::default().is_zero());
        assert_eq!(
            MacAddr([0xab, 0xcd, 0xef, 0x12, 0x34, 0x56]).to_string(),
            "ab:cd:ef:12:34:56"
        );
    }

    #[test]
    fn mac_round_trips() {
        for m in [
            MacAddr([0x02, 0, 0, 0, 0x01, 0x0b]),
            MacAddr::BROADCAST,
            MacAddr::default(),
            MacAddr([0xab, 0xcd, 0xef, 0x12, 0x34, 0x56]),
        ] {
            assert_eq!(m.to_string().parse::<MacAddr>().unwrap(), m);
        }
        assert_eq!(
            "AB:cd:EF:12:34:56".parse::<MacAddr>().unwrap(),
            MacAddr([0xab, 0xcd, 0xef, 0x12, 0x34, 0x56])
        );
    }

    #[test]
    fn mac_malformed() {
        for bad in [
            "",
            ":",
            "02:00:00:00:01",       // 5 parts
            "02:00:00:00:01:0b:0c", // 7 parts
            "02:00:00:00:01:0b:",   // trailing colon
            ":02:00:00:00:01:0b",   // leading colon
            "02:00:00:00:01:b",     // 1-char part
            "02:00:00:00:01:00b",   // 3-char part
            "02:00::00:01:0b",      // empty part
            "02:00:zz:00:01:0b",    // non-hex
            "02:00:+1:00:01:0b",    // sign is not a hex digit
            "02-00-00-00-01-0b",    // wrong separator
            " 02:00:00:00:01:0b",   // surrounding space
            "02:00:00:00:01:0b\n",
            "0200.0000.010b",
            "02:00:00:00:01:é",
        ] {
            let e = bad.parse::<MacAddr>().unwrap_err();
            assert_eq!(e.text, bad);
            assert_eq!(
                e.to_string(),
                format!(
                    "\"{bad}\" is not a MAC address; write six hex pairs like \"02:00:00:00:01:0b\""
                ),
            );
        }
    }

    #[test]
    fn mac_from_bytes() {
        assert_eq!(
            MacAddr::from_bytes(&FRAME[6..12]),
            MacAddr([2, 0, 0, 0, 0, 2])
        );
        assert_eq!(MacAddr([1; 6]).as_bytes(), &[1; 6]);
    }
}
