//! Each adapter against the sandbox: the rendered request per platform contract, every
//! documented error mapped to its outcome, and provider tokens reused.

use std::time::Duration;

use notif_core::delivery::DeliveryOutcome;
use notif_core::fanout::ChangeKind;
use notif_core::platform::Platform;
use notif_delivery::sandbox::{FakeResponse, ReceivedPush};
use serde_json::Value;

use crate::fixtures::{Sandbox, notification, push, raw_draft, visual_draft};

async fn send_one(
    sandbox: &Sandbox,
    platform: Platform,
    draft: notif_core::notification::NotificationDraft,
) -> (DeliveryOutcome, ReceivedPush) {
    let notification = notification(draft);
    let message = push(
        &notification,
        ChangeKind::Created,
        sandbox.subscription(platform, 1),
    );
    let outcome = sandbox.gateway(platform).send(&message).await;
    let received = sandbox.providers.pushes().pop().unwrap();
    (outcome, received)
}

fn json(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap()
}

#[tokio::test]
async fn visual_pushes_follow_each_platform_contract() {
    let sandbox = Sandbox::start().await;
    let seconds_left = |header: &str| header.parse::<u64>().unwrap();

    let (outcome, apns) = send_one(
        &sandbox,
        Platform::Ios,
        visual_draft("testDirectToastNotification"),
    )
    .await;
    assert_eq!(
        outcome,
        DeliveryOutcome::Delivered {
            text_shortened: false
        }
    );
    assert_eq!(apns.path, format!("/3/device/{:064x}", 1));
    assert_eq!(apns.headers["apns-push-type"], "alert");
    assert_eq!(apns.headers["apns-priority"], "10");
    assert_eq!(apns.headers["apns-topic"], "com.example.app");
    assert_eq!(
        apns.headers["apns-collapse-id"],
        "testDirectToastNotification"
    );
    assert!(apns.headers["apns-expiration"].parse::<i64>().unwrap() > 1_700_000_000);
    let body = json(&apns.body);
    assert_eq!(body["aps"]["alert"]["title"], "Hello <World> & \"friends\"");
    assert_eq!(body["aps"]["alert"]["body"], "Notifications are Great!");
    assert_eq!(body["aps"]["thread-id"], "TestGroup");
    let envelope = apns.envelope.unwrap();
    assert_eq!(envelope["change"], "created");
    assert_eq!(envelope["changeSeq"], 1);
    assert_eq!(
        envelope["payload"]["visualContent"]["title"],
        "Hello <World> & \"friends\""
    );

    let (_, fcm) = send_one(
        &sandbox,
        Platform::Android,
        visual_draft("testDirectToastNotification"),
    )
    .await;
    assert_eq!(fcm.path, "/v1/projects/notif-sandbox/messages:send");
    assert!(fcm.headers["authorization"].starts_with("Bearer sandbox-android-"));
    let message = &json(&fcm.body)["message"];
    assert_eq!(message["token"], "fcm-token-1");
    assert_eq!(
        message["notification"]["title"],
        "Hello <World> & \"friends\""
    );
    assert_eq!(message["android"]["priority"], "HIGH");
    assert_eq!(
        message["android"]["collapse_key"],
        "testDirectToastNotification"
    );
    assert_eq!(
        message["android"]["notification"]["tag"],
        "testDirectToastNotification"
    );
    let ttl = message["android"]["ttl"].as_str().unwrap();
    assert!(ttl.ends_with('s') && seconds_left(ttl.trim_end_matches('s')) > 600_000);
    assert_eq!(
        fcm.envelope.unwrap()["appNotificationId"],
        "testDirectToastNotification"
    );

    let (_, wns) = send_one(
        &sandbox,
        Platform::Windows,
        visual_draft("testDirectToastNotification"),
    )
    .await;
    assert_eq!(wns.path, "/wns/device1");
    assert_eq!(wns.headers["x-wns-type"], "wns/toast");
    assert_eq!(wns.headers["content-type"], "text/xml");
    assert_eq!(wns.headers["x-wns-priority"], "1");
    assert_eq!(
        wns.headers["x-wns-tag"].len(),
        16,
        "27 characters hash to a 16-character tag"
    );
    assert_eq!(wns.headers["x-wns-group"], "TestGroup");
    assert!(seconds_left(&wns.headers["x-wns-ttl"]) > 600_000);
    let xml = String::from_utf8(wns.body.clone()).unwrap();
    assert!(
        xml.contains("<text>Hello &lt;World&gt; &amp; &quot;friends&quot;</text>"),
        "{xml}"
    );
    assert_eq!(wns.envelope.unwrap()["change"], "created");

    let (_, web) = send_one(
        &sandbox,
        Platform::WebPush,
        visual_draft("testDirectToastNotification"),
    )
    .await;
    assert_eq!(web.headers["content-encoding"], "aes128gcm");
    assert!(web.headers["authorization"].starts_with("vapid t="));
    assert_eq!(web.headers["urgency"], "high");
    assert_eq!(
        web.headers["topic"], "testDirectToastNotification",
        "base64url-safe keys pass as they are"
    );
    assert!(seconds_left(&web.headers["ttl"]) > 600_000);
    let envelope = web
        .envelope
        .expect("the sandbox decrypts the body back to the envelope");
    assert_eq!(
        envelope["payload"]["visualContent"]["body"],
        "Notifications are Great!"
    );
    assert_eq!(envelope["groupName"], "TestGroup");
}

