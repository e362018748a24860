//! The embedded identity provider's signing keys: ES256, persisted in the data directory so
//! tokens survive restarts; rotation adds a key and keeps the old ones in the JWKS.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{Algorithm, EncodingKey};
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::jwks::SharedKeys;

/// One signing key.
pub(crate) struct SigningKey {
    pub(crate) kid: String,
    pub(crate) encoding: EncodingKey,
    jwk: Jwk,
    pkcs8: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct StoredKey {
    kid: String,
    pkcs8: String,
}

#[derive(Serialize, Deserialize)]
struct StoredKeys {
    keys: Vec<StoredKey>,
}

/// The keys, newest last; the newest signs.
pub(crate) struct KeyRing {
    path: Option<PathBuf>,
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
    /// Loads the keys at `path`, or creates one there; `None` keeps keys in memory only.
    pub(crate) fn load_or_create(path: Option<PathBuf>) -> Result<Self, Error> {
        let mut ring = Self {
            path,
            keys: Vec::new(),
            published: Arc::new(RwLock::new(JwkSet { keys: Vec::new() })),
        };
        if let Some(path) = ring.path.clone().filter(|path| path.exists()) {
            let text = std::fs::read_to_string(&path).map_err(|error| key_error(&path, error))?;
            let stored: StoredKeys =
                serde_json::from_str(&text).map_err(|error| key_error(&path, error))?;
            for key in stored.keys {
                let pkcs8 = STANDARD
                    .decode(&key.pkcs8)
                    .map_err(|error| key_error(&path, error))?;
                ring.keys.push(
                    signing_key(pkcs8, Some(key.kid)).map_err(|error| key_error(&path, error))?,
                );
            }
        }
        if ring.keys.is_empty() {
            ring.rotate()?;
        } else {
            ring.publish();
        }
        Ok(ring)
    }

    /// Adds a new signing key; older keys stay published so their tokens keep verifying.
    pub(crate) fn rotate(&mut self) -> Result<(), Error> {
        let describe = |reason: String| Error::KeyStore {
            path: self
                .path
                .as_ref()
                .map_or("(memory)".into(), |path| path.display().to_string()),
            reason,
        };
        let key = generate().map_err(describe)?;
        self.keys.push(key);
        self.save()?;
        self.publish();
        Ok(())
    }

    fn save(&self) -> Result<(), Error> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let stored = StoredKeys {
            keys: self
                .keys
                .iter()
                .map(|key| StoredKey {
                    kid: key.kid.clone(),
                    pkcs8: STANDARD.encode(&key.pkcs8),
                })
                .collect(),
        };
        let text = serde_json::to_string_pretty(&stored).map_err(|error| key_error(path, error))?;
        // Write then rename, so a crash never leaves a half-written key file.
        let temporary = path.with_extension("tmp");
        std::fs::write(&temporary, text).map_err(|error| key_error(path, error))?;
        restrict_permissions(&temporary).map_err(|error| key_error(path, error))?;
        std::fs::rename(&temporary, path).map_err(|error| key_error(path, error))
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

#[cfg(unix)]
fn restrict_permissions(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

#[cfg(not(unix))]
fn restrict_permissions(_path: &Path) -> std::io::Result<()> {
    Ok(())
}
