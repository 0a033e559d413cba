//! Verification in the canonical vocabulary: the documents a user uploads, the attestation of a
//! check already made, and what a provider asks of the user next (next actions, rejections).
//! Each provider maps its own vocabulary onto these in its folder.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::user::IdentityDocumentType;

string_enum! {
    /// Kind of document uploaded.
    #[schema(examples("passport"))]
    pub enum DocumentType {
        /// Passport (identity, one side).
        Passport => "passport",
        /// National identity card (identity, front and back).
        NationalId => "national_id",
        /// Driver's license (identity, front and back).
        DriversLicense => "drivers_license",
        /// Residence permit (identity, front and back).
        ResidencePermit => "residence_permit",
        /// A photo of the person's face.
        Selfie => "selfie",
        /// A recent utility bill, bank statement or lease naming the address.
        ProofOfAddress => "proof_of_address",
    }
}

impl DocumentType {
    /// The identity document types: the ones that take a `side`.
    pub fn is_identity(&self) -> bool {
        self.identity_document_type().is_some()
    }

    /// The canonical identity document type of an identity document.
    pub fn identity_document_type(&self) -> Option<IdentityDocumentType> {
        match self {
            DocumentType::Passport => Some(IdentityDocumentType::Passport),
            DocumentType::NationalId => Some(IdentityDocumentType::NationalId),
            DocumentType::DriversLicense => Some(IdentityDocumentType::DriversLicense),
            DocumentType::ResidencePermit => Some(IdentityDocumentType::ResidencePermit),
            DocumentType::Selfie | DocumentType::ProofOfAddress => None,
        }
    }

    /// Whether the document has a back that providers want with its front (cards; a passport's
    /// data page is one side).
    pub fn is_two_sided(&self) -> bool {
        matches!(
            self,
            DocumentType::NationalId | DocumentType::DriversLicense | DocumentType::ResidencePermit
        )
    }
}

string_enum! {
    /// Which side of an identity document a file shows.
    #[schema(examples("front"))]
    pub enum DocumentSide {
        /// The front (or a passport's data page).
        Front => "front",
        /// The back.
        Back => "back",
    }
}

string_enum! {
    /// The file formats accepted, recognised by their content (magic bytes).
    #[schema(examples("image/jpeg"))]
    pub enum DocumentContentType {
        /// JPEG (`FF D8 FF`).
        Jpeg => "image/jpeg",
        /// PNG (`89 50 4E 47 0D 0A 1A 0A`).
        Png => "image/png",
        /// PDF (`%PDF-`).
        Pdf => "application/pdf",
    }
}

impl DocumentContentType {
    /// The format the bytes begin with, if it is one of the accepted ones.
    pub fn sniff(bytes: &[u8]) -> Option<Self> {
        if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Some(DocumentContentType::Jpeg)
        } else if bytes.starts_with(&[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A]) {
            Some(DocumentContentType::Png)
        } else if bytes.starts_with(b"%PDF-") {
            Some(DocumentContentType::Pdf)
        } else {
            None
        }
    }

    /// The usual file name extension (`jpg`, `png`, `pdf`).
    pub fn extension(&self) -> &'static str {
        match self {
            DocumentContentType::Jpeg => "jpg",
            DocumentContentType::Png => "png",
            DocumentContentType::Pdf => "pdf",
        }
    }
}

/// Who already verified the person and when: the attestation some providers require with a
/// document (Kraken accepts only partner-attested verifications).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerificationAttestation {
    /// The verification vendor's name, e.g. `example_kyc_vendor`.
    pub verifier: String,
    /// When the check was made (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub verified_at: OffsetDateTime,
    /// The vendor's id of the check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

/// The longest `verifier` and `reference` accepted.
pub const MAX_ATTESTATION_TEXT: usize = 200;

