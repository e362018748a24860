//! The security table: every kind of bad token is refused with its own clear error.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use notif_auth::Claims;
use notif_core::app::{AccessError, Action, NamedSubscription, authorize};
use notif_core::ports::{TokenError, TokenVerifier};

use crate::keys::{TestKey, now, user_claims, verifier_for};

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn replace_segment(token: &str, index: usize, segment: &str) -> String {
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    parts[index] = segment.to_owned();
    parts.join(".")
}

#[tokio::test]
async fn every_bad_token_is_refused_with_a_distinct_error() {
    let key = TestKey::generate("key-1");
    let verifier = verifier_for(&[&key]);
    let valid = key.sign(&user_claims());
    assert_eq!(
        verifier
            .verify(&valid)
            .await
            .unwrap()
            .user
            .unwrap()
            .as_str(),
        "alice"
    );

    let public_key_pem = serde_json::to_vec(&key.jwk).unwrap();
    let hs256_with_public_key = {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(key.kid.clone());
        jsonwebtoken::encode(
            &header,
            &user_claims(),
            &EncodingKey::from_secret(&public_key_pem).unwrap(),
        )
        .unwrap()
    };
    let alg_none = format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"JWT","kid":"key-1"}"#),
        b64(&serde_json::to_vec(&user_claims()).unwrap())
    );
    let rs256_with_ec_key = replace_segment(
        &valid,
        0,
        &b64(br#"{"alg":"RS256","typ":"JWT","kid":"key-1"}"#),
    );
    let tampered_payload = {
        let forged = Claims {
            sub: "mallory".into(),
            ..user_claims()
        };
        replace_segment(&valid, 1, &b64(&serde_json::to_vec(&forged).unwrap()))
    };
    let tampered_signature = {
        let signature = valid.rsplit('.').next().unwrap();
        let mut bytes = URL_SAFE_NO_PAD.decode(signature).unwrap();
        bytes[10] ^= 0x55;
        replace_segment(&valid, 2, &b64(&bytes))
    };
    let unknown_kid = TestKey::generate("key-2").sign(&user_claims());
    let other_key_same_kid = TestKey::generate("key-1").sign(&user_claims());

    let cases: Vec<(&str, String, TokenError)> = vec![
        (
            "expired",
            key.sign(&Claims {
                exp: now() - 3_600,
                ..user_claims()
            }),
            TokenError::Expired,
        ),
        (
            "not yet valid",
            key.sign(&Claims {
                nbf: Some(now() + 3_600),
                ..user_claims()
            }),
            TokenError::NotYetValid,
        ),
        (
            "wrong iss",
            key.sign(&Claims {
                iss: "https://evil.test".into(),
                ..user_claims()
            }),
            TokenError::WrongIssuer,
        ),
        (
            "wrong aud",
            key.sign(&Claims {
                aud: "api://other".into(),
                ..user_claims()
            }),
            TokenError::WrongAudience,
        ),
        (
            "alg none",
            alg_none,
            TokenError::AlgorithmNotAllowed("none".into()),
        ),
        (
            "HS256 signed with the public key",
            hs256_with_public_key,
            TokenError::AlgorithmNotAllowed("HS256".into()),
        ),
        (
            "unknown kid",
            unknown_kid,
            TokenError::UnknownKey("key-2".into()),
        ),
        (
            "tampered payload",
            tampered_payload,
            TokenError::InvalidSignature,
        ),
        (
            "tampered signature",
            tampered_signature,
            TokenError::InvalidSignature,
        ),
        (
            "signed by another key",
            other_key_same_kid,
            TokenError::InvalidSignature,
        ),
        (
            "no client",
            key.sign(&Claims {
                azp: None,
                ..user_claims()
            }),
            TokenError::InvalidClaim("azp"),
        ),
        (
            "garbage",
            "not.a.jwt".into(),
            TokenError::Malformed("header is not base64url".into()),
        ),
        (
            "header not JSON",
            "bm90anNvbg.e30.".into(),
            TokenError::Malformed("header is not JSON".into()),
        ),
    ];
    for (name, token, expected) in cases {
        assert_eq!(verifier.verify(&token).await, Err(expected), "{name}");
    }
    assert!(matches!(
        verifier.verify(&rs256_with_ec_key).await,
        Err(TokenError::AlgorithmNotAllowed(reason)) if reason.contains("RS256")
    ));
}

#[tokio::test]
async fn a_token_without_the_scope_is_refused_by_created_by_app() {
    let key = TestKey::generate("key-1");
    let verifier = verifier_for(&[&key]);
    let token = key.sign(&Claims {
        scp: Some("User.Read".into()),
        ..user_claims()
    });
    let principal = verifier.verify(&token).await.unwrap();
    let app = notif_auth::AppDirectory::demo().apps()[0].clone();
    assert_eq!(
        authorize(
            &principal,
            Some(&app),
            Action::UseFeed,
            NamedSubscription::None
        ),
        Err(AccessError::MissingPermission)
    );
}

#[tokio::test]
async fn leeway_tolerates_small_clock_skew() {
    let key = TestKey::generate("key-1");
    let verifier = verifier_for(&[&key]);
    let just_expired = key.sign(&Claims {
        exp: now() - 30,
        ..user_claims()
    });
    assert!(verifier.verify(&just_expired).await.is_ok());
}
