//! Insert mode's cookie value: an HMAC of the member's identity, so the value names the member
//! without showing its name or address, and cannot be made for a member without the key.
//!
//! Value: the first 16 bytes of HMAC-SHA256(key, `"drover-sticky\n" + farm + "\n" + member`) in
//! lower-case hex (32 characters). It is the same for every client of a member (as HAProxy's
//! `cookie` values are), so the values are computed once per key and member when the farm is
//! built, and a request's cookie is checked by a binary search over them: no HMAC runs on the
//! request path. Key rotation: several keys are accepted; the first signs. A value made with an
//! older key is still honoured, and answered with a fresh cookie under the first key, so clients
//! move to the new key as they come back; drop the old key once `max_age` has passed.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Characters in a cookie value.
pub const TOKEN_LEN: usize = 32;

type Token = [u8; TOKEN_LEN];

/// The insert-mode cookie values of one farm's members under each key.
#[derive(Clone)]
pub struct CookieSigner {
    /// `(value, member, key)`, sorted by value.
    known: Vec<(Token, u32, u8)>,
    /// `current[m]`: member m's value under the first key.
    current: Vec<Token>,
}

impl std::fmt::Debug for CookieSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The values are not secret, but they are not interesting either.
        f.debug_struct("CookieSigner")
            .field("members", &self.current.len())
            .finish_non_exhaustive()
    }
}

impl CookieSigner {
    /// Values for `members` (their names, in farm order) under `keys` (the first signs; at least
    /// one). Keys are used as given: config checks their length.
    pub fn new<K: AsRef<[u8]>>(farm: &str, members: &[&str], keys: &[K]) -> Self {
        assert!(!keys.is_empty(), "insert mode needs a key");
        let mut known = Vec::with_capacity(members.len() * keys.len());
        let mut current = Vec::with_capacity(members.len());
        for (k, key) in keys.iter().enumerate().take(usize::from(u8::MAX)) {
            for (m, name) in members.iter().enumerate() {
                let token = token(key.as_ref(), farm, name);
                if k == 0 {
                    current.push(token);
                }
                known.push((token, m as u32, k as u8));
            }
        }
        known.sort_unstable_by_key(|a| a.0);
        CookieSigner { known, current }
    }

    /// The member a cookie value names, and whether it was made with the first (signing) key.
    /// Anything else (tampered, truncated, another farm's, a removed key's) is `None`: the same
    /// as no cookie.
    pub fn member(&self, value: &[u8]) -> Option<(usize, bool)> {
        let value: &Token = value.try_into().ok()?;
        let at = self
            .known
            .binary_search_by(|(t, _, _)| t.as_slice().cmp(value.as_slice()))
            .ok()?;
        let (_, m, k) = self.known[at];
        Some((m as usize, k == 0))
    }

    /// The value to set for member `index` (under the first key).
    pub fn value(&self, index: usize) -> &str {
        // Hex digits only: always valid UTF-8.
        std::str::from_utf8(&self.current[index]).unwrap_or_default()
    }
}

fn token(key: &[u8], farm: &str, member: &str) -> Token {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key");
    mac.update(b"drover-sticky\n");
    mac.update(farm.as_bytes());
    mac.update(b"\n");
    mac.update(member.as_bytes());
    let tag = mac.finalize().into_bytes();
    let mut out = [0u8; TOKEN_LEN];
    for (i, b) in tag[..TOKEN_LEN / 2].iter().enumerate() {
        out[2 * i] = HEX[usize::from(b >> 4)];
        out[2 * i + 1] = HEX[usize::from(b & 15)];
    }
    out
}

const HEX: &[u8; 16] = b"0123456789abcdef";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_name_members_and_survive_rotation() {
        let old = CookieSigner::new("app", &["a", "b"], &["old-key-0123456789"]);
        let new = CookieSigner::new(
            "app",
            &["a", "b"],
            &["new-key-0123456789", "old-key-0123456789"],
        );
        let a_old = old.value(0).to_owned();
        let b_new = new.value(1).to_owned();
        assert_eq!(a_old.len(), TOKEN_LEN);
        assert_ne!(old.value(0), old.value(1));
        assert_eq!(new.member(b_new.as_bytes()), Some((1, true)));
        // Signed with the key being retired: still member a, but not current.
        assert_eq!(new.member(a_old.as_bytes()), Some((0, false)));
        // After the old key is dropped, its values mean nothing.
        let newer = CookieSigner::new("app", &["a", "b"], &["new-key-0123456789"]);
        assert_eq!(newer.member(a_old.as_bytes()), None);
    }

    #[test]
    fn tampered_values_name_nobody() {
        let s = CookieSigner::new("app", &["a", "b"], &["k-0123456789abcdef"]);
        let mut v = s.value(0).as_bytes().to_vec();
        v[5] = if v[5] == b'0' { b'1' } else { b'0' };
        assert_eq!(s.member(&v), None);
        assert_eq!(s.member(&v[..TOKEN_LEN - 1]), None);
        assert_eq!(s.member(b""), None);
        assert_eq!(s.member(b"a"), None);
        // Another farm's value for a member of the same name.
        let other = CookieSigner::new("shop", &["a"], &["k-0123456789abcdef"]);
        assert_eq!(s.member(other.value(0).as_bytes()), None);
    }
}
