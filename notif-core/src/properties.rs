//! Property tests of the domain's invariants (proptest, 256 cases each).

use std::collections::BTreeSet;
use std::time::Duration;

use proptest::prelude::*;

use crate::app::{Action, App, NamedSubscription, Principal, SCOPE_CREATED_BY_APP, authorize};
use crate::delivery::{Jitter, RetryDecision, RetryPolicy};
use crate::fallback::FallbackPolicyDraft;
use crate::fanout::{ChangeKind, plan_fan_out};
use crate::ids::{AppId, ClientId, HostName, NotificationId, SubscriptionId, UserId};
use crate::notification::{
    DraftContext, FeedKey, Limits, NotificationDraft, Scalar, VisualContentDraft,
};
use crate::platform::Platform;
use crate::subscription::{ChannelDraft, ChannelPolicy, PushChannel, Subscription};
use crate::time::Timestamp;

const NOW: Timestamp = Timestamp::from_unix_millis(1_700_000_000_000);

fn feed(app: &str, user: &str) -> FeedKey {
    FeedKey {
        app: AppId::new(app).unwrap(),
        user: UserId::new(user).unwrap(),
    }
}

fn host() -> HostName {
    HostName::new("graphnotifications.sample.windows.com").unwrap()
}

fn validate(
    draft: NotificationDraft,
) -> Result<crate::notification::Notification, crate::validation::ValidationErrors> {
    let feed = feed("demo", "alice");
    let host = host();
    let limits = Limits::default();
    draft.validate(
        NotificationId::from_parts(1, [0; 10]),
        DraftContext {
            feed: &feed,
            app_host: &host,
            now: NOW,
            limits: &limits,
        },
    )
}

fn platform_name() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "windows", "Windows", "WINDOWS", "android", "Android", "iOS", "ios", "webpush", "WebPush",
        "web",
    ])
    .prop_map(str::to_owned)
}

fn printable(max: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[a-zA-Z0-9 _.:-]{{0,{}}}[a-zA-Z0-9]", max - 1))
        .unwrap()
}

prop_compose! {
    fn valid_draft()(
        app_notification_id in printable(256),
        group_name in proptest::option::of(printable(256)),
        title in printable(256),
        body in proptest::option::of(".{0,200}"),
        raw in proptest::option::of(".{0,500}"),
        visual in any::<bool>(),
        platforms in proptest::collection::vec(platform_name(), 0..4),
        priority in proptest::option::of(prop::sample::select(vec!["None", "low", "HIGH", "0", "1", "2"])),
        priority_as_number in any::<bool>(),
        ttl in proptest::option::of(1i64..=i64::from(i32::MAX)),
        ttl_as_text in any::<bool>(),
        expires_in_ms in proptest::option::of(1i64..=30 * 24 * 3600 * 1000),
    ) -> NotificationDraft {
        let raw = if visual { raw } else { Some(raw.unwrap_or_default()) };
        NotificationDraft {
            target_host_name: Some("GraphNotifications.Sample.Windows.com".into()),
            app_notification_id: Some(app_notification_id),
            group_name,
            visual_content: visual.then_some(VisualContentDraft { title: Some(title), body }),
            raw_content: raw,
            platform_types: platforms,
            priority: priority.map(|text| match text.parse::<i64>() {
                Ok(number) if priority_as_number => Scalar::Number(number),
                _ => Scalar::Text(text.to_owned()),
            }),
            display_time_to_live: ttl.map(|seconds| {
                if ttl_as_text { Scalar::Text(seconds.to_string()) } else { Scalar::Number(seconds) }
            }),
            expiration_date_time: expires_in_ms
                .map(|ms| Timestamp::from_unix_millis(NOW.unix_millis() + ms).to_rfc3339()),
            fallback_policy: None,
        }
    }
}

fn scalar() -> impl Strategy<Value = Scalar> {
    prop_oneof![
        any::<i64>().prop_map(Scalar::Number),
        any::<String>().prop_map(Scalar::Text)
    ]
}

