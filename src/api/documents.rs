//! `/v1/users/{id}/documents`: upload a document (`multipart/form-data`), list and read the
//! documents' metadata. The file is read part by part as it arrives, its size checked while it
//! streams (reading stops one byte past `documents.max_bytes`), its format recognised by its
//! bytes; it is never logged and never returned.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use actix_multipart::{Multipart, MultipartError};
use actix_web::error::PayloadError;
use actix_web::http::header;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use serde::Serialize;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use super::idempotency;
use super::problem::{Problem, ProblemDocument};
use super::query::{decode_id_cursor, encode_id_cursor, invalid, pairs, parse_limit, MAX_PAGE};
use super::resources::LinkError;
use super::{authorize, AppState};
use crate::auth::Scope;
use crate::crypto::SealBuffer;
use crate::domain::errors::codes;
use crate::domain::provider::ProviderId;
use crate::domain::verification::{
    parse_attestation, DocumentContentType, DocumentSide, DocumentType, VerificationAttestation,
};
use crate::domain::FieldError;
use crate::onboarding::documents::{self, DocumentError, DocumentView, Upload};
use crate::store::documents::{SubmissionRow, SubmissionStatus};

/// The accepted request content type.
const MULTIPART: &str = "multipart/form-data";
/// The longest `type` or `side` part.
const MAX_WORD_PART: usize = 64;
/// The longest `verification` part.
const MAX_VERIFICATION_PART: usize = 8 * 1024;
/// Everything but the file (the text parts, part headers, unknown parts) is refused beyond this.
const MAX_OTHER_BYTES: usize = 64 * 1024;
/// Multipart framing allowed on top of the file in `Content-Length` before the body is read.
const FRAMING_ALLOWANCE: u64 = MAX_OTHER_BYTES as u64 + 16 * 1024;

/// The parts of `POST /v1/users/{id}/documents` (`multipart/form-data`, in any order).
// Parts other than these are refused (`unknown_field`), so the schema says so.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // describes the form for the OpenAPI document only
pub struct DocumentUploadForm {
    /// The kind of document.
    #[schema(rename = "type")]
    document_type: DocumentType,
    /// Which side the file shows: identity documents only (`passport`, `national_id`,
    /// `drivers_license`, `residence_permit`); `front` when omitted. A `selfie` or
    /// `proof_of_address` with a side is refused.
    side: Option<DocumentSide>,
    /// The file: JPEG, PNG or PDF, recognised by its bytes. A part `Content-Type` other than
    /// `application/octet-stream` must agree with them (`content_type_mismatch`). At most
    /// `documents.max_bytes` (10 MiB by default).
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
    /// JSON: who already verified the person and when. Kraken accepts documents only with it.
    verification: Option<VerificationAttestation>,
}

/// An uploaded document: its metadata and where it stands at each linked provider. The file
/// itself is never returned.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "01936b2e-8a10-7c3e-9d2f-4b6a8c0e2d41",
    "user_id": "01936b2e-7c4a-7d1e-9f3b-2a5c8e4d6f10",
    "type": "national_id",
    "side": "front",
    "content_type": "image/jpeg",
    "size": 482113,
    "sha256": "9f2c4e8a0b1d3f5a7c9e1b3d5f7a9c1e3b5d7f9a1c3e5b7d9f1a3c5e7b9d1f3a",
    "created_at": "2026-12-03T10:00:00Z",
    "submissions": [
        {"provider": "killb", "status": "submitted", "provider_document_id": null, "last_error": null, "submitted_at": "2026-12-03T10:00:01Z"},
        {"provider": "carbn", "status": "not_supported", "provider_document_id": null,
         "last_error": {"code": "not_supported_by_provider", "message": "document uploads are not forwarded to this provider", "at": "2026-12-03T10:00:00Z"},
         "submitted_at": null}
    ]
}))]
pub struct DocumentResource {
    /// The gateway's document id (UUIDv7, time-ordered).
    pub id: Uuid,
    pub user_id: Uuid,
    #[serde(rename = "type")]
    pub document_type: DocumentType,
    /// `front` or `back` for identity documents; null otherwise.
    pub side: Option<DocumentSide>,
    /// What the file's bytes are (not what the upload declared).
    pub content_type: DocumentContentType,
    /// Bytes.
    pub size: i64,
    /// Hex SHA-256 of the file.
    pub sha256: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// One per provider the user was linked to at upload (or linked later).
    pub submissions: Vec<SubmissionResource>,
}

