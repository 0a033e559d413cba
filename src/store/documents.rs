//! The `documents`, `document_files` and `document_submissions` tables: a user's uploaded
//! documents (metadata), their files and attestations sealed like the profile (AES-256-GCM, key
//! id beside each sealed column, bound to `table.column:<document id>`), and where each stands at
//! each provider. Listing reads the metadata only; the file is read by the one job that sends it.

use serde::Serialize;
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::{Connection, PgConnection, PgExecutor, PgPool, Row};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;
use zeroize::Zeroizing;

use super::StoreError;
use crate::crypto::{row_aad, Keyring, SealBuffer};
use crate::domain::provider::ProviderId;
use crate::domain::verification::{
    DocumentContentType, DocumentSide, DocumentType, VerificationAttestation,
};

// Stored as its wire value in `document_submissions.status`.
/// Where a document stands at one provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SubmissionStatus {
    /// Not sent yet: waiting for the link's account at the provider, for the document's other
    /// side, or for its job (retried through outages).
    Pending,
    /// The provider accepted it.
    Submitted,
    /// The provider refused it (or, for a provider linked later, its rules do): see `last_error`.
    Rejected,
    /// The provider takes no such document (or not without what is missing): see `last_error`.
    NotSupported,
}

impl SubmissionStatus {
    pub const ALL: [SubmissionStatus; 4] = [
        SubmissionStatus::Pending,
        SubmissionStatus::Submitted,
        SubmissionStatus::Rejected,
        SubmissionStatus::NotSupported,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            SubmissionStatus::Pending => "pending",
            SubmissionStatus::Submitted => "submitted",
            SubmissionStatus::Rejected => "rejected",
            SubmissionStatus::NotSupported => "not_supported",
        }
    }

    /// Exact lookup of a stored value.
    pub fn from_wire(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }
}

text_column!(SubmissionStatus, "document submission status");

/// A document's metadata as stored (never its bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentRow {
    pub id: Uuid,
    pub user_id: Uuid,
    pub document_type: DocumentType,
    pub side: Option<DocumentSide>,
    pub content_type: DocumentContentType,
    pub size: i64,
    /// Hex SHA-256 of the file; `None` once erased.
    pub sha256: Option<String>,
    /// Whether a sealed `verification` attestation is stored with it.
    pub has_verification: bool,
    pub created_at: OffsetDateTime,
    pub erased_at: Option<OffsetDateTime>,
}

fn unknown(table: &str, id: impl std::fmt::Display, what: &str, value: &str) -> sqlx::Error {
    super::corrupt_row(format!("{table} {id}: unknown {what} {value:?}"))
}

impl<'r> sqlx::FromRow<'r, PgRow> for DocumentRow {
    fn from_row(row: &'r PgRow) -> Result<Self, sqlx::Error> {
        let id: Uuid = row.try_get("id")?;
        let raw_type: String = row.try_get("type")?;
        let raw_side: Option<String> = row.try_get("side")?;
        let raw_content_type: String = row.try_get("content_type")?;
        Ok(Self {
            id,
            user_id: row.try_get("user_id")?,
            document_type: DocumentType::from_wire(&raw_type)
                .ok_or_else(|| unknown("documents", id, "type", &raw_type))?,
            side: match raw_side.as_deref() {
                None => None,
                Some(raw) => Some(
                    DocumentSide::from_wire(raw)
                        .ok_or_else(|| unknown("documents", id, "side", raw))?,
                ),
            },
            content_type: DocumentContentType::from_wire(&raw_content_type)
                .ok_or_else(|| unknown("documents", id, "content type", &raw_content_type))?,
            size: row.try_get("size")?,
            sha256: row.try_get("sha256")?,
            has_verification: row.try_get("has_verification")?,
            created_at: row.try_get("created_at")?,
            erased_at: row.try_get("erased_at")?,
        })
    }
}

macro_rules! document_columns {
    () => {
        "d.id, d.user_id, d.type, d.side, d.content_type, d.size, d.sha256,
         d.verification IS NOT NULL AS has_verification, d.created_at, d.erased_at"
    };
}

