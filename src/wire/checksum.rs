//! The Internet checksum (RFC 1071): one's-complement sums over byte
//! strings and the IPv4/IPv6 pseudo-headers of TCP, UDP and ICMPv6.
#![forbid(unsafe_code)]

/// The 32-bit one's-complement partial sum of `data` (big-endian 16-bit
/// words, an odd final byte padded with zero). Fold with [`fold`].
#[inline]
pub fn sum(data: &[u8]) -> u32 {
    let mut acc: u64 = 0;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        acc += u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as u64;
    }
    let rest = chunks.remainder();
    let mut i = 0;
    while i + 1 < rest.len() {
        acc += u16::from_be_bytes([rest[i], rest[i + 1]]) as u64;
        i += 2;
    }
    if i < rest.len() {
        acc += (rest[i] as u64) << 8;
    }
    // Fold 64 → 32 bits keeping the carries.
    let acc = (acc & 0xffff_ffff) + (acc >> 32);
    let acc = (acc & 0xffff_ffff) + (acc >> 32);
    acc as u32
}

/// Adds two partial sums.
#[inline]
pub fn add(a: u32, b: u32) -> u32 {
    let (s, carry) = a.overflowing_add(b);
    s + carry as u32
}

/// Folds a partial sum to 16 bits (not complemented).
#[inline]
pub fn fold(mut s: u32) -> u16 {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

/// The checksum field value for `data`: the complement of its folded sum.
#[inline]
pub fn checksum(data: &[u8]) -> u16 {
    !fold(sum(data))
}

/// The partial sum of the IPv4 pseudo-header.
#[inline]
pub fn pseudo_v4(src: &[u8; 4], dst: &[u8; 4], proto: u8, len: u16) -> u32 {
    add(add(sum(src), sum(dst)), proto as u32 + len as u32)
}

/// The partial sum of the IPv6 pseudo-header.
#[inline]
pub fn pseudo_v6(src: &[u8; 16], dst: &[u8; 16], next_header: u8, len: u32) -> u32 {
    let s = add(sum(src), sum(dst));
    add(add(s, len >> 16), add(len & 0xffff, next_header as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3 example: sum of 0001 f203 f4f5 f6f7 is ddf2.
        let d = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(&d)), 0xddf2);
        assert_eq!(checksum(&d), !0xddf2);
    }

    #[test]
    fn odd_lengths_and_empty() {
        assert_eq!(sum(&[]), 0);
        assert_eq!(fold(sum(&[0xab])), 0xab00);
        assert_eq!(fold(sum(&[0x12, 0x34, 0x56])), 0x1234 + 0x5600);
        for n in 0..16 {
            let d: Vec<u8> = (0..n as u8).map(|x| x.wrapping_mul(37)).collect();
            // Word-by-word reference.
            let mut r: u32 = 0;
            for w in d.chunks(2) {
                r += u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)]) as u32;
            }
            assert_eq!(fold(sum(&d)), fold(r));
        }
    }

    #[test]
    fn ipv4_header_checksum() {
        // A real IPv4 header with checksum 0xb1e6.
        let h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(fold(sum(&h)), 0xffff);
        let mut z = h;
        z[10] = 0;
        z[11] = 0;
        assert_eq!(checksum(&z), 0xb861);
    }

    #[test]
    fn pseudo_headers() {
        let s = pseudo_v4(&[10, 0, 0, 1], &[10, 0, 0, 2], 6, 20);
        assert_eq!(fold(s), 0x0a00 + 0x0001 + 0x0a00 + 0x0002 + 6 + 20);
        let s6 = pseudo_v6(&[0; 16], &[0; 16], 58, 0x1_0002);
        assert_eq!(fold(s6), 1 + 2 + 58);
    }
}
