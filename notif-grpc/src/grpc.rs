//! The gRPC services: thin handlers that authenticate, call a use case, and convert.

use std::sync::Arc;
use std::time::Instant;

use notif_core::app::Action;
use notif_core::ports::ListQuery;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::convert;
use crate::error::ApiError;
use crate::pb;
use crate::state::{Authenticated, ServerState};

/// The `Notifications` service.
#[derive(Debug, Clone)]
pub(crate) struct NotificationsService {
    pub(crate) context: Arc<ServerState>,
}

/// The `Subscriptions` service.
#[derive(Debug, Clone)]
pub(crate) struct SubscriptionsService {
    pub(crate) context: Arc<ServerState>,
}

/// The bearer token and the app-only user's subscription id (field, else `x-uns-id`).
async fn authenticate<T>(
    context: &ServerState,
    request: &Request<T>,
    field: Option<&str>,
) -> Result<Authenticated, ApiError> {
    let metadata = request.metadata();
    let authorization = metadata
        .get("authorization")
        .and_then(|value| value.to_str().ok());
    let subscription_id = field
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
        .or_else(|| {
            metadata
                .get("x-uns-id")
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned)
        });
    context.authenticate(authorization, subscription_id).await
}

/// Runs a handler body, records it under `method`, and converts its result.
async fn observe<T>(
    context: &ServerState,
    method: &str,
    body: impl Future<Output = Result<T, ApiError>>,
) -> Result<Response<T>, Status> {
    let started = Instant::now();
    let result = body.await;
    context.observe(method, started, &result);
    result.map(Response::new).map_err(Status::from)
}

#[tonic::async_trait]
impl pb::notifications_server::Notifications for NotificationsService {
    async fn create_notification(
        &self,
        request: Request<pb::CreateNotificationRequest>,
    ) -> Result<Response<pb::CreateNotificationResponse>, Status> {
        observe(&self.context, "CreateNotification", async {
            let caller = authenticate(
                &self.context,
                &request,
                Some(&request.get_ref().subscription_id),
            )
            .await?;
            let created = self
                .context
                .service
                .create(caller.caller(), request.into_inner().into())
                .await?;
            self.context.metrics.created(created.replaced);
            Ok(pb::CreateNotificationResponse {
                notification: Some((&created.notification).into()),
                replaced: created.replaced,
            })
        })
        .await
    }

    async fn get_notification(
        &self,
        request: Request<pb::GetNotificationRequest>,
    ) -> Result<Response<pb::Notification>, Status> {
        observe(&self.context, "GetNotification", async {
            let caller = authenticate(
                &self.context,
                &request,
                Some(&request.get_ref().subscription_id),
            )
            .await?;
            let id = convert::notification_id("id", &request.get_ref().id)?;
            let notification = self.context.service.get(caller.caller(), id).await?;
            Ok((&notification).into())
        })
        .await
    }

    async fn list_notifications(
        &self,
        request: Request<pb::ListNotificationsRequest>,
    ) -> Result<Response<pb::ListNotificationsResponse>, Status> {
        observe(&self.context, "ListNotifications", async {
            let caller = authenticate(
                &self.context,
                &request,
                Some(&request.get_ref().subscription_id),
            )
            .await?;
            let query = ListQuery::try_from(request.get_ref())?;
            let page = self.context.service.list(caller.caller(), &query).await?;
            Ok(pb::ListNotificationsResponse {
                notifications: page.notifications.iter().map(Into::into).collect(),
                next_page_token: page
                    .next_page_token
                    .map(|token| token.to_string())
                    .unwrap_or_default(),
                unread_count: page.unread_count,
            })
        })
        .await
    }

    async fn update_notification_state(
        &self,
        request: Request<pb::UpdateNotificationStateRequest>,
    ) -> Result<Response<pb::UpdateNotificationStateResponse>, Status> {
        observe(&self.context, "UpdateNotificationState", async {
            let body = request.get_ref();
            let caller = authenticate(&self.context, &request, Some(&body.subscription_id)).await?;
            let target = convert::update_target(body.target.as_ref())?;
            let change = convert::state_change(body.read_state, body.user_action_state)?;
            let updated = self
                .context
                .service
                .update_state(caller.caller(), target, change)
                .await?;
            let notification = updated
                .first()
                .ok_or(ApiError::Domain(notif_core::Error::NotFound))?;
            Ok(pb::UpdateNotificationStateResponse {
                notification: Some(notification.into()),
            })
        })
        .await
    }

    async fn delete_notification(
        &self,
        request: Request<pb::DeleteNotificationRequest>,
    ) -> Result<Response<pb::DeleteNotificationResponse>, Status> {
        observe(&self.context, "DeleteNotification", async {
            let body = request.get_ref();
            let caller = authenticate(&self.context, &request, Some(&body.subscription_id)).await?;
            let target = convert::delete_target(body.target.as_ref())?;
            self.delete(&caller, target).await
        })
        .await
    }

    async fn delete_group(
        &self,
        request: Request<pb::DeleteGroupRequest>,
    ) -> Result<Response<pb::DeleteNotificationResponse>, Status> {
        observe(&self.context, "DeleteGroup", async {
            let caller = authenticate(
                &self.context,
                &request,
                Some(&request.get_ref().subscription_id),
            )
            .await?;
            let target = convert::group_target("group_name", &request.get_ref().group_name)?;
            self.delete(&caller, target).await
        })
        .await
    }