/// A document's submission to one provider.
#[derive(Debug, Clone, PartialEq)]
pub struct SubmissionRow {
    pub document_id: Uuid,
    pub provider: ProviderId,
    pub status: SubmissionStatus,
    pub provider_document_id: Option<String>,
    /// `{code, message, at}` of the last failure or refusal.
    pub last_error: Option<Json<serde_json::Value>>,
    pub submitted_at: Option<OffsetDateTime>,
    /// A front held for its back until then (a timer job releases it).
    pub hold_until: Option<OffsetDateTime>,
    /// Waiting for the link's account at the provider.
    pub waiting_for_link: bool,
    /// The other side it is (or was) sent with.
    pub partner_document_id: Option<Uuid>,
    pub updated_at: OffsetDateTime,
}

impl<'r> sqlx::FromRow<'r, PgRow> for SubmissionRow {
    fn from_row(row: &'r PgRow) -> Result<Self, sqlx::Error> {
        let document_id: Uuid = row.try_get("document_id")?;
        let provider: String = row.try_get("provider")?;
        let status: String = row.try_get("status")?;
        let at = format!("(document {document_id}, provider {provider})");
        Ok(Self {
            document_id,
            provider: ProviderId::from_wire(&provider)
                .ok_or_else(|| unknown("document_submissions", &at, "provider", &provider))?,
            status: SubmissionStatus::from_wire(&status)
                .ok_or_else(|| unknown("document_submissions", &at, "status", &status))?,
            provider_document_id: row.try_get("provider_document_id")?,
            last_error: row.try_get("last_error")?,
            submitted_at: row.try_get("submitted_at")?,
            hold_until: row.try_get("hold_until")?,
            waiting_for_link: row.try_get("waiting_for_link")?,
            partner_document_id: row.try_get("partner_document_id")?,
            updated_at: row.try_get("updated_at")?,
        })
    }
}

macro_rules! submission_columns {
    () => {
        "s.document_id, s.provider, s.status, s.provider_document_id, s.last_error,
         s.submitted_at, s.hold_until, s.waiting_for_link, s.partner_document_id, s.updated_at"
    };
}

fn file_aad(id: Uuid) -> Vec<u8> {
    row_aad("document_files", "file", &id.to_string())
}

fn verification_aad(id: Uuid) -> Vec<u8> {
    row_aad("documents", "verification", &id.to_string())
}

/// A document to store; `file` is sealed in place.
pub struct NewDocument<'a> {
    pub id: Uuid,
    pub user_id: Uuid,
    pub document_type: DocumentType,
    pub side: Option<DocumentSide>,
    pub content_type: DocumentContentType,
    pub sha256: &'a str,
    pub file: SealBuffer,
    pub verification: Option<&'a VerificationAttestation>,
}

impl std::fmt::Debug for NewDocument<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewDocument")
            .field("id", &self.id)
            .field("document_type", &self.document_type)
            .field("side", &self.side)
            .field("content_type", &self.content_type)
            .field("size", &self.file.len())
            .finish_non_exhaustive()
    }
}

/// Stores a document's metadata and its sealed file and attestation, in one statement.
pub async fn insert(
    conn: &mut PgConnection,
    keyring: &Keyring,
    document: NewDocument<'_>,
) -> Result<DocumentRow, StoreError> {
    let size = document.file.len() as i64;
    let verification = document.verification.map(|attestation| {
        let json = Zeroizing::new(
            serde_json::to_vec(attestation).expect("an attestation always serialises"),
        );
        keyring.seal(&json, &verification_aad(document.id))
    });
    let file = keyring.seal_buffer(document.file, &file_aad(document.id));
    let row = sqlx::query_as::<_, DocumentRow>(concat!(
        "WITH d AS (
              INSERT INTO documents
                  (id, user_id, type, side, content_type, size, sha256, verification,
                   verification_key_id)
              VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
              RETURNING *),
          f AS (
              INSERT INTO document_files (document_id, file, file_key_id)
              SELECT id, $10, $11 FROM d)
         SELECT ",
        document_columns!(),
        " FROM d"
    ))
    .bind(document.id)
    .bind(document.user_id)
    .bind(document.document_type.as_str())
    .bind(document.side.map(|s| s.as_str()))
    .bind(document.content_type.as_str())
    .bind(size)
    .bind(document.sha256)
    .bind(verification.as_ref().map(|s| &s.bytes))
    .bind(verification.as_ref().map(|s| s.key_id.as_str()))
    .bind(&file.bytes)
    .bind(&file.key_id)
    .fetch_one(&mut *conn)
    .await
    .map_err(StoreError::from_sqlx);
    // The connection's buffers grew to the file's size and would stay so in the pool.
    conn.shrink_buffers();
    row
}

