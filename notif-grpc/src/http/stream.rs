//! The live change stream for web clients: Server-Sent Events on
//! `GET /me/notifications/changes` with `Accept: text/event-stream`. Each event is one changed
//! notification (`event: change`, `id: <changeSeq>`, the Graph JSON as `data`); a client
//! resumes with `Last-Event-ID` (browsers send it when they reconnect) or `?cursor=`, and
//! `cursor=latest` starts at the end. Comments every [`HEARTBEAT`] keep proxies from closing
//! it; it ends when the server shuts down or the reader stops reading.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use notif_core::notification::{ChangeSeq, FeedKey};
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::ReceiverStream;

use super::json;
use crate::error::ApiError;
use crate::follow::{Slot, follow};
use crate::state::{Authenticated, ServerState};

/// How often an idle stream sends a comment.
pub(super) const HEARTBEAT: Duration = Duration::from_secs(15);

/// Whether the request asks for the event stream.
pub(super) fn wanted(headers: &HeaderMap) -> bool {
    headers
        .get(axum::http::header::ACCEPT)
        .and_then(|accept| accept.to_str().ok())
        .is_some_and(|accept| accept.contains("text/event-stream"))
}

/// The `Last-Event-ID` a reconnecting client sends: the last change it applied.
///
/// # Errors
/// [`ApiError`] naming the header when it is not a change number.
pub(super) fn last_event_id(headers: &HeaderMap) -> Result<Option<ChangeSeq>, ApiError> {
    headers
        .get("last-event-id")
        .map(|value| {
            value
                .to_str()
                .ok()
                .and_then(|text| text.trim().parse().ok())
                .map(ChangeSeq::new)
                .ok_or_else(|| ApiError::invalid("Last-Event-ID", "must be a change number"))
        })
        .transpose()
}

/// The stream of `caller`'s feed after `cursor`, links based at `base`.
pub(super) fn changes(
    context: Arc<ServerState>,
    caller: Authenticated,
    feed: &FeedKey,
    cursor: ChangeSeq,
    slot: Slot,
    base: String,
) -> Response {
    let changes = follow(context, caller, feed, cursor, slot);
    let events = ReceiverStream::new(changes).map(move |change| {
        Ok::<_, Infallible>(match change {
            Ok(notification) => Event::default()
                .event("change")
                .id(notification.change_seq.value().to_string())
                .data(json::notification(&base, &notification).to_string()),
            // The stream's last event: what went wrong, for the client to retry.
            Err(error) => Event::default().event("error").data(error.to_string()),
        })
    });
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(HEARTBEAT).text("heartbeat"))
        .into_response()
}