prop_compose! {
    fn arbitrary_draft()(
        target_host_name in proptest::option::of(any::<String>()),
        app_notification_id in proptest::option::of(any::<String>()),
        group_name in proptest::option::of(any::<String>()),
        visual in proptest::option::of((proptest::option::of(any::<String>()), proptest::option::of(any::<String>()))),
        raw_content in proptest::option::of(any::<String>()),
        platform_types in proptest::collection::vec(any::<String>(), 0..4),
        priority in proptest::option::of(scalar()),
        display_time_to_live in proptest::option::of(scalar()),
        expiration_date_time in proptest::option::of(any::<String>()),
        fallback in proptest::option::of((
            proptest::collection::vec(any::<String>(), 0..3),
            proptest::option::of(scalar()),
        )),
    ) -> NotificationDraft {
        NotificationDraft {
            target_host_name,
            app_notification_id,
            group_name,
            visual_content: visual.map(|(title, body)| VisualContentDraft { title, body }),
            raw_content,
            platform_types,
            fallback_policy: fallback.map(|(platform_types, fallback_delay_in_seconds)| {
                FallbackPolicyDraft { platform_types, fallback_delay_in_seconds }
            }),
            priority,
            display_time_to_live,
            expiration_date_time,
        }
    }
}

fn subscription(
    index: u8,
    app: &str,
    user: &str,
    platform: Platform,
    expired: bool,
) -> Subscription {
    let channel = match platform {
        Platform::Android => PushChannel::Fcm {
            registration_token: format!("t{index}"),
        },
        _ => {
            let draft = match platform {
                Platform::Windows => ChannelDraft {
                    platform: Some("windows".into()),
                    channel_uri: Some(format!("https://db5.notify.windows.com/?token={index}")),
                    ..ChannelDraft::default()
                },
                Platform::Ios => ChannelDraft {
                    platform: Some("ios".into()),
                    device_token: Some(format!("{index:02x}").repeat(32)),
                    topic: Some("com.example".into()),
                    ..ChannelDraft::default()
                },
                _ => ChannelDraft {
                    platform: Some("webpush".into()),
                    endpoint: Some(format!("https://fcm.googleapis.com/fcm/send/{index}")),
                    p256dh: Some(format!("BA{}", "A".repeat(85))),
                    auth: Some("A".repeat(22)),
                    ..ChannelDraft::default()
                },
            };
            draft.validate(&ChannelPolicy::default()).unwrap()
        }
    };
    Subscription {
        id: SubscriptionId::from_parts(1, [index; 10]),
        feed: feed(app, user),
        client_id: ClientId::new("device").unwrap(),
        channel,
        created_at: NOW,
        expires_at: if expired {
            NOW
        } else {
            NOW.saturating_add(Duration::from_secs(60))
        },
    }
}

fn any_platform() -> impl Strategy<Value = Platform> {
    prop::sample::select(Platform::ALL.to_vec())
}