/// A submission to write.
#[derive(Debug, Clone)]
pub struct NewSubmission {
    pub document_id: Uuid,
    pub provider: ProviderId,
    pub status: SubmissionStatus,
    pub last_error: Option<serde_json::Value>,
    pub hold_until: Option<OffsetDateTime>,
    pub partner_document_id: Option<Uuid>,
}

pub async fn insert_submission(
    conn: &mut PgConnection,
    submission: &NewSubmission,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO document_submissions
             (document_id, provider, status, last_error, hold_until, partner_document_id)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(submission.document_id)
    .bind(submission.provider.as_str())
    .bind(submission.status)
    .bind(submission.last_error.as_ref().map(Json))
    .bind(submission.hold_until)
    .bind(submission.partner_document_id)
    .execute(conn)
    .await
    .map_err(StoreError::from_sqlx)?;
    Ok(())
}

/// Whether the user exists (`None`: no such user) and when it was erased, without opening its
/// profile.
pub async fn user_erasure_state<'e>(
    db: impl PgExecutor<'e>,
    user_id: Uuid,
) -> Result<Option<Option<OffsetDateTime>>, StoreError> {
    sqlx::query_scalar("SELECT erased_at FROM users WHERE id = $1")
        .bind(user_id)
        .fetch_optional(db)
        .await
        .map_err(StoreError::from_sqlx)
}

/// A page of a user's documents, newest first (`before`: the last id of the previous page).
pub async fn for_user<'e>(
    db: impl PgExecutor<'e>,
    user_id: Uuid,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<DocumentRow>, StoreError> {
    sqlx::query_as::<_, DocumentRow>(concat!(
        "SELECT ",
        document_columns!(),
        " FROM documents d
          WHERE d.user_id = $1 AND ($2::uuid IS NULL OR d.id < $2)
          ORDER BY d.id DESC LIMIT $3"
    ))
    .bind(user_id)
    .bind(before)
    .bind(limit)
    .fetch_all(db)
    .await
    .map_err(StoreError::from_sqlx)
}

/// Every document of the user, oldest first (a provider linked later receives them in order).
pub async fn all_for_user<'e>(
    db: impl PgExecutor<'e>,
    user_id: Uuid,
) -> Result<Vec<DocumentRow>, StoreError> {
    sqlx::query_as::<_, DocumentRow>(concat!(
        "SELECT ",
        document_columns!(),
        " FROM documents d WHERE d.user_id = $1 AND d.erased_at IS NULL ORDER BY d.id"
    ))
    .bind(user_id)
    .fetch_all(db)
    .await
    .map_err(StoreError::from_sqlx)
}

/// One document of the user.
pub async fn get<'e>(
    db: impl PgExecutor<'e>,
    user_id: Uuid,
    document_id: Uuid,
) -> Result<Option<DocumentRow>, StoreError> {
    sqlx::query_as::<_, DocumentRow>(concat!(
        "SELECT ",
        document_columns!(),
        " FROM documents d WHERE d.user_id = $1 AND d.id = $2"
    ))
    .bind(user_id)
    .bind(document_id)
    .fetch_optional(db)
    .await
    .map_err(StoreError::from_sqlx)
}

/// The submissions of these documents, by document then provider.
pub async fn submissions_of<'e>(
    db: impl PgExecutor<'e>,
    document_ids: &[Uuid],
) -> Result<Vec<SubmissionRow>, StoreError> {
    if document_ids.is_empty() {
        return Ok(Vec::new());
    }
    sqlx::query_as::<_, SubmissionRow>(concat!(
        "SELECT ",
        submission_columns!(),
        " FROM document_submissions s WHERE s.document_id = ANY($1)
          ORDER BY s.document_id, s.provider"
    ))
    .bind(document_ids)
    .fetch_all(db)
    .await
    .map_err(StoreError::from_sqlx)
}

