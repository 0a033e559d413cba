//! The use-cases: the only place that combines the store with providers, and where
//! transactions begin and end.

pub mod users;

use uuid::Uuid;

use crate::domain::FieldError;
use crate::store::StoreError;

/// Why a use-case did not do what was asked. The HTTP layer turns each into a problem document.
#[derive(Debug, thiserror::Error)]
pub enum OnboardingError {
    #[error("user not found")]
    NotFound,
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    #[error("a user with this external_id already exists")]
    UserAlreadyExists { existing_user_id: Option<Uuid> },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for OnboardingError {
    fn from(error: sqlx::Error) -> Self {
        OnboardingError::Store(StoreError::from_sqlx(error))
    }
}