/// Parses a `verification` attestation (JSON) strictly: unknown members, missing or mistyped
/// ones, an empty `verifier`, over-long texts and a `verified_at` in the future are errors named
/// by their path under `field` (`verification.verified_at`). Messages never echo the input.
pub fn parse_attestation(
    bytes: &[u8],
    field: &str,
    now: OffsetDateTime,
) -> Result<VerificationAttestation, Vec<super::FieldError>> {
    use super::errors::{codes, join, FieldError};
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let parsed: Result<VerificationAttestation, _> =
        serde_path_to_error::deserialize(&mut deserializer);
    let malformed = || {
        FieldError::new(
            field,
            "malformed_json",
            "must be a JSON object: {\"verifier\", \"verified_at\", \"reference\"?}",
        )
    };
    if parsed.is_ok() && deserializer.end().is_err() {
        return Err(vec![malformed()]);
    }
    let attestation = match parsed {
        Ok(attestation) => attestation,
        Err(error) => {
            let path = error.path().to_string();
            let inner = error.into_inner();
            let text = inner.to_string();
            let at = |key: &str| {
                let parent = if path == "." {
                    field.to_owned()
                } else {
                    join(field, &path)
                };
                if key.is_empty() {
                    parent
                } else {
                    join(&parent, key)
                }
            };
            // The member a message names between backticks (`verifier`).
            let named = text.split('`').nth(1).unwrap_or("");
            let error = if inner.is_syntax() || inner.is_eof() {
                malformed()
            } else if text.starts_with("missing field") {
                FieldError::new(at(named), codes::REQUIRED, "is required")
            } else if text.starts_with("unknown field") {
                FieldError::new(
                    at(""),
                    codes::UNKNOWN_FIELD,
                    "is not a known field; expected verifier, verified_at, reference",
                )
            } else if path == "verified_at" && !text.starts_with("invalid type") {
                FieldError::new(
                    at(""),
                    codes::INVALID_DATE,
                    "must be an RFC 3339 date-time, e.g. 2026-11-01T09:30:00Z",
                )
            } else if path == "." || path.is_empty() {
                FieldError::new(field, codes::INVALID_TYPE, "must be a JSON object")
            } else {
                FieldError::new(at(""), codes::INVALID_TYPE, "must be a string")
            };
            return Err(vec![error]);
        }
    };
    let mut errors = Vec::new();
    if attestation.verifier.trim().is_empty() {
        errors.push(FieldError::new(
            join(field, "verifier"),
            codes::REQUIRED,
            "must not be empty",
        ));
    }
    for (name, value) in [
        ("verifier", Some(&attestation.verifier)),
        ("reference", attestation.reference.as_ref()),
    ] {
        match value {
            Some(v) if v.chars().count() > MAX_ATTESTATION_TEXT => errors.push(FieldError::new(
                join(field, name),
                codes::TOO_LONG,
                format!("must be at most {MAX_ATTESTATION_TEXT} characters"),
            )),
            Some(v) if v.chars().any(char::is_control) => errors.push(FieldError::new(
                join(field, name),
                codes::INVALID_FORMAT,
                "must not contain control characters",
            )),
            Some(v) if name == "reference" && v.trim().is_empty() => errors.push(FieldError::new(
                join(field, name),
                codes::TOO_SHORT,
                "must not be empty when given",
            )),
            _ => {}
        }
    }
    // A little clock skew between the vendor and us is tolerated.
    if attestation.verified_at > now + time::Duration::minutes(5) {
        errors.push(FieldError::new(
            join(field, "verified_at"),
            codes::DATE_NOT_IN_PAST,
            "must not be in the future",
        ));
    }
    if errors.is_empty() {
        Ok(attestation)
    } else {
        Err(errors)
    }
}

string_enum! {
    /// What the user (or the integrator) has to do next for a provider.
    #[schema(examples("upload_document"))]
    pub enum NextActionKind {
        /// Provide or correct profile fields (`fields` names them): `PATCH /v1/users/{id}`.
        UpdateField => "update_field",
        /// Upload documents of one of `document_types`: `POST /v1/users/{id}/documents`.
        UploadDocument => "upload_document",
        /// Send the person to the provider's hosted verification (`url`, or
        /// `POST /v1/users/{id}/verification-sessions`).
        OpenLink => "open_link",
        /// Accept the provider's terms (`fields` names the terms field to update).
        AcceptTerms => "accept_terms",
        /// Nothing to do: the provider is reviewing.
        Wait => "wait",
        /// Nothing the person can do through the API: ask the provider's support (also every
        /// provider value the gateway does not know, flagged `unrecognised`).
        ContactSupport => "contact_support",
    }
}

