//! HTTP-level tests against the real server on a random port, each with its own fresh,
//! migrated Postgres database.

mod helpers;

mod auth;
mod compression;
mod console;
mod console_api;
mod database_restart;
mod documents;
mod floor;
mod health;
mod idempotency;
mod limits;
mod malformed;
mod metrics;
mod next_actions;
mod notifications;
mod openapi;
mod providers_e2e;
mod reconciliation;
mod reliability;
mod security;
mod sessions;
mod stored_values;
mod users_create;
mod users_list;
mod users_patch;
mod verification_e2e;
mod webhooks;
mod write_path;