#[tokio::test]
async fn raw_low_priority_pushes_are_silent() {
    let sandbox = Sandbox::start().await;
    let draft = || raw_draft("raw-1", "{\"k\":1}".into());

    let (_, apns) = send_one(&sandbox, Platform::Ios, draft()).await;
    assert_eq!(apns.headers["apns-push-type"], "background");
    assert_eq!(apns.headers["apns-priority"], "5");
    let body = json(&apns.body);
    assert_eq!(body["aps"]["content-available"], 1);
    assert!(body["aps"].get("alert").is_none() && body["aps"].get("thread-id").is_none());

    let (_, fcm) = send_one(&sandbox, Platform::Android, draft()).await;
    let message = &json(&fcm.body)["message"];
    assert!(message.get("notification").is_none());
    assert_eq!(message["android"]["priority"], "NORMAL");
    assert_eq!(fcm.envelope.unwrap()["payload"]["rawContent"], "{\"k\":1}");

    let (_, wns) = send_one(&sandbox, Platform::Windows, draft()).await;
    assert_eq!(wns.headers["x-wns-type"], "wns/raw");
    assert_eq!(wns.headers["content-type"], "application/octet-stream");
    assert_eq!(wns.headers["x-wns-priority"], "3");
    assert!(!wns.headers.contains_key("x-wns-group"));

    let (_, web) = send_one(&sandbox, Platform::WebPush, draft()).await;
    assert_eq!(web.headers["urgency"], "low");
    assert_eq!(web.envelope.unwrap()["payload"]["rawContent"], "{\"k\":1}");
}

#[tokio::test]
async fn oversize_payloads_become_shoulder_taps() {
    let sandbox = Sandbox::start().await;
    for platform in notif_core::platform::Platform::ALL {
        let (outcome, received) =
            send_one(&sandbox, platform, raw_draft("big", "x".repeat(10_000))).await;
        assert_eq!(
            outcome,
            DeliveryOutcome::Delivered {
                text_shortened: false
            },
            "{platform}"
        );
        let envelope = received.envelope.unwrap();
        assert!(envelope.get("payload").is_none(), "{platform}: {envelope}");
        assert_eq!(envelope["changeSeq"], 1);
        assert!(received.body.len() <= platform.payload_limit() + 200);
    }
}

