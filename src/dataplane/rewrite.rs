//! The direct-routing rewrite: destination MAC := real server, source MAC :=
//! TX port, IP packet untouched, 802.1Q tag kept, set or removed as the TX
//! side is configured. Length-changing tag work is split into pure byte
//! functions the worker calls around `rte_pktmbuf_prepend` / `rte_pktmbuf_adj`.
#![forbid(unsafe_code)]

use crate::dataplane::verdict::VlanAction;
use crate::wire::ethernet::MacAddr;

/// How frames leave on the TX port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TxVlan {
    /// Keep the frame as received: tagged stays tagged (same VLAN id),
    /// untagged stays untagged.
    #[default]
    Keep,
    /// Tag every frame with this VLAN id (0..4095): an existing tag gets the
    /// new id (priority kept), an untagged frame gets a tag (priority 0).
    Set(u16),
    /// Send untagged: an existing tag is removed.
    Untagged,
}

impl core::fmt::Display for TxVlan {
    /// As written in the configuration: `keep`, `none` or the VLAN id.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            TxVlan::Keep => f.write_str("keep"),
            TxVlan::Untagged => f.write_str("none"),
            TxVlan::Set(v) => write!(f, "{v}"),
        }
    }
}

/// Writes the two MAC addresses of a DR forward (`frame` holds at least 12
/// bytes; shorter frames are left alone).
#[inline(always)]
pub fn rewrite_macs(frame: &mut [u8], dst: &MacAddr, src: &MacAddr) {
    if let Some(m) = frame.get_mut(0..12) {
        m[0..6].copy_from_slice(dst.as_bytes());
        m[6..12].copy_from_slice(src.as_bytes());
    }
}

/// Why a tag operation could not be done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VlanApplyError {
    /// Not enough headroom before the frame to insert a tag.
    NoHeadroom,
    /// The frame is too short for the operation (or has no tag to remove).
    TooShort,
}

/// Completes a tag insertion after the worker prepended 4 bytes: `data`
/// starts with the 4 new bytes followed by the original frame. Moves the
/// MAC addresses to the front and writes `0x8100` and `tci` after them.
#[inline]
pub fn finish_vlan_insert(data: &mut [u8], tci: u16) -> Result<(), VlanApplyError> {
    if data.len() < 4 + 14 {
        return Err(VlanApplyError::TooShort);
    }
    data.copy_within(4..16, 0);
    data[12..14].copy_from_slice(&0x8100u16.to_be_bytes());
    data[14..16].copy_from_slice(&tci.to_be_bytes());
    Ok(())
}

/// Prepares a tag removal: moves the MAC addresses 4 bytes forward over the
/// tag, so that dropping the first 4 bytes (`rte_pktmbuf_adj(m, 4)`) leaves
/// the untagged frame.
#[inline]
pub fn begin_vlan_remove(data: &mut [u8]) -> Result<(), VlanApplyError> {
    if data.len() < 18 || data[12..14] != [0x81, 0x00] {
        return Err(VlanApplyError::TooShort);
    }
    data.copy_within(0..12, 4);
    Ok(())
}

/// Applies `action` to a frame stored at `buf[start..start + len]` (with
/// headroom before it) and returns the new `(start, len)`. The buffer
/// version of what the worker does on an mbuf.
#[inline]
pub fn apply_vlan(
    buf: &mut [u8],
    start: usize,
    len: usize,
    action: VlanAction,
) -> Result<(usize, usize), VlanApplyError> {
    let end = start.checked_add(len).ok_or(VlanApplyError::TooShort)?;
    if end > buf.len() {
        return Err(VlanApplyError::TooShort);
    }
    match action {
        VlanAction::None => Ok((start, len)),
        VlanAction::Insert(tci) => {
            if start < 4 {
                return Err(VlanApplyError::NoHeadroom);
            }
            finish_vlan_insert(&mut buf[start - 4..end], tci)?;
            Ok((start - 4, len + 4))
        }
        VlanAction::Remove => {
            begin_vlan_remove(&mut buf[start..end])?;
            Ok((start + 4, len - 4))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UNTAGGED: [u8; 16] = [1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 0x08, 0x00, 0x45, 0x00];

    #[test]
    fn insert_then_remove_roundtrips() {
        let mut buf = [0u8; 64];
        buf[8..24].copy_from_slice(&UNTAGGED);
        let (s, l) = apply_vlan(&mut buf, 8, 16, VlanAction::Insert(0x2064)).unwrap();
        assert_eq!((s, l), (4, 20));
        assert_eq!(
            &buf[s..s + l],
            &[1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 0x81, 0x00, 0x20, 0x64, 0x08, 0x00, 0x45, 0x00]
        );
        let (s, l) = apply_vlan(&mut buf, s, l, VlanAction::Remove).unwrap();
        assert_eq!((s, l), (8, 16));
        assert_eq!(&buf[s..s + l], &UNTAGGED);
        assert_eq!(apply_vlan(&mut buf, 8, 16, VlanAction::None), Ok((8, 16)));
    }

    #[test]
    fn errors() {
        let mut buf = UNTAGGED;
        assert_eq!(
            apply_vlan(&mut buf, 0, 16, VlanAction::Insert(1)),
            Err(VlanApplyError::NoHeadroom)
        );
        assert_eq!(
            apply_vlan(&mut buf, 0, 16, VlanAction::Remove),
            Err(VlanApplyError::TooShort)
        );
        assert_eq!(
            apply_vlan(&mut buf, 4, 16, VlanAction::None),
            Err(VlanApplyError::TooShort)
        );
        assert_eq!(
            apply_vlan(&mut buf, usize::MAX, 16, VlanAction::None),
            Err(VlanApplyError::TooShort)
        );
        assert_eq!(
            finish_vlan_insert(&mut [0u8; 17], 1),
            Err(VlanApplyError::TooShort)
        );
    }

    #[test]
    fn macs() {
        let mut f = UNTAGGED;
        rewrite_macs(&mut f, &MacAddr([9; 6]), &MacAddr([8; 6]));
        assert_eq!(&f[..12], &[9, 9, 9, 9, 9, 9, 8, 8, 8, 8, 8, 8]);
        let mut short = [0u8; 5];
        rewrite_macs(&mut short, &MacAddr([9; 6]), &MacAddr([8; 6]));
        assert_eq!(short, [0; 5]);
    }
}