    async fn list_changes(
        &self,
        request: Request<pb::ListChangesRequest>,
    ) -> Result<Response<pb::ListChangesResponse>, Status> {
        observe(&self.context, "ListChanges", async {
            let body = request.get_ref();
            let caller = authenticate(&self.context, &request, Some(&body.subscription_id)).await?;
            let limit = if body.limit == 0 {
                100
            } else {
                body.limit as usize
            };
            let cursor = self
                .context
                .service
                .resolve_cursor(
                    caller.caller(),
                    convert::cursor(body.cursor, body.from_latest),
                )
                .await?;
            let page = self
                .context
                .service
                .changes_since(caller.caller(), cursor, limit)
                .await?;
            Ok(pb::ListChangesResponse {
                changes: page.changes.iter().map(Into::into).collect(),
                cursor: page.cursor.value(),
                has_more: page.has_more,
            })
        })
        .await
    }

    type WatchChangesStream = std::pin::Pin<
        Box<dyn tokio_stream::Stream<Item = Result<pb::Notification, Status>> + Send>,
    >;

    async fn watch_changes(
        &self,
        request: Request<pb::WatchChangesRequest>,
    ) -> Result<Response<Self::WatchChangesStream>, Status> {
        observe(&self.context, "WatchChanges", async {
            let caller = authenticate(
                &self.context,
                &request,
                Some(&request.get_ref().subscription_id),
            )
            .await?;
            let (feed, _) = self
                .context
                .service
                .authorize(caller.caller(), Action::UseFeed)
                .await?;
            let slot = self.context.streams.take(&feed)?;
            let body = request.get_ref();
            let cursor = self
                .context
                .service
                .resolve_cursor(
                    caller.caller(),
                    convert::cursor(body.cursor, body.from_latest),
                )
                .await?;
            let changes =
                crate::follow::follow(Arc::clone(&self.context), caller, &feed, cursor, slot);
            let stream = tokio_stream::StreamExt::map(ReceiverStream::new(changes), |change| {
                change
                    .map(|notification| pb::Notification::from(&notification))
                    .map_err(Status::from)
            });
            Ok(Box::pin(stream) as Self::WatchChangesStream)
        })
        .await
    }

    async fn get_delivery_status(
        &self,
        request: Request<pb::GetDeliveryStatusRequest>,
    ) -> Result<Response<pb::GetDeliveryStatusResponse>, Status> {
        observe(&self.context, "GetDeliveryStatus", async {
            let caller = authenticate(
                &self.context,
                &request,
                Some(&request.get_ref().subscription_id),
            )
            .await?;
            let id = convert::notification_id("id", &request.get_ref().id)?;
            let records = self
                .context
                .service
                .delivery_status(caller.caller(), id)
                .await?;
            Ok(pb::GetDeliveryStatusResponse {
                endpoints: records.iter().map(Into::into).collect(),
            })
        })
        .await
    }

    async fn acknowledge_notification(
        &self,
        request: Request<pb::AcknowledgeNotificationRequest>,
    ) -> Result<Response<pb::AcknowledgeNotificationResponse>, Status> {
        observe(&self.context, "AcknowledgeNotification", async {
            let caller = authenticate(
                &self.context,
                &request,
                Some(&request.get_ref().subscription_id),
            )
            .await?;
            let id = convert::notification_id("id", &request.get_ref().id)?;
            let device = caller.subscription_id.as_deref().ok_or_else(|| {
                ApiError::invalid("subscription_id", "name the acknowledging device")
            })?;
            let device = convert::subscription_id("subscription_id", device)?;
            self.context
                .service
                .acknowledge(caller.caller(), id, device)
                .await?;
            Ok(pb::AcknowledgeNotificationResponse {})
        })
        .await
    }
}

impl NotificationsService {
    async fn delete(
        &self,
        caller: &Authenticated,
        target: notif_core::feed::Target,
    ) -> Result<pb::DeleteNotificationResponse, ApiError> {
        let deleted = self.context.service.delete(caller.caller(), target).await?;
        Ok(pb::DeleteNotificationResponse {
            deleted: deleted.iter().map(Into::into).collect(),
        })
    }
}

#[tonic::async_trait]
impl pb::subscriptions_server::Subscriptions for SubscriptionsService {
    async fn subscribe(
        &self,
        request: Request<pb::SubscribeRequest>,
    ) -> Result<Response<pb::SubscribeResponse>, Status> {
        observe(&self.context, "Subscribe", async {
            let caller = authenticate(&self.context, &request, None).await?;
            let outcome = self
                .context
                .service
                .subscribe(caller.caller(), request.into_inner().into())
                .await?;
            Ok(pb::SubscribeResponse {
                subscription: Some((&outcome.subscription).into()),
                renewed: outcome.renewed,
            })
        })
        .await
    }

    async fn list_subscriptions(
        &self,
        request: Request<pb::ListSubscriptionsRequest>,
    ) -> Result<Response<pb::ListSubscriptionsResponse>, Status> {
        observe(&self.context, "ListSubscriptions", async {
            let caller = authenticate(&self.context, &request, None).await?;
            let subscriptions = self.context.service.subscriptions(caller.caller()).await?;
            Ok(pb::ListSubscriptionsResponse {
                subscriptions: subscriptions.iter().map(Into::into).collect(),
            })
        })
        .await
    }

    async fn unsubscribe(
        &self,
        request: Request<pb::UnsubscribeRequest>,
    ) -> Result<Response<pb::UnsubscribeResponse>, Status> {
        observe(&self.context, "Unsubscribe", async {
            let caller = authenticate(&self.context, &request, None).await?;
            let id = convert::subscription_id("id", &request.get_ref().id)?;
            self.context
                .service
                .unsubscribe(caller.caller(), id)
                .await?;
            Ok(pb::UnsubscribeResponse {})
        })
        .await
    }
}
