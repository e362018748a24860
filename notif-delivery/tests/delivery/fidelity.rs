//! Each adapter against the strict sandbox, at the providers' documented limits: long alert
//! text, long expirations, keys of every allowed character, title-only alerts — and, as a
//! property, any valid notification is accepted by every provider.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use notif_core::delivery::DeliveryOutcome;
use notif_core::fanout::ChangeKind;
use notif_core::notification::{NotificationDraft, VisualContentDraft};
use notif_core::platform::Platform;
use notif_delivery::sandbox::ReceivedPush;
use proptest::prelude::*;
use serde_json::Value;

use crate::fixtures::{Sandbox, notification, push, visual_draft};

const SHORTENED: DeliveryOutcome = DeliveryOutcome::Delivered {
    text_shortened: true,
};
const DELIVERED: DeliveryOutcome = DeliveryOutcome::Delivered {
    text_shortened: false,
};

async fn send(
    sandbox: &Sandbox,
    platform: Platform,
    draft: NotificationDraft,
) -> (DeliveryOutcome, ReceivedPush) {
    let message = push(
        &notification(draft),
        ChangeKind::Created,
        sandbox.subscription(platform, 1),
    );
    let outcome = sandbox.gateway(platform).send(&message).await;
    let received = sandbox
        .providers
        .pushes()
        .pop()
        .expect("the provider received the push");
    (outcome, received)
}

fn with_text(title: &str, body: Option<String>) -> NotificationDraft {
    NotificationDraft {
        visual_content: Some(VisualContentDraft {
            title: Some(title.into()),
            body,
        }),
        ..visual_draft("long")
    }
}

fn alert_text(platform: Platform, received: &ReceivedPush) -> (String, Option<String>) {
    let text = |value: &Value| value.as_str().map(str::to_owned);
    match platform {
        Platform::Ios => {
            let body: Value = serde_json::from_slice(&received.body).unwrap();
            let alert = &body["aps"]["alert"];
            (text(&alert["title"]).unwrap(), text(&alert["body"]))
        }
        Platform::Android => {
            let body: Value = serde_json::from_slice(&received.body).unwrap();
            let notification = &body["message"]["notification"];
            (
                text(&notification["title"]).unwrap(),
                text(&notification["body"]),
            )
        }
        Platform::Windows => {
            let xml = String::from_utf8(received.body.clone()).unwrap();
            let texts: Vec<String> = xml
                .split("<text>")
                .skip(1)
                .filter_map(|rest| rest.split_once("</text>"))
                .map(|(text, _)| {
                    text.replace("&quot;", "\"")
                        .replace("&apos;", "'")
                        .replace("&lt;", "<")
                        .replace("&gt;", ">")
                        .replace("&amp;", "&")
                })
                .collect();
            (texts[0].clone(), texts.get(1).cloned())
        }
        Platform::WebPush => unreachable!("Web Push carries no alert"),
    }
}

const ALERT_PLATFORMS: [Platform; 3] = [Platform::Ios, Platform::Android, Platform::Windows];

#[tokio::test]
async fn a_long_body_is_shortened_to_fit_each_platform() {
    let sandbox = Sandbox::start().await;
    let body = "Ünïcödé & \"quoted\" text. ".repeat(160);
    let body: String = body.chars().take(4_000).collect();
    for platform in ALERT_PLATFORMS {
        let (outcome, received) =
            send(&sandbox, platform, with_text("Title", Some(body.clone()))).await;
        assert_eq!(outcome, SHORTENED, "{platform}");
        assert!(
            received.body.len() <= platform.payload_limit(),
            "{platform}"
        );
        let (title, shortened) = alert_text(platform, &received);
        assert_eq!(title, "Title");
        let shortened = shortened.unwrap();
        let kept = shortened.strip_suffix('\u{2026}').unwrap();
        assert!(!kept.is_empty() && body.starts_with(kept), "{platform}");
    }
}

#[tokio::test]
async fn text_that_fits_is_not_shortened() {
    let sandbox = Sandbox::start().await;
    for platform in ALERT_PLATFORMS {
        let (outcome, received) = send(
            &sandbox,
            platform,
            with_text("Title", Some("a short body".into())),
        )
        .await;
        assert_eq!(outcome, DELIVERED, "{platform}");
        assert_eq!(
            alert_text(platform, &received).1.as_deref(),
            Some("a short body")
        );
    }
}

#[tokio::test]
async fn a_title_only_alert_carries_no_body_key() {
    let sandbox = Sandbox::start().await;
    let (outcome, apns) = send(&sandbox, Platform::Ios, with_text("Only a title", None)).await;
    assert_eq!(outcome, DELIVERED);
    let body: Value = serde_json::from_slice(&apns.body).unwrap();
    assert_eq!(
        body["aps"]["alert"],
        serde_json::json!({"title": "Only a title"})
    );
    let (outcome, fcm) = send(&sandbox, Platform::Android, with_text("Only a title", None)).await;
    assert_eq!(outcome, DELIVERED);
    let body: Value = serde_json::from_slice(&fcm.body).unwrap();
    assert_eq!(
        body["message"]["notification"],
        serde_json::json!({"title": "Only a title"})
    );
}

