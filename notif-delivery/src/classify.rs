//! Response classification shared by every adapter: status families, `Retry-After`, transport
//! failures, and the refresh-once rule for expired provider credentials.

use std::future::Future;
use std::time::Duration;

use notif_core::delivery::DeliveryOutcome;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;

/// A provider's wait request in whole seconds, from `header` (`Retry-After`,
/// `X-WNS-CONTINUE-AFTER`).
pub(crate) fn retry_after(headers: &HeaderMap, header: &str) -> Option<Duration> {
    headers
        .get(header)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// The outcome of a request that got no response: a timeout, a refused or reset connection.
/// Always retried, never a reason to prune.
pub(crate) fn transport_failure(_error: &reqwest::Error) -> DeliveryOutcome {
    DeliveryOutcome::Retry { after: None }
}

/// The outcome every provider shares for a status its adapter has no special rule for:
/// 2xx delivered; 429 and 5xx retried (honouring `Retry-After`); any other 4xx rejected.
pub(crate) fn by_status(status: StatusCode, headers: &HeaderMap, reason: &str) -> DeliveryOutcome {
    if status.is_success() {
        DeliveryOutcome::Delivered {
            text_shortened: false,
        }
    } else if status.is_redirection() {
        // Never followed (see `http::client`): the target escaped the channel allow-list.
        let location = headers
            .get("location")
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default();
        tracing::warn!(%status, location, "a provider answered a push with a redirect; not followed");
        DeliveryOutcome::Rejected {
            reason: format!("{status}: redirect to {location:?} not followed"),
        }
    } else if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        DeliveryOutcome::Retry {
            after: retry_after(headers, "retry-after"),
        }
    } else {
        let reason = if reason.is_empty() {
            status.to_string()
        } else {
            format!("{status}: {reason}")
        };
        DeliveryOutcome::Rejected { reason }
    }
}

/// `outcome`, saying when it is a delivery whether the alert text was shortened to fit.
pub(crate) fn noting_shortened(outcome: DeliveryOutcome, text_shortened: bool) -> DeliveryOutcome {
    match outcome {
        DeliveryOutcome::Delivered { .. } => DeliveryOutcome::Delivered { text_shortened },
        other => other,
    }
}

/// Sends once; when the provider says the credential expired, refreshes it and sends once more.
pub(crate) async fn with_credential_refresh<F, Fut>(send: F) -> DeliveryOutcome
where
    F: Fn(bool) -> Fut,
    Fut: Future<Output = DeliveryOutcome>,
{
    match send(false).await {
        DeliveryOutcome::RefreshCredentials => send(true).await,
        outcome => outcome,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn status_families_classify() {
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", HeaderValue::from_static("7"));
        assert_eq!(
            by_status(StatusCode::OK, &headers, ""),
            DeliveryOutcome::Delivered {
                text_shortened: false
            }
        );
        assert_eq!(
            by_status(StatusCode::TOO_MANY_REQUESTS, &headers, ""),
            DeliveryOutcome::Retry {
                after: Some(Duration::from_secs(7))
            }
        );
        assert_eq!(
            by_status(StatusCode::SERVICE_UNAVAILABLE, &HeaderMap::new(), ""),
            DeliveryOutcome::Retry { after: None }
        );
        assert!(matches!(
            by_status(StatusCode::BAD_REQUEST, &headers, "BadTopic"),
            DeliveryOutcome::Rejected { reason } if reason.contains("BadTopic")
        ));
    }

    #[test]
    fn retry_after_ignores_garbage() {
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&headers, "retry-after"), None);
    }

    #[tokio::test]
    async fn credentials_are_refreshed_once() {
        let calls = std::sync::atomic::AtomicUsize::new(0);
        let outcome = with_credential_refresh(|refresh| {
            calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async move {
                if refresh {
                    DeliveryOutcome::Delivered {
                        text_shortened: false,
                    }
                } else {
                    DeliveryOutcome::RefreshCredentials
                }
            }
        })
        .await;
        assert_eq!(
            outcome,
            DeliveryOutcome::Delivered {
                text_shortened: false
            }
        );
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2);
    }
}