proptest! {
    #[test]
    fn any_valid_draft_validates(draft in valid_draft()) {
        let expected_platforms: BTreeSet<Platform> =
            draft.platform_types.iter().map(|name| Platform::parse(name).unwrap()).collect();
        let notification = validate(draft.clone()).unwrap();
        prop_assert_eq!(notification.app_notification_id.as_str(), draft.app_notification_id.as_deref().unwrap());
        prop_assert_eq!(notification.target_policy.platforms().collect::<BTreeSet<_>>(), expected_platforms);
        prop_assert!(notification.expiration > NOW);
        prop_assert_eq!(
            notification.payload.visual().map(|visual| visual.title.as_str()),
            draft.visual_content.as_ref().and_then(|visual| visual.title.as_deref())
        );
    }

    #[test]
    fn arbitrary_input_never_panics_the_constructors(draft in arbitrary_draft(), text in any::<String>()) {
        if let Err(errors) = validate(draft) {
            prop_assert!(!errors.violations().is_empty());
            prop_assert!(errors.violations().iter().all(|violation| !violation.field.is_empty()));
        }
        let _ = Timestamp::parse_rfc3339(&text);
        let _ = Platform::parse(&text);
        let _ = HostName::new(&text);
        let _ = NotificationId::parse(&text);
        let channel = ChannelDraft {
            platform: Some(text.clone()),
            channel_uri: Some(text.clone()),
            registration_token: Some(text.clone()),
            device_token: Some(text.clone()),
            topic: Some(text.clone()),
            environment: Some(text.clone()),
            endpoint: Some(text.clone()),
            p256dh: Some(text.clone()),
            auth: Some(text),
        };
        let _ = channel.validate(&ChannelPolicy { allow_loopback: true, ..ChannelPolicy::default() });
    }

    #[test]
    fn fan_out_equals_the_targeted_live_subscriptions(
        policy in proptest::collection::btree_set(any_platform(), 0..4),
        subscriptions in proptest::collection::vec(
            (0usize..2, 0usize..2, any_platform(), any::<bool>()), 0..12),
    ) {
        let apps = ["demo", "other"];
        let users = ["alice", "bob"];
        let subscriptions: Vec<Subscription> = subscriptions
            .into_iter()
            .enumerate()
            .map(|(index, (app, user, platform, expired))| {
                subscription(u8::try_from(index).unwrap(), apps[app], users[user], platform, expired)
            })
            .collect();
        let mut notification = validate(NotificationDraft {
            target_host_name: Some(host().to_string()),
            app_notification_id: Some("n".into()),
            raw_content: Some("r".into()),
            platform_types: policy.iter().map(|p| p.as_str().to_owned()).collect(),
            ..NotificationDraft::default()
        }).unwrap();
        notification.feed = feed("demo", "alice");
        for change in [ChangeKind::Created, ChangeKind::State] {
            let jobs = plan_fan_out(&notification, change, &subscriptions, NOW);
            let planned: BTreeSet<SubscriptionId> = jobs.iter().map(|job| job.subscription).collect();
            let expected: BTreeSet<SubscriptionId> = subscriptions
                .iter()
                .filter(|s| s.feed == notification.feed && s.is_live(NOW))
                .filter(|s| policy.is_empty() || policy.contains(&s.channel.platform()))
                .filter(|s| !(change == ChangeKind::State && s.channel.platform() == Platform::WebPush))
                .map(|s| s.id)
                .collect();
            prop_assert_eq!(jobs.len(), planned.len());
            prop_assert_eq!(planned, expected);
        }
    }

    #[test]
    fn retry_delays_stay_under_the_cap_and_before_expiration(
        attempts in 0u32..40,
        jitter in 0.0f64..=1.0,
        expires_in_ms in 0i64..=3_600_000,
        retry_after_s in proptest::option::of(0u64..2_000),
    ) {
        let policy = RetryPolicy::default();
        let expires_at = Timestamp::from_unix_millis(NOW.unix_millis() + expires_in_ms);
        let retry_after = retry_after_s.map(Duration::from_secs);
        match policy.next_attempt(attempts, NOW, expires_at, retry_after, Jitter::new(jitter)) {
            RetryDecision::At(at) => {
                prop_assert!(at < expires_at);
                prop_assert!(attempts < policy.max_attempts);
                let delay = at.duration_since(NOW);
                match retry_after {
                    None => prop_assert!(delay <= policy.max_delay),
                    Some(asked) => {
                        prop_assert!(delay >= asked);
                        prop_assert!(delay <= asked.max(policy.max_delay));
                    }
                }
            }
            RetryDecision::GiveUp(_) => {}
        }
    }

    #[test]
    fn created_by_app_never_crosses_app_or_user(
        client_app in 0usize..3,
        token_user in proptest::option::of(0usize..3),
        subscription_owner in proptest::option::of((0usize..3, 0usize..3)),
        has_scope in any::<bool>(),
        has_role in any::<bool>(),
        action in prop::sample::select(vec![Action::UseFeed, Action::ManageSubscriptions]),
    ) {
        let app_names = ["a", "b", "c"];
        let user_names = ["u0", "u1", "u2"];
        let apps: Vec<App> = app_names
            .iter()
            .map(|name| App {
                id: AppId::new(*name).unwrap(),
                host_name: HostName::new(format!("{name}.example.com")).unwrap(),
                display_name: (*name).into(),
                client_ids: [ClientId::new(format!("{name}-client")).unwrap()].into(),
                credentials: vec![],
            })
            .collect();
        let client_id = ClientId::new(format!("{}-client", app_names[client_app])).unwrap();
        let principal = Principal {
            user: token_user.map(|user| UserId::new(user_names[user]).unwrap()),
            client_id: client_id.clone(),
            scopes: if has_scope { [SCOPE_CREATED_BY_APP.to_owned()].into() } else { BTreeSet::new() },
            roles: if has_role { [SCOPE_CREATED_BY_APP.to_owned()].into() } else { BTreeSet::new() },
        };
        let owned = subscription_owner
            .map(|(app, user)| subscription(1, app_names[app], user_names[user], Platform::Android, false));
        let named = owned.as_ref().map_or(NamedSubscription::None, NamedSubscription::Found);
        // Any registry answer: the client's own app, or (a buggy or hostile lookup) another one.
        for registry_answer in &apps {
            if let Ok(feed) = authorize(&principal, Some(registry_answer), action, named) {
                prop_assert!(registry_answer.client_ids.contains(&client_id));
                prop_assert_eq!(feed.app.as_str(), app_names[client_app]);
                match &principal.user {
                    Some(user) => prop_assert_eq!(&feed.user, user),
                    None => {
                        let owner = owned.as_ref().unwrap();
                        prop_assert_eq!(&feed, &owner.feed);
                    }
                }
            }
        }
    }

    #[test]
    fn a_state_update_to_the_current_state_changes_nothing(
        draft in valid_draft(),
        read in any::<bool>(),
        dismissed in any::<bool>(),
        ask_read in proptest::option::of(any::<bool>()),
        ask_dismissed in proptest::option::of(any::<bool>()),
    ) {
        use crate::feed::{self, FeedOp, FeedState, StateChange, Target};
        use crate::notification::{ChangeSeq, ReadState, UserActionState};
        prop_assume!(ask_read.is_some() || ask_dismissed.is_some());
        let read_state = |read: bool| if read { ReadState::Read } else { ReadState::Unread };
        let action = |dismissed: bool| {
            if dismissed { UserActionState::Dismissed } else { UserActionState::NoInteraction }
        };
        let mut notification = validate(draft).unwrap();
        notification.read_state = read_state(read);
        notification.user_action_state = action(dismissed);
        notification.change_seq = ChangeSeq::new(4);
        let subscriptions = [subscription(1, "demo", "alice", Platform::Android, false)];
        let change = StateChange::new(ask_read.map(read_state), ask_dismissed.map(action)).unwrap();
        let write = feed::apply(
            FeedOp::UpdateState { target: Target::Id(notification.id), change },
            FeedState {
                current: std::slice::from_ref(&notification),
                last_seq: ChangeSeq::new(4),
                subscriptions: &subscriptions,
                now: NOW,
            },
        )
        .unwrap();
        let no_op = ask_read.is_none_or(|ask| ask == read)
            && ask_dismissed.is_none_or(|ask| ask == dismissed);
        if no_op {
            prop_assert!(write.changes.is_empty() && write.jobs.is_empty());
            prop_assert_eq!(write.last_seq, ChangeSeq::new(4));
            prop_assert_eq!(write.unchanged, vec![notification]);
        } else {
            prop_assert_eq!(write.changes.len(), 1);
            prop_assert_eq!(write.last_seq, ChangeSeq::new(5));
            prop_assert!(write.unchanged.is_empty());
        }
    }
}