/// A document at one provider.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubmissionResource {
    pub provider: ProviderId,
    pub status: SubmissionStatus,
    /// The provider's id for the document, when it gives one (Kraken's `verification_id`).
    pub provider_document_id: Option<String>,
    /// Why it was refused or is not supported, or the last failed attempt while pending.
    pub last_error: Option<LinkError>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub submitted_at: Option<OffsetDateTime>,
}

/// A page of a user's documents, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct DocumentList {
    pub data: Vec<DocumentResource>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

impl From<SubmissionRow> for SubmissionResource {
    fn from(row: SubmissionRow) -> Self {
        Self {
            provider: row.provider,
            status: row.status,
            provider_document_id: row.provider_document_id,
            last_error: row
                .last_error
                .and_then(|e| serde_json::from_value(e.0).ok()),
            submitted_at: row.submitted_at,
        }
    }
}

impl From<DocumentView> for DocumentResource {
    fn from(view: DocumentView) -> Self {
        let d = view.document;
        Self {
            id: d.id,
            user_id: d.user_id,
            document_type: d.document_type,
            side: d.side,
            content_type: d.content_type,
            size: d.size,
            sha256: d.sha256,
            created_at: d.created_at,
            submissions: view
                .submissions
                .into_iter()
                .map(SubmissionResource::from)
                .collect(),
        }
    }
}

impl From<DocumentError> for Problem {
    fn from(error: DocumentError) -> Self {
        match error {
            DocumentError::Onboarding(error) => Problem::from(error),
            DocumentError::DocumentNotFound => Problem::not_found("no document with this id"),
            DocumentError::Refused(errors) => Problem {
                errors,
                ..Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "document_refused_by_provider",
                    "A linked provider would refuse this document",
                )
                .detail("nothing was stored; each entry names the provider and the rule (`code`)")
            },
        }
    }
}

fn parse_id(raw: &str, what: &str) -> Result<Uuid, Problem> {
    Uuid::parse_str(raw).map_err(|_| Problem::not_found(format!("no {what} with this id")))
}

fn to_json<T: Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).expect("API resources always serialise")
}

fn malformed(detail: &str) -> Problem {
    Problem::new(
        StatusCode::BAD_REQUEST,
        "malformed_request",
        "The request body is not valid multipart/form-data",
    )
    .detail(detail)
}

fn file_too_large(limit: u64) -> Problem {
    Problem {
        errors: vec![FieldError::new(
            "file",
            codes::TOO_LARGE,
            format!("must be at most {limit} bytes"),
        )],
        ..Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "The request body is too large",
        )
        .detail(format!("file: must be at most {limit} bytes"))
    }
}

fn from_multipart(error: MultipartError) -> Problem {
    match error {
        MultipartError::Payload(PayloadError::Overflow) => {
            malformed("a line of the multipart body is too long")
        }
        MultipartError::Payload(_) => malformed("the request body could not be read"),
        MultipartError::Incomplete => malformed(
            "the body ended before the multipart closing boundary; is it the boundary named in \
             Content-Type?",
        ),
        MultipartError::BoundaryMissing => malformed("Content-Type names no boundary"),
        MultipartError::ContentDispositionMissing
        | MultipartError::ContentDispositionNameMissing => {
            malformed("every part needs `Content-Disposition: form-data; name=\"…\"`")
        }
        MultipartError::Nested => malformed("nested multipart parts are not accepted"),
        _ => malformed("the body is not valid multipart/form-data"),
    }
}

