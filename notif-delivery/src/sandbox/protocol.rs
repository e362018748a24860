//! The sandbox's request handling: each provider's paths, checks, token endpoints, answers
//! and error bodies.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use notif_core::platform::Platform;
use serde_json::{Value, json};

use super::{FakeResponse, ReceivedPush, Refused, Response, Shared, checks};

/// A scripted reset: the connection is dropped without an answer.
#[derive(Debug, thiserror::Error)]
#[error("connection reset by the sandbox")]
pub(crate) struct Reset;

struct Request {
    path: String,
    /// `host[:port]` as the client addressed the sandbox.
    authority: String,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    /// A header lookup for the provider rules in `checks`.
    fn header_lookup(&self) -> impl Fn(&str) -> Option<String> + '_ {
        |name| self.header(name).map(str::to_owned)
    }

    fn bearer(&self) -> Option<&str> {
        let value = self.header("authorization")?;
        value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
    }

    fn form(&self) -> BTreeMap<String, String> {
        url::form_urlencoded::parse(&self.body)
            .into_owned()
            .collect()
    }
}

fn respond(status: u16, headers: &[(&str, String)], body: impl Into<Bytes>) -> Response {
    let mut response = hyper::Response::new(Full::new(body.into()));
    *response.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) = (
            hyper::header::HeaderName::from_bytes(name.as_bytes()),
            hyper::header::HeaderValue::from_str(value),
        ) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

fn json_response(status: u16, body: &Value) -> Response {
    respond(
        status,
        &[("content-type", "application/json".into())],
        body.to_string(),
    )
}

pub(crate) async fn handle(
    shared: &Shared,
    request: hyper::Request<Incoming>,
) -> Result<Response, Reset> {
    let path = request.uri().path().to_owned();
    // HTTP/2 carries it in `:authority`, HTTP/1.1 in `Host`.
    let authority = request
        .uri()
        .authority()
        .map(ToString::to_string)
        .or_else(|| {
            request
                .headers()
                .get(hyper::header::HOST)
                .and_then(|host| host.to_str().ok())
                .map(str::to_owned)
        })
        .unwrap_or_default();
    let is_post = request.method() == hyper::Method::POST;
    let headers = request
        .headers()
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = request
        .into_body()
        .collect()
        .await
        .map_err(|_| Reset)?
        .to_bytes()
        .to_vec();
    let request = Request {
        path,
        authority,
        headers,
        body,
    };
    if !is_post {
        return Ok(respond(405, &[], ""));
    }
    let segments: Vec<&str> = request.path.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        ["token"] => Ok(google_token(shared, &request)),
        ["accesstoken.srf"] => Ok(wns_token(shared, &request)),
        ["3", "device", token] => {
            push(
                shared,
                Platform::Ios,
                &request,
                apns_check(shared, &request, token),
            )
            .await
        }
        ["v1", "projects", _, "messages:send"] => {
            push(
                shared,
                Platform::Android,
                &request,
                fcm_check(shared, &request),
            )
            .await
        }
        ["wns", _] => {
            push(
                shared,
                Platform::Windows,
                &request,
                wns_check(shared, &request),
            )
            .await
        }
        ["push", device] => {
            let check = web_push_check(shared, &request, device);
            push(shared, Platform::WebPush, &request, check).await
        }
        _ => Ok(respond(404, &[], "")),
    }
}

fn issue_token(shared: &Shared, platform: Platform) -> String {
    let mut state = shared.state();
    let count = state.token_requests.entry(platform).or_default();
    *count += 1;
    let token = format!("sandbox-{}-{count}", platform.as_str().to_ascii_lowercase());
    state.issued_tokens.insert(token.clone(), platform);
    token
}

fn google_token(shared: &Shared, request: &Request) -> Response {
    let form = request.form();
    // Google's "Using OAuth 2.0 for Server to Server Applications": the assertion's `aud` is
    // always https://oauth2.googleapis.com/token, wherever the request is sent.
    let claims = form.get("assertion").and_then(|assertion| {
        let claims = assertion.split('.').nth(1)?;
        serde_json::from_slice::<Value>(&URL_SAFE_NO_PAD.decode(claims).ok()?).ok()
    });
    let assertion_ok = form.get("grant_type").map(String::as_str)
        == Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
        && claims.is_some_and(|claims| {
            claims["aud"] == crate::GOOGLE_TOKEN_URL
                && claims["iss"].is_string()
                && claims["scope"].is_string()
        });
    if !assertion_ok {
        return json_response(
            400,
            &json!({"error": "invalid_grant", "error_description": "Invalid JWT."}),
        );
    }
    let token = issue_token(shared, Platform::Android);
    json_response(
        200,
        &json!({"access_token": token, "expires_in": 3599, "token_type": "Bearer"}),
    )
}

