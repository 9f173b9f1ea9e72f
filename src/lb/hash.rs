//! Fast non-cryptographic hashing of flow keys and template keys: a
//! folded 64×64→128 multiply over the 16-byte address words. Used by the
//! connection table, the persistence table and the hashing schedulers.
//! Seeds make the tables' layouts unpredictable from outside.
#![forbid(unsafe_code)]

use crate::lb::types::{Addr, Family, FlowKey};

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

/// Hash of a whole 5-tuple with `seed`.
#[inline(always)]
pub fn hash_flow(key: &FlowKey, seed: u64) -> u64 {
    let (c0, c1) = addr_words(&key.client);
    let (v0, v1) = addr_words(&key.vip);
    let fam = match key.family {
        Family::V4 => 4u64,
        Family::V6 => 6u64,
    };
    let w = key.cport as u64 | (key.vport as u64) << 16 | (key.proto as u64) << 32 | fam << 40;
    let a = fold_mul(c0 ^ K0 ^ seed, c1 ^ K1);
    let b = fold_mul(v0 ^ K2, v1 ^ K3 ^ seed);
    fold_mul(a ^ K4, b ^ w ^ K0)
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
}
