//! onboarding-gateway: one API for onboarding users (KYC profiles) at several KYC providers
//! (the list is `with_providers!` in `domain/provider.rs`). Reading this file is a tour of the
//! house; the layers point one way, `api → onboarding → {providers, store} → domain`, with
//! `settings` as plain data underneath and `app` assembling it all (`tests/architecture.rs`
//! checks both, and that a provider's quirks stay in its folder).

// Problem documents are large by design (fields, extras) and only built on the cold error path.
#![allow(clippy::result_large_err)]

/// The HTTP edge: routes, request parsing, problem documents, OpenAPI. No SQL, no provider calls.
pub mod api;
/// Building and running the gateway: keyring, provider registry, simulators, pool, server and
/// workers, each built once from the settings.
pub mod app;
/// API keys, hashed, with scopes.
pub mod auth;
/// Encryption of personal data at rest and keyed lookup hashes.
pub mod crypto;
/// The canonical user and its rules, the provider list and ids: pure, no I/O.
pub mod domain;
/// The use-cases: where the store and the providers meet, and transactions live. Users and
/// their provider links (`users`, `links`), erasure, webhooks, reconciliation, and
/// verification: uploaded documents (`documents`) and their submission to each provider
/// (`submissions`), hosted verification sessions (`sessions`), next actions (`actions`).
pub mod onboarding;
/// One folder per provider (settings section, client, transformers, signing, webhooks,
/// requirements) behind the `Provider` trait; the registry of configured connectors; routing.
pub mod providers;
/// Layered configuration as plain data, with secrets that never print.
pub mod settings;
/// Faithful provider simulators, one file per provider (auth, validation, statuses, signed
/// webhooks), with shared fault injection and control endpoints.
pub mod sim;
/// Postgres repositories, one file per aggregate: the only SQL besides `migrations/`.
pub mod store;
/// Logs, metrics and the current request's id.
pub mod telemetry;
/// Background loops over the Postgres job queue, the reconciliation poller, re-sealing.
pub mod workers;