#[tokio::test]
async fn state_changes_carry_no_content() {
    let sandbox = Sandbox::start().await;
    let notification = notification(visual_draft("n"));
    let message = push(
        &notification,
        ChangeKind::State,
        sandbox.subscription(Platform::Ios, 1),
    );
    assert_eq!(
        sandbox.apns.send(&message).await,
        DeliveryOutcome::Delivered {
            text_shortened: false
        }
    );
    let received = sandbox.providers.pushes().pop().unwrap();
    assert_eq!(received.headers["apns-push-type"], "background");
    let envelope = received.envelope.unwrap();
    assert_eq!(envelope["change"], "state");
    assert!(envelope.get("payload").is_none());
}

enum Expect {
    Is(DeliveryOutcome),
    Rejected,
}

impl Expect {
    fn matches(&self, outcome: &DeliveryOutcome) -> bool {
        match self {
            Expect::Is(expected) => expected == outcome,
            Expect::Rejected => matches!(outcome, DeliveryOutcome::Rejected { .. }),
        }
    }
}

#[tokio::test]
async fn provider_errors_map_to_outcomes() {
    let sandbox = Sandbox::start().await;
    let retry = || Expect::Is(DeliveryOutcome::Retry { after: None });
    let refuse = |status: u16, reason: &str| FakeResponse::Refuse {
        status,
        reason: reason.into(),
    };
    for platform in Platform::ALL {
        let cases = [
            (
                FakeResponse::Gone,
                Expect::Is(DeliveryOutcome::EndpointGone),
            ),
            (FakeResponse::ServerError(500), retry()),
            (FakeResponse::ServerError(503), retry()),
            (
                FakeResponse::Throttle {
                    retry_after_seconds: 7,
                },
                Expect::Is(DeliveryOutcome::Retry {
                    after: Some(Duration::from_secs(7)),
                }),
            ),
            (FakeResponse::Hang(Duration::from_secs(2)), retry()),
            (FakeResponse::Reset, retry()),
            (refuse(400, "BadRequestReason"), Expect::Rejected),
            (refuse(413, "PayloadTooLarge"), Expect::Rejected),
        ];
        for (answer, expected) in cases {
            sandbox.providers.script(platform, [answer.clone()]);
            let (outcome, _) = send_one(&sandbox, platform, visual_draft("n")).await;
            assert!(
                expected.matches(&outcome),
                "{platform} answering {answer:?} gave {outcome:?}"
            );
        }
    }
    let rejected = |outcome: &DeliveryOutcome| Expect::Rejected.matches(outcome);
    // Provider-specific gone signals.
    sandbox
        .providers
        .script(Platform::Ios, [refuse(400, "BadDeviceToken")]);
    assert_eq!(
        send_one(&sandbox, Platform::Ios, visual_draft("n")).await.0,
        DeliveryOutcome::EndpointGone
    );
    sandbox
        .providers
        .script(Platform::Ios, [refuse(400, "DeviceTokenNotForTopic")]);
    assert!(rejected(
        &send_one(&sandbox, Platform::Ios, visual_draft("n")).await.0
    ));
    sandbox
        .providers
        .script(Platform::Android, [refuse(403, "SENDER_ID_MISMATCH")]);
    assert_eq!(
        send_one(&sandbox, Platform::Android, visual_draft("n"))
            .await
            .0,
        DeliveryOutcome::EndpointGone
    );
    sandbox
        .providers
        .script(Platform::Android, [refuse(401, "THIRD_PARTY_AUTH_ERROR")]);
    assert!(rejected(
        &send_one(&sandbox, Platform::Android, visual_draft("n"))
            .await
            .0
    ));
    sandbox
        .providers
        .script(Platform::Windows, [refuse(403, "Token for another app")]);
    assert!(rejected(
        &send_one(&sandbox, Platform::Windows, visual_draft("n"))
            .await
            .0
    ));
    sandbox
        .providers
        .script(Platform::WebPush, [FakeResponse::ExpiredCredentials]);
    assert!(rejected(
        &send_one(&sandbox, Platform::WebPush, visual_draft("n"))
            .await
            .0
    ));
}

