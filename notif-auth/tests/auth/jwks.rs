//! Where keys come from: JWKS fetched from a real HTTP server on loopback (rotation is picked
//! up, unknown key ids cannot make the verifier fetch more than once per interval), and what a
//! key withdrawal does to tokens verified before it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jsonwebtoken::jwk::JwkSet;
use notif_auth::{DEFAULT_LEEWAY, JwtVerifier, KeySource, RemoteJwks, TrustedIssuer};
use notif_core::ports::{TokenError, TokenVerifier};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::keys::{AUDIENCE, ISSUER, TestKey, user_claims};

/// A loopback HTTP/1.1 server answering every request with the current JWKS.
struct JwksServer {
    url: String,
    document: Arc<Mutex<JwkSet>>,
    requests: Arc<AtomicUsize>,
}

impl JwksServer {
    async fn start(keys: &[&TestKey]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/keys", listener.local_addr().unwrap());
        let document = Arc::new(Mutex::new(JwkSet {
            keys: keys.iter().map(|key| key.jwk.clone()).collect(),
        }));
        let requests = Arc::new(AtomicUsize::new(0));
        let (served, counter) = (document.clone(), requests.clone());
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let (served, counter) = (served.clone(), counter.clone());
                tokio::spawn(async move {
                    let mut buffer = [0u8; 4096];
                    let Ok(read) = stream.read(&mut buffer).await else {
                        return;
                    };
                    if read == 0 {
                        return;
                    }
                    counter.fetch_add(1, Ordering::SeqCst);
                    let body = serde_json::to_string(&*served.lock().unwrap()).unwrap();
                    let response = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(response.as_bytes()).await;
                });
            }
        });
        Self {
            url,
            document,
            requests,
        }
    }

    fn publish(&self, keys: &[&TestKey]) {
        *self.document.lock().unwrap() = JwkSet {
            keys: keys.iter().map(|key| key.jwk.clone()).collect(),
        };
    }

    fn verifier(&self, min_refresh_interval: Duration) -> JwtVerifier {
        JwtVerifier::new(
            vec![TrustedIssuer {
                issuer: ISSUER.into(),
                audience: AUDIENCE.into(),
                keys: KeySource::Remote(RemoteJwks::new(
                    self.url.clone(),
                    reqwest::Client::new(),
                    min_refresh_interval,
                )),
            }],
            DEFAULT_LEEWAY,
        )
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

#[tokio::test]
async fn a_rotated_key_is_picked_up() {
    let old_key = TestKey::generate("old");
    let server = JwksServer::start(&[&old_key]).await;
    let verifier = server.verifier(Duration::ZERO);
    assert!(verifier.verify(&old_key.sign(&user_claims())).await.is_ok());
    assert!(verifier.verify(&old_key.sign(&user_claims())).await.is_ok());
    assert_eq!(server.requests(), 1, "known keys are served from the cache");

    let new_key = TestKey::generate("new");
    server.publish(&[&old_key, &new_key]);
    assert!(verifier.verify(&new_key.sign(&user_claims())).await.is_ok());
    assert_eq!(server.requests(), 2);
}

#[tokio::test]
async fn unknown_key_ids_fetch_at_most_once_per_interval() {
    let key = TestKey::generate("real");
    let server = JwksServer::start(&[&key]).await;
    let verifier = server.verifier(Duration::from_secs(3_600));
    assert!(verifier.verify(&key.sign(&user_claims())).await.is_ok());
    for index in 0..50 {
        let forged = TestKey::generate(&format!("made-up-{index}"));
        assert_eq!(
            verifier.verify(&forged.sign(&user_claims())).await,
            Err(TokenError::UnknownKey(format!("made-up-{index}")))
        );
    }
    assert_eq!(server.requests(), 1);
}

#[tokio::test]
async fn an_unreachable_issuer_is_unavailable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/keys", listener.local_addr().unwrap());
    drop(listener);
    let verifier = JwtVerifier::new(
        vec![TrustedIssuer {
            issuer: ISSUER.into(),
            audience: AUDIENCE.into(),
            keys: KeySource::Remote(RemoteJwks::new(url, reqwest::Client::new(), Duration::ZERO)),
        }],
        DEFAULT_LEEWAY,
    );
    let key = TestKey::generate("k");
    assert!(matches!(
        verifier.verify(&key.sign(&user_claims())).await,
        Err(TokenError::Unavailable(_))
    ));
}

#[tokio::test]
async fn a_verified_token_is_remembered_but_a_withdrawn_key_signs_nothing_new() {
    let key = TestKey::generate("withdrawn");
    let keys: notif_auth::SharedKeys = Arc::new(std::sync::RwLock::new(JwkSet {
        keys: vec![key.jwk.clone()],
    }));
    let verifier = JwtVerifier::new(
        vec![TrustedIssuer {
            issuer: ISSUER.into(),
            audience: AUDIENCE.into(),
            keys: KeySource::Shared(keys.clone()),
        }],
        DEFAULT_LEEWAY,
    );
    let token = key.sign(&user_claims());
    assert!(verifier.verify(&token).await.is_ok());

    keys.write().unwrap().keys.clear();
    let remembered = verifier.verify(&token).await.unwrap();
    assert_eq!(
        remembered.user.unwrap().as_str(),
        "alice",
        "a token verified a moment ago is not checked again (for at most a minute)"
    );
    assert_eq!(
        verifier.verify(&key.sign(&user_claims())).await,
        Err(TokenError::UnknownKey("withdrawn".into())),
        "a new token needs the key, which is gone"
    );
}
