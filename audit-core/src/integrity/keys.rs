//! Checkpoint keys: the Ed25519 key an auditor signs with, and the public keys a verifier
//! trusts.

use std::fmt;
use std::path::Path;

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::spki::{DecodePublicKey, EncodePublicKey};
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::Error;

/// A key's id: the first 16 hex digits of the SHA-256 of its 32-byte public key.
fn key_id(public: &VerifyingKey) -> String {
    hex::encode(&Sha256::digest(public.as_bytes())[..8])
}

/// The private key that signs checkpoints. Its `Debug` shows the key id only.
///
/// ```
/// use audit_core::integrity::CheckpointKey;
///
/// let key = CheckpointKey::generate().unwrap();
/// let pem = key.to_pkcs8_pem();
/// let again = CheckpointKey::from_pkcs8_pem(&pem).unwrap();
/// assert_eq!(again.key_id(), key.key_id());
/// assert_eq!(key.key_id().len(), 16);
/// ```
#[derive(Clone)]
pub struct CheckpointKey {
    key: SigningKey,
    id: String,
}

impl CheckpointKey {
    /// A fresh key from the operating system's random source.
    pub fn generate() -> Result<CheckpointKey, Error> {
        let mut seed = zeroize::Zeroizing::new([0u8; 32]);
        getrandom::fill(seed.as_mut())
            .map_err(|e| Error::config(format!("no random source for a checkpoint key: {e}")))?;
        Ok(CheckpointKey::from_signing_key(SigningKey::from_bytes(
            &seed,
        )))
    }

    fn from_signing_key(key: SigningKey) -> CheckpointKey {
        let id = key_id(&key.verifying_key());
        CheckpointKey { key, id }
    }

    /// Reads a PKCS#8 PEM private key (`-----BEGIN PRIVATE KEY-----`, as written by
    /// `openssl genpkey -algorithm ed25519`).
    pub fn from_pkcs8_pem(pem: &str) -> Result<CheckpointKey, Error> {
        SigningKey::from_pkcs8_pem(pem)
            .map(CheckpointKey::from_signing_key)
            .map_err(|e| Error::config(format!("not an Ed25519 PKCS#8 PEM private key: {e}")))
    }

    /// Reads [`from_pkcs8_pem`](Self::from_pkcs8_pem) from a file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<CheckpointKey, Error> {
        let path = path.as_ref();
        let pem = zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
            Error::config(format!(
                "cannot read checkpoint key {}: {e}",
                path.display()
            ))
        })?);
        CheckpointKey::from_pkcs8_pem(&pem)
    }

    /// The private key as PKCS#8 PEM, to store it (keep the file `0600`).
    pub fn to_pkcs8_pem(&self) -> String {
        match self.key.to_pkcs8_pem(LineEnding::LF) {
            Ok(pem) => pem.to_string(),
            // Encoding a valid 32-byte key into a fixed structure has no failing case.
            Err(e) => unreachable!("PKCS#8 encoding of an Ed25519 key failed: {e}"),
        }
    }

    /// The key id that checkpoints signed with this key carry.
    pub fn key_id(&self) -> &str {
        &self.id
    }

    /// The public half, to publish.
    pub fn public_key(&self) -> PublicKey {
        PublicKey {
            key: self.key.verifying_key(),
            id: self.id.clone(),
        }
    }

    /// The signature of `message`, as 128 lowercase hex digits.
    pub(crate) fn sign_hex(&self, message: &[u8]) -> String {
        hex::encode(self.key.sign(message).to_bytes())
    }
}

impl fmt::Debug for CheckpointKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CheckpointKey")
            .field("key_id", &self.id)
            .finish_non_exhaustive()
    }
}

/// A public checkpoint key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    key: VerifyingKey,
    id: String,
}

impl PublicKey {
    /// Reads a `-----BEGIN PUBLIC KEY-----` PEM block (SubjectPublicKeyInfo).
    pub fn from_pem(pem: &str) -> Result<PublicKey, Error> {
        let key = VerifyingKey::from_public_key_pem(pem)
            .map_err(|e| Error::config(format!("not an Ed25519 public key PEM: {e}")))?;
        Ok(PublicKey::from_verifying_key(key))
    }

    /// Reads the 32-byte public key as 64 hex digits.
    pub fn from_hex(hex_key: &str) -> Result<PublicKey, Error> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(hex_key, &mut bytes)
            .map_err(|_| Error::config("an Ed25519 public key is 64 hex digits"))?;
        let key = VerifyingKey::from_bytes(&bytes)
            .map_err(|e| Error::config(format!("not an Ed25519 public key: {e}")))?;
        Ok(PublicKey::from_verifying_key(key))
    }

    fn from_verifying_key(key: VerifyingKey) -> PublicKey {
        let id = key_id(&key);
        PublicKey { key, id }
    }

    /// The key id (see [`CheckpointKey::key_id`]).
    pub fn key_id(&self) -> &str {
        &self.id
    }

    /// The 32-byte key as 64 hex digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.key.as_bytes())
    }

    /// The key as a `PUBLIC KEY` PEM block.
    pub fn to_pem(&self) -> String {
        match self.key.to_public_key_pem(LineEnding::LF) {
            Ok(pem) => pem,
            Err(e) => unreachable!("SPKI encoding of an Ed25519 key failed: {e}"),
        }
    }

    /// True when `signature_hex` (128 hex digits) is this key's signature of `message`.
    pub fn verify_hex(&self, message: &[u8], signature_hex: &str) -> bool {
        let mut bytes = [0u8; 64];
        if hex::decode_to_slice(signature_hex, &mut bytes).is_err() {
            return false;
        }
        self.key
            .verify(message, &Signature::from_bytes(&bytes))
            .is_ok()
    }
}