/// One thing a provider asks for, in the canonical vocabulary; the raw value stays in the
/// link's `provider_requirements`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct NextAction {
    /// The provider's own key for it, e.g. `verification:identity`, `access_level:L2`.
    pub code: String,
    pub next_action: NextActionKind,
    /// Canonical JSON paths to provide (`update_field`, `accept_terms`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
    /// Document types that satisfy it (`upload_document`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub document_types: Vec<DocumentType>,
    /// Where to send the person (`open_link`), when already known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// When `url` stops working, if the provider says.
    #[serde(
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<OffsetDateTime>,
    /// Whether onboarding cannot finish before it is done.
    pub blocking: bool,
    /// True when the provider's value is unknown to the gateway's mapping (mapped to
    /// `contact_support`, kept rather than dropped, and the link flagged for review).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub unrecognised: bool,
}

impl NextAction {
    /// A blocking action with no fields, documents or link.
    pub fn new(code: impl Into<String>, next_action: NextActionKind) -> Self {
        Self {
            code: code.into(),
            next_action,
            fields: Vec::new(),
            document_types: Vec::new(),
            url: None,
            expires_at: None,
            blocking: true,
            unrecognised: false,
        }
    }

    /// A provider value the mapping does not know: `contact_support`, flagged.
    pub fn unrecognised(code: impl Into<String>) -> Self {
        Self {
            unrecognised: true,
            ..Self::new(code, NextActionKind::ContactSupport)
        }
    }
}

/// Why a provider rejected the user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Rejection {
    /// The provider's reason code, or `rejected` when it gives none.
    pub code: String,
    /// Safe to show the person, when the provider wrote one for them.
    pub user_message: Option<String>,
    /// For the integrator only (may name internal checks).
    pub developer_message: Option<String>,
    /// Whether onboarding may be tried again (false unless the provider says so).
    pub retryable: bool,
}

/// The longest `redirect_url` a hosted session accepts.
pub const MAX_REDIRECT_URL_LEN: usize = 2048;

