//! onboarding-gateway: one clean API for onboarding users at Kraken Embed, KillB and Carbn Connect.

/// Provider integrations, one folder per provider (so far: request signing and webhook crypto).
pub mod providers;

/// Faithful provider simulators (auth, validation, statuses, signed webhooks, fault injection).
pub mod sim;
