//! What each real provider refuses, refused here the same way: every rule cites the document
//! it comes from, so a push the sandbox accepts is one the provider would accept.

use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

/// A refusal: the status and the provider's reason.
pub(crate) type Refusal = (u16, String);

fn refuse(status: u16, reason: impl Into<String>) -> Refusal {
    (status, reason.into())
}

// ----- APNs ------------------------------------------------------------------------------
// Apple, "Sending notification requests to APNs" (headers), "Handling notification responses
// from APNs" (reasons), "Generating a remote notification" (payload keys and their types),
// "Pushing background updates to your App" (background pushes).

/// The payload size Apple accepts for every push type but VoIP.
const APNS_MAX_PAYLOAD: usize = 4096;
/// `apns-collapse-id`: "The value of this key must not exceed 64 bytes."
const APNS_MAX_COLLAPSE_ID: usize = 64;
const APNS_ALERT_STRING_KEYS: &[&str] = &[
    "title",
    "subtitle",
    "body",
    "launch-image",
    "title-loc-key",
    "subtitle-loc-key",
    "loc-key",
];

/// Checks an APNs request's headers and payload (the provider token is checked before).
pub(crate) fn apns(header: impl Fn(&str) -> Option<String>, body: &[u8]) -> Result<Value, Refusal> {
    let push_type = header("apns-push-type");
    let priority = header("apns-priority");
    match push_type.as_deref() {
        Some(
            "alert" | "background" | "location" | "voip" | "complication" | "fileprovider" | "mdm"
            | "liveactivity" | "pushtotalk",
        ) => {}
        _ => return Err(refuse(400, "InvalidPushType")),
    }
    // "Notifications with apns-push-type background must use a priority of 5."
    match (push_type.as_deref(), priority.as_deref()) {
        (Some("background"), Some("5") | None) => {}
        (Some("background"), _) => return Err(refuse(400, "BadPriority")),
        (_, Some("10" | "5" | "1") | None) => {}
        _ => return Err(refuse(400, "BadPriority")),
    }
    if header("apns-expiration").is_some_and(|value| value.parse::<u64>().is_err()) {
        return Err(refuse(400, "BadExpirationDate"));
    }
    if header("apns-collapse-id").is_some_and(|value| value.len() > APNS_MAX_COLLAPSE_ID) {
        return Err(refuse(400, "BadCollapseId"));
    }
    if body.len() > APNS_MAX_PAYLOAD {
        return Err(refuse(413, "PayloadTooLarge"));
    }
    let payload: Value = serde_json::from_slice(body).map_err(|_| refuse(400, "PayloadEmpty"))?;
    let Some(aps) = payload.get("aps").and_then(Value::as_object) else {
        return Err(refuse(400, "PayloadEmpty"));
    };
    // Apple documents these types but not its answer to a wrong one; the sandbox refuses
    // them with 400 so that no test passes on a payload a device may not show.
    let bad_payload = || refuse(400, "BadPayload");
    if aps.get("thread-id").is_some_and(|value| !value.is_string()) {
        return Err(bad_payload());
    }
    match (push_type.as_deref(), aps.get("alert")) {
        (Some("alert"), Some(Value::String(_))) => {}
        (Some("alert"), Some(Value::Object(alert))) => {
            let typed = alert.iter().all(|(key, value)| {
                !APNS_ALERT_STRING_KEYS.contains(&key.as_str()) || value.is_string()
            });
            if !typed || !alert.contains_key("title") && !alert.contains_key("body") {
                return Err(bad_payload());
            }
        }
        (Some("alert"), _) => return Err(bad_payload()),
        // "The aps dictionary can't contain the alert, sound, or badge keys", and must
        // carry content-available: 1.
        (Some("background"), alert) => {
            let silent =
                alert.is_none() && !aps.contains_key("sound") && !aps.contains_key("badge");
            if !silent || aps.get("content-available") != Some(&Value::from(1)) {
                return Err(bad_payload());
            }
        }
        _ => {}
    }
    Ok(payload)
}

// ----- FCM -------------------------------------------------------------------------------
// Firebase, HTTP v1 API reference `projects.messages` (`Message`, `Notification`,
// `AndroidConfig`, `AndroidNotification`), and "About FCM messages" (the 4,096-byte limit).

