//! RFC 8292 VAPID: the application server's P-256 key and the ES256 JWT that names the push
//! resource's origin as its audience, signed with jsonwebtoken on aws-lc-rs.

use aws_lc_rs::agreement::{self, ECDH_P256};
use aws_lc_rs::encoding::AsBigEndian as _;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;

/// A P-256 key: its 32-byte private scalar, and its public key as an uncompressed point.
#[derive(Clone, PartialEq, Eq)]
pub struct P256Key {
    /// The private scalar, big-endian (VAPID private keys and `p256dh` private keys are
    /// exchanged in this form).
    pub private_key: Vec<u8>,
    /// The uncompressed public point (65 bytes): the VAPID `k` and the `p256dh` key.
    pub public_key: Vec<u8>,
}

impl std::fmt::Debug for P256Key {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("P256Key")
            .field("public_key", &URL_SAFE_NO_PAD.encode(&self.public_key))
            .finish_non_exhaustive()
    }
}

impl P256Key {
    /// A new random key.
    ///
    /// # Panics
    /// Only if the system's random source fails, which nothing can recover from.
    pub fn generate() -> Self {
        agreement::PrivateKey::generate(&ECDH_P256)
            .and_then(|key| {
                let scalar: aws_lc_rs::encoding::EcPrivateKeyBin<'_> = key.as_be_bytes()?;
                Self::from_private_key(scalar.as_ref()).map_err(|_| aws_lc_rs::error::Unspecified)
            })
            .expect("the system random source works")
    }

    /// The key whose private scalar is `private_key`.
    ///
    /// # Errors
    /// When `private_key` is not a 32-byte P-256 scalar.
    pub fn from_private_key(private_key: &[u8]) -> Result<Self, String> {
        let key = agreement::PrivateKey::from_private_key(&ECDH_P256, private_key)
            .map_err(|error| format!("not a P-256 private key: {error}"))?;
        let public_key = key
            .compute_public_key()
            .map_err(|error| format!("not a P-256 private key: {error}"))?;
        Ok(Self {
            private_key: private_key.to_vec(),
            public_key: public_key.as_ref().to_vec(),
        })
    }
}

/// The application server's VAPID identity: its key and its contact.
pub(crate) struct Vapid {
    signing_key: EncodingKey,
    public_key: String,
    subject: String,
}

#[derive(Serialize)]
struct Claims<'a> {
    aud: &'a str,
    exp: u64,
    sub: &'a str,
}

impl Vapid {
    /// The identity of `key` with contact `subject` (`mailto:` or `https:`).
    pub(crate) fn new(key: &P256Key, subject: String) -> Result<Self, String> {
        let pair = EcdsaKeyPair::from_private_key_and_public_key(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            &key.private_key,
            &key.public_key,
        )
        .map_err(|error| format!("not a P-256 key pair: {error}"))?;
        let pkcs8 = pair
            .to_pkcs8v1()
            .map_err(|error| format!("encoding the key: {error}"))?;
        Ok(Self {
            signing_key: EncodingKey::from_ec_der(pkcs8.as_ref()),
            public_key: URL_SAFE_NO_PAD.encode(&key.public_key),
            subject,
        })
    }

    /// The `Authorization` header value (RFC 8292 §3: `vapid t=<JWT>, k=<public key>`) for a
    /// push to `endpoint`, valid until `expires_at` (seconds since the Unix epoch; at most 24
    /// hours ahead).
    pub(crate) fn authorization(
        &self,
        endpoint: &url::Url,
        expires_at: u64,
    ) -> Result<String, String> {
        // RFC 8292 §2: `aud` is the origin of the push resource (RFC 6454): scheme, host and
        // any non-default port.
        let audience = endpoint.origin().ascii_serialization();
        let claims = Claims {
            aud: &audience,
            exp: expires_at,
            sub: &self.subject,
        };
        let token =
            jsonwebtoken::encode(&Header::new(Algorithm::ES256), &claims, &self.signing_key)
                .map_err(|error| format!("signing the VAPID token: {error}"))?;
        Ok(format!("vapid t={token}, k={}", self.public_key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(authorization: &str) -> serde_json::Value {
        let token = authorization
            .strip_prefix("vapid t=")
            .and_then(|rest| rest.split_once(", k="))
            .map(|(token, _)| token)
            .unwrap();
        let payload = token.split('.').nth(1).unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
    }

    #[test]
    fn audience_is_the_origin_with_its_port() {
        let vapid = Vapid::new(&P256Key::generate(), "mailto:ops@example.com".into()).unwrap();
        let on_port = url::Url::parse("http://127.0.0.1:37801/push/x").unwrap();
        let claims_on_port = claims(&vapid.authorization(&on_port, 1_000).unwrap());
        assert_eq!(claims_on_port["aud"], "http://127.0.0.1:37801");
        assert_eq!(claims_on_port["exp"], 1_000);
        assert_eq!(claims_on_port["sub"], "mailto:ops@example.com");
        let default_port = url::Url::parse("https://push.example.net:443/a/b?c").unwrap();
        assert_eq!(
            claims(&vapid.authorization(&default_port, 1_000).unwrap())["aud"],
            "https://push.example.net"
        );
    }

    #[test]
    fn the_key_round_trips_through_its_private_scalar() {
        let key = P256Key::generate();
        assert_eq!(key.private_key.len(), 32);
        assert_eq!(key.public_key.len(), 65);
        assert_eq!(P256Key::from_private_key(&key.private_key).unwrap(), key);
        assert!(P256Key::from_private_key(&[1; 5]).is_err());
    }
}
