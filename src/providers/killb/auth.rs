//! KillB access tokens (https://docs.killb.com/api-reference/auth/generate-an-access-token): `POST
//! /api/v2/auth/login` with the portal email and password gives a JWT valid for `expiresIn`
//! **milliseconds** (1 h in production).
//!
//! One token is shared by every request. It is renewed by a fresh login (as both official
//! SDKs do) once 80% of its lifetime has passed, and after a 401 the caller
//! [`invalidate`](TokenManager::invalidate)s it and asks again. Logins are single-flight: the
//! first caller that finds no usable token logs in while holding the write lock; everyone
//! else waits and then re-checks, so N concurrent requests cause one login.

use std::fmt;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use tokio::sync::RwLock;
use tokio::time::Instant;

use super::transformers::{KillbErrorEnvelope, LoginRequest, LoginResponse};
use crate::providers::connector::CallLog;
use crate::providers::error::{ProviderError, ProviderErrorKind};
use crate::providers::http::ProviderHttp;

/// Login path, appended to the base URL.
pub const LOGIN_PATH: &str = "/api/v2/auth/login";

/// Used when the login answer carries no usable `expiresIn` (the documented lifetime,
/// https://docs.killb.com/api-reference/auth/generate-an-access-token).
const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);
/// Upper bound on a token lifetime we believe.
const MAX_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// A cached access token. `generation` identifies it, so that a 401 seen with an old token
/// does not throw away a newer one.
#[derive(Clone)]
pub struct AccessToken {
    pub value: SecretString,
    pub generation: u64,
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("value", &"***")
            .field("generation", &self.generation)
            .finish()
    }
}

struct Cached {
    token: AccessToken,
    renew_at: Instant,
}

#[derive(Default)]
struct State {
    current: Option<Cached>,
    generation: u64,
}

/// Logs in to KillB and caches the token.
pub struct TokenManager {
    email: SecretString,
    password: SecretString,
    state: RwLock<State>,
}

impl fmt::Debug for TokenManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenManager { credentials: ***, .. }")
    }
}

/// When to renew a token that lives `lifetime`: after 80% of it.
pub fn renew_after(lifetime: Duration) -> Duration {
    lifetime.mul_f64(0.8)
}

impl TokenManager {
    pub fn new(email: SecretString, password: SecretString) -> Self {
        Self {
            email,
            password,
            state: RwLock::new(State::default()),
        }
    }

    /// A usable token: the cached one, or a new one from a single login shared by every
    /// concurrent caller.
    pub async fn token(
        &self,
        http: &ProviderHttp,
        log: &CallLog,
    ) -> Result<AccessToken, ProviderError> {
        {
            let state = self.state.read().await;
            if let Some(cached) = state.current.as_ref() {
                if Instant::now() < cached.renew_at {
                    return Ok(cached.token.clone());
                }
            }
        }
        let mut state = self.state.write().await;
        // Someone may have logged in while we waited for the lock.
        if let Some(cached) = state.current.as_ref() {
            if Instant::now() < cached.renew_at {
                return Ok(cached.token.clone());
            }
        }
        let (value, lifetime) = self.login(http, log).await?;
        state.generation += 1;
        let token = AccessToken {
            value,
            generation: state.generation,
        };
        state.current = Some(Cached {
            token: token.clone(),
            renew_at: Instant::now() + renew_after(lifetime),
        });
        Ok(token)
    }

    /// Forgets `token` after the provider refused it, unless a newer one has replaced it.
    pub async fn invalidate(&self, token: &AccessToken) {
        let mut state = self.state.write().await;
        if state
            .current
            .as_ref()
            .is_some_and(|c| c.token.generation == token.generation)
        {
            state.current = None;
        }
    }

    async fn login(
        &self,
        http: &ProviderHttp,
        log: &CallLog,
    ) -> Result<(SecretString, Duration), ProviderError> {
        let body = LoginRequest {
            email: self.email.expose_secret(),
            password: self.password.expose_secret(),
        };
        let request = http.client().post(http.url(LOGIN_PATH)).json(&body);
        let raw = http.send(log, "login", request).await?;
        if !raw.is_success() {
            let mut error = KillbErrorEnvelope::parse(&raw.body).into_error(raw.status);
            // A refused login is a credentials problem (bad passwords come back as 400).
            if matches!(raw.status, 400 | 401 | 403 | 404 | 422) {
                error.kind = ProviderErrorKind::Unauthorized;
                error.message = format!("killb login refused: {}", error.message);
            }
            return Err(error.with_retry_after(raw.retry_after()));
        }
        let answer: LoginResponse = raw.json()?;
        if answer.access_token.is_empty() {
            return Err(ProviderError {
                http_status: Some(raw.status),
                ..ProviderError::new(
                    ProviderErrorKind::InvalidResponse,
                    "killb login answered without an access token",
                )
            });
        }
        let lifetime = answer
            .expires_in
            .filter(|ms| ms.is_finite() && *ms >= 0.0)
            .map(|ms| Duration::from_secs_f64(ms / 1000.0).min(MAX_LIFETIME))
            .unwrap_or(DEFAULT_LIFETIME);
        Ok((SecretString::from(answer.access_token), lifetime))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renews_at_eighty_percent_and_hides_secrets() {
        assert_eq!(
            renew_after(Duration::from_secs(3600)),
            Duration::from_secs(2880)
        );
        let m = TokenManager::new("ops@example.com".into(), "hunter2".into());
        let debug = format!("{m:?}");
        assert!(!debug.contains("hunter2") && !debug.contains("ops@"));
        let t = AccessToken {
            value: "eyJ.secret".into(),
            generation: 1,
        };
        assert!(!format!("{t:?}").contains("eyJ"));
    }
}
