//! Fast non-cryptographic hashing of flow keys and template keys: a
//! folded 64×64→128 multiply over the 16-byte address words. Used by the
//! connection table, the persistence table and the hashing schedulers.
//! Seeds make the tables' layouts unpredictable from outside.
#![forbid(unsafe_code)]

use crate::lb::types::{Addr, FlowKey};

const K0: u64 = 0xa076_1d64_78bd_642f;
const K1: u64 = 0xe703_7ed1_a0b4_28db;
const K2: u64 = 0x8ebc_6af0_9c88_c6e3;
const K3: u64 = 0x5899_65cc_7537_4cc3;
const K4: u64 = 0x1d8e_4e27_c47d_124f;

/// Multiply two words into 128 bits and fold the halves together.
#[inline(always)]
pub fn fold_mul(a: u64, b: u64) -> u64 {
    let r = (a as u128).wrapping_mul(b as u128);
    (r as u64) ^ ((r >> 64) as u64)
}

/// The two 64-bit words of an address.
#[inline(always)]
pub fn addr_words(a: &Addr) -> (u64, u64) {
    let lo = u64::from_le_bytes([
        a.0[0], a.0[1], a.0[2], a.0[3], a.0[4], a.0[5], a.0[6], a.0[7],
    ]);
    let hi = u64::from_le_bytes([
        a.0[8], a.0[9], a.0[10], a.0[11], a.0[12], a.0[13], a.0[14], a.0[15],
    ]);
    (lo, hi)
}

/// Hash of a whole 5-tuple with `seed`: two multiplies for an IPv4 flow
/// (its key is two words), one more for the rest of an IPv6 flow's
/// addresses.
#[inline(always)]
pub fn hash_flow(key: &FlowKey, seed: u64) -> u64 {
    let (addrs, tail, wide) = key.words();
    let a = fold_mul(addrs ^ K0 ^ seed, tail ^ K1);
    let b = match wide {
        None => 0,
        Some(w) => fold_mul(w[0] ^ K2 ^ seed, w[1] ^ K3) ^ w[2],
    };
    fold_mul(a ^ K4, b ^ K2 ^ seed)
}

/// Hash of an address and a 32-bit extra word (service id, port) with `seed`.
#[inline(always)]
pub fn hash_addr(addr: &Addr, extra: u64, seed: u64) -> u64 {
    let (a0, a1) = addr_words(addr);
    let a = fold_mul(a0 ^ K0 ^ seed, a1 ^ K1);
    fold_mul(a ^ K2, extra ^ K3)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn distinct_keys_distinct_hashes() {
        let mut seen = std::collections::HashSet::new();
        for i in 0..10_000u32 {
            let a = Addr::v4(i.to_be_bytes());
            seen.insert(hash_addr(&a, 7, 1));
        }
        assert_eq!(seen.len(), 10_000);
        // low bits are well mixed too
        let mut low = std::collections::HashSet::new();
        for i in 0..4096u32 {
            low.insert(hash_addr(&Addr::v4(i.to_be_bytes()), 0, 0) & 0xffff);
        }
        assert!(low.len() > 3900);
    }

    #[test]
    fn flows_differing_in_any_field_hash_apart() {
        use crate::lb::types::{ip_proto, Family};
        let mut keys = std::collections::HashSet::new();
        let mut seen = std::collections::HashSet::new();
        let mut low = std::collections::HashSet::new();
        for i in 0..2048u32 {
            let c = Addr::v4((0x0a00_0000 + i).to_be_bytes());
            let c6 = Addr::v6((0x2001_0db8_u128 << 96 | i as u128).to_be_bytes());
            let vip = Addr::v4([10, 0, 0, 1]);
            let vip6 = Addr::v6((0x2001_0db8_u128 << 96 | 0x64).to_be_bytes());
            for k in [
                FlowKey::new(Family::V4, ip_proto::TCP, c, 40000, vip, 80),
                FlowKey::new(Family::V4, ip_proto::UDP, c, 40000, vip, 80),
                FlowKey::new(Family::V4, ip_proto::TCP, vip, 40000, c, 80),
                FlowKey::new(Family::V4, ip_proto::TCP, vip, i as u16, vip, 80),
                FlowKey::new(Family::V4, ip_proto::TCP, vip, 40000, vip, i as u16),
                FlowKey::new(Family::V6, ip_proto::TCP, c6, 40000, vip6, 80),
                FlowKey::new(Family::V6, ip_proto::TCP, vip6, 40000, c6, 80),
            ] {
                if !keys.insert(k) {
                    continue;
                }
                let h = hash_flow(&k, 0x1234);
                seen.insert(h);
                // the bits the connection table uses: home line and tag
                low.insert(h & 0xffff);
            }
        }
        assert_eq!(seen.len(), keys.len(), "no two flows hash alike");
        // n keys in 2^16 values fill 2^16 (1 - e^(-n / 2^16)) of them when
        // the low bits are uniform
        let n = keys.len() as f64;
        let uniform = 65536.0 * (1.0 - (-n / 65536.0).exp());
        assert!(
            low.len() as f64 > 0.97 * uniform,
            "{} of {uniform}",
            low.len()
        );
    }
}