fn wns_token(shared: &Shared, request: &Request) -> Response {
    let form = request.form();
    let valid = form.get("grant_type").map(String::as_str) == Some("client_credentials")
        && form.contains_key("client_id")
        && form.contains_key("client_secret")
        && form.get("scope").map(String::as_str) == Some("notify.windows.com");
    if !valid {
        return json_response(400, &json!({"error": "invalid_client"}));
    }
    let token = issue_token(shared, Platform::Windows);
    json_response(
        200,
        &json!({"access_token": token, "token_type": "bearer", "expires_in": 86400}),
    )
}

fn token_is_issued(shared: &Shared, token: Option<&str>, platform: Platform) -> bool {
    token.is_some_and(|token| shared.state().issued_tokens.get(token) == Some(&platform))
}

/// The envelope, or the protocol error the request deserves.
type Check = Result<Option<Value>, Box<Response>>;

fn apns_error(status: u16, reason: &str) -> Response {
    json_response(status, &json!({"reason": reason}))
}

/// Whether `token` is a JWT signed with the provider key the sandbox was given.
fn apns_signature_valid(shared: &Shared, token: &str) -> bool {
    let parts: Vec<&str> = token.split('.').collect();
    parts.len() == 3
        && URL_SAFE_NO_PAD.decode(parts[2]).is_ok_and(|signature| {
            UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &shared.apns_public_key)
                .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature)
                .is_ok()
        })
}

fn apns_check(shared: &Shared, request: &Request, device_token: &str) -> Check {
    let Some(token) = request.bearer() else {
        return Err(Box::new(apns_error(403, "MissingProviderToken")));
    };
    // Like APNs, a provider token is verified once and then recognised while it is reused.
    let known = shared.state().apns_tokens.iter().any(|seen| seen == token);
    if !known {
        if !apns_signature_valid(shared, token) {
            return Err(Box::new(apns_error(403, "InvalidProviderToken")));
        }
        // Concurrent first uses of a token both verify it; it is recorded once.
        let mut state = shared.state();
        if !state.apns_tokens.iter().any(|seen| seen == token) {
            state.apns_tokens.push(token.to_owned());
        }
    }
    if request.header("apns-topic").is_none() {
        return Err(Box::new(apns_error(400, "MissingTopic")));
    }
    if device_token.len() < 32 || !device_token.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(Box::new(apns_error(400, "BadDeviceToken")));
    }
    let payload = checks::apns(request.header_lookup(), &request.body)
        .map_err(|(status, reason)| Box::new(apns_error(status, &reason)))?;
    Ok(payload.get("notif").cloned())
}

fn fcm_error(status: u16, code: &str, error_code: Option<&str>, message: &str) -> Response {
    let mut error = json!({"code": status, "message": message, "status": code});
    if let Some(error_code) = error_code {
        error["details"] = json!([{
            "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
            "errorCode": error_code,
        }]);
    }
    json_response(status, &json!({"error": error}))
}

fn fcm_check(shared: &Shared, request: &Request) -> Check {
    if !token_is_issued(shared, request.bearer(), Platform::Android) {
        return Err(Box::new(fcm_error(
            401,
            "UNAUTHENTICATED",
            None,
            "Request had invalid authentication credentials.",
        )));
    }
    let message = checks::fcm(&request.body).map_err(|(status, message)| {
        Box::new(fcm_error(
            status,
            "INVALID_ARGUMENT",
            Some("INVALID_ARGUMENT"),
            &message,
        ))
    })?;
    Ok(message["data"]["notif"]
        .as_str()
        .and_then(|text| serde_json::from_str(text).ok()))
}