/// The document types the provider accepted (`submitted`) for the user, each once, in
/// [`DocumentType::ALL`] order: what a provider's next-action mapping counts as already given.
pub async fn submitted_types<'e>(
    db: impl PgExecutor<'e>,
    user_id: Uuid,
    provider: ProviderId,
) -> Result<Vec<DocumentType>, StoreError> {
    let raw: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT d.type FROM documents d
           JOIN document_submissions s ON s.document_id = d.id
          WHERE d.user_id = $1 AND s.provider = $2 AND s.status = 'submitted'",
    )
    .bind(user_id)
    .bind(provider.as_str())
    .fetch_all(db)
    .await
    .map_err(StoreError::from_sqlx)?;
    let mut types = raw
        .iter()
        .map(|t| {
            DocumentType::from_wire(t)
                .ok_or_else(|| StoreError::Corrupt(format!("documents: unknown type {t:?}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    types.sort();
    Ok(types)
}

/// A document opened for sending: its metadata, file and attestation.
pub struct OpenedDocument {
    pub row: DocumentRow,
    pub file: Zeroizing<Vec<u8>>,
    pub verification: Option<VerificationAttestation>,
}

impl std::fmt::Debug for OpenedDocument {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenedDocument")
            .field("row", &self.row)
            .field("size", &self.file.len())
            .finish_non_exhaustive()
    }
}

/// Opens a document's file and attestation; `None` when it is gone or erased.
pub async fn open(
    pool: &PgPool,
    keyring: &Keyring,
    document_id: Uuid,
) -> Result<Option<OpenedDocument>, StoreError> {
    let mut conn = pool.acquire().await.map_err(StoreError::from_sqlx)?;
    let row = sqlx::query(concat!(
        "SELECT ",
        document_columns!(),
        ", d.verification, d.verification_key_id, f.file, f.file_key_id
           FROM documents d JOIN document_files f ON f.document_id = d.id
          WHERE d.id = $1 AND d.erased_at IS NULL"
    ))
    .bind(document_id)
    .fetch_optional(&mut *conn)
    .await
    .map_err(StoreError::from_sqlx)?;
    // The read buffer grew to the file's size: give it back before the connection returns to
    // the pool, where it would otherwise keep it for good.
    conn.shrink_buffers();
    drop(conn);
    let Some(row) = row else {
        return Ok(None);
    };
    let document: DocumentRow = sqlx::FromRow::from_row(&row).map_err(StoreError::from_sqlx)?;
    let sealed_file: Vec<u8> = row.try_get("file").map_err(StoreError::from_sqlx)?;
    let file_key_id: String = row.try_get("file_key_id").map_err(StoreError::from_sqlx)?;
    let file = keyring.open_owned(&file_key_id, sealed_file, &file_aad(document_id))?;
    let sealed_verification: Option<Vec<u8>> =
        row.try_get("verification").map_err(StoreError::from_sqlx)?;
    let verification_key_id: Option<String> = row
        .try_get("verification_key_id")
        .map_err(StoreError::from_sqlx)?;
    let verification = match (sealed_verification, verification_key_id) {
        (Some(sealed), Some(key_id)) => {
            let json =
                Zeroizing::new(keyring.open(&key_id, &sealed, &verification_aad(document_id))?);
            Some(serde_json::from_slice(&json).map_err(|e| {
                StoreError::Corrupt(format!("documents.verification of {document_id}: {e}"))
            })?)
        }
        _ => None,
    };
    Ok(Some(OpenedDocument {
        row: document,
        file,
        verification,
    }))
}

/// The front a back side pairs with at `provider`: the user's latest front of the same type
/// uploaded before it, preferring one still pending without a back (waiting for one).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FrontCandidate {
    pub document_id: Uuid,
    pub status: SubmissionStatus,
    pub partner_document_id: Option<Uuid>,
    pub hold_until: Option<OffsetDateTime>,
    /// Whether the front carries a `verification` attestation.
    pub has_verification: bool,
}

pub async fn front_for_back(
    conn: &mut PgConnection,
    user_id: Uuid,
    document_type: DocumentType,
    provider: ProviderId,
    back_id: Uuid,
) -> Result<Option<FrontCandidate>, StoreError> {
    sqlx::query_as::<_, FrontCandidate>(
        "SELECT d.id AS document_id, s.status, s.partner_document_id, s.hold_until,
                d.verification IS NOT NULL AS has_verification
           FROM documents d
           JOIN document_submissions s ON s.document_id = d.id AND s.provider = $3
          WHERE d.user_id = $1 AND d.type = $2 AND d.side = 'front' AND d.id < $4
            AND d.erased_at IS NULL
          ORDER BY (s.status = 'pending' AND s.partner_document_id IS NULL) DESC, d.id DESC
          LIMIT 1
          FOR UPDATE OF s",
    )
    .bind(user_id)
    .bind(document_type.as_str())
    .bind(provider.as_str())
    .bind(back_id)
    .fetch_optional(&mut *conn)
    .await
    .map_err(StoreError::from_sqlx)
}

/// Pairs a pending front with its back at a provider, ending the front's hold.
pub async fn pair_front(
    conn: &mut PgConnection,
    front_id: Uuid,
    provider: ProviderId,
    back_id: Uuid,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE document_submissions
            SET partner_document_id = $3, hold_until = NULL, updated_at = now()
          WHERE document_id = $1 AND provider = $2",
    )
    .bind(front_id)
    .bind(provider.as_str())
    .bind(back_id)
    .execute(conn)
    .await
    .map_err(StoreError::from_sqlx)?;
    Ok(())
}

/// Ends a front's hold when it is still pending without a back; whether it was held.
pub async fn release_hold(
    conn: &mut PgConnection,
    document_id: Uuid,
    provider: ProviderId,
) -> Result<bool, StoreError> {
    Ok(sqlx::query(
        "UPDATE document_submissions SET hold_until = NULL, updated_at = now()
          WHERE document_id = $1 AND provider = $2 AND status = 'pending'
            AND hold_until IS NOT NULL AND partner_document_id IS NULL",
    )
    .bind(document_id)
    .bind(provider.as_str())
    .execute(conn)
    .await
    .map_err(StoreError::from_sqlx)?
    .rows_affected()
        == 1)
}

/// Whether the link has its account at the provider (documents can be sent). If not, the
/// submissions of `document_ids` are marked waiting for it, and so is the link, in one
/// statement that takes the link's row lock: the link's first answer, which takes that lock
/// too, then sees them (and enqueues them), whichever commits first.
pub async fn ready_or_waiting(
    conn: &mut PgConnection,
    user_id: Uuid,
    provider: ProviderId,
    document_ids: &[Uuid],
) -> Result<bool, StoreError> {
    let ready: Option<bool> = sqlx::query_scalar(
        "WITH link AS (
              UPDATE provider_links
                 SET documents_waiting = documents_waiting OR provider_user_id IS NULL
               WHERE user_id = $1 AND provider = $2
           RETURNING provider_user_id IS NOT NULL AS ready),
          waiting AS (
              UPDATE document_submissions SET waiting_for_link = true, updated_at = now()
               WHERE document_id = ANY($3) AND provider = $2 AND status = 'pending'
                 AND EXISTS (SELECT 1 FROM link WHERE NOT ready))
         SELECT ready FROM link",
    )
    .bind(user_id)
    .bind(provider.as_str())
    .bind(document_ids)
    .fetch_optional(conn)
    .await
    .map_err(StoreError::from_sqlx)?;
    Ok(ready.unwrap_or(false))
}

