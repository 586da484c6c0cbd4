//! The cluster's shared secret and the keys derived from it.
//!
//! Every batch and every stored state carries an HMAC-SHA256 tag under a key
//! derived (HKDF-SHA256) from `--cluster-secret-file`, the cluster's name and
//! what the key is for, so a tag made for one cluster, or for a batch, is no
//! good for another cluster or for a state. The batch's tag covers its
//! sender id and sequence number; the subscriber refuses a sequence it has
//! already seen from that sender (a replay).
//!
//! Without a secret the same derivation runs on an empty one: the tags then
//! only detect corruption (anyone can compute them), and a batch says it is
//! unsigned, so an instance with a secret refuses it as such.
//!
//! Guarantees: the secret is read once, never printed (`Debug` is
//! redacted), compared only through `ring::hmac::verify` (constant time).

use ring::{hkdf, hmac};
use std::fmt;
use std::path::Path;

/// Shortest secret accepted, in bytes.
pub const MIN_SECRET_LEN: usize = 16;
/// Length of a tag.
pub const TAG_LEN: usize = 32;

/// The cluster's shared secret, as read from its file.
#[derive(Clone)]
pub struct Secret(Box<[u8]>);

impl Secret {
    /// The secret in `bytes` (a file's contents): surrounding whitespace and
    /// line ends are not part of it; at least [`MIN_SECRET_LEN`] bytes.
    pub fn new(bytes: &[u8]) -> Result<Secret, String> {
        let s = bytes.trim_ascii();
        if s.len() < MIN_SECRET_LEN {
            return Err(format!(
                "the cluster secret must be at least {MIN_SECRET_LEN} bytes (e.g. `head -c 32 /dev/urandom | base64 > FILE`)"
            ));
        }
        Ok(Secret(s.into()))
    }

    /// Read `path` once.
    pub fn read(path: &Path) -> Result<Secret, String> {
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Secret::new(&bytes).map_err(|e| format!("{}: {e}", path.display()))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl PartialEq for Secret {
    /// Constant time in the contents: the time taken depends only on the
    /// lengths, not on where the secrets differ.
    fn eq(&self, other: &Secret) -> bool {
        let (a, b) = (&self.0, &other.0);
        let mut diff = u8::from(a.len() != b.len());
        for (i, &x) in a.iter().enumerate() {
            diff |= x ^ b.get(i).copied().unwrap_or(!x);
        }
        // Keep the fold from being turned into an early exit.
        std::hint::black_box(diff) == 0
    }
}

impl Eq for Secret {}

/// What a tag is for: each purpose has its own key.
const BATCH_INFO: &[u8] = b"shoal cluster batch v2";
const STATE_INFO: &[u8] = b"shoal cluster state v2";
const SALT: &[u8] = b"shoal cluster";

/// The keys one instance signs and checks with.
#[derive(Clone)]
pub struct Keys {
    batch: hmac::Key,
    state: hmac::Key,
    signed: bool,
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keys")
            .field("signed", &self.signed)
            .finish_non_exhaustive()
    }
}

fn derive(prk: &hkdf::Prk, what: &[u8], cluster: &str) -> hmac::Key {
    let info = [what, cluster.as_bytes()];
    // Expansion fails only for outputs longer than 255 hash lengths; a
    // 32-byte HMAC key is one.
    match prk.expand(&info, hmac::HMAC_SHA256) {
        Ok(okm) => hmac::Key::from(okm),
        Err(_) => hmac::Key::new(hmac::HMAC_SHA256, what),
    }
}

impl Keys {
    /// The keys of cluster `cluster` under `secret` (`None`: unsigned).
    pub fn derive(secret: Option<&Secret>, cluster: &str) -> Keys {
        let ikm = secret.map_or(&[][..], |s| &s.0);
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, SALT).extract(ikm);
        Keys {
            batch: derive(&prk, BATCH_INFO, cluster),
            state: derive(&prk, STATE_INFO, cluster),
            signed: secret.is_some(),
        }
    }

    /// Whether the keys come from a secret.
    pub fn signed(&self) -> bool {
        self.signed
    }

    /// The tag of a batch's bytes.
    pub fn sign_batch(&self, bytes: &[u8]) -> [u8; TAG_LEN] {
        tag(&self.batch, bytes)
    }

    /// Whether `tag` is the tag of a batch's bytes (constant time).
    pub fn verify_batch(&self, bytes: &[u8], tag: &[u8]) -> bool {
        hmac::verify(&self.batch, bytes, tag).is_ok()
    }

    pub fn sign_state(&self, bytes: &[u8]) -> [u8; TAG_LEN] {
        tag(&self.state, bytes)
    }

    pub fn verify_state(&self, bytes: &[u8], tag: &[u8]) -> bool {
        hmac::verify(&self.state, bytes, tag).is_ok()
    }
}

fn tag(key: &hmac::Key, bytes: &[u8]) -> [u8; TAG_LEN] {
    let mut out = [0u8; TAG_LEN];
    out.copy_from_slice(hmac::sign(key, bytes).as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(s: &str) -> Secret {
        Secret::new(s.as_bytes()).unwrap()
    }

    #[test]
    fn secrets_are_trimmed_checked_and_never_printed() {
        let s = secret("  0123456789abcdef\n");
        assert_eq!(&*s.0, b"0123456789abcdef");
        assert!(Secret::new(b"short\n").is_err());
        assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
        assert!(!format!("{:?}", Keys::derive(Some(&s), "x")).contains("0123"));
        assert_eq!(s, secret("0123456789abcdef"));
        assert_ne!(s, secret("0123456789abcdeF"));
    }

    #[test]
    fn keys_differ_by_secret_cluster_and_purpose() {
        let a = Keys::derive(Some(&secret("0123456789abcdef")), "t");
        let t = a.sign_batch(b"batch");
        assert!(a.verify_batch(b"batch", &t));
        assert!(!a.verify_batch(b"batcH", &t));
        assert!(!a.verify_batch(b"batch", &t[..16]), "a truncated tag");
        assert!(!a.verify_state(b"batch", &t), "a batch tag is no state tag");
        let other = Keys::derive(Some(&secret("0123456789abcdeX")), "t");
        assert!(!other.verify_batch(b"batch", &t), "another secret");
        let name = Keys::derive(Some(&secret("0123456789abcdef")), "u");
        assert!(!name.verify_batch(b"batch", &t), "another cluster");
        let none = Keys::derive(None, "t");
        assert!(!none.signed() && a.signed());
        assert!(!none.verify_batch(b"batch", &t), "no secret");
        assert!(!a.verify_batch(b"batch", &none.sign_batch(b"batch")));
    }

    /// RFC 4231 test case 2 through the same primitive, so the tag is the
    /// standard HMAC-SHA256 (the derivation on top is ring's RFC 5869 HKDF).
    #[test]
    fn hmac_sha256_matches_rfc_4231() {
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"Jefe");
        let got = tag(&key, b"what do ya want for nothing?");
        let want = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
        let hex: String = got.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, want);
    }
}
