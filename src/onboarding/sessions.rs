//! Hosted verification sessions (`POST /v1/users/{id}/verification-sessions`): the provider's
//! own verification flow, opened for a user who has a submitted link there.
//!
//! A session is reused rather than opened again while it is good: for a provider that opens a
//! new session per call (`SessionReuse::WhileValid`), the stored one is handed out without a
//! provider call while its expiry is more than [`EXPIRY_MARGIN`] away (without an expiry:
//! within the configured window, `verification.session_reuse_secs`); for a provider that keeps
//! one current link per user (`SessionReuse::AskEachTime`) the provider is asked every time and
//! the answer counts as reused when it is the link handed out before. Opening a session never
//! changes a link's status. The URL is stored sealed; events say only which provider and
//! whether it was reused.

use std::fmt;
use std::time::Duration;

use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

use super::calls::{call_events, now_rfc3339};
use super::{users, OnboardingError, Services};
use crate::domain::provider::ProviderId;
use crate::domain::FieldError;
use crate::providers::connector::{CallLog, LinkRef, SessionRequest, SessionReuse};
use crate::providers::error::{ProviderError, ProviderErrorKind};
use crate::store::links::{self, LinkUpdate};
use crate::store::sessions::{self, NewSession, StoredSession};
use crate::store::{events, StoreError};

/// A stored session whose expiry is closer than this is not handed out again: the person needs
/// time to open it.
pub const EXPIRY_MARGIN: Duration = Duration::from_secs(60);

/// `last_error.code` (and the review reason) when a provider's session names another user.
pub const SESSION_USER_MISMATCH: &str = "session_user_mismatch";

/// What the caller asks for.
#[derive(Clone, Copy)]
pub struct NewSessionRequest<'a> {
    pub provider: ProviderId,
    /// Where the provider sends the person afterwards (already checked as a redirect URL).
    pub redirect_url: Option<&'a str>,
    /// How long a session without an expiry is reused (`verification.session_reuse_secs`).
    pub reuse_window: Duration,
}

/// A session ready for the person to open.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionView {
    pub provider: ProviderId,
    /// Carries the provider's session token: never logged.
    pub url: String,
    pub expires_at: Option<OffsetDateTime>,
    /// Handed out before (no new session was opened at the provider).
    pub reused: bool,
}

impl fmt::Debug for SessionView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionView")
            .field("provider", &self.provider)
            .field("expires_at", &self.expires_at)
            .field("reused", &self.reused)
            .finish_non_exhaustive()
    }
}

/// Why no session was handed out.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// No such user, erased, an invalid request, or a store failure.
    #[error(transparent)]
    Onboarding(#[from] OnboardingError),
    /// The user has no link at the provider.
    #[error("the user has no link at {0}")]
    NotLinked(ProviderId),
    /// The link has not reached the provider yet (no provider user id).
    #[error("the user's link at {0} is not submitted yet")]
    NotSubmitted(ProviderId),
    /// The provider is not configured or is disabled here.
    #[error("{0} cannot be used: {1}")]
    ProviderUnavailable(ProviderId, String),
    /// The provider has no hosted verification.
    #[error("{0}")]
    NotSupported(String),
    /// The provider's call failed.
    #[error(transparent)]
    Provider(ProviderError),
}

impl From<StoreError> for SessionError {
    fn from(error: StoreError) -> Self {
        SessionError::Onboarding(OnboardingError::Store(error))
    }
}

impl From<sqlx::Error> for SessionError {
    fn from(error: sqlx::Error) -> Self {
        SessionError::Onboarding(error.into())
    }
}

/// Whether a stored session may be handed out again at `now`: its expiry is more than
/// [`EXPIRY_MARGIN`] away, or, without one, it is younger than `window`.
pub fn reusable(stored: &StoredSession, now: OffsetDateTime, window: Duration) -> bool {
    match stored.expires_at {
        Some(expires_at) => expires_at - now > EXPIRY_MARGIN,
        None => now - stored.created_at < window,
    }
}