/// The file part as it arrived: collected where it will be sealed, hashed on the way.
struct FilePart {
    buffer: SealBuffer,
    sha256: String,
    /// The part's own `Content-Type` essence, when it named one.
    declared: Option<String>,
}

/// The parts as received, before their values are checked.
#[derive(Default)]
struct Form {
    document_type: Option<Vec<u8>>,
    side: Option<Vec<u8>>,
    verification: Option<Vec<u8>>,
    file: Option<FilePart>,
    /// Duplicate, unknown and over-long parts.
    errors: Vec<FieldError>,
}

/// Reads a text part up to `limit` bytes; `None` when it is longer (the rest is drained).
async fn read_text(
    field: &mut actix_multipart::Field,
    limit: usize,
    other_bytes: &mut usize,
) -> Result<Option<Vec<u8>>, Problem> {
    let mut text = Vec::new();
    let mut over = false;
    while let Some(chunk) = field.next().await {
        let chunk = chunk.map_err(from_multipart)?;
        *other_bytes += chunk.len();
        if *other_bytes > MAX_OTHER_BYTES {
            return Err(Problem::validation(vec![FieldError::new(
                "",
                codes::TOO_LARGE,
                format!("the parts other than `file` must total at most {MAX_OTHER_BYTES} bytes"),
            )]));
        }
        if text.len() + chunk.len() > limit {
            over = true;
            text.clear();
        } else if !over {
            text.extend_from_slice(&chunk);
        }
    }
    Ok((!over).then_some(text))
}

