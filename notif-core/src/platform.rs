//! Push platforms and notification priority, with the lenient parsing clients rely on.

use std::fmt;
use std::time::Duration;

/// A device platform, each with its own push provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Platform {
    /// Windows, through WNS.
    Windows,
    /// Android, through FCM.
    Android,
    /// iOS, through APNs.
    Ios,
    /// Browsers, through Web Push.
    WebPush,
}

/// A platform or priority name that is not recognised.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown value {value:?}; expected one of {expected}")]
pub struct UnknownName {
    /// The text received.
    pub value: String,
    /// The accepted names.
    pub expected: &'static str,
}

impl Platform {
    /// Every platform, in a fixed order.
    pub const ALL: [Platform; 4] = [
        Platform::Windows,
        Platform::Android,
        Platform::Ios,
        Platform::WebPush,
    ];

    /// Parses a platform name, ignoring case: `Windows`, `Android`, `iOS`, `WebPush` (or `web`).
    ///
    /// # Errors
    /// [`UnknownName`] for any other text.
    pub fn parse(text: &str) -> Result<Self, UnknownName> {
        match text.trim().to_ascii_lowercase().as_str() {
            "windows" | "wns" => Ok(Platform::Windows),
            "android" | "fcm" => Ok(Platform::Android),
            "ios" | "apns" => Ok(Platform::Ios),
            "webpush" | "web" => Ok(Platform::WebPush),
            _ => Err(UnknownName {
                value: text.to_owned(),
                expected: "Windows, Android, iOS, WebPush",
            }),
        }
    }

    /// The canonical (Graph) name: `Windows`, `Android`, `iOS`, `WebPush`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Platform::Windows => "Windows",
            Platform::Android => "Android",
            Platform::Ios => "iOS",
            Platform::WebPush => "WebPush",
        }
    }

    /// The largest push body the platform's provider accepts for our envelope, in bytes
    /// (APNs 4 KiB, FCM 4 KiB, WNS 5 KB, Web Push 3993 bytes of plaintext).
    pub const fn payload_limit(self) -> usize {
        match self {
            Platform::Ios | Platform::Android => 4096,
            Platform::Windows => 5000,
            Platform::WebPush => 3993,
        }
    }
}

impl Platform {
    /// The longest time-to-live the platform's provider accepts: FCM refuses an
    /// `android.ttl` over four weeks ("Invalid TTL"; FCM's `AndroidConfig.ttl` reference).
    /// APNs (`apns-expiration`, a date), WNS (`X-WNS-TTL`) and Web Push (RFC 8030 §5.2, the
    /// push service may only shorten it) document no maximum below notif's 30 days.
    pub const fn max_time_to_live(self) -> Option<Duration> {
        match self {
            Platform::Android => Some(Duration::from_secs(28 * 24 * 60 * 60)),
            Platform::Windows | Platform::Ios | Platform::WebPush => None,
        }
    }

    /// `time_to_live` within the platform's maximum.
    pub fn clamp_time_to_live(self, time_to_live: Duration) -> Duration {
        self.max_time_to_live()
            .map_or(time_to_live, |max| time_to_live.min(max))
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// A notification's priority; it applies to raw notifications (visual ones always go out high).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Priority {
    /// No preference (the default).
    #[default]
    None,
    /// Low: may be delayed to save power.
    Low,
    /// High: delivered immediately.
    High,
}

impl Priority {
    /// Parses a priority: `None`, `Low`, `High` in any case, or the Graph client enum numbers
    /// `0` (None), `1` (High), `2` (Low) — the seed example answers `"priority": "1"` for `High`.
    ///
    /// # Errors
    /// [`UnknownName`] for any other text.
    pub fn parse(text: &str) -> Result<Self, UnknownName> {
        match text.trim().to_ascii_lowercase().as_str() {
            "none" | "0" => Ok(Priority::None),
            "high" | "1" => Ok(Priority::High),
            "low" | "2" => Ok(Priority::Low),
            _ => Err(UnknownName {
                value: text.to_owned(),
                expected: "None, High, Low (or 0, 1, 2)",
            }),
        }
    }

    /// The Graph client enum number: 0 (None), 1 (High), 2 (Low).
    pub const fn as_number(self) -> u8 {
        match self {
            Priority::None => 0,
            Priority::High => 1,
            Priority::Low => 2,
        }
    }

    /// The canonical name: `None`, `Low`, `High`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Priority::None => "None",
            Priority::Low => "Low",
            Priority::High => "High",
        }
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_to_live_is_clamped_to_four_weeks_for_fcm_only() {
        let twenty_nine_days = Duration::from_secs(29 * 86_400);
        assert_eq!(
            Platform::Android.clamp_time_to_live(twenty_nine_days),
            Duration::from_secs(2_419_200)
        );
        assert_eq!(
            Platform::Android.clamp_time_to_live(Duration::from_secs(60)),
            Duration::from_secs(60)
        );
        for platform in [Platform::Ios, Platform::Windows, Platform::WebPush] {
            assert_eq!(
                platform.clamp_time_to_live(twenty_nine_days),
                twenty_nine_days
            );
        }
    }

    #[test]
    fn platform_names_parse_in_any_case() {
        for (text, platform) in [
            ("windows", Platform::Windows),
            ("Windows", Platform::Windows),
            ("ANDROID", Platform::Android),
            ("iOS", Platform::Ios),
            ("ios", Platform::Ios),
            ("webpush", Platform::WebPush),
            ("WebPush", Platform::WebPush),
            ("web", Platform::WebPush),
        ] {
            assert_eq!(Platform::parse(text), Ok(platform), "{text}");
        }
        assert!(Platform::parse("blackberry").is_err());
        assert!(Platform::parse("").is_err());
    }

    #[test]
    fn priorities_parse_names_and_numbers() {
        assert_eq!(Priority::parse("High"), Ok(Priority::High));
        assert_eq!(Priority::parse("low"), Ok(Priority::Low));
        assert_eq!(Priority::parse("NONE"), Ok(Priority::None));
        assert_eq!(Priority::parse("0"), Ok(Priority::None));
        assert_eq!(Priority::parse("1"), Ok(Priority::High));
        assert_eq!(Priority::parse("2"), Ok(Priority::Low));
        for priority in [Priority::None, Priority::Low, Priority::High] {
            assert_eq!(
                Priority::parse(&priority.as_number().to_string()),
                Ok(priority)
            );
        }
        assert!(Priority::parse("3").is_err());
        assert!(Priority::parse("urgent").is_err());
    }
}
