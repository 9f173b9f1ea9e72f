//! IPv4 fragmentation of an outer tunnel packet that no longer fits the TX
//! MTU: pure byte work on the frame the worker built (Ethernet header,
//! optional 802.1Q tag, an IPv4 header without options, its payload). No
//! allocation, no panic.
//!
//! # What IPVS does, and this does
//! IPVS's `ensure_mtu_is_adequate` answers a too-big IPv4 packet with a
//! fragmentation-needed only when it has DF; without DF `ip_vs_tunnel_xmit`
//! sets `ignore_df` and hands the outer packet to `ip_local_out`, whose
//! `ip_fragment` splits the *outer* datagram. The inner packet stays whole:
//! the real server's kernel reassembles the outer datagram before it
//! decapsulates. As Linux's `ip_do_fragment`:
//! - every fragment but the last carries `(mtu - 20) & !7` payload bytes
//!   (a multiple of 8, RFC 791), the last the rest; each fragment's IPv4
//!   header is the original's with its own total length, fragment offset
//!   (in 8-byte units, added to the original's), MF set on all but the
//!   last (and on the last too when the original had it), a new checksum;
//!   identification, TOS, TTL, protocol and addresses are the original's;
//! - fragments go out in order, the first in the original buffer.
//!
//! The Ethernet header (and tag) of the original is copied in front of
//! every fragment. [`Split::plan`] refuses what it cannot do: an IPv4
//! header with options (the outer headers pmdlb writes have none), a packet
//! that fits, an MTU that leaves under 8 payload bytes, more than
//! [`MAX_FRAGMENTS`] fragments.
#![forbid(unsafe_code)]

use crate::wire::checksum;
use crate::wire::ipv4::{self, FLAG_DF as DF, FLAG_MF as MF, OFFSET_MASK};

/// Most fragments one packet is split into (at the smallest MTU pmdlb
/// accepts, 68, the largest packet a 2,048-byte mbuf holds needs 43).
pub const MAX_FRAGMENTS: usize = 64;

/// The fixed IPv4 header pmdlb splits (no options).
const IPV4_LEN: usize = ipv4::HEADER_LEN;

/// Why a frame cannot be split.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SplitError {
    /// Not an IPv4 packet with a 20-byte header whose total length the
    /// frame holds, or DF is set.
    NotSplittable,
    /// The packet fits the MTU: nothing to split.
    Fits,
    /// The MTU leaves fewer than 8 payload bytes per fragment.
    MtuTooSmall,
    /// More than [`MAX_FRAGMENTS`] fragments would be needed, or the last
    /// one's offset would pass the 13-bit field.
    TooMany,
}

/// How one frame is split: built by [`Split::plan`], then
/// [`Split::write`] for fragments `1..count()` (each into its own buffer)
/// and [`Split::first`] for fragment 0 in place, in any order (the
/// original header is kept here).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Split {
    /// Where the IPv4 header starts (the Ethernet header and tag's length).
    l3: usize,
    /// IP payload bytes of the original packet.
    payload: usize,
    /// IP payload bytes in every fragment but the last: a multiple of 8.
    chunk: usize,
    /// The original IPv4 header.
    header: [u8; IPV4_LEN],
}

impl Split {
    /// Plans the split of `frame` (Ethernet header, optional 802.1Q tag,
    /// IPv4 packet, maybe padding after it) into fragments of at most
    /// `mtu` bytes of IP each.
    pub fn plan(frame: &[u8], mtu: u16) -> Result<Split, SplitError> {
        let l3 = if frame.get(12..14) == Some(&[0x81, 0x00][..]) {
            18
        } else {
            14
        };
        let ip = frame
            .get(l3..l3 + IPV4_LEN)
            .ok_or(SplitError::NotSplittable)?;
        let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
        let frag = u16::from_be_bytes([ip[6], ip[7]]);
        if ip[0] != 0x45 || total < IPV4_LEN || frame.len() < l3 + total || frag & DF != 0 {
            return Err(SplitError::NotSplittable);
        }
        if total <= usize::from(mtu) {
            return Err(SplitError::Fits);
        }
        let chunk = usize::from(mtu).saturating_sub(IPV4_LEN) & !7;
        if chunk == 0 {
            return Err(SplitError::MtuTooSmall);
        }
        let payload = total - IPV4_LEN;
        // The last fragment's offset must still fit the 13-bit field.
        let offset = usize::from(frag & OFFSET_MASK) * 8;
        if payload.div_ceil(chunk) > MAX_FRAGMENTS || offset + payload > usize::from(u16::MAX) {
            return Err(SplitError::TooMany);
        }
        let mut header = [0u8; IPV4_LEN];
        header.copy_from_slice(ip);
        Ok(Split {
            l3,
            payload,
            chunk,
            header,
        })
    }

    /// Number of fragments (at least 2).
    #[inline]
    pub fn count(&self) -> usize {
        self.payload.div_ceil(self.chunk)
    }

