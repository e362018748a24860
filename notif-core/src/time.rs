//! `Timestamp`: a UTC instant with millisecond precision, and its RFC 3339 form.

use std::fmt;
use std::time::Duration;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A UTC instant, stored as milliseconds since the Unix epoch.
///
/// The domain never reads the wall clock: instants come from the [`Clock`](crate::ports::Clock)
/// port, so every rule can be tested with fixed values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

/// Why a text is not an RFC 3339 date-time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an RFC 3339 date-time (like 2026-08-29T23:51:33.000Z)")]
pub struct TimestampParseError;

impl Timestamp {
    /// The instant `millis` milliseconds after the Unix epoch.
    pub const fn from_unix_millis(millis: i64) -> Self {
        Self(millis)
    }

    /// Milliseconds since the Unix epoch.
    pub const fn unix_millis(self) -> i64 {
        self.0
    }

    /// Whole seconds since the Unix epoch, rounded down.
    pub const fn unix_seconds(self) -> i64 {
        self.0.div_euclid(1000)
    }

    /// Parses an RFC 3339 date-time with any offset (`2018-08-29T23:51:33.000Z`).
    ///
    /// # Errors
    /// [`TimestampParseError`] when the text is not RFC 3339 or is outside the representable range.
    pub fn parse_rfc3339(text: &str) -> Result<Self, TimestampParseError> {
        let parsed = OffsetDateTime::parse(text, &Rfc3339).map_err(|_| TimestampParseError)?;
        let millis = parsed.unix_timestamp_nanos() / 1_000_000;
        i64::try_from(millis)
            .map(Self)
            .map_err(|_| TimestampParseError)
    }

    /// The RFC 3339 form in UTC with milliseconds (`2018-08-29T23:51:33.000Z`).
    pub fn to_rfc3339(self) -> String {
        let nanos = i128::from(self.0) * 1_000_000;
        match OffsetDateTime::from_unix_timestamp_nanos(nanos) {
            Ok(date_time) => {
                let millis = date_time.millisecond();
                format!(
                    "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{millis:03}Z",
                    date_time.year(),
                    u8::from(date_time.month()),
                    date_time.day(),
                    date_time.hour(),
                    date_time.minute(),
                    date_time.second(),
                )
            }
            // Only instants beyond year ±9999 land here; they cannot come from a parsed input.
            Err(_) => format!("@{}ms", self.0),
        }
    }

    /// This instant moved `duration` later, saturating at the far future.
    pub fn saturating_add(self, duration: Duration) -> Self {
        let millis = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
        Self(self.0.saturating_add(millis))
    }

    /// This instant moved `duration` earlier, saturating at the far past.
    pub fn saturating_sub(self, duration: Duration) -> Self {
        let millis = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
        Self(self.0.saturating_sub(millis))
    }

    /// The time from `earlier` to this instant; zero when `earlier` is not earlier.
    pub fn duration_since(self, earlier: Timestamp) -> Duration {
        let millis = self.0.saturating_sub(earlier.0).max(0);
        Duration::from_millis(millis.unsigned_abs())
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.to_rfc3339())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trips_with_milliseconds() {
        let parsed = Timestamp::parse_rfc3339("2018-08-29T23:51:33.123Z").unwrap();
        assert_eq!(parsed.to_rfc3339(), "2018-08-29T23:51:33.123Z");
        assert_eq!(parsed.unix_millis(), 1_535_586_693_123);
    }

    #[test]
    fn offsets_are_normalised_to_utc() {
        let parsed = Timestamp::parse_rfc3339("2018-08-30T01:51:33+02:00").unwrap();
        assert_eq!(parsed.to_rfc3339(), "2018-08-29T23:51:33.000Z");
    }

    #[test]
    fn garbage_is_refused() {
        for text in ["", "yesterday", "2018-13-01T00:00:00Z", "2018-08-29"] {
            assert_eq!(
                Timestamp::parse_rfc3339(text),
                Err(TimestampParseError),
                "{text}"
            );
        }
    }

    #[test]
    fn duration_since_never_goes_negative() {
        let early = Timestamp::from_unix_millis(1_000);
        let late = Timestamp::from_unix_millis(4_500);
        assert_eq!(late.duration_since(early), Duration::from_millis(3_500));
        assert_eq!(early.duration_since(late), Duration::ZERO);
    }
}
