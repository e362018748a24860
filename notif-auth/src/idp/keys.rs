//! The embedded identity provider's signing keys: ES256, kept in the store (the
//! `IdentityStore` port) so tokens survive restarts and every node of a cluster signs with the
//! same keys; rotation adds a key and keeps the old ones in the JWKS. Key files an earlier
//! version wrote in the data directory are moved into the store.

use std::path::Path;
use std::sync::{Arc, RwLock};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{Algorithm, EncodingKey};
use notif_core::ports::StoredSigningKey;
use serde::Deserialize;

use crate::error::Error;
use crate::jwks::SharedKeys;

/// One signing key.
pub(crate) struct SigningKey {
    pub(crate) kid: String,
    pub(crate) encoding: EncodingKey,
    jwk: Jwk,
    pkcs8: Vec<u8>,
}

#[derive(Deserialize)]
struct StoredKey {
    kid: String,
    pkcs8: String,
}

#[derive(Deserialize)]
struct StoredKeys {
    keys: Vec<StoredKey>,
}

/// The keys, newest last; the newest signs.
pub(crate) struct KeyRing {
    keys: Vec<SigningKey>,
    published: SharedKeys,
}

fn key_error(path: &Path, reason: impl ToString) -> Error {
    Error::KeyStore {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

fn signing_key(pkcs8: Vec<u8>, kid: Option<String>) -> Result<SigningKey, String> {
    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8)
        .map_err(|error| error.to_string())?;
    let encoding = EncodingKey::from_ec_der(&pkcs8);
    let mut jwk =
        Jwk::from_encoding_key(&encoding, Algorithm::ES256).map_err(|error| error.to_string())?;
    let kid = match kid {
        Some(kid) => kid,
        None => {
            let mut thumbprint = jwk
                .thumbprint(ThumbprintHash::SHA256)
                .map_err(|error| error.to_string())?;
            thumbprint.truncate(16);
            thumbprint
        }
    };
    jwk.common.key_id = Some(kid.clone());
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    Ok(SigningKey {
        kid,
        encoding,
        jwk,
        pkcs8,
    })
}

fn generate() -> Result<SigningKey, String> {
    let document =
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
            .map_err(|error| error.to_string())?;
    signing_key(document.as_ref().to_vec(), None)
}

impl KeyRing {
    /// The ring of `stored` keys (oldest first), published.
    pub(crate) fn from_stored(stored: Vec<StoredSigningKey>) -> Result<Self, Error> {
        let ring = Self {
            keys: stored
                .into_iter()
                .map(|key| {
                    let kid = key.kid.clone();
                    signing_key(key.pkcs8, Some(key.kid)).map_err(|reason| Error::KeyStore {
                        path: format!("stored key {kid}"),
                        reason,
                    })
                })
                .collect::<Result<_, _>>()?,
            published: Arc::new(RwLock::new(JwkSet { keys: Vec::new() })),
        };
        ring.publish();
        Ok(ring)
    }

    /// Replaces the keys with `stored` (after a rotation), keeping the published set shared
    /// with verifiers.
    pub(crate) fn replace(&mut self, stored: Vec<StoredSigningKey>) -> Result<(), Error> {
        let fresh = Self::from_stored(stored)?;
        self.keys = fresh.keys;
        self.publish();
        Ok(())
    }

    fn publish(&self) {
        let keys = self.keys.iter().map(|key| key.jwk.clone()).collect();
        if let Ok(mut published) = self.published.write() {
            *published = JwkSet { keys };
        }
    }

    /// The key that signs new tokens.
    pub(crate) fn current(&self) -> Option<&SigningKey> {
        self.keys.last()
    }

    /// The published keys, shared with verifiers.
    pub(crate) fn published(&self) -> SharedKeys {
        Arc::clone(&self.published)
    }
}

/// A new signing key, as the store keeps it.
pub(crate) fn new_stored_key() -> Result<StoredSigningKey, Error> {
    let key = generate().map_err(|reason| Error::KeyStore {
        path: "(new key)".into(),
        reason,
    })?;
    Ok(StoredSigningKey {
        kid: key.kid,
        pkcs8: key.pkcs8,
    })
}

/// The keys of a key file an earlier version kept in the data directory, to move into the
/// store; none when there is no file.
pub(crate) fn legacy_keys(path: &Path) -> Result<Vec<StoredSigningKey>, Error> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let text = std::fs::read_to_string(path).map_err(|error| key_error(path, error))?;
    let stored: StoredKeys = serde_json::from_str(&text).map_err(|error| key_error(path, error))?;
    stored
        .keys
        .into_iter()
        .map(|key| {
            let pkcs8 = STANDARD
                .decode(&key.pkcs8)
                .map_err(|error| key_error(path, error))?;
            // Checked now, so a bad file is named rather than a bad stored key later.
            signing_key(pkcs8.clone(), Some(key.kid.clone()))
                .map_err(|error| key_error(path, error))?;
            Ok(StoredSigningKey {
                kid: key.kid,
                pkcs8,
            })
        })
        .collect()
}
