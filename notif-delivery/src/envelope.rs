//! The envelope's JSON form, and the shoulder-tap rule applied to each platform's rendering.

use notif_core::platform::Platform;
use notif_core::push::{Envelope, PushKind, PushMessage, fits};
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

/// A push body within its platform's size limit.
#[derive(Debug)]
pub(crate) struct Fitted {
    /// The body to send.
    pub(crate) body: Vec<u8>,
    /// Whether the alert text had to be shortened to fit.
    pub(crate) text_shortened: bool,
}

/// Renders `push`'s body with `render` so that it fits the platform's limit: as is if it
/// fits; else as a shoulder tap (the envelope without payload, the device fetches by cursor);
/// else, for an alert, with its body and then its title shortened on a character boundary
/// and ended with an ellipsis. The feed always keeps the whole text.
pub(crate) fn render_fitting(
    platform: Platform,
    push: &PushMessage,
    render: impl Fn(&Envelope, &PushKind) -> Vec<u8>,
) -> Fitted {
    let fitted = |body: Vec<u8>, text_shortened| Fitted {
        body,
        text_shortened,
    };
    let full = render(&push.envelope, &push.kind);
    if fits(platform, full.len()) {
        return fitted(full, false);
    }
    let tap = push.envelope.shoulder_tap();
    let tapped = render(&tap, &push.kind);
    let PushKind::Alert { title, body } = &push.kind else {
        // A background push's shoulder tap carries no free text: it always fits.
        return fitted(tapped, false);
    };
    if fits(platform, tapped.len()) {
        return fitted(tapped, false);
    }
    let alert = |title: &str, body: Option<&str>| PushKind::Alert {
        title: title.to_owned(),
        body: body.map(str::to_owned),
    };
    let fits_with = |kind: &PushKind| fits(platform, render(&tap, kind).len());
    let shortened_body = body.as_deref().and_then(|body| {
        longest_fitting(body, |candidate| fits_with(&alert(title, Some(candidate))))
    });
    let kind = match shortened_body {
        Some(body) => alert(title, Some(&body)),
        None => {
            let title = longest_fitting(title, |candidate| fits_with(&alert(candidate, None)))
                .unwrap_or_else(|| ELLIPSIS.to_owned());
            alert(&title, None)
        }
    };
    fitted(render(&tap, &kind), true)
}

const ELLIPSIS: &str = "\u{2026}";

/// The longest `text` cut on a character boundary and ended with an ellipsis for which
/// `fits` holds, or `None` when not even the ellipsis alone fits. `text` itself is known not
/// to fit; rendered sizes grow with the prefix, so a binary search finds it.
fn longest_fitting(text: &str, fits: impl Fn(&str) -> bool) -> Option<String> {
    let boundaries: Vec<usize> = text.char_indices().map(|(index, _)| index).collect();
    let candidate = |count: usize| {
        let end = boundaries.get(count).copied().unwrap_or(text.len());
        format!("{}{ELLIPSIS}", &text[..end])
    };
    // Invariant: `candidate(low)` fits (checked first), `candidate(high)` does not.
    if !fits(&candidate(0)) {
        return None;
    }
    let (mut low, mut high) = (0, boundaries.len());
    while high - low > 1 {
        let middle = low + (high - low) / 2;
        if fits(&candidate(middle)) {
            low = middle;
        } else {
            high = middle;
        }
    }
    Some(candidate(low))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_fitting_prefix_ends_on_a_character_boundary() {
        let text = "ééééé";
        // Each é is two bytes, the ellipsis three.
        let shortened = longest_fitting(text, |candidate| candidate.len() <= 8).unwrap();
        assert_eq!(shortened, "éé\u{2026}");
        assert_eq!(
            longest_fitting(text, |candidate| candidate.len() <= 2),
            None
        );
        assert_eq!(
            longest_fitting(text, |candidate| candidate.len() <= 12).unwrap(),
            "éééé\u{2026}"
        );
    }
}
