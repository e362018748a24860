//! The base of the links an answer carries (`Location`, `@odata.nextLink`, `@odata.context`):
//! the origin clients reach the server at — the configured public URL, or a trusted reverse
//! proxy's `Forwarded` / `X-Forwarded-*` headers — and the API version the request used.

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;

use super::edge::ApiVersion;

/// Where links point.
#[derive(Debug, Clone)]
pub(crate) struct Links {
    /// The configured (or listen-address) public URL, without a trailing slash.
    public_url: String,
    /// Whether a reverse proxy's headers say the origin instead.
    trust_proxy: bool,
}

impl Links {
    pub(crate) fn new(public_url: String, trust_proxy: bool) -> Self {
        Self {
            public_url,
            trust_proxy,
        }
    }

    /// The base for links in the answer to a request with `headers` that used `version`:
    /// `<origin><version>`, e.g. `https://notif.example.com/beta`.
    pub(crate) fn base(&self, headers: &HeaderMap, version: ApiVersion) -> String {
        let origin = self
            .trust_proxy
            .then(|| self.forwarded_origin(headers))
            .flatten()
            .unwrap_or_else(|| self.public_url.clone());
        format!("{origin}{}", version.0)
    }

    /// The origin a proxy says the client used: RFC 7239 `Forwarded` (its first element),
    /// else `X-Forwarded-Proto` and `X-Forwarded-Host`; a missing scheme is the public URL's.
    fn forwarded_origin(&self, headers: &HeaderMap) -> Option<String> {
        let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
        let first = |value: &str| {
            value
                .split(',')
                .next()
                .unwrap_or_default()
                .trim()
                .to_owned()
        };
        let (mut proto, mut host) = (None, None);
        if let Some(forwarded) = header("forwarded") {
            for pair in first(forwarded).split(';') {
                if let Some((name, value)) = pair.trim().split_once('=') {
                    let value = value.trim_matches('"').to_owned();
                    match name.trim().to_ascii_lowercase().as_str() {
                        "proto" => proto = Some(value),
                        "host" => host = Some(value),
                        _ => {}
                    }
                }
            }
        }
        let host = host.or_else(|| header("x-forwarded-host").map(first))?;
        let proto = proto
            .or_else(|| header("x-forwarded-proto").map(first))
            .unwrap_or_else(|| {
                self.public_url
                    .split_once("://")
                    .map_or("http", |(scheme, _)| scheme)
                    .to_owned()
            })
            .to_ascii_lowercase();
        // Only what a host and a scheme can be: the headers end up in links clients follow.
        let host_valid = !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
        (host_valid && matches!(proto.as_str(), "http" | "https"))
            .then(|| format!("{proto}://{host}"))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ApiVersion {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<ApiVersion>()
            .copied()
            .unwrap_or(ApiVersion("")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(*name, value.parse().unwrap_or_else(|_| unreachable!()));
        }
        headers
    }

    #[test]
    fn links_keep_the_version_and_the_public_url() {
        let links = Links::new("http://127.0.0.1:50051".into(), false);
        let proxied = headers(&[
            ("x-forwarded-host", "evil.example"),
            ("x-forwarded-proto", "https"),
        ]);
        assert_eq!(
            links.base(&proxied, ApiVersion("/beta")),
            "http://127.0.0.1:50051/beta"
        );
        assert_eq!(
            links.base(&HeaderMap::new(), ApiVersion("")),
            "http://127.0.0.1:50051"
        );
    }

    #[test]
    fn a_trusted_proxy_names_the_origin() {
        let links = Links::new("http://10.0.0.5:50051".into(), true);
        let forwarded = headers(&[(
            "forwarded",
            "for=1.2.3.4;proto=https;host=\"notif.example.com\", for=5.6.7.8",
        )]);
        assert_eq!(
            links.base(&forwarded, ApiVersion("/v1.0")),
            "https://notif.example.com/v1.0"
        );
        let x_forwarded = headers(&[
            ("x-forwarded-host", "api.example.com:8443, inner"),
            ("x-forwarded-proto", "https"),
        ]);
        assert_eq!(
            links.base(&x_forwarded, ApiVersion("")),
            "https://api.example.com:8443"
        );
        let host_only = headers(&[("x-forwarded-host", "api.example.com")]);
        assert_eq!(
            links.base(&host_only, ApiVersion("")),
            "http://api.example.com"
        );
        let forged = headers(&[
            ("x-forwarded-host", "a.com/evil?x"),
            ("x-forwarded-proto", "javascript"),
        ]);
        assert_eq!(links.base(&forged, ApiVersion("")), "http://10.0.0.5:50051");
    }
}