    /// Payload bytes of fragment `k`.
    #[inline]
    fn payload_len(&self, k: usize) -> usize {
        self.payload.saturating_sub(k * self.chunk).min(self.chunk)
    }

    /// Frame length of fragment `k` (`k < count()`).
    #[inline]
    pub fn frame_len(&self, k: usize) -> usize {
        self.l3 + IPV4_LEN + self.payload_len(k)
    }

    /// Writes fragment `k`'s IPv4 header into `out` (20 bytes).
    fn header_of(&self, k: usize, out: &mut [u8]) {
        let h = &self.header;
        let frag = u16::from_be_bytes([h[6], h[7]]);
        let last = k + 1 == self.count();
        let offset = (frag & OFFSET_MASK) + (k * self.chunk / 8) as u16;
        let more = if last { frag & MF } else { MF };
        let total = (IPV4_LEN + self.payload_len(k)) as u16;
        out.copy_from_slice(h);
        out[2..4].copy_from_slice(&total.to_be_bytes());
        out[6..8].copy_from_slice(&((frag & !(OFFSET_MASK | MF)) | more | offset).to_be_bytes());
        out[10..12].copy_from_slice(&[0, 0]);
        let c = checksum::checksum(out);
        out[10..12].copy_from_slice(&c.to_be_bytes());
    }

    /// Writes fragment `k` (`1..count()`) of `frame` — the frame
    /// [`Split::plan`] saw, its payload untouched since — into `out`, which
    /// holds exactly [`Split::frame_len`]`(k)` bytes: the Ethernet header
    /// (and tag), the fragment's IPv4 header, its slice of the payload.
    /// `false` (nothing written) when `k` is out of range or a buffer has
    /// the wrong length.
    pub fn write(&self, frame: &[u8], k: usize, out: &mut [u8]) -> bool {
        let start = self.l3 + IPV4_LEN + k * self.chunk;
        let len = self.payload_len(k);
        let Some(data) = frame.get(start..start + len) else {
            return false;
        };
        if k == 0 || k >= self.count() || out.len() != self.frame_len(k) {
            return false;
        }
        let (l2, rest) = out.split_at_mut(self.l3);
        l2.copy_from_slice(&frame[..self.l3]);
        let (ip, body) = rest.split_at_mut(IPV4_LEN);
        self.header_of(k, ip);
        body.copy_from_slice(data);
        true
    }