/// "The maximum payload for both message types is 4096 bytes" — the sandbox counts the whole
/// request body, which is stricter than keys and values alone.
const FCM_MAX_MESSAGE: usize = 4096;
/// `AndroidConfig.ttl`: "The maximum time to live supported is 4 weeks."
const FCM_MAX_TTL_SECONDS: f64 = 2_419_200.0;
const FCM_MESSAGE_KEYS: &[&str] = &[
    "name",
    "data",
    "notification",
    "android",
    "webpush",
    "apns",
    "fcm_options",
    "token",
    "topic",
    "condition",
];
const FCM_NOTIFICATION_KEYS: &[&str] = &["title", "body", "image"];
const FCM_ANDROID_KEYS: &[&str] = &[
    "collapse_key",
    "priority",
    "ttl",
    "restricted_package_name",
    "data",
    "notification",
    "fcm_options",
    "direct_boot_ok",
];
const FCM_ANDROID_NOTIFICATION_STRING_KEYS: &[&str] = &[
    "title",
    "body",
    "icon",
    "color",
    "sound",
    "tag",
    "click_action",
    "body_loc_key",
    "title_loc_key",
    "channel_id",
    "ticker",
    "image",
];

/// `INVALID_ARGUMENT` with Google's message.
fn invalid_argument(message: impl Into<String>) -> Refusal {
    refuse(400, message)
}

fn only_keys(object: &Map<String, Value>, allowed: &[&str], path: &str) -> Result<(), Refusal> {
    match object.keys().find(|key| !allowed.contains(&key.as_str())) {
        Some(unknown) => Err(invalid_argument(format!(
            "Invalid JSON payload received. Unknown name \"{unknown}\" at '{path}': Cannot find field."
        ))),
        None => Ok(()),
    }
}

fn strings_only(
    object: &Map<String, Value>,
    keys: Option<&[&str]>,
    path: &str,
) -> Result<(), Refusal> {
    for (key, value) in object {
        let typed = keys.is_some_and(|keys| !keys.contains(&key.as_str()));
        if !typed && !value.is_string() {
            return Err(invalid_argument(format!(
                "Invalid value at '{path}.{key}' (TYPE_STRING)"
            )));
        }
    }
    Ok(())
}

fn object<'a>(value: &'a Value, path: &str) -> Result<&'a Map<String, Value>, Refusal> {
    value
        .as_object()
        .ok_or_else(|| invalid_argument(format!("Invalid value at '{path}': not an object")))
}

