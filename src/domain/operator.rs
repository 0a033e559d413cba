//! What an operator states with an action (a reveal, a re-drive, a sync): the reason, recorded
//! in the user's audit trail beside the API key's name.

use serde_json::Value;

use super::errors::{codes, Invalid};

/// Reasons are free text, kept short enough for a timeline row.
pub const MAX_REASON_CHARS: usize = 500;

/// An operator's reason: 1–500 characters after trimming, no control characters but newlines
/// and tabs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reason(String);

impl Reason {
    /// Parses the JSON value of a `reason` member.
    pub fn parse(value: &Value) -> Result<Self, Invalid> {
        let Some(text) = value.as_str() else {
            return Err(Invalid::new(codes::INVALID_TYPE, "must be a string"));
        };
        let text = text.trim();
        if text.is_empty() {
            return Err(Invalid::new(
                codes::REQUIRED,
                "must not be empty: say why you take this action",
            ));
        }
        if text.chars().count() > MAX_REASON_CHARS {
            return Err(Invalid::new(
                codes::TOO_LONG,
                format!("must be at most {MAX_REASON_CHARS} characters"),
            ));
        }
        if text
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\n' | '\t'))
        {
            return Err(Invalid::new(
                codes::INVALID_FORMAT,
                "must not contain control characters other than newlines and tabs",
            ));
        }
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reasons_are_trimmed_and_bounded() {
        assert_eq!(
            Reason::parse(&json!("  ticket OPS-12 \n"))
                .unwrap()
                .as_str(),
            "ticket OPS-12"
        );
        assert_eq!(
            Reason::parse(&json!("   ")).unwrap_err().code,
            codes::REQUIRED
        );
        assert_eq!(
            Reason::parse(&json!(3)).unwrap_err().code,
            codes::INVALID_TYPE
        );
        assert!(Reason::parse(&json!("é".repeat(500))).is_ok());
        assert_eq!(
            Reason::parse(&json!("é".repeat(501))).unwrap_err().code,
            codes::TOO_LONG
        );
        assert_eq!(
            Reason::parse(&json!("a\u{0}b")).unwrap_err().code,
            codes::INVALID_FORMAT
        );
    }
}