/// The link now has its account: the submissions that waited for it, which stop waiting
/// (oldest document first). Run under the link's row lock, in the transaction that records the
/// account.
pub async fn take_waiting(
    conn: &mut PgConnection,
    user_id: Uuid,
    provider: ProviderId,
) -> Result<Vec<Uuid>, StoreError> {
    sqlx::query_scalar(
        "WITH link AS (
              UPDATE provider_links SET documents_waiting = false
               WHERE user_id = $1 AND provider = $2 AND documents_waiting
           RETURNING user_id),
          taken AS (
              UPDATE document_submissions s SET waiting_for_link = false, updated_at = now()
                FROM documents d
               WHERE d.id = s.document_id AND d.user_id = $1 AND s.provider = $2
                 AND s.waiting_for_link AND s.status = 'pending'
                 AND EXISTS (SELECT 1 FROM link)
           RETURNING s.document_id)
         SELECT document_id FROM taken ORDER BY document_id",
    )
    .bind(user_id)
    .bind(provider.as_str())
    .fetch_all(conn)
    .await
    .map_err(StoreError::from_sqlx)
}

/// Records a provider's final answer on the still-pending submissions of `document_ids` (a
/// front and the back sent with it); returns the ones written.
pub async fn record_outcome(
    conn: &mut PgConnection,
    document_ids: &[Uuid],
    provider: ProviderId,
    status: SubmissionStatus,
    provider_document_id: Option<&str>,
    last_error: Option<&serde_json::Value>,
) -> Result<Vec<Uuid>, StoreError> {
    sqlx::query_scalar(
        "UPDATE document_submissions
            SET status = $3, provider_document_id = $4, last_error = $5,
                submitted_at = CASE WHEN $3 = 'submitted' THEN now() ELSE submitted_at END,
                hold_until = NULL, waiting_for_link = false, updated_at = now()
          WHERE document_id = ANY($1) AND provider = $2 AND status = 'pending'
      RETURNING document_id",
    )
    .bind(document_ids)
    .bind(provider.as_str())
    .bind(status)
    .bind(provider_document_id)
    .bind(last_error.map(Json))
    .fetch_all(conn)
    .await
    .map_err(StoreError::from_sqlx)
}

