//! The saved development session: the server and the tokens `sign-in` obtained.

use std::path::PathBuf;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

/// Tokens from `notifctl sign-in`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Session {
    pub(crate) server: String,
    pub(crate) user: String,
    /// The user's token on the device client: for reading, state changes and subscriptions.
    pub(crate) device_token: String,
    /// The app service's on-behalf-of token: for sending.
    pub(crate) service_token: String,
}

/// Where the session is kept: `--session`, else `$NOTIFCTL_SESSION`, else
/// `~/.notifctl-session.json`.
pub(crate) fn path(explicit: Option<PathBuf>) -> PathBuf {
    explicit
        .or_else(|| std::env::var_os("NOTIFCTL_SESSION").map(PathBuf::from))
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
            home.join(".notifctl-session.json")
        })
}

pub(crate) fn load(path: &PathBuf) -> anyhow::Result<Session> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "no session at {}: run `notifctl sign-in` first",
            path.display()
        )
    })?;
    serde_json::from_str(&text).with_context(|| format!("reading the session {}", path.display()))
}

pub(crate) fn save(path: &PathBuf, session: &Session) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(session)?;
    std::fs::write(path, text).with_context(|| format!("writing the session {}", path.display()))
}
