//! Identifiers and validated names: notification and subscription ids, users, clients, apps, hosts.

use std::fmt;

use uuid::Uuid;

/// Why a text cannot be an identifier or name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    /// The text is empty or only whitespace.
    #[error("required")]
    Empty,
    /// The text is longer than allowed.
    #[error("longer than {max} characters")]
    TooLong {
        /// The maximum number of characters.
        max: usize,
    },
    /// The text contains a control character.
    #[error("contains a control character")]
    NotPrintable,
    /// The text is not of the required shape.
    #[error("{0}")]
    Malformed(&'static str),
}

/// Checks a text for non-emptiness, length in characters and printability.
pub(crate) fn check_text(text: &str, max: usize) -> Result<(), TextError> {
    if text.trim().is_empty() {
        return Err(TextError::Empty);
    }
    if text.chars().count() > max {
        return Err(TextError::TooLong { max });
    }
    if text.chars().any(char::is_control) {
        return Err(TextError::NotPrintable);
    }
    Ok(())
}

macro_rules! text_id {
    ($(#[$meta:meta])* $name:ident, max = $max:expr) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// The longest accepted text, in characters.
            pub const MAX_CHARS: usize = $max;

            /// Validates `text`: non-empty, at most [`Self::MAX_CHARS`] characters, no control characters.
            ///
            /// # Errors
            /// [`TextError`] naming the rule the text breaks.
            pub fn new(text: impl Into<String>) -> Result<Self, TextError> {
                let text = text.into();
                check_text(&text, Self::MAX_CHARS)?;
                Ok(Self(text))
            }

            /// The text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(formatter, "{}({:?})", stringify!($name), self.0)
            }
        }
    };
}

text_id!(
    /// A user, as the identity provider names them (`oid`, else `sub`).
    UserId, max = 256
);
text_id!(
    /// An OAuth client: an app service or a Windows, Android, iOS or web client of a cross-device app.
    ClientId, max = 256
);
text_id!(
    /// A cross-device app's key in the app registry: the unit of isolation.
    AppId, max = 128
);
text_id!(
    /// The app's own key for a notification, unique per (app, user) among live notifications.
    AppNotificationId, max = 256
);
text_id!(
    /// A group of notifications that can be deleted together.
    GroupName, max = 256
);

/// A cross-device app's verified host name (`graphnotifications.sample.windows.com`), lower case.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HostName(String);

impl HostName {
    /// Validates a DNS host name: dot-separated labels of letters, digits and hyphens, at most
    /// 253 characters; stored in lower case so comparisons ignore case.
    ///
    /// # Errors
    /// [`TextError`] when the text is empty, too long or not a host name.
    pub fn new(text: impl AsRef<str>) -> Result<Self, TextError> {
        let text = text.as_ref().trim_end_matches('.');
        check_text(text, 253)?;
        let valid_label = |label: &str| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        };
        if !text.split('.').all(valid_label) {
            return Err(TextError::Malformed("not a host name"));
        }
        Ok(Self(text.to_ascii_lowercase()))
    }

    /// The host name, lower case.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for HostName {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

impl fmt::Debug for HostName {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "HostName({:?})", self.0)
    }
}

macro_rules! uuid_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(Uuid);

        impl $name {
            /// A UUID v7 from a creation time and ten random bytes, so ids sort by creation.
            pub fn from_parts(unix_millis: u64, random: [u8; 10]) -> Self {
                Self(uuid::Builder::from_unix_timestamp_millis(unix_millis, &random).into_uuid())
            }

            /// Wraps an existing UUID (as read back from storage).
            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            /// Parses the hyphenated or simple text form.
            ///
            /// # Errors
            /// [`TextError::Malformed`] when the text is not a UUID.
            pub fn parse(text: &str) -> Result<Self, TextError> {
                Uuid::try_parse(text.trim())
                    .map(Self)
                    .map_err(|_| TextError::Malformed("not a UUID"))
            }

            /// The UUID.
            pub const fn as_uuid(&self) -> &Uuid {
                &self.0
            }

            /// The 16 bytes of the UUID, big-endian, which sort like the ids.
            pub const fn as_bytes(&self) -> &[u8; 16] {
                self.0.as_bytes()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.hyphenated(), formatter)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(formatter, "{}({})", stringify!($name), self.0.hyphenated())
            }
        }
    };
}

uuid_id!(
    /// A notification's server-assigned id: a UUID v7, so ids sort by creation.
    NotificationId
);
uuid_id!(
    /// A device endpoint's subscription id (Graph's `UserNotificationSubscriptionId`).
    SubscriptionId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_ids_refuse_empty_long_and_control_text() {
        assert_eq!(UserId::new(""), Err(TextError::Empty));
        assert_eq!(UserId::new("   "), Err(TextError::Empty));
        assert_eq!(
            AppNotificationId::new("x".repeat(257)),
            Err(TextError::TooLong { max: 256 })
        );
        assert_eq!(GroupName::new("a\u{0}b"), Err(TextError::NotPrintable));
        assert!(AppNotificationId::new("x".repeat(256)).is_ok());
        assert!(GroupName::new("Grüße 👋").is_ok());
    }

    #[test]
    fn host_names_are_lower_cased_and_checked() {
        let host = HostName::new("GraphNotifications.Sample.Windows.com").unwrap();
        assert_eq!(host.as_str(), "graphnotifications.sample.windows.com");
        for bad in ["", "a..b", "-a.com", "a b.com", "exa_mple.com", "a.com/x"] {
            assert!(HostName::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn v7_ids_sort_by_creation_time() {
        let early = NotificationId::from_parts(1_000, [0xff; 10]);
        let late = NotificationId::from_parts(1_001, [0; 10]);
        assert!(early < late);
        assert_eq!(early.as_uuid().get_version_num(), 7);
        assert_eq!(NotificationId::parse(&early.to_string()), Ok(early));
        assert!(SubscriptionId::parse("not-a-uuid").is_err());
    }
}
