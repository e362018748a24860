//! The front door of the listener: a gRPC request (content type `application/grpc*`) goes to
//! the gRPC services and nothing else does. Every other request reaches the HTTP routes with
//! its trailing slash ignored and the API version it named (`/beta`, `/v1.0`, none) noted for
//! the links it gets back; each answer carries a `request-id`, and every 4xx without a body
//! of its own (unknown path, wrong method, oversized or malformed request) is a Graph error.

use axum::Router;
use axum::extract::Request;
use axum::http::header::{ALLOW, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::Response;
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;

use crate::error::graph_error;

/// The API version segment a request used, echoed in the links it gets back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ApiVersion(pub(crate) &'static str);

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The request id of the HTTP request being handled (a fresh one outside any).
pub(crate) fn request_id() -> String {
    REQUEST_ID
        .try_with(Clone::clone)
        .unwrap_or_else(|_| new_request_id())
}

fn new_request_id() -> String {
    let mut random = [0u8; 16];
    // A failed random source leaves zeros: ids are for correlation, not security.
    let _ = aws_lc_rs::rand::fill(&mut random);
    uuid::Builder::from_random_bytes(random)
        .into_uuid()
        .to_string()
}

/// One router for the listener: `grpc` for gRPC requests, `http` for the rest.
pub(crate) fn edge(grpc: Router, http: Router) -> Router {
    let http = http
        .layer(axum::middleware::map_response(graph_client_errors))
        .layer(axum::middleware::from_fn(with_request_id));
    Router::new().fallback_service(tower::service_fn(move |request: Request| {
        let (grpc, http) = (grpc.clone(), http.clone());
        async move {
            if is_grpc(&request) {
                grpc.oneshot(request).await
            } else {
                http.oneshot(normalized(request)).await
            }
        }
    }))
}

fn is_grpc(request: &Request) -> bool {
    request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/grpc"))
}

/// The request with its path's trailing slashes removed (the seed writes
/// `POST /me/notifications/`), and its API version noted.
fn normalized(mut request: Request) -> Request {
    let path = request.uri().path().to_owned();
    let version = if path == "/beta" || path.starts_with("/beta/") {
        "/beta"
    } else if path == "/v1.0" || path.starts_with("/v1.0/") {
        "/v1.0"
    } else {
        ""
    };
    request.extensions_mut().insert(ApiVersion(version));
    let trimmed = path.trim_end_matches('/');
    if trimmed.len() != path.len() && !trimmed.is_empty() {
        let rewritten = match request.uri().query() {
            Some(query) => format!("{trimmed}?{query}"),
            None => trimmed.to_owned(),
        };
        if let Ok(path_and_query) = rewritten.parse() {
            let mut parts = request.uri().clone().into_parts();
            parts.path_and_query = Some(path_and_query);
            if let Ok(uri) = Uri::from_parts(parts) {
                *request.uri_mut() = uri;
            }
        }
    }
    request
}

/// Runs the request with a fresh `request-id` (in Graph error bodies and the response
/// header); a caller's `client-request-id` is echoed back.
async fn with_request_id(request: Request, next: Next) -> Response {
    let id = new_request_id();
    let client_request_id = request.headers().get("client-request-id").cloned();
    let mut response = REQUEST_ID.scope(id.clone(), next.run(request)).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("request-id", value);
    }
    if let Some(value) = client_request_id {
        response.headers_mut().insert("client-request-id", value);
    }
    response
}

/// Turns a 4xx answered without a JSON body — the router's own answers and the body and
/// query extractors' rejections — into a Graph error with the same status (and `Allow`).
async fn graph_client_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"));
    if !status.is_client_error() || is_json {
        return response;
    }
    let allow = response.headers().get(ALLOW).cloned();
    let text = match response.into_body().collect().await {
        Ok(collected) => String::from_utf8_lossy(&collected.to_bytes()).into_owned(),
        Err(_) => String::new(),
    };
    let (code, message) = match status {
        StatusCode::NOT_FOUND => ("itemNotFound", "no resource matches this path".to_owned()),
        StatusCode::METHOD_NOT_ALLOWED => (
            "methodNotAllowed",
            match &allow {
                Some(allow) => format!(
                    "this method is not allowed here; allowed: {}",
                    allow.to_str().unwrap_or_default()
                ),
                None => "this method is not allowed here".to_owned(),
            },
        ),
        StatusCode::PAYLOAD_TOO_LARGE => (
            "requestEntityTooLarge",
            "the request body is larger than this server accepts".to_owned(),
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ("unsupportedMediaType", text),
        _ => ("invalidRequest", text),
    };
    let mut graph = graph_error(status, code, &message);
    if let Some(allow) = allow {
        graph.headers_mut().insert(ALLOW, allow);
    }
    graph
}

#[cfg(test)]
mod tests {
    use axum::body::Body;

    use super::*;

    fn request(method: &str, uri: &str) -> Request {
        axum::http::Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::empty())
            .unwrap_or_default()
    }

    #[test]
    fn trailing_slashes_are_ignored_and_the_version_noted() {
        let create = normalized(request("POST", "/beta/me/notifications/?$top=1"));
        assert_eq!(create.uri().path(), "/beta/me/notifications");
        assert_eq!(create.uri().query(), Some("$top=1"));
        assert_eq!(create.extensions().get(), Some(&ApiVersion("/beta")));
        let root = normalized(request("GET", "/"));
        assert_eq!(root.uri().path(), "/");
        assert_eq!(root.extensions().get(), Some(&ApiVersion("")));
        let versioned = normalized(request("GET", "/v1.0//"));
        assert_eq!(versioned.uri().path(), "/v1.0");
        assert_eq!(versioned.extensions().get(), Some(&ApiVersion("/v1.0")));
        assert_eq!(
            normalized(request("GET", "/betamax/x")).extensions().get(),
            Some(&ApiVersion(""))
        );
    }
}
