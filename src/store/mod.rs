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

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

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
        let error = StoreError::Database(error);
        if error.is_unavailable() {
            note_database_unavailable();
        }
        error
    }

    /// The database could not be reached (as opposed to refusing a statement): callers answer
    /// 503 and the client may retry.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Database(sqlx::Error::Database(db)) => {
                db.code().is_some_and(|code| is_unavailable_sqlstate(&code))
            }
            StoreError::Database(error) => matches!(
                error,
                sqlx::Error::PoolTimedOut
                    | sqlx::Error::PoolClosed
                    | sqlx::Error::Io(_)
                    | sqlx::Error::Tls(_)
                    | sqlx::Error::Protocol(_)
                    | sqlx::Error::WorkerCrashed
            ),
            _ => false,
        }
    }

    pub fn is_unique(&self, constraint: &str) -> bool {
        matches!(self, StoreError::UniqueViolation(c) if c == constraint)
    }
}

/// SQLSTATEs the server sends when it, not the statement, is the problem: a connection exception
/// (class 08), the server shutting down or starting up (`57P01` admin shutdown, `57P02` crash
/// shutdown, `57P03` cannot connect now: what a session in the middle of a transaction gets from
/// `pg_ctl stop -m fast`) and too many connections (`53300`). The client may retry these.
fn is_unavailable_sqlstate(code: &str) -> bool {
    code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03" | "53300")
}

/// How the gateway connects: the configured URL, its application name, and no JIT (it compiles
/// plans for milliseconds to save microseconds on OLTP statements: the benchmark saw one list
/// query spend 7 ms in JIT compilation for a 5 ms execution).
fn connect_options(settings: &DatabaseSettings) -> Result<PgConnectOptions, sqlx::Error> {
    let options: PgConnectOptions = settings.url.expose_secret().parse()?;
    Ok(options
        .application_name("onboarding-gateway")
        .options([("jit", "off")]))
}

/// When this process last saw the database unreachable, in milliseconds since [`CLOCK_START`]
/// (0: never). A connection idle since before then may be a dead socket from before a restart.
static LAST_OUTAGE_MS: AtomicU64 = AtomicU64::new(0);
static CLOCK_START: OnceLock<Instant> = OnceLock::new();

fn clock_ms() -> u64 {
    CLOCK_START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// Records that the database was just unreachable (a failed readiness check, or an error
/// [`StoreError::is_unavailable`] calls so).
pub fn note_database_unavailable() {
    LAST_OUTAGE_MS.store(clock_ms().max(1), Ordering::Relaxed);
}

/// Whether a pooled connection idle for `idle_for` was already idle when the database was last
/// seen unreachable: it may be a socket the server closed when it stopped.
fn idle_since_last_outage(idle_for: Duration) -> bool {
    match LAST_OUTAGE_MS.load(Ordering::Relaxed) {
        0 => false,
        outage => Duration::from_millis(clock_ms().saturating_sub(outage)) < idle_for,
    }
}

/// Builds the pool lazily: connections are opened on demand, so a database that goes away and
/// comes back is picked up again without a restart.
pub fn pool(settings: &DatabaseSettings) -> Result<PgPool, sqlx::Error> {
    let options = connect_options(settings)?;
    Ok(PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .min_connections(0)
        .acquire_timeout(Duration::from_secs(settings.acquire_timeout_secs))
        .idle_timeout(Duration::from_secs(300))
        // No ping before every acquire: it doubled the round trips of single-statement reads
        // (the benchmark's profile). A connection that died meanwhile fails its query, is
        // discarded by the pool, and readiness/acquire reconnect; `max_lifetime` recycles.
        .test_before_acquire(false)
        // Except after an outage: a connection that sat idle through it is pinged once before
        // use (and dropped if dead), so the first requests after the database comes back do
        // not each meet a dead socket and fail. Connections used since are not pinged again.
        .before_acquire(|connection, meta| {
            Box::pin(async move {
                use sqlx::Connection;
                Ok(!idle_since_last_outage(meta.idle_for) || connection.ping().await.is_ok())
            })
        })
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

/// Readiness: one round trip on a connection of its own, bounded by [`READINESS_TIMEOUT`].
///
/// Not through the pool: under load every pooled connection may be busy, and a readiness check
/// queued behind them would call a healthy gateway unready; and when the server goes away, the
/// pool's acquire keeps retrying the connect until `acquire_timeout_secs`, while this check's
/// connection fails at once (its socket is closed by the stop, the reconnect is refused), so
/// readiness turns 503 within a second of the stop. It reconnects on the next check after a
/// failure, so it recovers by itself too.
pub struct ReadinessProbe {
    options: PgConnectOptions,
    connection: tokio::sync::Mutex<Option<sqlx::PgConnection>>,
}

/// How long one readiness check may take before it counts as "database unreachable".
pub const READINESS_TIMEOUT: Duration = Duration::from_millis(900);

impl ReadinessProbe {
    pub fn new(settings: &DatabaseSettings) -> Result<Self, sqlx::Error> {
        Ok(Self {
            options: connect_options(settings)?.application_name("onboarding-gateway readiness"),
            connection: tokio::sync::Mutex::new(None),
        })
    }

    /// True when the database answered `SELECT 1` in time.
    pub async fn check(&self) -> bool {
        use sqlx::Connection;
        let deadline = tokio::time::Instant::now() + READINESS_TIMEOUT;
        // Concurrent checks take turns on the one connection (within the same deadline).
        let Ok(mut slot) = tokio::time::timeout_at(deadline, self.connection.lock()).await else {
            return false;
        };
        let round_trip = async {
            if slot.is_none() {
                *slot = Some(sqlx::PgConnection::connect_with(&self.options).await?);
            }
            let connection = slot.as_mut().expect("connected above");
            sqlx::query("SELECT 1").execute(connection).await?;
            Ok::<_, sqlx::Error>(())
        };
        let answered = matches!(
            tokio::time::timeout_at(deadline, round_trip).await,
            Ok(Ok(()))
        );
        if !answered {
            // Broken or hung: a fresh connection next time (dropping closes the socket).
            *slot = None;
            note_database_unavailable();
        }
        answered
    }
}

#[cfg(test)]
mod sqlstate_tests {
    use super::is_unavailable_sqlstate;

    #[test]
    fn server_side_outages_are_unavailable_and_statement_errors_are_not() {
        for code in ["08006", "08001", "57P01", "57P02", "57P03", "53300"] {
            assert!(is_unavailable_sqlstate(code), "{code}");
        }
        // A unique violation, a syntax error, a cancelled statement: the statement's problem.
        for code in ["23505", "42601", "57014", "40P01"] {
            assert!(!is_unavailable_sqlstate(code), "{code}");
        }
    }
}