/// One key in a keyring's JSON form.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct KeyEntry {
    key_id: String,
    algorithm: String,
    /// The raw 32-byte key, hex.
    public_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pem: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct KeyringJson {
    keys: Vec<KeyEntry>,
}

/// The public keys a verifier trusts, by key id. Old keys stay in it after a rotation so the
/// checkpoints they signed stay verifiable.
///
/// Its JSON form (`GET /api/audit/keys`, the demo's `audit-keys.json`, `audit verify --keys`):
/// `{"keys": [{"keyId": "…", "algorithm": "Ed25519", "publicKey": "<64 hex digits>",
/// "pem": "-----BEGIN PUBLIC KEY-----…"}]}`. [`Keyring::parse`] also takes PEM blocks.
///
/// ```
/// use audit_core::integrity::{CheckpointKey, Keyring};
///
/// let key = CheckpointKey::generate().unwrap();
/// let mut ring = Keyring::default();
/// ring.add(key.public_key());
/// let back = Keyring::parse(&ring.to_json()).unwrap();
/// assert!(back.get(key.key_id()).is_some());
/// let from_pem = Keyring::parse(&key.public_key().to_pem()).unwrap();
/// assert_eq!(from_pem.len(), 1);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keyring {
    keys: Vec<PublicKey>,
}

impl Keyring {
    /// Adds a key (a key already present is kept once).
    pub fn add(&mut self, key: PublicKey) {
        if self.get(key.key_id()).is_none() {
            self.keys.push(key);
        }
    }

    /// The key with this id.
    pub fn get(&self, key_id: &str) -> Option<&PublicKey> {
        self.keys.iter().find(|k| k.id == key_id)
    }

    /// The keys, in the order added.
    pub fn keys(&self) -> &[PublicKey] {
        &self.keys
    }

    /// How many keys it holds.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when it holds none.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The JSON form (see the type's docs).
    pub fn to_json(&self) -> String {
        let json = KeyringJson {
            keys: self
                .keys
                .iter()
                .map(|k| KeyEntry {
                    key_id: k.id.clone(),
                    algorithm: "Ed25519".into(),
                    public_key: k.to_hex(),
                    pem: Some(k.to_pem()),
                })
                .collect(),
        };
        match serde_json::to_string_pretty(&json) {
            Ok(s) => s,
            Err(e) => unreachable!("a keyring of strings always serialises: {e}"),
        }
    }

    /// Reads the JSON form, or one or more `PUBLIC KEY` PEM blocks. A JSON entry whose key id
    /// does not match its key is refused.
    pub fn parse(text: &str) -> Result<Keyring, Error> {
        let mut ring = Keyring::default();
        if text.trim_start().starts_with('{') {
            let json: KeyringJson = serde_json::from_str(text)
                .map_err(|e| Error::config(format!("not a keyring: {e}")))?;
            for entry in json.keys {
                if entry.algorithm != "Ed25519" {
                    return Err(Error::config(format!(
                        "key {} has algorithm {:?}; only Ed25519 is supported",
                        entry.key_id, entry.algorithm
                    )));
                }
                let key = PublicKey::from_hex(&entry.public_key)?;
                if key.id != entry.key_id {
                    return Err(Error::config(format!(
                        "key id {:?} does not match its key (whose id is {})",
                        entry.key_id, key.id
                    )));
                }
                ring.add(key);
            }
            return Ok(ring);
        }
        const BEGIN: &str = "-----BEGIN PUBLIC KEY-----";
        const END: &str = "-----END PUBLIC KEY-----";
        let mut rest = text;
        while let Some(start) = rest.find(BEGIN) {
            let block = &rest[start..];
            let end = block
                .find(END)
                .ok_or_else(|| Error::config("a PUBLIC KEY PEM block has no END line"))?;
            ring.add(PublicKey::from_pem(&block[..end + END.len()])?);
            rest = &block[end + END.len()..];
        }
        if ring.is_empty() {
            return Err(Error::config(
                "no keys found: expected a JSON keyring or PUBLIC KEY PEM blocks",
            ));
        }
        Ok(ring)
    }

    /// Reads [`parse`](Self::parse) from a file.
    pub fn load(path: impl AsRef<Path>) -> Result<Keyring, Error> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::config(format!("cannot read keyring {}: {e}", path.display())))?;
        Keyring::parse(&text)
    }
}