/// Whether `raw` may be where a provider's hosted verification sends the person afterwards: an
/// absolute `https` URL with a host, or `http` to this machine (`localhost`, `127.0.0.1`,
/// `[::1]`) for development; at most [`MAX_REDIRECT_URL_LEN`] characters, no credentials, no
/// spaces or control characters. `Err` says why not.
pub fn check_redirect_url(raw: &str) -> Result<(), String> {
    if raw.len() > MAX_REDIRECT_URL_LEN {
        return Err(format!("must be at most {MAX_REDIRECT_URL_LEN} characters"));
    }
    if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain spaces or control characters".into());
    }
    let url = url::Url::parse(raw).map_err(|_| "must be an absolute URL".to_owned())?;
    let host = url.host_str().unwrap_or_default();
    match url.scheme() {
        "https" if !host.is_empty() => {}
        "http" if matches!(host, "localhost" | "127.0.0.1" | "[::1]") => {}
        _ => return Err("must be an https URL (http only for localhost)".into()),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_urls_are_absolute_https_or_local_http() {
        for ok in [
            "https://app.example.com/kyc/done?x=1#top",
            "https://app.example.com",
            "http://localhost:3000/done",
            "http://127.0.0.1/done",
            "http://[::1]:8080/",
        ] {
            assert_eq!(check_redirect_url(ok), Ok(()), "{ok}");
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_REDIRECT_URL_LEN));
        for bad in [
            "",
            "/relative/path",
            "example.com/done",
            "http://app.example.com/done",
            "ftp://example.com/x",
            "javascript:alert(1)",
            "https://user:pw@example.com/",
            "https://exa mple.com/",
            " https://example.com/",
            "https://example.com/\n",
            "https://example.com/\u{7f}",
            long.as_str(),
        ] {
            assert!(check_redirect_url(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn content_types_are_recognised_by_their_magic_bytes() {
        assert_eq!(
            DocumentContentType::sniff(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 0]),
            Some(DocumentContentType::Jpeg)
        );
        assert_eq!(
            DocumentContentType::sniff(b"\x89PNG\r\n\x1a\nrest"),
            Some(DocumentContentType::Png)
        );
        assert_eq!(
            DocumentContentType::sniff(b"%PDF-1.7\n"),
            Some(DocumentContentType::Pdf)
        );
        for other in [&b"GIF89a"[..], b"", b"%PD", b"<html>", b"\xFF\xD8"] {
            assert_eq!(DocumentContentType::sniff(other), None, "{other:?}");
        }
    }

    #[test]
    fn identity_documents_take_sides_and_cards_have_two() {
        for t in DocumentType::ALL {
            assert_eq!(t.is_identity(), t.identity_document_type().is_some());
            assert!(!t.is_two_sided() || t.is_identity(), "{t}");
        }
        assert!(!DocumentType::Passport.is_two_sided());
        assert!(DocumentType::NationalId.is_two_sided());
        assert!(!DocumentType::Selfie.is_identity());
    }

    #[test]
    fn attestations_parse_strictly_naming_the_path() {
        let now = time::macros::datetime!(2026-12-03 12:00 UTC);
        let field = |raw: &str| -> Vec<(String, &'static str)> {
            parse_attestation(raw.as_bytes(), "verification", now)
                .unwrap_err()
                .into_iter()
                .map(|e| (e.field, e.code))
                .collect()
        };
        let ok = parse_attestation(
            br#"{"verifier":"example_kyc_vendor","verified_at":"2026-11-01T09:30:00Z","reference":"chk_1"}"#,
            "verification",
            now,
        )
        .unwrap();
        assert_eq!(ok.verifier, "example_kyc_vendor");
        assert_eq!(ok.reference.as_deref(), Some("chk_1"));
        let v = |f: &str| format!("verification.{f}");
        assert_eq!(
            field(r#"{"verifier":"x"}"#),
            vec![(v("verified_at"), "required")]
        );
        assert_eq!(
            field(r#"{"verifier":"x","verified_at":"2026-11-01T09:30:00Z","extra":1}"#),
            vec![(v("extra"), "unknown_field")]
        );
        assert_eq!(
            field(r#"{"verifier":"x","verified_at":"yesterday"}"#),
            vec![(v("verified_at"), "invalid_date")]
        );
        assert_eq!(
            field(r#"{"verifier":7,"verified_at":"2026-11-01T09:30:00Z"}"#),
            vec![(v("verifier"), "invalid_type")]
        );
        assert_eq!(
            field(r#"{"verifier":" ","verified_at":"2027-11-01T09:30:00Z"}"#),
            vec![
                (v("verifier"), "required"),
                (v("verified_at"), "date_not_in_past")
            ]
        );
        for broken in [
            r#"{"verifier":"#,
            "",
            "not json",
            r#"{"verifier":"x","verified_at":"2026-11-01T09:30:00Z"} trailing"#,
        ] {
            assert_eq!(
                field(broken),
                vec![("verification".to_owned(), "malformed_json")],
                "{broken}"
            );
        }
        assert_eq!(
            field("[]"),
            vec![("verification".to_owned(), "invalid_type")]
        );
        let secret = parse_attestation(
            br#"{"verifier":"Zebulon","verified_at":"bad"}"#,
            "verification",
            now,
        )
        .unwrap_err();
        assert!(!format!("{secret:?}").contains("Zebulon"));
    }

    #[test]
    fn actions_serialise_without_empty_parts() {
        let action = NextAction::new("wait:review", NextActionKind::Wait);
        assert_eq!(
            serde_json::to_value(&action).unwrap(),
            serde_json::json!({"code": "wait:review", "next_action": "wait", "blocking": true})
        );
        let unknown = NextAction::unrecognised("mystery");
        assert_eq!(
            serde_json::to_value(&unknown).unwrap()["next_action"],
            "contact_support"
        );
        assert_eq!(
            serde_json::to_value(&unknown).unwrap()["unrecognised"],
            true
        );
    }
}
