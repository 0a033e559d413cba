//! Connector contract tests: exact wire bytes, headers and signatures against wiremock, and
//! outbound bodies validated against the providers' published (third-party) OpenAPI schemas.

mod carbn;
mod carbn_webhook;
mod killb;
mod kraken;
mod multipart_wire;
mod requirements;
#[allow(dead_code)] // helpers used by some provider modules only
mod schema;
