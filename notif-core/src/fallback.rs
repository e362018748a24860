//! The fallback policy (Graph beta `fallbackPolicy`): for a notification with raw and visual
//! content, each endpoint of a listed platform gets the raw push first; if that device has not
//! fetched the notification within the delay, a visual (alert) push of the visual content
//! follows. Operating systems throttle or drop silent pushes to apps they suspended; the
//! fallback makes sure the user still sees the notification.
//!
//! The fallback travels as the stage of the one delivery job of its (notification, endpoint),
//! so it is durable, superseded by a newer change and dropped at expiration exactly like any
//! other job: [`JobFallback::Armed`] while the raw push is on its way, [`JobFallback::Visual`]
//! once it was delivered and the visual push waits for its time.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::notification::Scalar;
use crate::platform::Platform;
use crate::validation::{ValidationErrors, Violations};

/// The shortest delay a fallback policy may name, in seconds.
pub const MIN_DELAY_SECONDS: u16 = 60;
/// The longest delay a fallback policy may name, in seconds.
pub const MAX_DELAY_SECONDS: u16 = 600;

/// A validated fallback policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FallbackPolicy {
    platforms: BTreeSet<Platform>,
    delay_seconds: u16,
}

impl FallbackPolicy {
    /// A policy for `platforms` (at least one; not Web Push, whose pushes a browser always
    /// shows) after `delay_seconds` (60–600).
    ///
    /// # Errors
    /// [`ValidationErrors`] naming `fallbackPolicy.platformTypes` or
    /// `fallbackPolicy.fallbackDelayInSeconds`.
    pub fn new(
        platforms: impl IntoIterator<Item = Platform>,
        delay_seconds: i64,
    ) -> Result<Self, ValidationErrors> {
        let platforms: BTreeSet<Platform> = platforms.into_iter().collect();
        let mut violations = Violations::default();
        if platforms.is_empty() {
            violations.push("fallbackPolicy.platformTypes", "name at least one platform");
        }
        if platforms.contains(&Platform::WebPush) {
            violations.push(
                "fallbackPolicy.platformTypes",
                "WebPush has no silent pushes to fall back from: a browser shows every push",
            );
        }
        let delay_seconds = violations.check(
            "fallbackPolicy.fallbackDelayInSeconds",
            u16::try_from(delay_seconds)
                .ok()
                .filter(|seconds| (MIN_DELAY_SECONDS..=MAX_DELAY_SECONDS).contains(seconds))
                .ok_or_else(|| {
                    format!("must be between {MIN_DELAY_SECONDS} and {MAX_DELAY_SECONDS} seconds")
                }),
        );
        violations.finish(|| {
            Some(Self {
                platforms,
                delay_seconds: delay_seconds?,
            })
        })
    }

    /// The platforms whose endpoints get the fallback.
    pub fn platforms(&self) -> impl Iterator<Item = Platform> + '_ {
        self.platforms.iter().copied()
    }

    /// Whether endpoints on `platform` get the fallback.
    pub fn includes(&self, platform: Platform) -> bool {
        self.platforms.contains(&platform)
    }

    /// How long after the raw push's delivery the visual push follows, in seconds.
    pub const fn delay_seconds(&self) -> u16 {
        self.delay_seconds
    }

    /// How long after the raw push's delivery the visual push follows.
    pub fn delay(&self) -> Duration {
        Duration::from_secs(u64::from(self.delay_seconds))
    }
}

/// An unvalidated fallback policy, as received.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FallbackPolicyDraft {
    /// `fallbackPolicy.platformTypes`.
    pub platform_types: Vec<String>,
    /// `fallbackPolicy.fallbackDelayInSeconds`: seconds, as a number or a numeric string.
    pub fallback_delay_in_seconds: Option<Scalar>,
}

impl FallbackPolicyDraft {
    /// Validates the draft of a notification whose payload has raw content (`has_raw`) and
    /// visual content (`has_visual`): a fallback needs both.
    pub(crate) fn validate(
        self,
        has_raw: bool,
        has_visual: bool,
        violations: &mut Violations,
    ) -> Option<FallbackPolicy> {
        let mut platforms = Vec::new();
        let mut valid = true;
        for (index, text) in self.platform_types.iter().enumerate() {
            let field = format!("fallbackPolicy.platformTypes[{index}]");
            match violations.check(&field, Platform::parse(text)) {
                Some(platform) => platforms.push(platform),
                None => valid = false,
            }
        }
        let delay = match self.fallback_delay_in_seconds {
            None => {
                violations.push("fallbackPolicy.fallbackDelayInSeconds", "required");
                None
            }
            Some(Scalar::Number(seconds)) => Some(seconds),
            Some(Scalar::Text(text)) => violations.check(
                "fallbackPolicy.fallbackDelayInSeconds",
                text.trim()
                    .parse::<i64>()
                    .map_err(|_| format!("{text:?} is not a whole number of seconds")),
            ),
        };
        if !(has_raw && has_visual) {
            violations.push(
                "fallbackPolicy",
                "needs both payload.rawContent (pushed first) and payload.visualContent (the fallback)",
            );
            valid = false;
        }
        let policy = violations.merge(FallbackPolicy::new(platforms, delay?));
        policy.filter(|_| valid)
    }
}

