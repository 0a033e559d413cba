//! KillB API v2 (`killb.app/api/v2`). See `shared/providers/killb.md`.

/// `x-signature-sha256` webhook signatures.
pub mod webhook;
