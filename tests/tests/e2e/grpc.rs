//! The gRPC API: the same flow, WatchChanges, health, reflection, metrics.

use std::time::Duration;

use notif_grpc::pb;
use notif_tests::{DEMO_HOST, TestServer, TestStore};
use tokio_stream::StreamExt as _;
use tonic::Request;
use tonic::metadata::MetadataValue;

fn authorized<T>(message: T, token: &str) -> Request<T> {
    let mut request = Request::new(message);
    let value: MetadataValue<_> = format!("Bearer {token}").parse().unwrap();
    request.metadata_mut().insert("authorization", value);
    request
}

fn create(key: &str) -> pb::CreateNotificationRequest {
    pb::CreateNotificationRequest {
        target_host_name: DEMO_HOST.into(),
        app_notification_id: key.into(),
        group_name: Some("g".into()),
        visual_content: Some(pb::VisualContent {
            title: "Hello World!".into(),
            body: Some("Notifications are Great!".into()),
        }),
        platform_types: vec!["windows".into(), "android".into()],
        priority: Some("High".into()),
        display_time_to_live: Some(23),
        ..pb::CreateNotificationRequest::default()
    }
}

async fn the_flow_over_grpc_with_watch(store: TestStore) {
    let server = TestServer::start_on(store).await;
    let device = server.sign_in("demo-client", "alice").await;
    let service = server
        .on_behalf_of("demo-app-service", "demo-secret", &device)
        .await;
    let (mut notifications, mut subscriptions) = server.grpc().await;
    let subscribed = subscriptions
        .subscribe(authorized(
            pb::SubscribeRequest {
                platform: "android".into(),
                registration_token: "grpc-phone".into(),
                ..pb::SubscribeRequest::default()
            },
            &device,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(!subscribed.renewed);

    let mut watch = notifications
        .watch_changes(authorized(pb::WatchChangesRequest::default(), &device))
        .await
        .unwrap()
        .into_inner();

    let created = notifications
        .create_notification(authorized(create("n1"), &service))
        .await
        .unwrap()
        .into_inner();
    assert!(!created.replaced);
    let notification = created.notification.unwrap();
    assert_eq!(notification.priority, pb::Priority::High as i32);
    assert_eq!(notification.change_seq, 1);

    let first = tokio::time::timeout(Duration::from_secs(10), watch.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first.id, notification.id);

    let updated = notifications
        .update_notification_state(authorized(
            pb::UpdateNotificationStateRequest {
                target: Some(pb::update_notification_state_request::Target::Id(
                    notification.id.clone(),
                )),
                user_action_state: pb::UserActionState::Dismissed as i32,
                ..pb::UpdateNotificationStateRequest::default()
            },
            &device,
        ))
        .await
        .unwrap()
        .into_inner()
        .notification
        .unwrap();
    assert_eq!(
        updated.user_action_state,
        pb::UserActionState::Dismissed as i32
    );
    assert_eq!(updated.status, pb::Status::Active as i32);
    let second = tokio::time::timeout(Duration::from_secs(10), watch.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(second.change_seq, 2);
    assert_eq!(
        second.user_action_state,
        pb::UserActionState::Dismissed as i32
    );

    let listed = notifications
        .list_notifications(authorized(pb::ListNotificationsRequest::default(), &device))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.notifications.len(), 1);
    assert_eq!(listed.unread_count, 1);
    let changes = notifications
        .list_changes(authorized(
            pb::ListChangesRequest {
                cursor: 1,
                ..Default::default()
            },
            &device,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(changes.changes.len(), 1);
    assert_eq!(changes.cursor, 2);

    // The device receives the latest change; the create's own push may have been superseded
    // by it while still queued (jobs coalesce per device), so only the latest is owed.
    server
        .pushes_until(Duration::from_secs(20), |pushes| {
            pushes.iter().any(|push| {
                push.envelope
                    .as_ref()
                    .is_some_and(|envelope| envelope["changeSeq"] == 2)
            })
        })
        .await;
    let status = notifications
        .get_delivery_status(authorized(
            pb::GetDeliveryStatusRequest {
                id: notification.id.clone(),
                ..Default::default()
            },
            &service,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.endpoints.len(), 1);

    let deleted = notifications
        .delete_group(authorized(
            pb::DeleteGroupRequest {
                group_name: "g".into(),
                ..Default::default()
            },
            &service,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(deleted.deleted.len(), 1);
    let third = tokio::time::timeout(Duration::from_secs(10), watch.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(third.status, pb::Status::Deleted as i32);
    drop(watch);
    server.stop().await;
}

async fn invalid_arguments_carry_field_violations(store: TestStore) {
    let server = TestServer::start_on(store).await;
    let device = server.sign_in("demo-client", "alice").await;
    let (mut notifications, _) = server.grpc().await;
    let mut bad = create("n1");
    bad.visual_content = Some(pb::VisualContent {
        title: String::new(),
        body: None,
    });
    bad.platform_types = vec!["pager".into()];
    let status = notifications
        .create_notification(authorized(bad, &device))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    use tonic_types::StatusExt as _;
    let details = status.get_error_details();
    let fields: Vec<String> = details
        .bad_request()
        .unwrap()
        .field_violations
        .iter()
        .map(|violation| violation.field.clone())
        .collect();
    assert!(
        fields.contains(&"payload.visualContent.title".to_owned()),
        "{fields:?}"
    );
    assert!(
        fields.contains(&"targetPolicy.platformTypes[0]".to_owned()),
        "{fields:?}"
    );
    let unauthenticated = notifications
        .list_notifications(Request::new(pb::ListNotificationsRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(unauthenticated.code(), tonic::Code::Unauthenticated);
    server.stop().await;
}

async fn health_reflection_and_metrics(store: TestStore) {
    let server = TestServer::start_on(store).await;
    let channel = tonic::transport::Channel::from_shared(server.base_url.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let serving = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "notif.v1.Notifications".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        serving.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let mut reflection = ServerReflectionClient::new(channel);
    let request = tonic_reflection::pb::v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = reflection
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let response = responses.next().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("expected a service list");
    };
    let names: Vec<String> = list
        .service
        .into_iter()
        .map(|service| service.name)
        .collect();
    for expected in [
        "notif.v1.Notifications",
        "notif.v1.Subscriptions",
        "grpc.health.v1.Health",
    ] {
        assert!(names.contains(&expected.to_owned()), "{names:?}");
    }

    let device = server.sign_in("demo-client", "alice").await;
    let (mut notifications, _) = server.grpc().await;
    notifications
        .create_notification(authorized(create("m1"), &device))
        .await
        .unwrap();
    assert_eq!(
        server
            .http
            .get(server.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let ready = server.http.get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    // The node names itself: the test config names none, so `<host name>:<port>`.
    let ready = ready.text().await.unwrap();
    let port = server.url("").rsplit(':').next().unwrap().to_owned();
    let node = ready
        .strip_prefix("ready (node ")
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("/readyz says {ready:?}"))
        .to_owned();
    assert!(node.ends_with(&format!(":{port}")), "{node}");
    let text = server
        .http
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut samples = std::collections::BTreeMap::new();
    for line in text
        .lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
    {
        let (name, value) = line.rsplit_once(' ').unwrap();
        // Every series carries the node; the figures are checked without it.
        let labelled = format!("node=\"{node}\"");
        assert!(name.contains(&labelled), "{line}");
        let name = name
            .replace(&format!("{{{labelled}}}"), "")
            .replace(&format!("{labelled},"), "");
        samples.insert(name, value.parse::<f64>().unwrap());
    }
    assert_eq!(samples["notif_notifications_created_total"], 1.0);
    assert!(samples.contains_key("notif_queue_depth"));
    assert!(samples["notif_store_write_seconds_count"] >= 1.0);
    assert!(samples.contains_key("notif_pushes_total{platform=\"Android\",outcome=\"delivered\"}"));
    assert_eq!(
        samples["notif_requests_total{method=\"CreateNotification\",code=\"Ok\"}"],
        1.0
    );
    server.stop().await;
}

on_every_store!(
    the_flow_over_grpc_with_watch,
    invalid_arguments_carry_field_violations,
    health_reflection_and_metrics,
);
