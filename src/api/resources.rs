//! The JSON shapes the API answers with (`openapi/openapi.json` is generated from these types).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::domain::events::EventCategory;
use crate::domain::masking::{mask_user, MaskedUser};
use crate::domain::status::LinkStatus;
use crate::domain::user::CanonicalUser;
use crate::domain::verification::Rejection;
use crate::onboarding::users::UserView;
use crate::store::events::EventRow;
use crate::store::links::LinkRow;

/// A user: the canonical fields at top level, plus the gateway's own.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UserResource {
    /// The gateway's id for the user (UUIDv7, time-ordered).
    pub id: Uuid,
    #[serde(flatten)]
    pub user: CanonicalUser,
    /// Summary of the links' statuses (README "Status").
    pub status: LinkStatus,
    /// The user's account at each provider; empty until the user is submitted somewhere.
    pub links: Vec<LinkResource>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// A user in the masked view (`view=masked`): the members of [`UserResource`], personal values
/// masked (`j***@e***.com`, `J***`, `****-**-**`).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MaskedUserResource {
    pub id: Uuid,
    #[serde(flatten)]
    pub user: MaskedUser,
    pub status: LinkStatus,
    pub links: Vec<LinkResource>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl From<UserResource> for MaskedUserResource {
    fn from(full: UserResource) -> Self {
        Self {
            id: full.id,
            user: mask_user(&full.user),
            status: full.status,
            links: full.links,
            created_at: full.created_at,
            updated_at: full.updated_at,
        }
    }
}

/// A user in the view asked for: `full` (default) or `masked`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum UserInView {
    Full(UserResource),
    Masked(MaskedUserResource),
}

/// A page of users, newest first, in the view asked for (`view=full`, the default, or
/// `view=masked`).
#[derive(Debug, Serialize, ToSchema)]
pub struct UserList {
    pub data: Vec<UserInView>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// The user's account at one provider.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LinkResource {
    /// `kraken`, `killb` or `carbn`.
    pub provider: String,
    /// The provider's id for the user (Kraken IIBAN, KillB/Carbn UUID); null until accepted.
    pub provider_user_id: Option<String>,
    pub status: LinkStatus,
    /// The provider's raw status value, as last seen.
    pub provider_status: Option<String>,
    /// What the provider still needs (its own vocabulary, as received).
    #[schema(value_type = Vec<Object>)]
    pub requirements: Vec<serde_json::Value>,
    pub last_error: Option<LinkError>,
    /// Why the provider rejected (or closed) the account, when it did; null otherwise.
    /// `user_message` is safe to show the person, `developer_message` may not be.
    pub rejection: Option<Rejection>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub submitted_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_synced_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LinkError {
    pub code: String,
    pub message: String,
    pub at: String,
    /// `provider_account_id_unknown`, `possible_duplicate_account`: the `external_id` the
    /// create was sent with, by which ops find the account at the provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// The same codes: when the first create whose answer was lost was sent (RFC 3339), when
    /// known; the account dates from then or later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_attempt_at: Option<String>,
}

/// One audit-trail entry. Besides `id`, `type` and `at`, each type has its own members, e.g.
/// `user_updated` has `fields` (the JSON paths that changed) and `source`; `status_changed`
/// has `provider`, `from`, `to`, `source`; `provider_call` has `provider`, `operation`,
/// `http_status`, `latency_ms`, `outcome`. Events never hold PII.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"id": "0193a5c2-7f7e-7c1a-9d1e-5b2f0c3a4d5e", "type": "user_updated",
    "category": "api_call", "at": "2026-11-22T10:00:00Z", "source": "api",
    "fields": ["address.city", "phone"]}))]
pub struct EventResource {
    pub id: Uuid,
    #[serde(rename = "type")]
    pub event_type: String,
    /// What kind of event this is, for a timeline (one table maps every type).
    pub category: EventCategory,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub data: serde_json::Map<String, serde_json::Value>,
}

/// A page of events, oldest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EventList {
    pub data: Vec<EventResource>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

impl From<LinkRow> for LinkResource {
    fn from(row: LinkRow) -> Self {
        let rejection = crate::onboarding::actions::rejection(&row);
        let requirements = match row.requirements.0 {
            serde_json::Value::Array(items) => items,
            serde_json::Value::Null => Vec::new(),
            other => vec![other],
        };
        Self {
            provider: row.provider.as_str().to_owned(),
            provider_user_id: row.provider_user_id,
            status: row.status,
            provider_status: row.provider_status,
            requirements,
            last_error: row
                .last_error
                .and_then(|e| serde_json::from_value(e.0).ok()),
            rejection,
            submitted_at: row.submitted_at,
            last_synced_at: row.last_synced_at,
            updated_at: row.updated_at,
        }
    }
}

impl From<UserView> for UserResource {
    fn from(view: UserView) -> Self {
        let row = view.user;
        Self {
            id: row.id,
            status: row.status,
            user: view.profile,
            links: view.links.into_iter().map(LinkResource::from).collect(),
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

impl From<EventRow> for EventResource {
    fn from(row: EventRow) -> Self {
        let data = match row.data.0 {
            serde_json::Value::Object(map) => map,
            _ => serde_json::Map::new(),
        };
        Self {
            id: row.id,
            category: crate::domain::events::category(&row.event_type),
            event_type: row.event_type,
            at: row.at,
            data,
        }
    }
}
