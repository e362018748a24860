//! A test signing key and token factory.

use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use notif_auth::{Claims, DEFAULT_LEEWAY, JwtVerifier, KeySource, TrustedIssuer};

pub(crate) const ISSUER: &str = "https://login.test/tenant/v2.0";
pub(crate) const AUDIENCE: &str = "api://notif";

pub(crate) struct TestKey {
    pub(crate) kid: String,
    pub(crate) encoding: EncodingKey,
    pub(crate) jwk: Jwk,
}

impl TestKey {
    pub(crate) fn generate(kid: &str) -> Self {
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .unwrap();
        let encoding = EncodingKey::from_ec_der(pkcs8.as_ref());
        let mut jwk = Jwk::from_encoding_key(&encoding, Algorithm::ES256).unwrap();
        jwk.common.key_id = Some(kid.to_owned());
        Self {
            kid: kid.to_owned(),
            encoding,
            jwk,
        }
    }

    pub(crate) fn sign(&self, claims: &Claims) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }
}

pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

pub(crate) fn user_claims() -> Claims {
    Claims {
        iss: ISSUER.into(),
        aud: AUDIENCE.into(),
        sub: "alice".into(),
        exp: now() + 600,
        nbf: Some(now() - 5),
        iat: Some(now() - 5),
        azp: Some("demo-client".into()),
        scp: Some("Notifications.ReadWrite.CreatedByApp".into()),
        ..Claims::default()
    }
}

pub(crate) fn verifier_for(keys: &[&TestKey]) -> JwtVerifier {
    let set = JwkSet {
        keys: keys.iter().map(|key| key.jwk.clone()).collect(),
    };
    JwtVerifier::new(
        vec![TrustedIssuer {
            issuer: ISSUER.into(),
            audience: AUDIENCE.into(),
            keys: KeySource::Shared(Arc::new(RwLock::new(set))),
        }],
        DEFAULT_LEEWAY,
    )
}
