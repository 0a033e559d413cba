//! onboarding-gateway: one API for onboarding users (KYC profiles) at Kraken Embed, KillB and
//! Carbn Connect. Reading this file is a tour of the house.

// Problem documents are large by design (fields, extras) and only built on the cold error path.
#![allow(clippy::result_large_err)]

/// The HTTP edge: routes, request parsing, problem documents, OpenAPI.
pub mod api;
/// Building and running the server.
pub mod app;
/// API keys, hashed, with scopes.
pub mod auth;
/// Encryption of personal data at rest and keyed lookup hashes.
pub mod crypto;
/// The canonical user and its rules: pure, no I/O.
pub mod domain;
/// The use-cases: where the store and the providers meet, and transactions live.
pub mod onboarding;
/// Provider connectors, one folder per provider: client, transformers, signing, webhooks.
pub mod providers;
/// Layered configuration with secrets that never print.
pub mod settings;
/// Faithful provider simulators (auth, validation, statuses, signed webhooks, fault injection).
pub mod sim;
/// Postgres repositories and migrations.
pub mod store;
/// Logs and metrics.
pub mod telemetry;
/// Background loops over the Postgres job queue.
pub mod workers;
