//! The Graph-compatible API under `/me/notifications` (also under `/beta` and `/v1.0`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use notif_core::feed::{StateChange, Target};
use notif_core::ids::{AppNotificationId, GroupName};
use notif_core::notification::{ChangeSeq, ReadState, Status, UserActionState};
use notif_core::ports::ListQuery;
use notif_core::service::Cursor;
use serde_json::json;

use super::edge::ApiVersion;
use super::json;
use super::openapi::{ApiRoutes, Mount, Operation, Verb};
use super::schemas;
use crate::convert;
use crate::error::ApiError;
use crate::state::{Authenticated, ServerState};

type Shared = State<Arc<ServerState>>;
type Params = Query<HashMap<String, String>>;

pub(super) fn routes() -> ApiRoutes<Arc<ServerState>> {
    let notification = || schemas::component("Notification");
    let uns_id = "The device's subscription id: names the user for app-only tokens, and the \
                  reading device (a read of a notification with a fallbackPolicy counts as \
                  that device fetching it)";
    ApiRoutes::new()
        .route(
            Mount::Graph,
            Operation::new(Verb::Post, "/me/notifications", "Create a notification, or replace the live one with the same appNotificationId")
                .json_body(schemas::component("NotificationCreate"))
                .header("X-UNS-ID", uns_id)
                .json(201, "Created", notification())
                .json(200, "Replaced", notification()),
            create,
        )
        .route(
            Mount::Graph,
            Operation::new(Verb::Get, "/me/notifications", "A page of the feed, newest first")
                .query("$top", "Page size, 1-1000 (default 50)")
                .query("$skiptoken", "Where the page starts (from @odata.nextLink)")
                .query("status", "active (default), deleted or all")
                .query("readState", "unread or read")
                .query("userActionState", "noInteraction, activated, dismissed or snoozed")
                .query("groupName", "Only this group")
                .header("X-UNS-ID", uns_id)
                .json(200, "The page", schemas::component("NotificationList")),
            list,
        )
        .route(
            Mount::Graph,
            Operation::new(Verb::Delete, "/me/notifications", "Delete by appNotificationId or groupName")
                .query("appNotificationId", "The notification's key")
                .query("groupName", "Every live notification of the group")
                .answers(204, "Deleted", None),
            delete_by_query,
        )
        .route(
            Mount::Graph,
            Operation::new(Verb::Get, "/me/notifications/changes", "The changes after a cursor, oldest first; with Accept: text/event-stream a live Server-Sent Events stream")
                .query("cursor", "The last changeSeq applied (default 0), or latest")
                .query("limit", "At most this many, 1-1000 (default 100)")
                .header("Last-Event-ID", "For the event stream: resume after this changeSeq")
                .header("X-UNS-ID", uns_id)
                .json(200, "The changes", schemas::component("ChangeList"))
                .answers(200, "The event stream", Some(("text/event-stream", json!({"type": "string"})))),
            changes,
        )
        .route(
            Mount::Graph,
            Operation::new(Verb::Post, "/me/notifications/subscriptions", "Register a device endpoint, or renew the one with the same channel")
                .json_body(schemas::component("SubscriptionCreate"))
                .json(201, "Registered", schemas::component("Subscription"))
                .json(200, "Renewed", schemas::component("Subscription")),
            subscribe,
        )
        .route(
            Mount::Graph,
            Operation::new(Verb::Get, "/me/notifications/subscriptions", "The user's live device endpoints")
                .json(200, "The endpoints", schemas::component("SubscriptionList")),
            subscriptions,
        )
        .route(
            Mount::Graph,
            Operation::new(Verb::Delete, "/me/notifications/subscriptions/{id}", "Remove a device endpoint")
                .answers(204, "Removed", None),
            unsubscribe,
        )
        .route(
            Mount::Graph,
            Operation::new(Verb::Get, "/me/notifications/{id}", "One notification")
                .header("X-UNS-ID", uns_id)
                .json(200, "The notification", notification()),
            get_one,
        )
        .route(
            Mount::Graph,
            Operation::new(Verb::Patch, "/me/notifications/{id}", "Set readState and/or userActionState; synced to the user's other devices")
                .json_body(schemas::component("StateChange"))
                .json(200, "The notification", notification()),
            update,
        )
        .route(
            Mount::Graph,
            Operation::new(Verb::Delete, "/me/notifications/{id}", "Delete, leaving a tombstone that syncs the removal")
                .answers(204, "Deleted", None),
            delete_one,
        )
        .route(
            Mount::Graph,
            Operation::new(Verb::Get, "/me/notifications/{id}/deliveryStatus", "Where the pushes of the notification stand, per endpoint")
                .json(200, "Per endpoint", schemas::component("DeliveryStatusList")),
            delivery_status,
        )
        .route(
            Mount::Graph,
            Operation::new(Verb::Post, "/me/notifications/{id}/acknowledge", "The device named by X-UNS-ID has the notification: no fallback push follows")
                .header("X-UNS-ID", "The acknowledging device's subscription id (required)")
                .answers(204, "Acknowledged", None),
            acknowledge,
        )
}

