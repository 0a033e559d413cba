//! API-key authentication: `Authorization: Bearer <key>`, matched by SHA-256 against the
//! configured keys, each with its scopes. The key itself is never stored or logged.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::settings::ApiKeySettings;

/// What an API key may do (configured with the key, so defined with the settings).
pub use crate::settings::Scope;

/// The caller behind a request: the configured key's name and scopes.
#[derive(Debug, Clone)]
pub struct Principal {
    pub name: Arc<str>,
    scopes: Arc<[Scope]>,
}

impl Principal {
    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }

    /// The key's scopes, as configured.
    pub fn scopes(&self) -> &[Scope] {
        &self.scopes
    }
}

/// The configured keys, indexed by the hex SHA-256 of the key.
#[derive(Clone, Default)]
pub struct ApiKeyRegistry {
    by_hash: Arc<HashMap<String, Principal>>,
}

impl fmt::Debug for ApiKeyRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeyRegistry")
            .field("keys", &self.by_hash.len())
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// No `Authorization: Bearer …` header, or an unknown key.
    Unauthenticated,
    /// A known key without the scope the route needs.
    Forbidden(Scope),
}

impl ApiKeyRegistry {
    pub fn new(keys: &[ApiKeySettings]) -> Self {
        let by_hash = keys
            .iter()
            .map(|key| {
                (
                    key.key_sha256.to_ascii_lowercase(),
                    Principal {
                        name: Arc::from(key.name.as_str()),
                        scopes: Arc::from(key.scopes.as_slice()),
                    },
                )
            })
            .collect();
        Self {
            by_hash: Arc::new(by_hash),
        }
    }

    /// Resolves an `Authorization` header value to the principal, if it holds a known key.
    /// Comparing hashes (not keys) means a lookup's timing reveals nothing usable about a key.
    pub fn authenticate(&self, authorization: Option<&str>) -> Option<Principal> {
        let value = authorization?.trim();
        let (scheme, key) = value.split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        let key = key.trim();
        if key.is_empty() || key.len() > 256 {
            return None;
        }
        self.by_hash.get(&sha256_hex(key.as_bytes())).cloned()
    }

    /// Authenticates and checks one scope.
    pub fn authorize(
        &self,
        authorization: Option<&str>,
        scope: Scope,
    ) -> Result<Principal, AuthFailure> {
        self.authorize_any(authorization, &[scope])
    }

    /// Authenticates and checks the key has at least one of `scopes` (the first is named when
    /// it has none); no scopes at all means any known key.
    pub fn authorize_any(
        &self,
        authorization: Option<&str>,
        scopes: &[Scope],
    ) -> Result<Principal, AuthFailure> {
        let principal = self
            .authenticate(authorization)
            .ok_or(AuthFailure::Unauthenticated)?;
        match scopes.first() {
            Some(first) if !scopes.iter().any(|s| principal.has(*s)) => {
                Err(AuthFailure::Forbidden(*first))
            }
            _ => Ok(principal),
        }
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> ApiKeyRegistry {
        ApiKeyRegistry::new(&[
            ApiKeySettings {
                name: "reader".into(),
                key_sha256: sha256_hex(b"read-key"),
                scopes: vec![Scope::UsersRead],
            },
            ApiKeySettings {
                name: "ops".into(),
                key_sha256: sha256_hex(b"ops-key").to_ascii_uppercase(),
                scopes: vec![Scope::Ops],
            },
        ])
    }

    #[test]
    fn bearer_keys_resolve_by_hash() {
        let reg = registry();
        assert_eq!(
            &*reg.authenticate(Some("Bearer read-key")).unwrap().name,
            "reader"
        );
        assert_eq!(
            &*reg.authenticate(Some("bearer  ops-key ")).unwrap().name,
            "ops"
        );
        assert!(reg.authenticate(Some("Bearer wrong")).is_none());
        assert!(reg.authenticate(Some("Basic read-key")).is_none());
        assert!(reg.authenticate(Some("read-key")).is_none());
        assert!(reg.authenticate(None).is_none());
    }

    #[test]
    fn scopes_are_enforced() {
        let reg = registry();
        assert!(reg
            .authorize(Some("Bearer read-key"), Scope::UsersRead)
            .is_ok());
        assert_eq!(
            reg.authorize(Some("Bearer read-key"), Scope::UsersWrite)
                .unwrap_err(),
            AuthFailure::Forbidden(Scope::UsersWrite)
        );
        assert_eq!(
            reg.authorize(Some("Bearer nope"), Scope::UsersRead)
                .unwrap_err(),
            AuthFailure::Unauthenticated
        );
        let either = [Scope::UsersWrite, Scope::Ops];
        assert!(reg.authorize_any(Some("Bearer ops-key"), &either).is_ok());
        assert_eq!(
            reg.authorize_any(Some("Bearer read-key"), &either)
                .unwrap_err(),
            AuthFailure::Forbidden(Scope::UsersWrite)
        );
        assert!(reg.authorize_any(Some("Bearer read-key"), &[]).is_ok());
        assert_eq!(
            reg.authorize_any(None, &[]).unwrap_err(),
            AuthFailure::Unauthenticated
        );
    }

    #[test]
    fn the_dev_key_hash_matches_the_readme() {
        assert_eq!(
            sha256_hex(b"dev_sk_onboarding_gateway_local"),
            crate::settings::DEV_API_KEY_SHA256
        );
    }
}