/// `google.protobuf.Duration` in JSON: seconds with up to nine fractional digits, then `s`.
fn fcm_ttl_seconds(ttl: &str) -> Option<f64> {
    let number = ttl.strip_suffix('s')?;
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let digits = |text: &str| text.chars().all(|c| c.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || fraction.len() > 9 || !digits(fraction) {
        return None;
    }
    number.parse().ok()
}

/// Checks an FCM `messages:send` body; the message on success.
pub(crate) fn fcm(body: &[u8]) -> Result<Value, Refusal> {
    if body.len() > FCM_MAX_MESSAGE {
        return Err(invalid_argument("Message is too big"));
    }
    let request: Value = serde_json::from_slice(body)
        .map_err(|_| invalid_argument("Invalid JSON payload received."))?;
    let request_object = object(&request, "")?;
    only_keys(request_object, &["message", "validate_only"], "")?;
    let message = object(&request["message"], "message")?;
    only_keys(message, FCM_MESSAGE_KEYS, "message")?;
    let targets = ["token", "topic", "condition"]
        .iter()
        .filter(|key| {
            message
                .get(**key)
                .and_then(Value::as_str)
                .is_some_and(|value| !value.is_empty())
        })
        .count();
    if targets != 1 {
        return Err(invalid_argument(
            "Exactly one of message.token, topic or condition is required",
        ));
    }
    if let Some(data) = message.get("data") {
        strings_only(object(data, "message.data")?, None, "message.data")?;
    }
    if let Some(notification) = message.get("notification") {
        let notification = object(notification, "message.notification")?;
        only_keys(notification, FCM_NOTIFICATION_KEYS, "message.notification")?;
        strings_only(notification, None, "message.notification")?;
    }
    if let Some(android) = message.get("android") {
        let android = object(android, "message.android")?;
        only_keys(android, FCM_ANDROID_KEYS, "message.android")?;
        match android.get("priority").and_then(Value::as_str) {
            None | Some("NORMAL" | "HIGH") => {}
            Some(other) => {
                return Err(invalid_argument(format!(
                    "Invalid value at 'message.android.priority' ({other})"
                )));
            }
        }
        if let Some(ttl) = android.get("ttl") {
            let seconds = ttl.as_str().and_then(fcm_ttl_seconds);
            if seconds.is_none_or(|seconds| seconds > FCM_MAX_TTL_SECONDS) {
                return Err(invalid_argument("Invalid TTL"));
            }
        }
        if android
            .get("collapse_key")
            .is_some_and(|key| !key.is_string())
        {
            return Err(invalid_argument(
                "Invalid value at 'message.android.collapse_key'",
            ));
        }
        if let Some(notification) = android.get("notification") {
            let notification = object(notification, "message.android.notification")?;
            strings_only(
                notification,
                Some(FCM_ANDROID_NOTIFICATION_STRING_KEYS),
                "message.android.notification",
            )?;
        }
    }
    Ok(request["message"].clone())
}

// ----- WNS -------------------------------------------------------------------------------
// Microsoft, "Push notification service request and response headers" (WNS), and the toast
// content schema (XML).

/// "The maximum notification payload size is 5 KB."
const WNS_MAX_PAYLOAD: usize = 5000;

/// `X-WNS-Tag` and `X-WNS-Group`: "an alphanumeric string of no more than 16 characters".
fn wns_key_valid(value: &str) -> bool {
    !value.is_empty() && value.len() <= 16 && value.chars().all(|c| c.is_ascii_alphanumeric())
}

/// Checks a WNS push's headers and body.
pub(crate) fn wns(header: impl Fn(&str) -> Option<String>, body: &[u8]) -> Result<(), Refusal> {
    if body.len() > WNS_MAX_PAYLOAD {
        return Err(refuse(413, "Payload too large"));
    }
    let wns_type = header("x-wns-type");
    let content_type = header("content-type");
    let xml = match (wns_type.as_deref(), content_type.as_deref()) {
        (Some("wns/raw"), Some("application/octet-stream")) => false,
        (Some("wns/toast" | "wns/tile" | "wns/badge"), Some("text/xml")) => true,
        _ => return Err(refuse(400, "Missing or invalid X-WNS-Type or Content-Type")),
    };
    for name in ["x-wns-tag", "x-wns-group"] {
        if header(name).is_some_and(|value| !wns_key_valid(&value)) {
            return Err(refuse(400, format!("Invalid {name}")));
        }
    }
    if header("x-wns-ttl").is_some_and(|value| value.parse::<u64>().is_err()) {
        return Err(refuse(400, "Invalid X-WNS-TTL"));
    }
    if header("x-wns-priority")
        .is_some_and(|value| !matches!(value.as_str(), "1" | "2" | "3" | "4"))
    {
        return Err(refuse(400, "Invalid X-WNS-Priority"));
    }
    if xml {
        let text = std::str::from_utf8(body).map_err(|_| refuse(400, "Invalid XML payload"))?;
        let root = well_formed_root(text).ok_or_else(|| refuse(400, "Invalid XML payload"))?;
        let expected = wns_type
            .as_deref()
            .and_then(|kind| kind.strip_prefix("wns/"));
        if Some(root.as_str()) != expected {
            return Err(refuse(400, "Invalid XML payload"));
        }
    }
    Ok(())
}

/// The root element's name when `text` is one well-formed XML element (XML 1.0: nested
/// tags, quoted attributes, escaped `<` and `&`, known or numeric entities), else `None`.
fn well_formed_root(text: &str) -> Option<String> {
    let mut open: Vec<&str> = Vec::new();
    let mut root = None;
    let mut rest = text.trim();
    if let Some(after) = rest.strip_prefix("<?xml") {
        rest = after.split_once("?>")?.1.trim_start();
    }
    while !rest.is_empty() {
        if let Some(tag) = rest.strip_prefix('<') {
            let end = tag.find('>')?;
            let (inside, after) = (&tag[..end], &tag[end + 1..]);
            rest = after;
            if let Some(name) = inside.strip_prefix('/') {
                if open.pop()? != name.trim_end() {
                    return None;
                }
            } else {
                let self_closing = inside.ends_with('/');
                let inside = inside.trim_end_matches('/');
                let (name, attributes) = inside
                    .split_once(char::is_whitespace)
                    .unwrap_or((inside, ""));
                if !xml_name(name)
                    || !xml_attributes(attributes)
                    || open.is_empty() && root.is_some()
                {
                    return None;
                }
                root.get_or_insert_with(|| name.to_owned());
                if !self_closing {
                    open.push(name);
                }
            }
        } else {
            let end = rest.find('<').unwrap_or(rest.len());
            let (content, after) = rest.split_at(end);
            if open.is_empty() && !content.trim().is_empty() || !xml_text(content) {
                return None;
            }
            rest = after;
        }
    }
    open.is_empty().then_some(root).flatten()
}

fn xml_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_alphanumeric() || matches!(c, '_' | ':' | '-' | '.'))
}

