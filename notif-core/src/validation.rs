//! Field violations: how every refused input names the field at fault and why.

use std::fmt;

/// One refused field: its name as clients spell it (Graph names, dotted paths) and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// The offending field, e.g. `payload.visualContent.title`.
    pub field: String,
    /// What is wrong with it, e.g. `required`.
    pub reason: String,
}

impl FieldViolation {
    /// A violation of `field` for `reason`.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for FieldViolation {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}: {}", self.field, self.reason)
    }
}

/// Every violation found in one input, in the order the fields were checked. Never empty.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", display_list(.0))]
pub struct ValidationErrors(Vec<FieldViolation>);

fn display_list(violations: &[FieldViolation]) -> String {
    violations
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl ValidationErrors {
    /// A single violation.
    pub fn single(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self(vec![FieldViolation::new(field, reason)])
    }

    /// The violations, in the order the fields were checked.
    pub fn violations(&self) -> &[FieldViolation] {
        &self.0
    }

    /// Whether `field` is among the violations.
    pub fn names(&self, field: &str) -> bool {
        self.0.iter().any(|violation| violation.field == field)
    }
}

/// Collects violations while a whole input is checked, so a client learns every problem at once.
#[derive(Debug, Default)]
pub(crate) struct Violations(Vec<FieldViolation>);

impl Violations {
    /// Keeps the value of `result`, or records its error under `field`.
    pub(crate) fn check<T, E: fmt::Display>(
        &mut self,
        field: &str,
        result: Result<T, E>,
    ) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(error) => {
                self.push(field, error.to_string());
                None
            }
        }
    }

    /// Keeps the value of `result`, or records its violations as they are (they name their
    /// fields already).
    pub(crate) fn merge<T>(&mut self, result: Result<T, ValidationErrors>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(errors) => {
                self.0.extend(errors.0);
                None
            }
        }
    }

    /// Records a violation.
    pub(crate) fn push(&mut self, field: &str, reason: impl Into<String>) {
        self.0.push(FieldViolation::new(field, reason));
    }

    /// `Ok(value)` when nothing was recorded, else every violation.
    pub(crate) fn finish<T>(
        self,
        value: impl FnOnce() -> Option<T>,
    ) -> Result<T, ValidationErrors> {
        if self.0.is_empty() {
            // Every field was recorded as valid, so the builder has all it needs; a `None`
            // here would be a bug in the caller, reported rather than panicking.
            value().ok_or_else(|| ValidationErrors::single("(request)", "incomplete"))
        } else {
            Err(ValidationErrors(self.0))
        }
    }
}