#[tokio::test]
async fn expired_credentials_are_refreshed_once_then_retried() {
    let sandbox = Sandbox::start().await;
    for platform in [Platform::Ios, Platform::Android, Platform::Windows] {
        sandbox
            .providers
            .script(platform, [FakeResponse::ExpiredCredentials]);
        assert_eq!(
            send_one(&sandbox, platform, visual_draft("n")).await.0,
            DeliveryOutcome::Delivered {
                text_shortened: false
            },
            "{platform}"
        );
        sandbox.providers.script(
            platform,
            [
                FakeResponse::ExpiredCredentials,
                FakeResponse::ExpiredCredentials,
            ],
        );
        assert_eq!(
            send_one(&sandbox, platform, visual_draft("n")).await.0,
            DeliveryOutcome::RefreshCredentials,
            "{platform}: a second expiry in a row is left to the retry policy"
        );
    }
}

#[tokio::test]
async fn provider_tokens_are_reused() {
    let sandbox = Sandbox::start().await;
    for _ in 0..20 {
        for platform in [Platform::Ios, Platform::Android, Platform::Windows] {
            assert_eq!(
                send_one(&sandbox, platform, visual_draft("n")).await.0,
                DeliveryOutcome::Delivered {
                    text_shortened: false
                }
            );
        }
    }
    assert_eq!(sandbox.providers.apns_provider_tokens().len(), 1);
    assert_eq!(sandbox.providers.token_requests(Platform::Android), 1);
    assert_eq!(sandbox.providers.token_requests(Platform::Windows), 1);
    for platform in [Platform::Ios, Platform::Android, Platform::Windows] {
        sandbox
            .providers
            .script(platform, [FakeResponse::ExpiredCredentials]);
        send_one(&sandbox, platform, visual_draft("n")).await;
    }
    assert_eq!(sandbox.providers.apns_provider_tokens().len(), 2);
    assert_eq!(sandbox.providers.token_requests(Platform::Android), 2);
    assert_eq!(sandbox.providers.token_requests(Platform::Windows), 2);
}

#[tokio::test]
async fn a_provider_token_signed_with_another_key_is_refused() {
    let sandbox = Sandbox::start().await;
    // Another sandbox's APNs key: a valid P-256 key the first sandbox was never given.
    let stranger = notif_delivery::sandbox::SandboxProviders::start()
        .await
        .unwrap()
        .apns_config(crate::fixtures::http());
    let config = notif_delivery::ApnsConfig {
        private_key_pem: stranger.private_key_pem,
        ..sandbox.providers.apns_config(crate::fixtures::http())
    };
    let gateway = notif_delivery::ApnsGateway::new(config).unwrap();
    let message = push(
        &notification(visual_draft("n")),
        ChangeKind::Created,
        sandbox.subscription(Platform::Ios, 1),
    );

    for _ in 0..2 {
        assert_ne!(
            notif_core::ports::PushGateway::send(&gateway, &message).await,
            DeliveryOutcome::Delivered {
                text_shortened: false
            }
        );
    }
    assert!(sandbox.providers.pushes().is_empty());
    assert!(
        sandbox.providers.apns_provider_tokens().is_empty(),
        "a token that failed verification is never recognised"
    );
}

#[tokio::test]
async fn redirects_are_rejected_not_followed() {
    let sandbox = Sandbox::start().await;
    for platform in Platform::ALL {
        let elsewhere = sandbox.providers.wns_channel_url("redirect-target");
        sandbox
            .providers
            .script(platform, [FakeResponse::Redirect(elsewhere)]);
        let (outcome, _) = send_one(&sandbox, platform, visual_draft("n")).await;
        assert!(
            matches!(&outcome, DeliveryOutcome::Rejected { reason } if reason.contains("redirect")),
            "{platform}: {outcome:?}"
        );
    }
    assert!(
        sandbox
            .providers
            .pushes()
            .iter()
            .all(|push| !push.path.contains("redirect-target")),
        "a redirect was followed"
    );
}
