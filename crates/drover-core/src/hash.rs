//! Stable 64-bit hashing of request keys (client address, header or cookie value) for the `hash`
//! policy. Stable across processes and builds, so every node of a cluster maps a key to the same
//! member; that rules out std's randomly keyed `DefaultHasher`.

/// FNV-1a over the bytes, then a splitmix64 finaliser so nearby keys spread over the whole ring.
pub fn hash_key(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix(h)
}

/// splitmix64's finaliser.
#[inline]
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_and_spread() {
        assert_eq!(hash_key(b"10.0.0.1"), hash_key(b"10.0.0.1"));
        assert_ne!(hash_key(b"10.0.0.1"), hash_key(b"10.0.0.2"));
        // Known value pins the algorithm: changing it would remap every sticky client.
        assert_eq!(hash_key(b""), mix(0xcbf2_9ce4_8422_2325));
    }
}
