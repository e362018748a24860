//! Graph JSON: request bodies into domain drafts (every type mismatch named by field), and
//! domain values into Graph entities.

use std::io::Read;

use axum::body::Bytes;
use axum::http::HeaderMap;
use notif_core::delivery::{DeliveryRecord, DeliveryState};
use notif_core::fallback::FallbackPolicyDraft;
use notif_core::notification::{Notification, NotificationDraft, Scalar, VisualContentDraft};
use notif_core::subscription::{ChannelDraft, Subscription};
use serde_json::{Map, Value, json};

use crate::error::ApiError;

/// The body, inflated per `Content-Encoding` (gzip, deflate or none) to at most `limit`
/// bytes, parsed as JSON.
///
/// Inflating runs on the blocking pool and stops at the limit, so a small body that inflates
/// to gigabytes costs one bounded buffer and a `413`.
pub(crate) async fn parse_body(
    headers: &HeaderMap,
    body: Bytes,
    limit: usize,
) -> Result<Value, ApiError> {
    let encoding = headers
        .get("content-encoding")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("identity")
        .trim()
        .to_ascii_lowercase();
    let bytes = match encoding.as_str() {
        "identity" | "" => body,
        "gzip" | "x-gzip" | "deflate" => {
            tokio::task::spawn_blocking(move || inflate(&encoding, &body, limit))
                .await
                .map_err(|error| {
                    ApiError::Domain(notif_core::Error::Internal(format!(
                        "inflating a body: {error}"
                    )))
                })??
        }
        other => return Err(ApiError::UnsupportedEncoding(other.to_owned())),
    };
    serde_json::from_slice(&bytes)
        .map_err(|error| ApiError::invalid("(body)", format!("not valid JSON: {error}")))
}

fn inflate(encoding: &str, body: &[u8], limit: usize) -> Result<Bytes, ApiError> {
    let reader: Box<dyn Read + '_> = if encoding == "deflate" {
        Box::new(flate2::read::ZlibDecoder::new(body))
    } else {
        Box::new(flate2::read::GzDecoder::new(body))
    };
    let mut inflated = Vec::new();
    // One byte past the limit tells "exactly at the limit" from "over it".
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    reader
        .take(cap)
        .read_to_end(&mut inflated)
        .map_err(|_| ApiError::invalid("(body)", format!("not valid {encoding} data")))?;
    if inflated.len() > limit {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    Ok(Bytes::from(inflated))
}

fn object<'a>(value: &'a Value, field: &str) -> Result<&'a Map<String, Value>, ApiError> {
    match value {
        Value::Object(map) => Ok(map),
        Value::Array(_) if field == "(body)" => Err(ApiError::invalid(
            field,
            "must be a single notification object, not an array",
        )),
        _ => Err(ApiError::invalid(field, "must be an object")),
    }
}

fn optional_object<'a>(
    map: &'a Map<String, Value>,
    key: &str,
    field: &str,
) -> Result<Option<&'a Map<String, Value>>, ApiError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => object(value, field).map(Some),
    }
}

fn optional_string(
    map: &Map<String, Value>,
    key: &str,
    field: &str,
) -> Result<Option<String>, ApiError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(_) => Err(ApiError::invalid(field, "must be a string")),
    }
}

fn optional_scalar(
    map: &Map<String, Value>,
    key: &str,
    field: &str,
) -> Result<Option<Scalar>, ApiError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(Scalar::Text(text.clone()))),
        Some(Value::Number(number)) => number
            .as_i64()
            .map(|number| Some(Scalar::Number(number)))
            .ok_or_else(|| ApiError::invalid(field, "must be a whole number")),
        Some(_) => Err(ApiError::invalid(field, "must be a number or a string")),
    }
}

/// An optional array of strings (absent or null: empty).
fn string_array(map: &Map<String, Value>, key: &str, field: &str) -> Result<Vec<String>, ApiError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(index, item)| {
                item.as_str().map(str::to_owned).ok_or_else(|| {
                    ApiError::invalid(&format!("{field}[{index}]"), "must be a string")
                })
            })
            .collect(),
        Some(_) => Err(ApiError::invalid(field, "must be an array")),
    }
}