/// Keeps a failed attempt's error on pending submissions (they stay pending, to be retried).
pub async fn record_error(
    conn: &mut PgConnection,
    document_ids: &[Uuid],
    provider: ProviderId,
    last_error: &serde_json::Value,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE document_submissions SET last_error = $3, updated_at = now()
          WHERE document_id = ANY($1) AND provider = $2 AND status = 'pending'",
    )
    .bind(document_ids)
    .bind(provider.as_str())
    .bind(Json(last_error))
    .execute(conn)
    .await
    .map_err(StoreError::from_sqlx)?;
    Ok(())
}

/// A document a provider holds (accepted), as the erasure receipt lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldDocument {
    pub provider: ProviderId,
    pub document_id: Uuid,
    pub document_type: DocumentType,
    pub side: Option<DocumentSide>,
    pub provider_document_id: Option<String>,
    pub submitted_at: Option<OffsetDateTime>,
}

/// The user's documents that providers accepted, by provider then document.
pub async fn held_by_providers<'e>(
    db: impl PgExecutor<'e>,
    user_id: Uuid,
) -> Result<Vec<HeldDocument>, StoreError> {
    let rows = sqlx::query(
        "SELECT s.provider, d.id, d.type, d.side, s.provider_document_id, s.submitted_at
           FROM documents d JOIN document_submissions s ON s.document_id = d.id
          WHERE d.user_id = $1 AND s.status = 'submitted'
          ORDER BY s.provider, d.id",
    )
    .bind(user_id)
    .fetch_all(db)
    .await
    .map_err(StoreError::from_sqlx)?;
    rows.iter()
        .map(|row| {
            let get_text = |column: &str| -> Result<Option<String>, StoreError> {
                row.try_get(column).map_err(StoreError::from_sqlx)
            };
            let provider = get_text("provider")?.unwrap_or_default();
            let document_type = get_text("type")?.unwrap_or_default();
            let side = get_text("side")?;
            let corrupt = |what: &str, value: &str| {
                StoreError::Corrupt(format!("document_submissions: unknown {what} {value:?}"))
            };
            Ok(HeldDocument {
                provider: ProviderId::from_wire(&provider)
                    .ok_or_else(|| corrupt("provider", &provider))?,
                document_id: row.try_get("id").map_err(StoreError::from_sqlx)?,
                document_type: DocumentType::from_wire(&document_type)
                    .ok_or_else(|| corrupt("type", &document_type))?,
                side: match side.as_deref() {
                    None => None,
                    Some(raw) => {
                        Some(DocumentSide::from_wire(raw).ok_or_else(|| corrupt("side", raw))?)
                    }
                },
                provider_document_id: get_text("provider_document_id")?,
                submitted_at: row.try_get("submitted_at").map_err(StoreError::from_sqlx)?,
            })
        })
        .collect()
}