/// Opens (or reuses) the provider's hosted verification for the user.
pub async fn create(
    services: &Services,
    user_id: Uuid,
    request: NewSessionRequest<'_>,
) -> Result<SessionView, SessionError> {
    let provider = request.provider;
    let view = users::get(services, user_id).await?;
    let link = view
        .links
        .iter()
        .find(|l| l.provider == provider)
        .ok_or(SessionError::NotLinked(provider))?;
    let connector = services.providers.connector(provider).ok_or_else(|| {
        SessionError::ProviderUnavailable(
            provider,
            services
                .providers
                .unavailable_reason(provider)
                .unwrap_or_else(|| "it is not configured".to_owned()),
        )
    })?;
    let provider_user_id = link
        .provider_user_id
        .as_deref()
        .ok_or(SessionError::NotSubmitted(provider))?;
    if request.redirect_url.is_none() && connector.session_needs_redirect_url() {
        return Err(OnboardingError::Validation(vec![FieldError {
            field: "redirect_url".into(),
            code: "required",
            message: format!(
                "is required by {provider}: send one, or configure the provider's default"
            ),
        }])
        .into());
    }
    let keyring = &services.keyring;
    let redirect_hash = request
        .redirect_url
        .map(|u| sessions::redirect_url_hash(keyring, u));
    let reuse = connector.session_reuse();
    if reuse == SessionReuse::WhileValid {
        let stored = sessions::latest(
            &services.pool,
            keyring,
            user_id,
            provider,
            redirect_hash.as_deref(),
        )
        .await?;
        if let Some(stored) =
            stored.filter(|s| reusable(s, OffsetDateTime::now_utc(), request.reuse_window))
        {
            let mut conn = services.pool.acquire().await?;
            events::insert(
                &mut conn,
                user_id,
                "verification_session_created",
                created(provider, true),
            )
            .await?;
            return Ok(SessionView {
                provider,
                url: stored.url,
                expires_at: stored.expires_at,
                reused: true,
            });
        }
    }

    let log = CallLog::new();
    let result = connector
        .create_verification_session(
            LinkRef {
                provider_user_id,
                link_data: &link.provider_data.0,
            },
            SessionRequest {
                user: &view.profile,
                redirect_url: request.redirect_url,
            },
            &log,
        )
        .await;
    let calls = call_events(&log);
    let session = match result {
        Ok(session) => session,
        Err(error) => {
            if !calls.is_empty() {
                let mut conn = services.pool.acquire().await?;
                events::append(&mut conn, user_id, &calls).await?;
            }
            return Err(match error.kind {
                ProviderErrorKind::NotSupported => SessionError::NotSupported(error.message),
                _ => {
                    tracing::warn!(provider = provider.as_str(), kind = ?error.kind, provider_code = ?error.provider_code, "hosted session failed");
                    SessionError::Provider(error)
                }
            });
        }
    };

    // Recorded under the user's link locks, then the user's (erasure's order): a user erased
    // while the provider answered gets no stored session.
    let mut tx = services.pool.begin().await?;
    links::lock_user_links(&mut tx, user_id).await?;
    let mut trail = calls;
    match crate::store::users::lock_erasure_state(&mut tx, user_id).await? {
        None => return Err(OnboardingError::NotFound.into()),
        Some(Some(erased_at)) => {
            events::append(&mut tx, user_id, &trail).await?;
            tx.commit().await?;
            return Err(OnboardingError::Erased {
                erased_at: Some(erased_at),
            }
            .into());
        }
        Some(None) => {}
    }
    let previous = match reuse {
        SessionReuse::AskEachTime => {
            sessions::latest(
                &mut *tx,
                keyring,
                user_id,
                provider,
                redirect_hash.as_deref(),
            )
            .await?
        }
        SessionReuse::WhileValid => None,
    };
    let reused = previous.as_ref().is_some_and(|p| p.url == session.url);
    if !reused {
        sessions::replace(
            &mut tx,
            keyring,
            &NewSession {
                user_id,
                provider,
                redirect_url_hash: redirect_hash.as_deref(),
                url: &session.url,
                expires_at: session.expires_at,
            },
        )
        .await?;
    }
    trail.push(("verification_session_created", created(provider, reused)));
    if let Some(other) = session
        .provider_user_id
        .as_deref()
        .filter(|id| *id != provider_user_id)
    {
        // The link keeps its id; a person checks which account the provider opened this for.
        tracing::warn!(
            provider = provider.as_str(),
            "hosted session names another provider user"
        );
        links::apply_update(
            &mut tx,
            user_id,
            provider,
            &LinkUpdate {
                needs_review: Some(true),
                last_error: Some(Some(json!({
                    "code": SESSION_USER_MISMATCH,
                    "message": "the provider's hosted session names another user id than the link's",
                    "at": now_rfc3339(),
                }))),
                ..LinkUpdate::default()
            },
        )
        .await?;
        trail.push((
            "link_needs_review",
            json!({
                "provider": provider.as_str(),
                "reason": SESSION_USER_MISMATCH,
                "session_provider_user_id": other,
            }),
        ));
    }
    events::append(&mut tx, user_id, &trail).await?;
    tx.commit().await?;
    Ok(SessionView {
        provider,
        url: session.url,
        expires_at: session.expires_at,
        reused,
    })
}

fn created(provider: ProviderId, reused: bool) -> serde_json::Value {
    json!({ "provider": provider.as_str(), "reused": reused })
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn stored(expires_at: Option<OffsetDateTime>, created_at: OffsetDateTime) -> StoredSession {
        StoredSession {
            id: Uuid::now_v7(),
            provider: ProviderId::ALL[0],
            url: "https://hosted.example/s".into(),
            expires_at,
            created_at,
        }
    }

    #[test]
    fn a_session_is_reused_while_it_has_more_than_a_minute_left_or_within_the_window() {
        let now = datetime!(2026-12-03 12:00 UTC);
        let window = Duration::from_secs(600);
        let long_ago = datetime!(2026-12-01 00:00 UTC);
        for (expires_at, created_at, want) in [
            (Some(datetime!(2026-12-03 12:01:01 UTC)), long_ago, true),
            (Some(datetime!(2026-12-03 12:01:00 UTC)), long_ago, false),
            (Some(datetime!(2026-12-03 11:00 UTC)), now, false),
            (None, datetime!(2026-12-03 11:50:01 UTC), true),
            (None, datetime!(2026-12-03 11:50:00 UTC), false),
            (None, long_ago, false),
        ] {
            assert_eq!(
                reusable(&stored(expires_at, created_at), now, window),
                want,
                "{expires_at:?} {created_at}"
            );
        }
        assert!(!reusable(&stored(None, now), now, Duration::ZERO));
        let debug = format!("{:?}", stored(None, now));
        assert!(!debug.contains("hosted.example"), "{debug}");
    }
}