/// The `POST /me/notifications` body as a draft.
pub(crate) fn notification_draft(body: &Value) -> Result<NotificationDraft, ApiError> {
    let map = object(body, "(body)")?;
    let payload = optional_object(map, "payload", "payload")?;
    let visual_content = match payload {
        Some(payload) => optional_object(payload, "visualContent", "payload.visualContent")?
            .map(|visual| -> Result<VisualContentDraft, ApiError> {
                Ok(VisualContentDraft {
                    title: optional_string(visual, "title", "payload.visualContent.title")?,
                    body: optional_string(visual, "body", "payload.visualContent.body")?,
                })
            })
            .transpose()?,
        None => None,
    };
    let raw_content = match payload {
        Some(payload) => optional_string(payload, "rawContent", "payload.rawContent")?,
        None => None,
    };
    let platform_types = match optional_object(map, "targetPolicy", "targetPolicy")? {
        None => Vec::new(),
        Some(policy) => string_array(policy, "platformTypes", "targetPolicy.platformTypes")?,
    };
    let fallback_policy = optional_object(map, "fallbackPolicy", "fallbackPolicy")?
        .map(|policy| -> Result<FallbackPolicyDraft, ApiError> {
            Ok(FallbackPolicyDraft {
                platform_types: string_array(
                    policy,
                    "platformTypes",
                    "fallbackPolicy.platformTypes",
                )?,
                fallback_delay_in_seconds: optional_scalar(
                    policy,
                    "fallbackDelayInSeconds",
                    "fallbackPolicy.fallbackDelayInSeconds",
                )?,
            })
        })
        .transpose()?;
    Ok(NotificationDraft {
        target_host_name: optional_string(map, "targetHostName", "targetHostName")?,
        app_notification_id: optional_string(map, "appNotificationId", "appNotificationId")?,
        group_name: optional_string(map, "groupName", "groupName")?,
        visual_content,
        raw_content,
        platform_types,
        fallback_policy,
        priority: optional_scalar(map, "priority", "priority")?,
        display_time_to_live: optional_scalar(map, "displayTimeToLive", "displayTimeToLive")?,
        expiration_date_time: optional_string(map, "expirationDateTime", "expirationDateTime")?,
    })
}

/// The `PATCH` body's states.
pub(crate) fn state_fields(body: &Value) -> Result<(Option<String>, Option<String>), ApiError> {
    let map = object(body, "(body)")?;
    Ok((
        optional_string(map, "readState", "readState")?,
        optional_string(map, "userActionState", "userActionState")?,
    ))
}

/// A subscribe body: the browser's PushSubscription JSON plus `platform`, or a native channel.
pub(crate) fn channel_draft(body: &Value) -> Result<ChannelDraft, ApiError> {
    let map = object(body, "(body)")?;
    let keys = optional_object(map, "keys", "keys")?;
    let key = |name: &str| match keys {
        Some(keys) => optional_string(keys, name, &format!("keys.{name}")),
        None => Ok(None),
    };
    Ok(ChannelDraft {
        platform: optional_string(map, "platform", "platform")?,
        channel_uri: optional_string(map, "channelUri", "channelUri")?,
        registration_token: optional_string(map, "registrationToken", "registrationToken")?,
        device_token: optional_string(map, "deviceToken", "deviceToken")?,
        topic: optional_string(map, "topic", "topic")?,
        environment: optional_string(map, "environment", "environment")?,
        endpoint: optional_string(map, "endpoint", "endpoint")?,
        p256dh: key("p256dh")?,
        auth: key("auth")?,
    })
}

