//! Keyed hashes: `hmac-sha256:<keyId>:<hex>` tokens that let equal secrets correlate across
//! events without exposing them.

use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::Error;

/// A ring of HMAC keys: one current key that new tokens use, and older keys kept so tokens
/// made before a rotation can still be recomputed and compared.
///
/// ```
/// use audit_core::redact::HmacKeys;
///
/// let keys = HmacKeys::new("k2", b"0123456789abcdef0123456789abcdef")?
///     .with_previous("k1", b"an older key, still verifiable")?;
/// let token = keys.token(b"4111111111111111");
/// assert!(token.starts_with("hmac-sha256:k2:"));
/// assert_eq!(keys.token_with("k2", b"4111111111111111")?, token);
/// assert!(keys.token_with("k1", b"4111111111111111")?.starts_with("hmac-sha256:k1:"));
/// assert!(keys.token_with("k0", b"x").is_err());
/// # Ok::<(), audit_core::Error>(())
/// ```
///
/// Key material never appears in `Debug` output.
#[derive(Clone)]
pub struct HmacKeys {
    current: usize,
    keys: Vec<(String, Vec<u8>)>,
}

impl fmt::Debug for HmacKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HmacKeys")
            .field("current", &self.keys[self.current].0)
            .field(
                "ids",
                &self
                    .keys
                    .iter()
                    .map(|(id, _)| id.as_str())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// Shortest accepted key, in bytes.
const MIN_KEY_LEN: usize = 16;

fn check(id: &str, secret: &[u8]) -> Result<(), Error> {
    let id_ok = !id.is_empty()
        && id.len() <= 32
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !id_ok {
        return Err(Error::config(format!(
            "HMAC key id {id:?} must be 1-32 characters of letters, digits, '-' or '_'"
        )));
    }
    if secret.len() < MIN_KEY_LEN {
        return Err(Error::config(format!(
            "HMAC key {id:?} is {} bytes; use at least {MIN_KEY_LEN} random bytes",
            secret.len()
        )));
    }
    Ok(())
}

impl HmacKeys {
    /// A ring whose current key is `secret` under `id`.
    pub fn new(id: &str, secret: &[u8]) -> Result<HmacKeys, Error> {
        check(id, secret)?;
        Ok(HmacKeys {
            current: 0,
            keys: vec![(id.to_owned(), secret.to_vec())],
        })
    }

    /// Keeps an older key so its tokens stay verifiable.
    pub fn with_previous(mut self, id: &str, secret: &[u8]) -> Result<HmacKeys, Error> {
        check(id, secret)?;
        if self.keys.iter().any(|(k, _)| k == id) {
            return Err(Error::config(format!("HMAC key id {id:?} is used twice")));
        }
        self.keys.push((id.to_owned(), secret.to_vec()));
        Ok(self)
    }

    pub(crate) fn has_id(&self, key_id: &str) -> bool {
        self.keys.iter().any(|(id, _)| id == key_id)
    }

    /// The current key's id.
    pub fn current_id(&self) -> &str {
        &self.keys[self.current].0
    }

    /// The token for `value` under the current key.
    pub fn token(&self, value: &[u8]) -> String {
        let (id, secret) = &self.keys[self.current];
        compute(id, secret, value)
    }

    /// The token for `value` under the key `key_id`, to look up or compare with tokens made
    /// before a rotation. Errors when the ring has no such key.
    pub fn token_with(&self, key_id: &str, value: &[u8]) -> Result<String, Error> {
        let (id, secret) = self
            .keys
            .iter()
            .find(|(id, _)| id == key_id)
            .ok_or_else(|| {
                Error::invalid_value("HMAC key id", &format!("{key_id:?} is unknown"))
            })?;
        Ok(compute(id, secret, value))
    }
}

fn compute(id: &str, secret: &[u8], value: &[u8]) -> String {
    // HMAC takes keys of any length, so this cannot fail.
    let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(secret) else {
        return format!("hmac-sha256:{id}:");
    };
    mac.update(value);
    let digest = mac.finalize().into_bytes();
    let mut out = String::with_capacity(13 + id.len() + 1 + 64);
    out.push_str("hmac-sha256:");
    out.push_str(id);
    out.push(':');
    out.push_str(&hex::encode(digest));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_rfc_4231_test_case_2() {
        // Key "Jefe" is shorter than we accept, so check the primitive directly.
        let t = compute("t", b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            t,
            "hmac-sha256:t:5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn rejects_weak_or_malformed_keys_and_hides_them() {
        assert!(HmacKeys::new("k1", b"short").unwrap_err().is_config());
        assert!(HmacKeys::new("bad id", &[7; 32]).unwrap_err().is_config());
        let keys = HmacKeys::new("k1", b"super-secret-material!").unwrap();
        assert!(keys.clone().with_previous("k1", &[1; 32]).is_err());
        assert!(!format!("{keys:?}").contains("super-secret"));
    }
}