/// The request's `Content-Length`, when it sends a valid one.
fn content_length(req: &HttpRequest) -> Option<u64> {
    req.headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

async fn read_form(
    req: &HttpRequest,
    payload: web::Payload,
    max_bytes: u64,
) -> Result<Form, Problem> {
    let mut multipart = Multipart::new(req.headers(), payload);
    let mut form = Form::default();
    let mut seen = BTreeSet::new();
    let mut other_bytes = 0usize;
    while let Some(field) = multipart.next().await {
        let mut field = field.map_err(from_multipart)?;
        let name = field.name().unwrap_or_default().to_owned();
        if !seen.insert(name.clone()) {
            form.errors.push(FieldError::new(
                &name,
                "duplicate_part",
                "is given more than once",
            ));
            read_text(&mut field, 0, &mut other_bytes).await?;
            continue;
        }
        match name.as_str() {
            "file" => {
                let declared = field
                    .content_type()
                    .map(|mime| mime.essence_str().to_ascii_lowercase());
                // Sized from Content-Length (never beyond the limit), so the file is not
                // copied as it grows.
                let mut buffer = SealBuffer::with_capacity(
                    content_length(req).unwrap_or(0).min(max_bytes) as usize,
                );
                let mut hasher = Sha256::new();
                while let Some(chunk) = field.next().await {
                    let chunk = chunk.map_err(from_multipart)?;
                    // Stop at the first byte past the limit: never hold more than it.
                    if (buffer.len() + chunk.len()) as u64 > max_bytes {
                        return Err(file_too_large(max_bytes));
                    }
                    hasher.update(&chunk);
                    buffer.extend_from_slice(&chunk);
                }
                form.file = Some(FilePart {
                    buffer,
                    sha256: hex::encode(hasher.finalize()),
                    declared,
                });
            }
            "type" | "side" | "verification" => {
                let limit = if name == "verification" {
                    MAX_VERIFICATION_PART
                } else {
                    MAX_WORD_PART
                };
                match read_text(&mut field, limit, &mut other_bytes).await? {
                    Some(text) if name == "type" => form.document_type = Some(text),
                    Some(text) if name == "side" => form.side = Some(text),
                    Some(text) => form.verification = Some(text),
                    None => form.errors.push(FieldError::new(
                        &name,
                        codes::TOO_LONG,
                        format!("must be at most {limit} bytes"),
                    )),
                }
            }
            _ => {
                form.errors.push(FieldError::new(
                    &name,
                    codes::UNKNOWN_FIELD,
                    "is not a known part; expected type, side, file, verification",
                ));
                read_text(&mut field, 0, &mut other_bytes).await?;
            }
        }
    }
    Ok(form)
}

/// Declared part types that name the same format under another name.
fn declared_format(declared: &str) -> Option<Option<DocumentContentType>> {
    match declared {
        // Says nothing about the format.
        "application/octet-stream" | "binary/octet-stream" => None,
        "image/jpg" | "image/pjpeg" => Some(Some(DocumentContentType::Jpeg)),
        other => Some(DocumentContentType::from_wire(other)),
    }
}

impl Form {
    /// What identifies the request for `Idempotency-Key`: the parts as sent, the file by its
    /// digest (a retry must send the same bytes to replay the answer).
    fn fingerprint(&self) -> serde_json::Value {
        fn text(v: &Option<Vec<u8>>) -> Option<String> {
            v.as_deref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
        }
        serde_json::json!({
            "type": text(&self.document_type),
            "side": text(&self.side),
            "verification": text(&self.verification),
            "file_sha256": self.file.as_ref().map(|f| f.sha256.as_str()),
            "file_content_type": self.file.as_ref().and_then(|f| f.declared.as_deref()),
        })
    }

    /// The upload, or every invalid part at once.
    fn validate(self, now: OffsetDateTime) -> Result<Upload, Vec<FieldError>> {
        let mut errors = self.errors;
        let document_type = match self.document_type.as_deref() {
            None => {
                errors.push(FieldError::new("type", codes::REQUIRED, "is required"));
                None
            }
            Some(raw) => {
                let parsed = std::str::from_utf8(raw)
                    .ok()
                    .and_then(DocumentType::from_wire);
                if parsed.is_none() {
                    errors.push(FieldError::new(
                        "type",
                        codes::INVALID_VALUE,
                        format!("must be one of {}", DocumentType::allowed()),
                    ));
                }
                parsed
            }
        };
        let side = match self.side.as_deref() {
            None => None,
            Some(raw) => {
                let parsed = std::str::from_utf8(raw)
                    .ok()
                    .and_then(DocumentSide::from_wire);
                match (parsed, document_type) {
                    (None, _) => errors.push(FieldError::new(
                        "side",
                        codes::INVALID_VALUE,
                        format!("must be one of {}", DocumentSide::allowed()),
                    )),
                    (Some(_), Some(t)) if !t.is_identity() => errors.push(FieldError::new(
                        "side",
                        "not_allowed",
                        "only identity documents (passport, national_id, drivers_license, residence_permit) have sides",
                    )),
                    _ => {}
                }
                parsed
            }
        };
        let mut content_type = None;
        match &self.file {
            None => errors.push(FieldError::new("file", codes::REQUIRED, "is required")),
            Some(file) if file.buffer.is_empty() => {
                errors.push(FieldError::new("file", "empty_file", "must not be empty"))
            }
            Some(file) => match DocumentContentType::sniff(file.buffer.plaintext()) {
                None => errors.push(FieldError::new(
                    "file",
                    "unsupported_file_type",
                    "must be a JPEG, PNG or PDF file (recognised by its content)",
                )),
                Some(sniffed) => match file.declared.as_deref().and_then(declared_format) {
                    Some(declared) if declared != Some(sniffed) => errors.push(FieldError::new(
                        "file",
                        "content_type_mismatch",
                        format!(
                            "the part's Content-Type does not match its content, which is {sniffed}"
                        ),
                    )),
                    _ => content_type = Some(sniffed),
                },
            },
        }
        let verification = match self.verification.as_deref() {
            None => None,
            Some(raw) => match parse_attestation(raw, "verification", now) {
                Ok(attestation) => Some(attestation),
                Err(mut more) => {
                    errors.append(&mut more);
                    None
                }
            },
        };
        match (document_type, content_type, self.file) {
            (Some(document_type), Some(content_type), Some(file)) if errors.is_empty() => {
                Ok(Upload {
                    document_type,
                    // An identity document's side defaults to its front.
                    side: side.or(document_type.is_identity().then_some(DocumentSide::Front)),
                    content_type,
                    sha256: file.sha256,
                    file: file.buffer,
                    verification,
                })
            }
            _ => Err(errors),
        }
    }
}

fn check_content_type(req: &HttpRequest) -> Result<(), Problem> {
    let essence = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    if essence.as_deref() == Some(MULTIPART) {
        Ok(())
    } else {
        Err(Problem::unsupported_media_type(MULTIPART))
    }
}

/// Upload a document.
///
/// `multipart/form-data` with the parts `type`, `side` (identity documents; `front` when
/// omitted), `file` and optionally `verification` (JSON), in any order. The file is recognised
/// by its bytes (JPEG, PNG or PDF), read while it arrives and refused as soon as it passes
/// `documents.max_bytes` (413). It is checked against the rules of every provider the user is
/// linked to (KillB's size limits, for one): a file a provider would refuse is
/// `422 document_refused_by_provider` naming the provider and the rule, and nothing is stored.
/// Otherwise it is stored sealed (AES-256-GCM) and sent to each linked provider that takes it by
/// a durable job, after the link's own submission (a document for a link still being submitted
/// waits for it); a provider that takes no such document shows `not_supported` with the reason.
/// At providers that take both sides of a card in one call, a front waits for its back for
/// `documents.back_side_wait_secs`, then goes alone. The answer shows each provider's status
/// as far as the inline attempt got; an upload never changes a link's status. Uploads run at
/// most `documents.max_concurrent_uploads` at once per instance; one more waits up to
/// `documents.upload_slot_wait_secs` for a slot, then `503 overloaded` (nothing was read or
/// stored). `Idempotency-Key` honoured: a retry with the same key and the same parts (the file
/// compared by its SHA-256) replays the answer.
#[utoipa::path(
    post, path = "/v1/users/{id}/documents", tag = "documents",
    params(
        ("id" = Uuid, Path, description = "The gateway's user id"),
        ("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,255}$", description = "Makes the request safe to retry: the same key and parts replay the first answer"),
    ),
    request_body(content = DocumentUploadForm, content_type = "multipart/form-data",
        description = "The parts `type`, `side`, `file` and `verification`, in any order",
        encoding(("verification" = (content_type = "application/json")))),
    responses(
        (status = 201, description = "Stored; `submissions` says where it stands at each linked provider", body = DocumentResource),
        (status = 400, description = "`malformed_request`: not valid multipart/form-data (a boundary other than the one in Content-Type, a part without a name, a truncated body)", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 401, description = "Missing or unknown API key", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "The key lacks `users:write`", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "No such user", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 408, description = "The body arrived too slowly (`server.body_read_timeout_secs`)", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "`idempotency_key_reused` (another document under this key) or `idempotency_request_in_progress`", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 410, description = "`user_erased`: the user's personal data was erased", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 413, description = "`payload_too_large`: the file is over `documents.max_bytes` (`errors[0].field` is `file`)", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 415, description = "Content type other than multipart/form-data", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`, one entry per part: `required` (missing `type` or `file`), `invalid_value` (unknown `type` or `side`), `not_allowed` (`side` on a selfie or proof of address), `empty_file`, `unsupported_file_type` (not JPEG, PNG or PDF by content), `content_type_mismatch` (the part's Content-Type disagrees with its content), `duplicate_part`, `unknown_field`, `too_long`, `verification.*` (malformed attestation); or `document_refused_by_provider` (a linked provider's rule, named in each entry)", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 503, description = "`overloaded`: every upload slot stayed busy; retry after `Retry-After`", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn upload_document(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, Problem> {
    let principal = authorize(&req, &state, Scope::UsersWrite)?;
    let user_id = parse_id(&path, "user")?;
    check_content_type(&req)?;
    let max_bytes = state.settings.documents.max_bytes;
    if let Some(length) = content_length(&req) {
        if length > max_bytes + FRAMING_ALLOWANCE {
            return Err(file_too_large(max_bytes));
        }
    }
    // A slot bounds the files held in memory at once; waiting for one reads nothing.
    let wait = Duration::from_secs(state.settings.documents.upload_slot_wait_secs);
    let permit =
        match tokio::time::timeout(wait, Arc::clone(&state.uploads).acquire_owned()).await {
            Ok(Ok(permit)) => permit,
            _ => return Err(Problem {
                retry_after_secs: Some(1),
                ..Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "overloaded",
                    "Every upload slot is busy",
                )
                .detail(
                    "nothing was read or stored; retry after the number of seconds in Retry-After",
                )
            }),
        };
    let limit = Duration::from_secs(state.settings.server.body_read_timeout_secs);
    let form = match tokio::time::timeout(limit, read_form(&req, payload, max_bytes)).await {
        Ok(form) => form?,
        Err(_) => return Err(Problem::request_timeout(limit)),
    };
    let fingerprint = form.fingerprint();
    let upload = form
        .validate(OffsetDateTime::now_utc())
        .map_err(Problem::validation)?;
    idempotency::run_for_user(
        &state.pool,
        &state.services.keyring,
        &req,
        &principal,
        &fingerprint,
        Some(user_id),
        || async {
            let stored = documents::store(&state.services, user_id, upload).await?;
            // The file is stored: its slot is free while the providers are called.
            drop(permit);
            let view = documents::finish(&state.services, stored).await?;
            Ok((StatusCode::CREATED, to_json(&DocumentResource::from(view))))
        },
    )
    .await
}

/// List a user's documents.
///
/// Newest first, metadata only (never the files), each with its submissions.
#[utoipa::path(
    get, path = "/v1/users/{id}/documents", tag = "documents",
    params(
        ("id" = Uuid, Path, description = "The gateway's user id"),
        ("limit" = Option<usize>, Query, minimum = 1, maximum = 100, description = "Page size, 1–100 (default 100)"),
        ("cursor" = Option<String>, Query, pattern = "^[A-Za-z0-9_-]{21}[AQgw]$", description = "`next_cursor` of the previous page"),
    ),
    responses(
        (status = 200, description = "A page of the user's documents", body = DocumentList),
        (status = 401, description = "Missing or unknown API key", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "The key lacks `users:read`", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "No such user", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 410, description = "`user_erased`: the user's personal data was erased", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 422, description = "An invalid limit or cursor", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn list_documents(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    authorize(&req, &state, Scope::UsersRead)?;
    let user_id = parse_id(&path, "user")?;
    let mut limit = MAX_PAGE;
    let mut before = None;
    let mut errors = Vec::new();
    for (key, value) in pairs(&req)? {
        match key.as_str() {
            "limit" => limit = parse_limit(&value, &mut errors),
            "cursor" => before = decode_id_cursor(&value, &mut errors),
            other => errors.push(invalid(
                other,
                "unknown_field",
                "is not a known query parameter",
            )),
        }
    }
    if !errors.is_empty() {
        return Err(Problem::validation(errors));
    }
    let (views, has_more) = documents::list(&state.services, user_id, before, limit).await?;
    let next_cursor = if has_more {
        views.last().map(|v| encode_id_cursor(v.document.id))
    } else {
        None
    };
    Ok(HttpResponse::Ok().json(DocumentList {
        data: views.into_iter().map(DocumentResource::from).collect(),
        next_cursor,
    }))
}

/// Get one of a user's documents.
///
/// Metadata only (never the file), with its submissions.
#[utoipa::path(
    get, path = "/v1/users/{id}/documents/{document_id}", tag = "documents",
    params(
        ("id" = Uuid, Path, description = "The gateway's user id"),
        ("document_id" = Uuid, Path, description = "The document's id"),
    ),
    responses(
        (status = 200, description = "The document", body = DocumentResource),
        (status = 401, description = "Missing or unknown API key", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "The key lacks `users:read`", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "No such user, or no such document of this user", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 410, description = "`user_erased`: the user's personal data was erased", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn get_document(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, Problem> {
    authorize(&req, &state, Scope::UsersRead)?;
    let (user, document) = path.into_inner();
    let user_id = parse_id(&user, "user")?;
    let document_id = parse_id(&document, "document")?;
    let view = documents::get(&state.services, user_id, document_id).await?;
    Ok(HttpResponse::Ok().json(DocumentResource::from(view)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(file: &[u8], declared: Option<&str>) -> Form {
        let mut buffer = SealBuffer::new();
        buffer.extend_from_slice(file);
        Form {
            document_type: Some(b"passport".to_vec()),
            file: Some(FilePart {
                buffer,
                sha256: hex::encode(Sha256::digest(file)),
                declared: declared.map(str::to_owned),
            }),
            ..Form::default()
        }
    }

    fn codes_of(result: Result<Upload, Vec<FieldError>>) -> Vec<(String, &'static str)> {
        result
            .unwrap_err()
            .into_iter()
            .map(|e| (e.field, e.code))
            .collect()
    }

    #[test]
    fn the_declared_type_must_agree_with_the_bytes() {
        let now = OffsetDateTime::now_utc();
        let pdf = b"%PDF-1.7 polyglot";
        assert_eq!(
            codes_of(form(pdf, Some("image/jpeg")).validate(now)),
            vec![("file".to_owned(), "content_type_mismatch")]
        );
        for fine in [
            None,
            Some("application/pdf"),
            Some("application/octet-stream"),
        ] {
            let upload = form(pdf, fine).validate(now).unwrap();
            assert_eq!(upload.content_type, DocumentContentType::Pdf);
            assert_eq!(
                upload.side,
                Some(DocumentSide::Front),
                "identity: front by default"
            );
        }
        let jpeg = [0xFF, 0xD8, 0xFF, 0xE0, 1, 2];
        assert!(form(&jpeg, Some("image/jpg")).validate(now).is_ok());
        assert_eq!(
            codes_of(form(b"GIF89a", None).validate(now)),
            vec![("file".to_owned(), "unsupported_file_type")]
        );
        assert_eq!(
            codes_of(form(b"", None).validate(now)),
            vec![("file".to_owned(), "empty_file")]
        );
    }

    #[test]
    fn every_invalid_part_is_reported_at_once() {
        let now = OffsetDateTime::now_utc();
        let mut bad = form(b"%PDF-1.7", None);
        bad.document_type = Some(b"selfie".to_vec());
        bad.side = Some(b"front".to_vec());
        bad.verification = Some(br#"{"verifier":"x"}"#.to_vec());
        assert_eq!(
            codes_of(bad.validate(now)),
            vec![
                ("side".to_owned(), "not_allowed"),
                ("verification.verified_at".to_owned(), "required")
            ]
        );
        let empty = Form::default();
        assert_eq!(
            codes_of(empty.validate(now)),
            vec![
                ("type".to_owned(), "required"),
                ("file".to_owned(), "required")
            ]
        );
        let mut unknown = form(b"%PDF-1.7", None);
        unknown.document_type = Some(b"visa".to_vec());
        unknown.side = Some(b"left".to_vec());
        assert_eq!(
            codes_of(unknown.validate(now)),
            vec![
                ("type".to_owned(), "invalid_value"),
                ("side".to_owned(), "invalid_value")
            ]
        );
        let mut selfie = form(
            &[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A],
            Some("image/png"),
        );
        selfie.document_type = Some(b"selfie".to_vec());
        assert_eq!(selfie.validate(now).unwrap().side, None);
    }

    #[test]
    fn the_fingerprint_names_the_file_by_its_digest_only() {
        let a = form(b"%PDF-1.7 secret", None).fingerprint();
        let b = form(b"%PDF-1.7 other", None).fingerprint();
        assert_ne!(a, b);
        assert!(!a.to_string().contains("secret"));
        assert_eq!(a, form(b"%PDF-1.7 secret", None).fingerprint());
    }
}
