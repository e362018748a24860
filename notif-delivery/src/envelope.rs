//! The envelope's JSON form, and the shoulder-tap rule applied to each platform's rendering.

use notif_core::platform::Platform;
use notif_core::push::{Envelope, fits};
use serde_json::{Map, Value, json};

/// The envelope as JSON (camelCase keys, Graph enum names).
pub fn envelope_json(envelope: &Envelope) -> Value {
    let mut object = Map::new();
    object.insert("id".into(), json!(envelope.id.to_string()));
    object.insert(
        "appNotificationId".into(),
        json!(envelope.app_notification_id.as_str()),
    );
    object.insert(
        "groupName".into(),
        envelope
            .group_name
            .as_ref()
            .map_or(Value::Null, |group| json!(group.as_str())),
    );
    object.insert("change".into(), json!(envelope.change.as_str()));
    object.insert("changeSeq".into(), json!(envelope.change_seq.value()));
    object.insert("readState".into(), json!(envelope.read_state.as_str()));
    object.insert(
        "userActionState".into(),
        json!(envelope.user_action_state.as_str()),
    );
    if let Some(payload) = &envelope.payload {
        let mut content = Map::new();
        if let Some(visual) = payload.visual() {
            content.insert(
                "visualContent".into(),
                json!({"title": visual.title, "body": visual.body}),
            );
        }
        if let Some(raw) = payload.raw() {
            content.insert("rawContent".into(), json!(raw));
        }
        object.insert("payload".into(), Value::Object(content));
    }
    Value::Object(object)
}

/// Renders the push body with `render`; when it exceeds the platform's limit, renders the
/// shoulder tap (the envelope without payload) instead, and the device fetches by cursor.
pub(crate) fn render_fitting(
    platform: Platform,
    envelope: &Envelope,
    render: impl Fn(&Envelope) -> Vec<u8>,
) -> Vec<u8> {
    let full = render(envelope);
    if fits(platform, full.len()) {
        full
    } else {
        render(&envelope.shoulder_tap())
    }
}