fn expiring_in(days: u64) -> NotificationDraft {
    let expiration = time::OffsetDateTime::now_utc() + Duration::from_secs(days * 86_400 - 60);
    NotificationDraft {
        expiration_date_time: Some(
            expiration
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap(),
        ),
        ..visual_draft("long-lived")
    }
}

#[tokio::test]
async fn fcm_ttl_is_clamped_to_four_weeks() {
    let sandbox = Sandbox::start().await;
    let (outcome, fcm) = send(&sandbox, Platform::Android, expiring_in(29)).await;
    assert_eq!(outcome, DELIVERED);
    let body: Value = serde_json::from_slice(&fcm.body).unwrap();
    assert_eq!(body["message"]["android"]["ttl"], "2419200s");
    for platform in [Platform::Ios, Platform::Windows, Platform::WebPush] {
        let (outcome, _) = send(&sandbox, platform, expiring_in(30)).await;
        assert_eq!(outcome, DELIVERED, "{platform}");
    }
}

#[tokio::test]
async fn wns_tags_and_groups_are_alphanumeric() {
    let sandbox = Sandbox::start().await;
    let draft = NotificationDraft {
        app_notification_id: Some("order-42".into()),
        group_name: Some("team_a b".into()),
        ..visual_draft("")
    };
    let (outcome, wns) = send(&sandbox, Platform::Windows, draft).await;
    assert_eq!(outcome, DELIVERED);
    for header in ["x-wns-tag", "x-wns-group"] {
        let value = &wns.headers[header];
        assert!(
            value.len() <= 16 && value.chars().all(|c| c.is_ascii_alphanumeric()),
            "{header}: {value}"
        );
    }
}

#[tokio::test]
async fn the_fcm_assertion_audience_is_googles_token_endpoint() {
    let sandbox = Sandbox::start().await;
    let (outcome, _) = send(&sandbox, Platform::Android, visual_draft("n")).await;
    assert_eq!(outcome, DELIVERED);
    assert_eq!(
        sandbox.providers.token_requests(Platform::Android),
        1,
        "the sandbox's token endpoint accepted the assertion"
    );
}

#[tokio::test]
async fn the_vapid_audience_carries_the_endpoint_port() {
    let sandbox = Sandbox::start().await;
    let (outcome, web) = send(&sandbox, Platform::WebPush, visual_draft("n")).await;
    assert_eq!(outcome, DELIVERED);
    let token = web.headers["authorization"]
        .strip_prefix("vapid t=")
        .and_then(|rest| rest.split_once(", k="))
        .unwrap()
        .0
        .to_owned();
    let claims: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["aud"], sandbox.providers.base_url());
    assert!(web.envelope.is_some(), "the sandbox decrypted the push");
}

/// Text of any characters notif accepts in a title (no control characters but line breaks).
fn title_text(max: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just('a'),
            Just('&'),
            Just('<'),
            Just('"'),
            Just('\''),
            Just('é'),
            Just('\u{1F600}'),
            Just('\\'),
            Just('\n'),
            Just(' '),
        ],
        1..=max,
    )
    .prop_map(|chars| chars.into_iter().collect::<String>())
    .prop_filter("not blank", |text| !text.trim().is_empty())
}

/// Printable characters for keys: ASCII punctuation, letters, and beyond.
fn key_text(max: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            proptest::char::range('!', '~'),
            Just(' '),
            Just('é'),
            Just('\u{4E2D}'),
        ],
        1..=max,
    )
    .prop_map(|chars| chars.into_iter().collect::<String>())
    .prop_filter("not blank", |text| !text.trim().is_empty())
}

fn any_draft() -> impl Strategy<Value = NotificationDraft> {
    (
        key_text(256),
        proptest::option::of(key_text(256)),
        title_text(256),
        proptest::option::of(title_text(4096)),
        proptest::option::of(".{0,300}"),
        1u64..=30,
    )
        .prop_map(|(key, group, title, body, raw, days)| NotificationDraft {
            app_notification_id: Some(key),
            group_name: group,
            visual_content: Some(VisualContentDraft {
                title: Some(title),
                body,
            }),
            raw_content: raw,
            ..expiring_in(days)
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn every_valid_notification_is_accepted_by_every_provider(draft in any_draft()) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let sandbox = Sandbox::start().await;
            for platform in Platform::ALL {
                let (outcome, received) = send(&sandbox, platform, draft.clone()).await;
                prop_assert!(
                    matches!(outcome, DeliveryOutcome::Delivered { .. }),
                    "{platform}: {outcome:?}"
                );
                prop_assert!(received.envelope.is_some(), "{platform}: no envelope");
            }
            Ok(())
        })?;
    }
}
