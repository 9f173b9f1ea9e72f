//! Frames and clients shared by the decision benches (`decide`, `swap`):
//! one burst template, client addresses and the in-place patch that turns
//! the template into client `i`'s frame.
#![allow(dead_code)]

use etherparse::PacketBuilder;

/// Frames per burst.
pub const BURST: usize = 32;
/// Bytes per frame (60: the Ethernet minimum without FCS).
pub const FRAME: usize = 60;
/// The RX NIC's MAC (frames are addressed to it).
pub const RX_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
/// The TX NIC's MAC.
pub const TX_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
/// The VIP every frame goes to.
pub const VIP: [u8; 4] = [10, 0, 0, 100];

/// A burst buffer of 32 frames to `VIP:dport` from a placeholder client.
pub fn template(dport: u16) -> Vec<[u8; FRAME]> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2([2, 0, 0, 0, 9, 9], RX_MAC)
        .ipv4([10, 1, 0, 0], VIP, 64)
        .udp(40000, dport)
        .write(&mut v, &[0u8; FRAME - 42])
        .expect("frame");
    let mut f = [0u8; FRAME];
    f.copy_from_slice(&v);
    vec![f; BURST]
}

/// Client `i`'s address (10.16.0.0/12 and up; distinct for i < 2^28).
#[inline(always)]
pub fn client(i: u32) -> u32 {
    0x0a10_0000u32.wrapping_add(i)
}

/// Writes client `ip` into a frame: destination MAC back, source address,
/// IPv4 header checksum recomputed incrementally from the template's.
#[inline(always)]
pub fn patch(f: &mut [u8; FRAME], ip: u32, base_sum: u16) {
    f[0..6].copy_from_slice(&RX_MAC);
    f[26..30].copy_from_slice(&ip.to_be_bytes());
    // RFC 1624: HC' = ~(~HC + ~m + m'); template source is 10.1.0.0.
    let old = 0x0a01u32;
    let new = (ip >> 16) + (ip & 0xffff);
    let mut s = u32::from(!base_sum) + (!old & 0xffff) + new;
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    f[24..26].copy_from_slice(&(!(s as u16)).to_be_bytes());
}

/// A fixed pseudo-random permutation step over 2^k clients (odd multiplier
/// mod 2^k visits each once per cycle, far apart in the tables).
#[inline(always)]
pub fn permute(i: u32, mask: u32) -> u32 {
    i.wrapping_mul(0x9e37_79b1) & mask
}