fn xml_attributes(mut text: &str) -> bool {
    loop {
        text = text.trim_start();
        if text.is_empty() {
            return true;
        }
        let Some((name, after)) = text.split_once('=') else {
            return false;
        };
        let after = after.trim_start();
        let Some(quote) = after.chars().next().filter(|c| *c == '"' || *c == '\'') else {
            return false;
        };
        let Some((value, after)) = after[1..].split_once(quote) else {
            return false;
        };
        if !xml_name(name.trim()) || value.contains('<') || !xml_text(value) {
            return false;
        }
        text = after;
    }
}

/// Text of XML 1.0 `Char`s with every `&` starting a known or numeric entity, and no `<`.
fn xml_text(text: &str) -> bool {
    let xml_char = |c: char| matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..);
    !text.contains('<')
        && text.chars().all(xml_char)
        && text.split('&').skip(1).all(|after| {
            after.split_once(';').is_some_and(|(entity, _)| {
                matches!(entity, "amp" | "lt" | "gt" | "quot" | "apos")
                    || entity.strip_prefix("#x").map_or_else(
                        || {
                            entity.strip_prefix('#').is_some_and(|digits| {
                                !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit())
                            })
                        },
                        |hex| !hex.is_empty() && hex.chars().all(|c| c.is_ascii_hexdigit()),
                    )
            })
        })
}

// ----- Web Push --------------------------------------------------------------------------
// RFC 8030 (TTL, Urgency, Topic), RFC 8291 (aes128gcm, one record), RFC 8292 (VAPID).