    /// Turns `frame` into fragment 0 in place (its IPv4 header); returns
    /// its length, the bytes after it are to be trimmed. The payload of the
    /// later fragments is left where it is, so [`Split::write`] may still
    /// run after this.
    pub fn first(&self, frame: &mut [u8]) -> usize {
        if let Some(ip) = frame.get_mut(self.l3..self.l3 + IPV4_LEN) {
            self.header_of(0, ip);
        }
        self.frame_len(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An Ethernet frame (tagged or not) with an IPv4 packet of `total`
    /// bytes, payload bytes counting up, flags/offset `frag`.
    fn frame(total: usize, tagged: bool, frag: u16) -> Vec<u8> {
        let mut f = vec![1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2];
        if tagged {
            f.extend_from_slice(&[0x81, 0, 0x20, 7]);
        }
        f.extend_from_slice(&[0x08, 0x00]);
        let mut ip = vec![0u8; total];
        ip[0] = 0x45;
        ip[1] = 0x28;
        ip[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        ip[4..6].copy_from_slice(&[0xab, 0xcd]);
        ip[6..8].copy_from_slice(&frag.to_be_bytes());
        ip[8] = 61;
        ip[9] = 4;
        ip[12..16].copy_from_slice(&[10, 0, 1, 2]);
        ip[16..20].copy_from_slice(&[10, 9, 0, 1]);
        let c = checksum::checksum(&ip[0..20]);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        for (i, b) in ip[20..].iter_mut().enumerate() {
            *b = i as u8;
        }
        f.extend_from_slice(&ip);
        f
    }

    /// Splits `f` for `mtu`: every fragment's frame, in order.
    fn split(f: &[u8], mtu: u16) -> Vec<Vec<u8>> {
        let s = Split::plan(f, mtu).unwrap();
        let mut rest: Vec<Vec<u8>> = (1..s.count())
            .map(|k| {
                let mut out = vec![0u8; s.frame_len(k)];
                assert!(s.write(f, k, &mut out));
                out
            })
            .collect();
        let mut first = f.to_vec();
        let n = s.first(&mut first);
        first.truncate(n);
        rest.insert(0, first);
        rest
    }

    /// (offset in bytes, MF, total length) of a fragment, header checked.
    fn fields(frag: &[u8], l3: usize) -> (usize, bool, usize) {
        let ip = &frag[l3..];
        assert_eq!(checksum::checksum(&ip[0..20]), 0, "header checksum");
        let ff = u16::from_be_bytes([ip[6], ip[7]]);
        assert_eq!(ff & DF, 0);
        let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
        assert_eq!(total, ip.len(), "total length = the fragment");
        (usize::from(ff & OFFSET_MASK) * 8, ff & MF != 0, total)
    }

    #[test]
    fn two_fragments_at_1500() {
        // 1520 bytes of outer IP (a 1500-byte packet in ipip) at MTU 1500.
        let f = frame(1520, false, 0);
        let frags = split(&f, 1500);
        assert_eq!(frags.len(), 2);
        assert_eq!(fields(&frags[0], 14), (0, true, 1500));
        assert_eq!(fields(&frags[1], 14), (1480, false, 40));
        for g in &frags {
            assert_eq!(&g[..14], &f[..14], "the Ethernet header is copied");
            assert_eq!(&g[14..16], &[0x45, 0x28], "version, TOS");
            assert_eq!(&g[18..20], &[0xab, 0xcd], "one identification");
            assert_eq!(&g[22..24], &[61, 4], "TTL, protocol");
            assert_eq!(&g[26..34], &f[26..34], "addresses");
        }
        let mut payload = frags[0][34..].to_vec();
        payload.extend_from_slice(&frags[1][34..]);
        assert_eq!(payload, f[34..], "the payload reassembles");
    }

    #[test]
    fn sizes_are_eight_byte_multiples_and_fit() {
        for mtu in [68u16, 576, 1000, 1280, 1499, 1500] {
            for total in [mtu as usize + 1, 1520, 2000, 2060] {
                if total <= usize::from(mtu) {
                    continue;
                }
                for tagged in [false, true] {
                    let l3 = if tagged { 18 } else { 14 };
                    let f = frame(total, tagged, 0);
                    let frags = split(&f, mtu);
                    let mut at = 0;
                    let mut payload = Vec::new();
                    for (k, g) in frags.iter().enumerate() {
                        let (off, more, len) = fields(g, l3);
                        assert!(len <= usize::from(mtu), "{len} over MTU {mtu}");
                        assert_eq!(off, at, "offsets follow each other");
                        assert_eq!(more, k + 1 < frags.len(), "MF on all but the last");
                        if more {
                            assert_eq!((len - 20) % 8, 0, "a multiple of 8");
                            assert_eq!(len - 20, (usize::from(mtu) - 20) & !7, "full-size");
                        }
                        assert_eq!(&g[..l3], &f[..l3]);
                        at += len - 20;
                        payload.extend_from_slice(&g[l3 + 20..]);
                    }
                    assert_eq!(payload, f[l3 + 20..], "mtu {mtu} total {total}");
                }
            }
        }
    }

    #[test]
    fn a_fragment_is_split_further() {
        // Offset 100 (800 bytes) with MF: every piece keeps MF, offsets
        // continue from 800.
        let f = frame(1520, false, MF | 100);
        let frags = split(&f, 1500);
        assert_eq!(fields(&frags[0], 14), (800, true, 1500));
        assert_eq!(fields(&frags[1], 14), (800 + 1480, true, 40));
        // Without MF the last piece has none.
        let f = frame(1520, false, 100);
        assert_eq!(fields(&split(&f, 1500)[1], 14), (2280, false, 40));
    }

    #[test]
    fn padding_after_the_packet_is_ignored() {
        let mut f = frame(1520, false, 0);
        f.extend_from_slice(&[0xee; 6]);
        let frags = split(&f, 1500);
        assert_eq!(frags[1].len(), 14 + 40);
        assert_eq!(&frags[1][34..], &f[14 + 1500..14 + 1520]);
    }

    #[test]
    fn refusals() {
        let f = frame(1500, false, 0);
        assert_eq!(Split::plan(&f, 1500), Err(SplitError::Fits));
        let f = frame(1520, false, DF);
        assert_eq!(Split::plan(&f, 1500), Err(SplitError::NotSplittable));
        let mut opts = frame(1520, false, 0);
        opts[14] = 0x46;
        assert_eq!(Split::plan(&opts, 1500), Err(SplitError::NotSplittable));
        let f = frame(1520, false, 0);
        assert_eq!(
            Split::plan(&f[..1000], 1500),
            Err(SplitError::NotSplittable)
        );
        assert_eq!(Split::plan(&f[..20], 1500), Err(SplitError::NotSplittable));
        assert_eq!(Split::plan(&f, 27), Err(SplitError::MtuTooSmall));
        let big = frame(60 * 8 * 8 + 21, false, 0);
        assert_eq!(Split::plan(&big, 68), Err(SplitError::TooMany));
        let late = frame(1520, false, OFFSET_MASK);
        assert_eq!(Split::plan(&late, 1500), Err(SplitError::TooMany));
        let s = Split::plan(&f, 1500).unwrap();
        let mut out = vec![0u8; s.frame_len(1)];
        assert!(!s.write(&f, 0, &mut out), "fragment 0 is done in place");
        assert!(!s.write(&f, 2, &mut out), "out of range");
        assert!(!s.write(&f, 1, &mut out[..10]), "wrong length");
        assert!(!s.write(&f[..100], 1, &mut out), "frame cut short");
    }
}
