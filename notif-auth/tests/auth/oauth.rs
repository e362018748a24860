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

fn provider(config: IdentityProviderConfig) -> IdentityProvider {
    IdentityProvider::new(config, directory()).unwrap()
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
    let provider = provider(IdentityProviderConfig::new("http://127.0.0.1:50051"));
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
    let provider = provider(IdentityProviderConfig::new("http://127.0.0.1:50051"));
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
    let provider = provider(IdentityProviderConfig::new("http://127.0.0.1:50051"));
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
    });
    assert_eq!(
        provider
            .dev_sign_in(DEMO_DEVICE_CLIENT, "alice")
            .unwrap_err()
            .code,
        OAuthErrorCode::UnauthorizedClient
    );
    let enabled = self::provider(IdentityProviderConfig::new("http://127.0.0.1:50051"));
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
    let config = IdentityProviderConfig {
        key_file: Some(directory.path().join("idp-keys.json")),
        ..IdentityProviderConfig::new("http://127.0.0.1:50051")
    };
    let first = provider(config.clone());
    let old_token = first
        .dev_sign_in(DEMO_DEVICE_CLIENT, "alice")
        .unwrap()
        .access_token;
    drop(first);

    let restarted = provider(config);
    let verifier = verifier(&restarted);
    assert!(
        verifier.verify(&old_token).await.is_ok(),
        "tokens survive a restart"
    );
    assert_eq!(restarted.jwks().keys.len(), 1);
    restarted.rotate_signing_key().unwrap();
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