/// Erasure: deletes the user's files, sealed attestations and file digests, and the messages of
/// the submissions' stored errors (a provider's message may echo what it was sent); keeps the
/// kind, size and times of each document and where it was submitted. Returns how many documents
/// the user has (all erased now).
pub async fn erase_for_user(conn: &mut PgConnection, user_id: Uuid) -> Result<i64, StoreError> {
    sqlx::query_scalar(
        "WITH docs AS (
              UPDATE documents
                 SET verification = NULL, verification_key_id = NULL, sha256 = NULL,
                     erased_at = COALESCE(erased_at, now())
               WHERE user_id = $1
           RETURNING id),
          files AS (
              DELETE FROM document_files f USING docs WHERE f.document_id = docs.id),
          submissions AS (
              UPDATE document_submissions s
                 SET last_error = s.last_error - 'message', hold_until = NULL,
                     waiting_for_link = false, updated_at = now()
                FROM docs WHERE s.document_id = docs.id)
         SELECT count(*) FROM docs",
    )
    .bind(user_id)
    .fetch_one(conn)
    .await
    .map_err(StoreError::from_sqlx)
}

/// Files and attestations not sealed under `current_key_id`: `(document_files, documents)`.
pub async fn count_stale_seals<'e>(
    db: impl PgExecutor<'e> + Copy,
    current_key_id: &str,
) -> Result<(i64, i64), StoreError> {
    sqlx::query_as(
        "SELECT (SELECT count(*) FROM document_files WHERE file_key_id <> $1),
                (SELECT count(*) FROM documents
                  WHERE verification IS NOT NULL AND verification_key_id <> $1)",
    )
    .bind(current_key_id)
    .fetch_one(db)
    .await
    .map_err(StoreError::from_sqlx)
}

/// Files re-sealed per batch at most, whatever the batch size: each is up to
/// `documents.max_bytes` and held in memory (twice) while it moves.
const FILES_PER_BATCH: i64 = 4;

/// Re-seals up to `limit` attestations and a few files under the current key (one transaction;
/// rows another instance is re-sealing are skipped). Returns `(files, attestations)` moved.
pub async fn reseal_batch(
    conn: &mut PgConnection,
    keyring: &Keyring,
    limit: i64,
) -> Result<(u64, u64), StoreError> {
    let current = keyring.current_key_id();
    let files: Vec<(Uuid, Vec<u8>, String)> = sqlx::query_as(
        "SELECT document_id, file, file_key_id FROM document_files
          WHERE file_key_id <> $1 LIMIT $2 FOR UPDATE SKIP LOCKED",
    )
    .bind(current)
    .bind(limit.min(FILES_PER_BATCH))
    .fetch_all(&mut *conn)
    .await
    .map_err(StoreError::from_sqlx)?;
    let mut files_moved = 0;
    for (id, sealed, key_id) in files {
        let plain = keyring.open_owned(&key_id, sealed, &file_aad(id))?;
        let mut buffer = SealBuffer::new();
        buffer.extend_from_slice(&plain);
        drop(plain);
        let resealed = keyring.seal_buffer(buffer, &file_aad(id));
        sqlx::query("UPDATE document_files SET file = $2, file_key_id = $3 WHERE document_id = $1")
            .bind(id)
            .bind(&resealed.bytes)
            .bind(&resealed.key_id)
            .execute(&mut *conn)
            .await
            .map_err(StoreError::from_sqlx)?;
        files_moved += 1;
    }
    if files_moved > 0 {
        conn.shrink_buffers();
    }
    let attestations: Vec<(Uuid, Vec<u8>, String)> = sqlx::query_as(
        "SELECT id, verification, verification_key_id FROM documents
          WHERE verification IS NOT NULL AND verification_key_id <> $1
          LIMIT $2 FOR UPDATE SKIP LOCKED",
    )
    .bind(current)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await
    .map_err(StoreError::from_sqlx)?;
    let mut attestations_moved = 0;
    for (id, sealed, key_id) in attestations {
        let plain = Zeroizing::new(keyring.open(&key_id, &sealed, &verification_aad(id))?);
        let resealed = keyring.seal(&plain, &verification_aad(id));
        sqlx::query(
            "UPDATE documents SET verification = $2, verification_key_id = $3 WHERE id = $1",
        )
        .bind(id)
        .bind(&resealed.bytes)
        .bind(&resealed.key_id)
        .execute(&mut *conn)
        .await
        .map_err(StoreError::from_sqlx)?;
        attestations_moved += 1;
    }
    Ok((files_moved, attestations_moved))
}