async fn authenticate(
    context: &ServerState,
    headers: &HeaderMap,
) -> Result<Authenticated, ApiError> {
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    context
        .authenticate(
            header("authorization"),
            header("x-uns-id").map(str::to_owned),
        )
        .await
}

/// Runs a handler body, recording it under `method`.
async fn observed(
    context: &ServerState,
    method: &str,
    handler: impl Future<Output = Result<Response, ApiError>>,
) -> Response {
    let started = Instant::now();
    let result = handler.await;
    context.observe(method, started, &result);
    result.unwrap_or_else(IntoResponse::into_response)
}

/// The base of the links in an answer: the origin and the API version of the request.
fn base(context: &ServerState, headers: &HeaderMap, version: ApiVersion) -> String {
    context.links.base(headers, version)
}

async fn body_json(
    context: &ServerState,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<serde_json::Value, ApiError> {
    json::parse_body(headers, body, context.max_body_bytes).await
}

/// A query value in a link, percent-encoded.
fn encoded(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

async fn create(
    State(context): Shared,
    version: ApiVersion,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    observed(&context, "POST /me/notifications", async {
        let caller = authenticate(&context, &headers).await?;
        let draft = json::notification_draft(&body_json(&context, &headers, body).await?)?;
        let created = context.service.create(caller.caller(), draft).await?;
        context.metrics.created(created.replaced);
        let entity = json::notification(&base(&context, &headers, version), &created.notification);
        let location = format!(
            "{}/me/notifications/{}",
            base(&context, &headers, version),
            created.notification.id
        );
        let status = if created.replaced {
            StatusCode::OK
        } else {
            StatusCode::CREATED
        };
        let mut response = (status, Json(entity)).into_response();
        if let Ok(location) = HeaderValue::from_str(&location) {
            response.headers_mut().insert("location", location);
        }
        Ok(response)
    })
    .await
}

fn parse_param<T>(
    params: &HashMap<String, String>,
    key: &str,
    parse: impl Fn(&str) -> Result<T, notif_core::platform::UnknownName>,
) -> Result<Option<T>, ApiError> {
    params
        .get(key)
        .map(|text| parse(text).map_err(|error| ApiError::invalid(key, error.to_string())))
        .transpose()
}

async fn list(
    State(context): Shared,
    version: ApiVersion,
    headers: HeaderMap,
    Query(params): Params,
) -> Response {
    observed(&context, "GET /me/notifications", async {
        let caller = authenticate(&context, &headers).await?;
        let page_size = match params.get("$top") {
            None => 50,
            Some(top) => top.parse().map_err(|_| ApiError::invalid("$top", "must be a whole number"))?,
        };
        let query = ListQuery {
            status: match params.get("status").map(String::as_str) {
                Some("all") => None,
                other => Some(other.map_or(Ok(Status::Active), Status::parse).map_err(|error| ApiError::invalid("status", error.to_string()))?),
            },
            read_state: parse_param(&params, "readState", ReadState::parse)?,
            user_action_state: parse_param(&params, "userActionState", UserActionState::parse)?,
            group: params
                .get("groupName")
                .map(|name| GroupName::new(name.as_str()).map_err(|error| ApiError::invalid("groupName", error.to_string())))
                .transpose()?,
            page_size,
            page_token: params
                .get("$skiptoken")
                .map(|token| convert::notification_id("$skiptoken", token))
                .transpose()?,
            scan_budget: notif_core::ports::LIST_SCAN_BUDGET,
        };
        let page = context.service.list(caller.caller(), &query).await?;
        let base = base(&context, &headers, version);
        let mut body = json!({
            "@odata.context": format!("{base}/$metadata#users('me')/notifications"),
            "value": page.notifications.iter().map(|n| json::notification(&base, n)).collect::<Vec<_>>(),
            "unreadCount": page.unread_count,
        });
        if let Some(token) = page.next_page_token {
            let mut link = format!("{base}/me/notifications?$top={page_size}&$skiptoken={token}");
            for key in ["readState", "userActionState", "status", "groupName"] {
                if let Some(value) = params.get(key) {
                    link.push_str(&format!("&{key}={}", encoded(value)));
                }
            }
            body["@odata.nextLink"] = json!(link);
        }
        Ok(Json(body).into_response())
    })
    .await
}

async fn get_one(
    State(context): Shared,
    version: ApiVersion,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    observed(&context, "GET /me/notifications/{id}", async {
        let caller = authenticate(&context, &headers).await?;
        let id = convert::notification_id("id", &id)?;
        let notification = context.service.get(caller.caller(), id).await?;
        // Graph clients take a deleted notification to be gone; its tombstone stays visible
        // in the change log and in `?status=deleted` listings.
        if notification.status == Status::Deleted {
            return Err(ApiError::Domain(notif_core::Error::NotFound));
        }
        Ok(Json(json::notification(
            &base(&context, &headers, version),
            &notification,
        ))
        .into_response())
    })
    .await
}

async fn update(
    State(context): Shared,
    version: ApiVersion,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    observed(&context, "PATCH /me/notifications/{id}", async {
        let caller = authenticate(&context, &headers).await?;
        let id = convert::notification_id("id", &id)?;
        let (read, action) = json::state_fields(&body_json(&context, &headers, body).await?)?;
        let read = read
            .map(|text| {
                ReadState::parse(&text)
                    .map_err(|error| ApiError::invalid("readState", error.to_string()))
            })
            .transpose()?;
        let action = action
            .map(|text| {
                UserActionState::parse(&text)
                    .map_err(|error| ApiError::invalid("userActionState", error.to_string()))
            })
            .transpose()?;
        let change = StateChange::new(read, action)?;
        let updated = context
            .service
            .update_state(caller.caller(), Target::Id(id), change)
            .await?;
        let notification = updated
            .first()
            .ok_or(ApiError::Domain(notif_core::Error::NotFound))?;
        Ok(Json(json::notification(
            &base(&context, &headers, version),
            notification,
        ))
        .into_response())
    })
    .await
}

async fn delete_target(
    context: &ServerState,
    caller: &Authenticated,
    target: Target,
) -> Result<Response, ApiError> {
    context.service.delete(caller.caller(), target).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn delete_one(
    State(context): Shared,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    observed(&context, "DELETE /me/notifications/{id}", async {
        let caller = authenticate(&context, &headers).await?;
        let target = Target::Id(convert::notification_id("id", &id)?);
        delete_target(&context, &caller, target).await
    })
    .await
}

async fn delete_by_query(
    State(context): Shared,
    headers: HeaderMap,
    Query(params): Params,
) -> Response {
    observed(&context, "DELETE /me/notifications", async {
        let caller = authenticate(&context, &headers).await?;
        let target = match (params.get("appNotificationId"), params.get("groupName")) {
            (Some(key), _) => Target::AppNotificationId(
                AppNotificationId::new(key.as_str())
                    .map_err(|error| ApiError::invalid("appNotificationId", error.to_string()))?,
            ),
            (None, Some(group)) => convert::group_target("groupName", group)?,
            (None, None) => {
                return Err(ApiError::invalid(
                    "appNotificationId",
                    "appNotificationId or groupName is required",
                ));
            }
        };
        delete_target(&context, &caller, target).await
    })
    .await
}

async fn changes(
    State(context): Shared,
    version: ApiVersion,
    headers: HeaderMap,
    Query(params): Params,
) -> Response {
    observed(&context, "GET /me/notifications/changes", async {
        let caller = authenticate(&context, &headers).await?;
        let number = |key: &str, default: u64| -> Result<u64, ApiError> {
            params.get(key).map_or(Ok(default), |text| {
                text.parse()
                    .map_err(|_| ApiError::invalid(key, "must be a whole number"))
            })
        };
        let cursor = match (
            super::stream::last_event_id(&headers)?,
            params.get("cursor"),
        ) {
            // A reconnecting event-stream client resumes after the last event it got.
            (Some(last), _) => Cursor::After(last),
            (None, Some(latest)) if latest == "latest" => Cursor::Latest,
            (None, _) => Cursor::After(ChangeSeq::new(number("cursor", 0)?)),
        };
        let cursor = context
            .service
            .resolve_cursor(caller.caller(), cursor)
            .await?;
        let base = base(&context, &headers, version);
        if super::stream::wanted(&headers) {
            let (feed, _) = context
                .service
                .authorize(caller.caller(), notif_core::app::Action::UseFeed)
                .await?;
            let slot = context.streams.take(&feed)?;
            return Ok(super::stream::changes(
                Arc::clone(&context),
                caller,
                &feed,
                cursor,
                slot,
                base,
            ));
        }
        let limit = usize::try_from(number("limit", 100)?).unwrap_or(usize::MAX);
        let page = context
            .service
            .changes_since(caller.caller(), cursor, limit)
            .await?;
        Ok(Json(json!({
            "value": page.changes.iter().map(|n| json::notification(&base, n)).collect::<Vec<_>>(),
            "cursor": page.cursor.value(),
            "hasMore": page.has_more,
        }))
        .into_response())
    })
    .await
}

async fn delivery_status(
    State(context): Shared,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    observed(
        &context,
        "GET /me/notifications/{id}/deliveryStatus",
        async {
            let caller = authenticate(&context, &headers).await?;
            let id = convert::notification_id("id", &id)?;
            let records = context.service.delivery_status(caller.caller(), id).await?;
            Ok(
                Json(json!({"value": records.iter().map(json::delivery).collect::<Vec<_>>()}))
                    .into_response(),
            )
        },
    )
    .await
}

/// `POST /me/notifications/{id}/acknowledge` with `X-UNS-ID: <the device's subscription>`:
/// the device has the notification, so no fallback push follows. `204 No Content`.
async fn acknowledge(
    State(context): Shared,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    observed(&context, "POST /me/notifications/{id}/acknowledge", async {
        let caller = authenticate(&context, &headers).await?;
        let id = convert::notification_id("id", &id)?;
        let device = caller.subscription_id.as_deref().ok_or_else(|| {
            ApiError::invalid(
                "X-UNS-ID",
                "name the acknowledging device's subscription id",
            )
        })?;
        let device = convert::subscription_id("X-UNS-ID", device)?;
        context
            .service
            .acknowledge(caller.caller(), id, device)
            .await?;
        Ok(StatusCode::NO_CONTENT.into_response())
    })
    .await
}

async fn subscribe(State(context): Shared, headers: HeaderMap, body: Bytes) -> Response {
    observed(&context, "POST /me/notifications/subscriptions", async {
        let caller = authenticate(&context, &headers).await?;
        let draft = json::channel_draft(&body_json(&context, &headers, body).await?)?;
        let outcome = context.service.subscribe(caller.caller(), draft).await?;
        let status = if outcome.renewed {
            StatusCode::OK
        } else {
            StatusCode::CREATED
        };
        Ok((
            status,
            Json(json::subscription(
                &outcome.subscription,
                Some(outcome.renewed),
            )),
        )
            .into_response())
    })
    .await
}

async fn subscriptions(State(context): Shared, headers: HeaderMap) -> Response {
    observed(&context, "GET /me/notifications/subscriptions", async {
        let caller = authenticate(&context, &headers).await?;
        let subscriptions = context.service.subscriptions(caller.caller()).await?;
        Ok(Json(json!({"value": subscriptions.iter().map(|s| json::subscription(s, None)).collect::<Vec<_>>()})).into_response())
    })
    .await
}

async fn unsubscribe(
    State(context): Shared,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    observed(
        &context,
        "DELETE /me/notifications/subscriptions/{id}",
        async {
            let caller = authenticate(&context, &headers).await?;
            let id = convert::subscription_id("id", &id)?;
            context.service.unsubscribe(caller.caller(), id).await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        },
    )
    .await
}
