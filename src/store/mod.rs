//! Postgres persistence (sqlx). All SQL lives here and in `migrations/`; one file per aggregate.

/// Stores a closed set of values (with `as_str` and `from_wire`) as their wire strings in a
/// TEXT column: bound as text, decoded strictly (an unknown value is a decode error).
macro_rules! text_column {
    ($type:ty, $what:literal) => {
        impl sqlx::Type<sqlx::Postgres> for $type {
            fn type_info() -> sqlx::postgres::PgTypeInfo {
                <&str as sqlx::Type<sqlx::Postgres>>::type_info()
            }

            fn compatible(ty: &sqlx::postgres::PgTypeInfo) -> bool {
                <&str as sqlx::Type<sqlx::Postgres>>::compatible(ty)
            }
        }

        impl sqlx::postgres::PgHasArrayType for $type {
            fn array_type_info() -> sqlx::postgres::PgTypeInfo {
                <&str as sqlx::postgres::PgHasArrayType>::array_type_info()
            }
        }

        impl sqlx::Encode<'_, sqlx::Postgres> for $type {
            fn encode_by_ref(
                &self,
                buf: &mut sqlx::postgres::PgArgumentBuffer,
            ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                <&str as sqlx::Encode<sqlx::Postgres>>::encode(self.as_str(), buf)
            }
        }

        impl<'r> sqlx::Decode<'r, sqlx::Postgres> for $type {
            fn decode(
                value: sqlx::postgres::PgValueRef<'r>,
            ) -> Result<Self, sqlx::error::BoxDynError> {
                let raw = <&str as sqlx::Decode<sqlx::Postgres>>::decode(value)?;
                <$type>::from_wire(raw)
                    .ok_or_else(|| format!(concat!("unknown ", $what, " {:?}"), raw).into())
            }
        }
    };
}

#[macro_use]
mod sql;

pub mod documents;
pub mod events;
pub mod idempotency;
pub mod jobs;
pub mod links;
pub mod notifications;
pub mod reconciliation;
pub mod sessions;
pub mod users;
pub mod webhooks;

use std::time::Duration;

use secrecy::ExposeSecret;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

use crate::settings::DatabaseSettings;

/// The migrations in `migrations/`, embedded in the binary and applied at start-up.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// A store failure: either a named constraint the caller can turn into a client error, or an
/// unexpected database error (logged, answered with a generic 5xx).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unique constraint `{0}` violated")]
    UniqueViolation(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A sealed value did not open (unknown key id, tampering): a deployment or data problem.
    #[error(transparent)]
    Crypto(#[from] crate::crypto::CryptoError),
    /// A stored value does not decode (the message names the row and the value).
    #[error("stored value corrupt: {0}")]
    Corrupt(String),
}

/// A row that does not decode into its domain types, e.g. `provider_links (user …, provider
/// kraken): unknown status "foo"`. Raised inside `FromRow` (as a decode error) and turned into
/// [`StoreError::Corrupt`] by [`StoreError::from_sqlx`].
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CorruptRow(pub String);

pub(crate) fn corrupt_row(message: String) -> sqlx::Error {
    sqlx::Error::Decode(Box::new(CorruptRow(message)))
}

impl StoreError {
    pub fn from_sqlx(error: sqlx::Error) -> Self {
        if let sqlx::Error::Decode(source) = &error {
            if let Some(CorruptRow(message)) = source.downcast_ref::<CorruptRow>() {
                return StoreError::Corrupt(message.clone());
            }
        }
        if let sqlx::Error::Database(db) = &error {
            if db.is_unique_violation() {
                if let Some(constraint) = db.constraint() {
                    return StoreError::UniqueViolation(constraint.to_owned());
                }
            }
        }
        StoreError::Database(error)
    }

    /// The database could not be reached (as opposed to refusing a statement): callers answer
    /// 503 and the client may retry.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            StoreError::Database(
                sqlx::Error::PoolTimedOut
                    | sqlx::Error::PoolClosed
                    | sqlx::Error::Io(_)
                    | sqlx::Error::Tls(_)
                    | sqlx::Error::Protocol(_)
                    | sqlx::Error::WorkerCrashed
            )
        )
    }

    pub fn is_unique(&self, constraint: &str) -> bool {
        matches!(self, StoreError::UniqueViolation(c) if c == constraint)
    }
}

/// Builds the pool lazily: connections are opened on demand, so a database that goes away and
/// comes back is picked up again without a restart.
pub fn pool(settings: &DatabaseSettings) -> Result<PgPool, sqlx::Error> {
    let options: PgConnectOptions = settings.url.expose_secret().parse()?;
    // No JIT: it compiles plans for milliseconds to save microseconds on OLTP statements (the
    // benchmark saw one list query spend 7 ms in JIT compilation for a 5 ms execution).
    let options = options
        .application_name("onboarding-gateway")
        .options([("jit", "off")]);
    Ok(PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .min_connections(0)
        .acquire_timeout(Duration::from_secs(settings.acquire_timeout_secs))
        .idle_timeout(Duration::from_secs(300))
        // No ping before every acquire: it doubled the round trips of single-statement reads
        // (the benchmark's profile). A connection that died meanwhile fails its query, is
        // discarded by the pool, and readiness/acquire reconnect; `max_lifetime` recycles.
        .test_before_acquire(false)
        .max_lifetime(Duration::from_secs(30 * 60))
        .connect_lazy_with(options))
}

/// Waits (bounded) for the database to answer, then applies pending migrations.
pub async fn wait_and_migrate(pool: &PgPool, timeout: Duration) -> Result<(), sqlx::Error> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match sqlx::query("SELECT 1").execute(pool).await {
            Ok(_) => break,
            Err(error) if tokio::time::Instant::now() < deadline => {
                tracing::warn!(%error, "database not reachable yet; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(error) => return Err(error),
        }
    }
    MIGRATOR.run(pool).await?;
    Ok(())
}

/// Every data key id that sealed something still stored (users, webhook bodies, idempotent
/// answers, document files and attestations, verification session URLs).
pub async fn sealed_key_ids(pool: &PgPool) -> Result<Vec<String>, StoreError> {
    sqlx::query_scalar(
        "SELECT pii_key_id FROM users WHERE pii_key_id IS NOT NULL
         UNION SELECT raw_body_key_id FROM webhook_events WHERE raw_body_key_id IS NOT NULL
         UNION SELECT response_key_id FROM idempotency_keys WHERE response_key_id IS NOT NULL
         UNION SELECT file_key_id FROM document_files
         UNION SELECT verification_key_id FROM documents WHERE verification_key_id IS NOT NULL
         UNION SELECT url_key_id FROM verification_sessions",
    )
    .fetch_all(pool)
    .await
    .map_err(StoreError::from_sqlx)
}

/// Readiness: one round trip, bounded so a hung database answers "not ready" quickly.
pub async fn ping(pool: &PgPool) -> bool {
    matches!(
        tokio::time::timeout(
            Duration::from_secs(2),
            sqlx::query("SELECT 1").execute(pool)
        )
        .await,
        Ok(Ok(_))
    )
}