fn wns_error(status: u16, description: &str) -> Response {
    respond(
        status,
        &[
            ("x-wns-status", "dropped".into()),
            ("x-wns-error-description", description.into()),
        ],
        "",
    )
}

fn xml_unescape(text: &str) -> String {
    text.replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

fn wns_check(shared: &Shared, request: &Request) -> Check {
    if !token_is_issued(shared, request.bearer(), Platform::Windows) {
        return Err(Box::new(wns_error(401, "Token is invalid")));
    }
    checks::wns(request.header_lookup(), &request.body)
        .map_err(|(status, reason)| Box::new(wns_error(status, &reason)))?;
    let text = String::from_utf8_lossy(&request.body);
    if request.header("x-wns-type") == Some("wns/raw") {
        return Ok(serde_json::from_str(&text).ok());
    }
    let launch = text
        .split_once("launch=\"")
        .and_then(|(_, rest)| rest.split_once('"'))
        .map(|(launch, _)| xml_unescape(launch));
    Ok(launch.and_then(|launch| serde_json::from_str(&launch).ok()))
}

fn web_push_check(shared: &Shared, request: &Request, device: &str) -> Check {
    // The sandbox serves plain HTTP on loopback: that is the push resource's origin.
    let origin = format!("http://{}", request.authority);
    checks::web_push(request.header_lookup(), &origin, &request.body)
        .map_err(|(status, reason)| Box::new(respond(status, &[], reason)))?;
    let keys = shared.state().web_push_keys.get(device).cloned();
    let Some((private_key, auth)) = keys else {
        return Ok(None);
    };
    let plaintext = crate::webpush::decrypt(&request.body, &private_key, &auth)
        .map_err(|_| Box::new(respond(400, &[], "Decryption failed")))?;
    Ok(serde_json::from_slice(&plaintext).ok())
}

/// The next answer: a scripted one, else a chaos failure, else acceptance.
fn next_answer(shared: &Shared, platform: Platform) -> FakeResponse {
    let mut state = shared.state();
    if let Some(scripted) = state
        .scripts
        .get_mut(&platform)
        .and_then(|script| script.pop_front())
    {
        return scripted;
    }
    let Some((chaos, seed)) = state.chaos.as_mut() else {
        return FakeResponse::Accept;
    };
    // xorshift64: cheap, seeded, replayable.
    let mut next = || {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        *seed
    };
    let roll = next() as f64 / u64::MAX as f64;
    if roll >= chaos.failure_rate {
        return FakeResponse::Accept;
    }
    match next() % 5 {
        0 => FakeResponse::ServerError(500),
        1 => FakeResponse::ServerError(503),
        2 => FakeResponse::Throttle {
            retry_after_seconds: 1,
        },
        3 => FakeResponse::Hang(chaos.hang),
        _ => FakeResponse::Reset,
    }
}

fn accepted(platform: Platform) -> Response {
    match platform {
        Platform::Ios => respond(
            200,
            &[("apns-id", "00000000-0000-0000-0000-000000000000".into())],
            "",
        ),
        Platform::Android => {
            json_response(200, &json!({"name": "projects/notif-sandbox/messages/0:1"}))
        }
        Platform::Windows => respond(
            200,
            &[
                ("x-wns-status", "received".into()),
                ("x-wns-msg-id", "1".into()),
            ],
            "",
        ),
        Platform::WebPush => respond(201, &[("location", "/push/message/1".into())], ""),
    }
}

fn refusal(platform: Platform, answer: &FakeResponse) -> Option<Response> {
    let response = match (platform, answer) {
        (_, FakeResponse::Accept | FakeResponse::Hang(_) | FakeResponse::Reset) => return None,
        (_, FakeResponse::Redirect(location)) => {
            respond(307, &[("location", location.clone())], "")
        }
        (Platform::Ios, FakeResponse::Gone) => json_response(
            410,
            &json!({"reason": "Unregistered", "timestamp": 1_700_000_000_000u64}),
        ),
        (Platform::Android, FakeResponse::Gone) => fcm_error(
            404,
            "NOT_FOUND",
            Some("UNREGISTERED"),
            "Requested entity was not found.",
        ),
        (Platform::Windows | Platform::WebPush, FakeResponse::Gone) => respond(410, &[], ""),
        (Platform::Ios, FakeResponse::ExpiredCredentials) => {
            apns_error(403, "ExpiredProviderToken")
        }
        (Platform::Android, FakeResponse::ExpiredCredentials) => fcm_error(
            401,
            "UNAUTHENTICATED",
            None,
            "Request had invalid authentication credentials.",
        ),
        (Platform::Windows, FakeResponse::ExpiredCredentials) => wns_error(401, "Token expired"),
        (Platform::WebPush, FakeResponse::ExpiredCredentials) => {
            respond(403, &[], "VAPID key rejected")
        }
        (
            Platform::Windows,
            FakeResponse::Throttle {
                retry_after_seconds,
            },
        ) => respond(
            406,
            &[
                ("x-wns-status", "channelthrottled".into()),
                ("x-wns-continue-after", retry_after_seconds.to_string()),
            ],
            "",
        ),
        (
            Platform::Android,
            FakeResponse::Throttle {
                retry_after_seconds,
            },
        ) => {
            let mut response = fcm_error(
                429,
                "RESOURCE_EXHAUSTED",
                Some("QUOTA_EXCEEDED"),
                "Quota exceeded.",
            );
            response.headers_mut().insert(
                "retry-after",
                hyper::header::HeaderValue::from(*retry_after_seconds),
            );
            response
        }
        (
            Platform::Ios,
            FakeResponse::Throttle {
                retry_after_seconds,
            },
        ) => {
            let mut response = apns_error(429, "TooManyRequests");
            response.headers_mut().insert(
                "retry-after",
                hyper::header::HeaderValue::from(*retry_after_seconds),
            );
            response
        }
        (
            Platform::WebPush,
            FakeResponse::Throttle {
                retry_after_seconds,
            },
        ) => respond(
            429,
            &[("retry-after", retry_after_seconds.to_string())],
            "Too many requests",
        ),
        (Platform::Ios, FakeResponse::ServerError(status)) => apns_error(
            *status,
            if *status == 503 {
                "ServiceUnavailable"
            } else {
                "InternalServerError"
            },
        ),
        (Platform::Android, FakeResponse::ServerError(status)) => {
            let code = if *status == 503 {
                "UNAVAILABLE"
            } else {
                "INTERNAL"
            };
            fcm_error(*status, code, Some(code), "The service is unavailable.")
        }
        (Platform::Windows | Platform::WebPush, FakeResponse::ServerError(status)) => {
            respond(*status, &[], "")
        }
        (Platform::Ios, FakeResponse::Refuse { status, reason }) => apns_error(*status, reason),
        (Platform::Android, FakeResponse::Refuse { status, reason }) => {
            fcm_error(*status, reason, Some(reason), reason)
        }
        (Platform::Windows, FakeResponse::Refuse { status, reason }) => wns_error(*status, reason),
        (Platform::WebPush, FakeResponse::Refuse { status, reason }) => {
            respond(*status, &[], reason.clone())
        }
    };
    Some(response)
}

struct InFlight<'a>(&'a Shared);

impl<'a> InFlight<'a> {
    fn enter(shared: &'a Shared) -> Self {
        let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        shared.max_in_flight.fetch_max(now, Ordering::SeqCst);
        Self(shared)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn push(
    shared: &Shared,
    platform: Platform,
    request: &Request,
    check: Check,
) -> Result<Response, Reset> {
    let _in_flight = InFlight::enter(shared);
    let envelope = match check {
        Ok(envelope) => envelope,
        Err(protocol_error) => {
            shared.state().refusals.push(Refused {
                platform,
                path: request.path.clone(),
                status: protocol_error.status().as_u16(),
            });
            return Ok(*protocol_error);
        }
    };
    let answer = next_answer(shared, platform);
    shared.state().pushes.record(ReceivedPush {
        platform,
        path: request.path.clone(),
        headers: request.headers.clone(),
        body: request.body.clone(),
        envelope,
        answered: answer.clone(),
        received_at: std::time::Instant::now(),
    });
    match &answer {
        FakeResponse::Reset => Err(Reset),
        FakeResponse::Hang(duration) => {
            tokio::time::sleep(*duration).await;
            Ok(accepted(platform))
        }
        other => Ok(refusal(platform, other).unwrap_or_else(|| accepted(platform))),
    }
}