/// Percent-encodes a path or OData key segment.
fn percent_encode(text: &str) -> String {
    let mut encoded = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// The Graph entity of a notification.
pub(crate) fn notification(base: &str, notification: &Notification) -> Value {
    let payload = {
        let mut payload = Map::new();
        if let Some(visual) = notification.payload.visual() {
            payload.insert(
                "visualContent".into(),
                json!({"title": visual.title, "body": visual.body}),
            );
        }
        if let Some(raw) = notification.payload.raw() {
            payload.insert("rawContent".into(), json!(raw));
        }
        Value::Object(payload)
    };
    json!({
        "@odata.context": format!(
            "{base}/$metadata#users('{}')/notifications/$entity",
            percent_encode(notification.feed.user.as_str())
        ),
        "id": notification.id.to_string(),
        "appNotificationId": notification.app_notification_id.as_str(),
        "targetHostName": notification.target_host_name.as_str(),
        "groupName": notification.group_name.as_ref().map(|group| group.as_str()),
        "displayTimeToLive": notification.display_time_to_live.map(|ttl| ttl.seconds()),
        "expirationDateTime": notification.expiration.to_rfc3339(),
        "priority": notification.priority.as_number().to_string(),
        "payload": payload,
        "targetPolicy": {
            "platformTypes": notification.target_policy.platforms().map(|p| p.as_str()).collect::<Vec<_>>(),
        },
        "fallbackPolicy": notification.fallback_policy.as_ref().map(|policy| json!({
            "platformTypes": policy.platforms().map(|p| p.as_str()).collect::<Vec<_>>(),
            "fallbackDelayInSeconds": policy.delay_seconds(),
        })),
        "createdDateTime": notification.created_at.to_rfc3339(),
        "lastModifiedDateTime": notification.last_modified_at.map(|time| time.to_rfc3339()),
        "status": notification.status.as_str(),
        "readState": notification.read_state.as_str(),
        "userActionState": notification.user_action_state.as_str(),
        "changeSeq": notification.change_seq.value(),
    })
}

/// The Graph entity of a subscription.
pub(crate) fn subscription(subscription: &Subscription, renewed: Option<bool>) -> Value {
    let mut value = json!({
        "id": subscription.id.to_string(),
        "platform": subscription.channel.platform().as_str(),
        "clientId": subscription.client_id.as_str(),
        "createdDateTime": subscription.created_at.to_rfc3339(),
        "expirationDateTime": subscription.expires_at.to_rfc3339(),
    });
    if let Some(renewed) = renewed {
        value["renewed"] = json!(renewed);
    }
    value
}

/// One endpoint's delivery status.
pub(crate) fn delivery(record: &DeliveryRecord) -> Value {
    let (state, detail) = match &record.state {
        DeliveryState::Pending => ("pending", Value::Null),
        DeliveryState::Delivered { at, .. } => ("delivered", json!(at.to_rfc3339())),
        DeliveryState::Retrying { next_attempt } => ("retrying", json!(next_attempt.to_rfc3339())),
        DeliveryState::Failed { reason } => ("failed", json!(reason)),
        DeliveryState::EndpointGone => ("endpointGone", Value::Null),
        DeliveryState::Expired => ("expired", Value::Null),
        DeliveryState::AwaitingFetch { fallback_at } => {
            ("awaitingFetch", json!(fallback_at.to_rfc3339()))
        }
        DeliveryState::Fetched { at } => ("fetched", json!(at.to_rfc3339())),
        DeliveryState::FallbackDelivered { at, .. } => {
            ("fallbackDelivered", json!(at.to_rfc3339()))
        }
    };
    let mut value = json!({
        "subscriptionId": record.subscription.to_string(),
        "platform": record.platform.as_str(),
        "state": state,
        "detail": detail,
        "attempts": record.attempts,
        "updatedDateTime": record.updated_at.to_rfc3339(),
    });
    if let DeliveryState::Delivered {
        text_shortened: true,
        ..
    }
    | DeliveryState::FallbackDelivered {
        text_shortened: true,
        ..
    } = record.state
    {
        value["textShortened"] = json!(true);
    }
    value
}
