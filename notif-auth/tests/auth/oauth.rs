//! The embedded identity provider: grants, on-behalf-of, refresh rotation, persistence.

use std::sync::Arc;

use notif_auth::{
    AppConfig, AppDirectory, ClientConfig, DEFAULT_LEEWAY, DEMO_APP_SERVICE_CLIENT,
    DEMO_APP_SERVICE_SECRET, DEMO_DEVICE_CLIENT, DEMO_HOST, IdentityProvider,
    IdentityProviderConfig, JWT_BEARER_GRANT, JwtVerifier, OAuthErrorCode, TokenRequest,
    hash_secret,
};
use notif_core::app::SCOPE_CREATED_BY_APP;
use notif_core::ports::TokenVerifier;

fn directory() -> Arc<AppDirectory> {
    let app = |id: &str, host: &str, service: &str, device: &str, secret: &str| AppConfig {
        id: id.into(),
        host_name: host.into(),
        display_name: id.into(),
        clients: vec![
            ClientConfig {
                id: service.into(),
                secret_hash: Some(hash_secret(secret)),
            },
            ClientConfig {
                id: device.into(),
                secret_hash: None,
            },
        ],
        credentials: Default::default(),
    };
    Arc::new(
        AppDirectory::from_config(&[
            app(
                "demo",
                DEMO_HOST,
                DEMO_APP_SERVICE_CLIENT,
                DEMO_DEVICE_CLIENT,
                DEMO_APP_SERVICE_SECRET,
            ),
            app(
                "other",
                "other.example.com",
                "other-service",
                "other-client",
                "other-secret",
            ),
        ])
        .unwrap(),
    )
}

/// A provider whose state is in a fresh in-memory store.
async fn provider(config: IdentityProviderConfig) -> IdentityProvider {
    provider_on(config, Arc::new(notif_store::MemoryStore::new())).await
}

async fn provider_on(
    config: IdentityProviderConfig,
    store: Arc<dyn notif_core::ports::IdentityStore>,
) -> IdentityProvider {
    IdentityProvider::open(config, directory(), store)
        .await
        .unwrap()
}

fn verifier(provider: &IdentityProvider) -> JwtVerifier {
    JwtVerifier::new(vec![provider.trusted_issuer()], DEFAULT_LEEWAY)
}

fn obo(assertion: &str) -> TokenRequest {
    TokenRequest {
        grant_type: JWT_BEARER_GRANT.into(),
        client_id: Some(DEMO_APP_SERVICE_CLIENT.into()),
        client_secret: Some(DEMO_APP_SERVICE_SECRET.into()),
        assertion: Some(assertion.into()),
        requested_token_use: Some("on_behalf_of".into()),
        scope: Some(SCOPE_CREATED_BY_APP.into()),
        ..TokenRequest::default()
    }
}