/// RFC 8030 §5.4: a topic is at most 32 characters of the URL and filename safe base64
/// alphabet.
fn web_push_topic_valid(topic: &str) -> bool {
    topic.len() <= 32
        && topic
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Checks a Web Push request's headers and its VAPID token against `origin`, the push
/// resource's origin (RFC 6454) as the push service serves it.
pub(crate) fn web_push(
    header: impl Fn(&str) -> Option<String>,
    origin: &str,
    body: &[u8],
) -> Result<(), Refusal> {
    let Some(authorization) = header("authorization") else {
        return Err(refuse(401, "VAPID authorization required"));
    };
    vapid(&authorization, origin)?;
    if header("content-encoding").as_deref() != Some("aes128gcm") {
        return Err(refuse(400, "Content-Encoding must be aes128gcm"));
    }
    if header("ttl").is_none_or(|ttl| ttl.parse::<u64>().is_err()) {
        return Err(refuse(400, "TTL header required"));
    }
    // RFC 8030 §5.3.
    if header("urgency")
        .is_some_and(|value| !matches!(value.as_str(), "very-low" | "low" | "normal" | "high"))
    {
        return Err(refuse(400, "Invalid Urgency"));
    }
    if header("topic").is_some_and(|topic| !web_push_topic_valid(&topic)) {
        return Err(refuse(400, "Invalid Topic"));
    }
    // RFC 8291 §4: push services must accept at least 4,096 bytes of payload body.
    if body.len() > 4096 {
        return Err(refuse(413, "Payload too large"));
    }
    Ok(())
}

/// RFC 8292 §3: `vapid t=<JWT>, k=<public key>`; the JWT is ES256-signed by `k`, its `aud` is
/// the push resource's origin, its `exp` at most 24 hours ahead, and it names a contact.
/// §4.2: a push service answers 403 to a token that fails.
fn vapid(authorization: &str, origin: &str) -> Result<(), Refusal> {
    let forbidden = |reason: &str| refuse(403, format!("VAPID: {reason}"));
    let credentials = authorization
        .strip_prefix("vapid ")
        .ok_or_else(|| refuse(401, "VAPID authorization required"))?;
    let mut token = None;
    let mut key = None;
    for parameter in credentials.split(',') {
        match parameter.trim().split_once('=') {
            Some(("t", value)) => token = Some(value),
            Some(("k", value)) => key = Some(value),
            _ => {}
        }
    }
    let (Some(token), Some(key)) = (token, key) else {
        return Err(forbidden("t and k are required"));
    };
    let key = URL_SAFE_NO_PAD
        .decode(key)
        .map_err(|_| forbidden("k is not base64url"))?;
    let parts: Vec<&str> = token.split('.').collect();
    let [header, claims, signature] = parts.as_slice() else {
        return Err(forbidden("t is not a JWT"));
    };
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| forbidden("bad signature encoding"))?;
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &key)
        .verify(format!("{header}.{claims}").as_bytes(), &signature)
        .map_err(|_| forbidden("signature does not verify with k"))?;
    let decode = |part: &str| {
        URL_SAFE_NO_PAD
            .decode(part)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
    };
    let header = decode(header).ok_or_else(|| forbidden("bad JWT header"))?;
    let claims = decode(claims).ok_or_else(|| forbidden("bad JWT claims"))?;
    if header["alg"] != "ES256" {
        return Err(forbidden("alg must be ES256"));
    }
    if claims["aud"].as_str() != Some(origin) {
        return Err(forbidden(&format!(
            "aud {} is not the push resource's origin {origin}",
            claims["aud"]
        )));
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    let expires = claims["exp"]
        .as_u64()
        .ok_or_else(|| forbidden("exp required"))?;
    if expires <= now || expires > now + 24 * 60 * 60 {
        return Err(forbidden("exp must be within 24 hours"));
    }
    let contact = claims["sub"].as_str().unwrap_or_default();
    if !contact.starts_with("mailto:") && !contact.starts_with("https:") {
        return Err(forbidden("sub must be a mailto: or https: contact"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_well_formedness() {
        assert_eq!(
            well_formed_root("<toast launch=\"{&quot;a&quot;:1}\"><visual><text>a &amp; b</text></visual></toast>").as_deref(),
            Some("toast")
        );
        assert_eq!(
            well_formed_root("<toast><text/></toast>").as_deref(),
            Some("toast")
        );
        for broken in [
            "<toast>",
            "<toast><text></toast></text>",
            "<toast>a & b</toast>",
            "<toast launch=\"a<b\"></toast>",
            "<toast launch=x></toast>",
            "<toast></toast><toast></toast>",
            "<toast>&bogus;</toast>",
            "<toast>\u{1}</toast>",
            "text<toast></toast>",
        ] {
            assert_eq!(well_formed_root(broken), None, "{broken}");
        }
    }

    #[test]
    fn fcm_ttl_follows_the_duration_format_and_maximum() {
        assert_eq!(fcm_ttl_seconds("2419200s"), Some(2_419_200.0));
        assert_eq!(fcm_ttl_seconds("3.5s"), Some(3.5));
        assert_eq!(fcm_ttl_seconds("3"), None);
        assert_eq!(fcm_ttl_seconds("-3s"), None);
        let message = |ttl: &str| {
            serde_json::to_vec(
                &serde_json::json!({"message": {"token": "t", "android": {"ttl": ttl}}}),
            )
            .unwrap()
        };
        assert!(fcm(&message("2419200s")).is_ok());
        assert!(fcm(&message("2505599s")).is_err());
    }

    #[test]
    fn fcm_refuses_unknown_fields_and_typed_values() {
        let check = |message: Value| {
            fcm(&serde_json::to_vec(&serde_json::json!({"message": message})).unwrap())
        };
        assert!(check(serde_json::json!({"token": "t", "data": {"a": "b"}})).is_ok());
        assert!(check(serde_json::json!({"token": "t", "data": {"a": 1}})).is_err());
        assert!(check(serde_json::json!({"token": "t", "bogus": 1})).is_err());
        assert!(
            check(serde_json::json!({"token": "t", "notification": {"title": "x", "body": null}}))
                .is_err()
        );
        assert!(check(serde_json::json!({"data": {}})).is_err());
    }
}