/// The fallback stage of one delivery job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum JobFallback {
    /// No fallback: the job is an ordinary push.
    #[default]
    None,
    /// The job is the raw push; once it is delivered, the visual push follows `after` later
    /// unless the device fetches the notification first.
    Armed {
        /// The policy's delay.
        after: Duration,
    },
    /// The job is the visual push of a fallback.
    Visual,
}

/// What a device fetching a notification does to the job held for its endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AtFetch {
    /// The raw push is still on its way: it goes out, but no fallback follows it.
    Disarm,
    /// The visual push waits for its time: it is not needed any more.
    Cancel,
    /// There is no fallback to stop.
    Nothing,
}

/// Decides what a fetch does to the job held for the device, in fallback stage `held`.
pub fn at_fetch(held: JobFallback) -> AtFetch {
    match held {
        JobFallback::Armed { .. } => AtFetch::Disarm,
        JobFallback::Visual => AtFetch::Cancel,
        JobFallback::None => AtFetch::Nothing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft(platforms: &[&str], delay: Option<Scalar>) -> FallbackPolicyDraft {
        FallbackPolicyDraft {
            platform_types: platforms.iter().map(|&p| p.to_owned()).collect(),
            fallback_delay_in_seconds: delay,
        }
    }

    fn fields(draft: FallbackPolicyDraft, has_raw: bool, has_visual: bool) -> Vec<String> {
        let mut violations = Violations::default();
        let policy = draft.validate(has_raw, has_visual, &mut violations);
        match violations.finish(|| policy) {
            Ok(_) => Vec::new(),
            Err(errors) => errors
                .violations()
                .iter()
                .map(|violation| violation.field.clone())
                .collect(),
        }
    }

    #[test]
    fn the_documented_policy_is_valid() {
        let mut violations = Violations::default();
        let policy =
            draft(&["iOS"], Some(Scalar::Number(60))).validate(true, true, &mut violations);
        let policy = violations.finish(|| policy).unwrap();
        assert!(policy.includes(Platform::Ios));
        assert!(!policy.includes(Platform::Android));
        assert_eq!(policy.delay(), Duration::from_secs(60));
        let text = draft(&["android", "windows"], Some(Scalar::Text("600".into())));
        assert!(fields(text, true, true).is_empty());
    }

    #[test]
    fn each_bad_field_is_named() {
        for delay in [59, 601, -1, 0, i64::MAX] {
            assert_eq!(
                fields(draft(&["iOS"], Some(Scalar::Number(delay))), true, true),
                ["fallbackPolicy.fallbackDelayInSeconds"],
                "{delay}"
            );
        }
        assert_eq!(
            fields(draft(&["iOS"], None), true, true),
            ["fallbackPolicy.fallbackDelayInSeconds"]
        );
        assert_eq!(
            fields(
                draft(&["iOS"], Some(Scalar::Text("soon".into()))),
                true,
                true
            ),
            ["fallbackPolicy.fallbackDelayInSeconds"]
        );
        assert_eq!(
            fields(
                draft(&["iOS", "Blackberry"], Some(Scalar::Number(90))),
                true,
                true
            ),
            ["fallbackPolicy.platformTypes[1]"]
        );
        assert_eq!(
            fields(draft(&[], Some(Scalar::Number(90))), true, true),
            ["fallbackPolicy.platformTypes"]
        );
        assert_eq!(
            fields(draft(&["web"], Some(Scalar::Number(90))), true, true),
            ["fallbackPolicy.platformTypes"]
        );
        assert_eq!(
            fields(draft(&["iOS"], Some(Scalar::Number(90))), true, false),
            ["fallbackPolicy"]
        );
        assert_eq!(
            fields(draft(&["iOS"], Some(Scalar::Number(90))), false, true),
            ["fallbackPolicy"]
        );
    }

    #[test]
    fn a_fetch_disarms_the_raw_push_or_cancels_the_visual_one() {
        let armed = JobFallback::Armed {
            after: Duration::from_secs(60),
        };
        assert_eq!(at_fetch(armed), AtFetch::Disarm);
        assert_eq!(at_fetch(JobFallback::Visual), AtFetch::Cancel);
        assert_eq!(at_fetch(JobFallback::None), AtFetch::Nothing);
    }
}