fn refresh(token: &str) -> TokenRequest {
    TokenRequest {
        grant_type: "refresh_token".into(),
        client_id: Some(DEMO_APP_SERVICE_CLIENT.into()),
        client_secret: Some(DEMO_APP_SERVICE_SECRET.into()),
        refresh_token: Some(token.into()),
        ..TokenRequest::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_behalf_of_round_trip() {
    let provider = provider(IdentityProviderConfig::new("http://127.0.0.1:50051")).await;
    let verifier = verifier(&provider);
    let user_token = provider.dev_sign_in(DEMO_DEVICE_CLIENT, "alice").unwrap();
    let device = verifier.verify(&user_token.access_token).await.unwrap();
    assert_eq!(device.user.unwrap().as_str(), "alice");
    assert_eq!(device.client_id.as_str(), DEMO_DEVICE_CLIENT);

    let exchanged = provider
        .token(obo(&user_token.access_token), None)
        .await
        .unwrap();
    let principal = verifier.verify(&exchanged.access_token).await.unwrap();
    assert_eq!(principal.user.unwrap().as_str(), "alice");
    assert_eq!(principal.client_id.as_str(), DEMO_APP_SERVICE_CLIENT);
    assert!(principal.scopes.contains(SCOPE_CREATED_BY_APP));
    assert_eq!(exchanged.token_type, "Bearer");
    assert_eq!(exchanged.expires_in, 3_600);

    let first_refresh = exchanged.refresh_token.unwrap();
    let refreshed = provider.token(refresh(&first_refresh), None).await.unwrap();
    let principal = verifier.verify(&refreshed.access_token).await.unwrap();
    assert_eq!(principal.user.unwrap().as_str(), "alice");
    let reused = provider
        .token(refresh(&first_refresh), None)
        .await
        .unwrap_err();
    assert_eq!(reused.code, OAuthErrorCode::InvalidGrant);
    let second_refresh = refreshed.refresh_token.unwrap();
    assert!(provider.token(refresh(&second_refresh), None).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_credentials_give_an_app_only_token() {
    let provider = provider(IdentityProviderConfig::new("http://127.0.0.1:50051")).await;
    let response = provider
        .token(
            TokenRequest {
                grant_type: "client_credentials".into(),
                client_id: Some(DEMO_APP_SERVICE_CLIENT.into()),
                client_secret: Some(DEMO_APP_SERVICE_SECRET.into()),
                ..TokenRequest::default()
            },
            None,
        )
        .await
        .unwrap();
    assert!(response.refresh_token.is_none());
    let principal = verifier(&provider)
        .verify(&response.access_token)
        .await
        .unwrap();
    assert!(principal.user.is_none());
    assert!(principal.roles.contains(SCOPE_CREATED_BY_APP));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_rfc_6749_codes() {
    let provider = provider(IdentityProviderConfig::new("http://127.0.0.1:50051")).await;
    let user_token = provider
        .dev_sign_in(DEMO_DEVICE_CLIENT, "alice")
        .unwrap()
        .access_token;
    let foreign_user_token = provider
        .dev_sign_in("other-client", "alice")
        .unwrap()
        .access_token;
    let app_token = provider
        .token(
            TokenRequest {
                grant_type: "client_credentials".into(),
                client_id: Some(DEMO_APP_SERVICE_CLIENT.into()),
                client_secret: Some(DEMO_APP_SERVICE_SECRET.into()),
                ..TokenRequest::default()
            },
            None,
        )
        .await
        .unwrap()
        .access_token;
    let cases = vec![
        (
            "wrong secret",
            TokenRequest {
                client_secret: Some("nope".into()),
                ..obo(&user_token)
            },
            OAuthErrorCode::InvalidClient,
        ),
        (
            "public client",
            TokenRequest {
                client_id: Some(DEMO_DEVICE_CLIENT.into()),
                ..obo(&user_token)
            },
            OAuthErrorCode::InvalidClient,
        ),
        (
            "no secret",
            TokenRequest {
                client_secret: None,
                ..obo(&user_token)
            },
            OAuthErrorCode::InvalidClient,
        ),
        (
            "another app's user token",
            obo(&foreign_user_token),
            OAuthErrorCode::InvalidGrant,
        ),
        (
            "app-only assertion",
            obo(&app_token),
            OAuthErrorCode::InvalidGrant,
        ),
        (
            "garbage assertion",
            obo("garbage"),
            OAuthErrorCode::InvalidGrant,
        ),
        (
            "missing requested_token_use",
            TokenRequest {
                requested_token_use: None,
                ..obo(&user_token)
            },
            OAuthErrorCode::InvalidRequest,
        ),
        (
            "missing assertion",
            TokenRequest {
                assertion: None,
                ..obo(&user_token)
            },
            OAuthErrorCode::InvalidRequest,
        ),
        (
            "unknown scope",
            TokenRequest {
                scope: Some("Mail.Read".into()),
                ..obo(&user_token)
            },
            OAuthErrorCode::InvalidScope,
        ),
        (
            "unknown grant",
            TokenRequest {
                grant_type: "password".into(),
                ..obo(&user_token)
            },
            OAuthErrorCode::UnsupportedGrantType,
        ),
        (
            "no grant",
            TokenRequest {
                grant_type: String::new(),
                ..obo(&user_token)
            },
            OAuthErrorCode::InvalidRequest,
        ),
        (
            "unknown refresh token",
            refresh("made-up"),
            OAuthErrorCode::InvalidGrant,
        ),
    ];
    for (name, request, expected) in cases {
        let error = provider.token(request, None).await.unwrap_err();
        assert_eq!(error.code, expected, "{name}: {error}");
    }
    assert_eq!(OAuthErrorCode::InvalidClient.http_status(), 401);
    assert_eq!(OAuthErrorCode::InvalidGrant.as_str(), "invalid_grant");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn development_sign_in_can_be_refused() {
    let provider = provider(IdentityProviderConfig {
        development_sign_in: false,
        ..IdentityProviderConfig::new("http://127.0.0.1:50051")
    })
    .await;
    assert_eq!(
        provider
            .dev_sign_in(DEMO_DEVICE_CLIENT, "alice")
            .unwrap_err()
            .code,
        OAuthErrorCode::UnauthorizedClient
    );
    let enabled = self::provider(IdentityProviderConfig::new("http://127.0.0.1:50051")).await;
    assert_eq!(
        enabled.dev_sign_in("nobody", "alice").unwrap_err().code,
        OAuthErrorCode::InvalidClient
    );
    assert_eq!(
        enabled
            .dev_sign_in(DEMO_DEVICE_CLIENT, "")
            .unwrap_err()
            .code,
        OAuthErrorCode::InvalidRequest
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_keys_persist_and_rotate() {
    let directory = tempfile::tempdir().unwrap();
    let config = IdentityProviderConfig::new("http://127.0.0.1:50051");
    let store = Arc::new(notif_store::SledStore::open(directory.path()).unwrap());
    let first = provider_on(config.clone(), store.clone()).await;
    let old_token = first
        .dev_sign_in(DEMO_DEVICE_CLIENT, "alice")
        .unwrap()
        .access_token;
    drop(first);
    drop(store);

    let store = Arc::new(notif_store::SledStore::open(directory.path()).unwrap());
    let restarted = provider_on(config, store).await;
    let verifier = verifier(&restarted);
    assert!(
        verifier.verify(&old_token).await.is_ok(),
        "tokens survive a restart"
    );
    assert_eq!(restarted.jwks().keys.len(), 1);
    restarted.rotate_signing_key().await.unwrap();
    assert_eq!(restarted.jwks().keys.len(), 2);
    let new_token = restarted
        .dev_sign_in(DEMO_DEVICE_CLIENT, "bob")
        .unwrap()
        .access_token;
    let header = |token: &str| jsonwebtoken::decode_header(token).unwrap().kid.unwrap();
    assert_ne!(header(&old_token), header(&new_token));
    assert!(
        verifier.verify(&old_token).await.is_ok(),
        "the old key stays published"
    );
    assert!(
        verifier.verify(&new_token).await.is_ok(),
        "the shared keys follow the rotation"
    );

    let discovery = restarted.openid_configuration();
    assert_eq!(
        discovery["jwks_uri"],
        "http://127.0.0.1:50051/.well-known/jwks.json"
    );
    assert_eq!(
        discovery["token_endpoint"],
        "http://127.0.0.1:50051/oauth2/v2.0/token"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_legacy_key_file_moves_into_the_store() {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
    use base64::Engine as _;
    let directory = tempfile::tempdir().unwrap();
    let document = EcdsaKeyPair::generate_pkcs8(
        &ECDSA_P256_SHA256_FIXED_SIGNING,
        &aws_lc_rs::rand::SystemRandom::new(),
    )
    .unwrap();
    let file = directory.path().join("idp-keys.json");
    std::fs::write(
        &file,
        serde_json::json!({"keys": [{
            "kid": "from-the-file",
            "pkcs8": base64::engine::general_purpose::STANDARD.encode(document.as_ref()),
        }]})
        .to_string(),
    )
    .unwrap();
    let store = Arc::new(notif_store::MemoryStore::new());
    let config = IdentityProviderConfig {
        legacy_key_file: Some(file),
        ..IdentityProviderConfig::new("http://127.0.0.1:50051")
    };
    let provider = provider_on(config, store.clone()).await;
    assert_eq!(
        provider.jwks().keys[0].common.key_id.as_deref(),
        Some("from-the-file")
    );
    let stored = notif_core::ports::IdentityStore::signing_keys(store.as_ref())
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].kid, "from-the-file");
}

/// Two nodes on one store: a token one issues verifies on the other, and a refresh token
/// spent on one is refused on the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_sharing_a_store_share_keys_and_refresh_tokens() {
    let store: Arc<notif_store::MemoryStore> = Arc::new(notif_store::MemoryStore::new());
    let config = IdentityProviderConfig::new("http://cluster.example.com");
    let (a, b) = tokio::join!(
        provider_on(config.clone(), store.clone()),
        provider_on(config, store.clone()),
    );
    let signed_on_a = a
        .dev_sign_in(DEMO_DEVICE_CLIENT, "alice")
        .unwrap()
        .access_token;
    assert!(verifier(&b).verify(&signed_on_a).await.is_ok());

    let user_token = a
        .dev_sign_in(DEMO_DEVICE_CLIENT, "alice")
        .unwrap()
        .access_token;
    let exchanged = a.token(obo(&user_token), None).await.unwrap();
    let refresh_token = exchanged.refresh_token.unwrap();
    a.token(refresh(&refresh_token), None).await.unwrap();
    let replayed = b.token(refresh(&refresh_token), None).await.unwrap_err();
    assert_eq!(replayed.code, OAuthErrorCode::InvalidGrant);
}
