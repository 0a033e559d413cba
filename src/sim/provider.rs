//! What the shared simulator code needs from a provider.
//!
//! Each provider's simulator lives in `src/sim/<module>.rs` (the module named in
//! `crate::with_providers!`) and has:
//! - a unit struct `Simulator` implementing [`SimProvider`], reached from a [`ProviderId`]
//!   only through [`super::simulator`];
//! - `pub struct Config` with `Config::development()` (the documented development credentials),
//!   one field of [`super::SimConfig`];
//! - `pub(crate) struct State` with `State::new(&Config) -> std::io::Result<State>` (its
//!   nonces, tokens, consents, signers: whatever only it keeps), one field of
//!   [`super::ProviderStates`].
//!
//! Every item is required (no defaults), so a provider that lacks one does not compile. The
//! shared pieces (`state`, `faults`, `control`, `webhooks`, `validate`) never name a provider;
//! the provider files import them, not the other way round.
//!
//! [`ProviderId`]: crate::domain::provider::ProviderId

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{Map, Value};

use super::state::{Change, SimState, SimStatus, SimUser};
use super::SimConfig;

/// One simulated provider, as the shared simulator code sees it.
pub(crate) trait SimProvider: Sync {
    /// Whether a request path is one of this provider's (an unknown route under it is recorded,
    /// subject to faults, and answered with [`SimProvider::not_found`]).
    fn owns_path(&self, path: &str) -> bool;

    /// Registers the provider's API on its real paths, and any `/_sim/<id>/…` control routes
    /// only it has.
    fn routes(&self, cfg: &mut web::ServiceConfig);

    /// The user in the provider's own vocabulary (what its read answers; the control dump).
    fn render(&self, state: &SimState, user: &SimUser) -> Value;

    /// An injected fault's error `status` in the provider's error envelope.
    fn fault_error(&self, status: StatusCode, req: &HttpRequest) -> HttpResponse;

    /// The provider's answer to an unknown route under its paths.
    fn not_found(&self, req: &HttpRequest) -> HttpResponse;

    /// Records `status` on the stored user (a provider may keep some statuses differently,
    /// e.g. as a flag).
    fn apply_status(&self, user: &mut SimUser, status: SimStatus);

    /// The status a review of `user` ends in when the review delay has passed (approval,
    /// unless the provider recorded another outcome for it).
    fn reviewed(&self, user: &SimUser) -> SimStatus;

    /// How many times a failed webhook delivery is retried (exponentially from 200 ms): as long
    /// as the provider documents retrying.
    fn webhook_retries(&self) -> u32;

    /// `user` (as stored now) went through `change`: sends the webhook that causes, if any.
    fn changed(&self, state: &Arc<SimState>, change: Change<'_>, user: &SimUser);

    /// The gateway's `[providers.<id>]` section that points a gateway at this simulator at
    /// `base_url`, with the credentials `config` accepts (the gateway's own config keys).
    fn gateway_settings(&self, config: &SimConfig, base_url: &str) -> Map<String, Value>;

    /// Follows the choice a gateway's `[providers.<id>]` section makes among the provider's
    /// documented variants (keys it does not know, or values it cannot read, change nothing).
    fn follow_gateway_settings(&self, config: &mut SimConfig, section: &Map<String, Value>);
}

/// A gateway `[providers.<id>]` section: `base_url` and then `entries`.
pub(crate) fn gateway_section<'a>(
    base_url: &str,
    entries: impl IntoIterator<Item = (&'a str, Value)>,
) -> Map<String, Value> {
    let mut section = Map::new();
    section.insert("base_url".into(), base_url.into());
    section.extend(
        entries
            .into_iter()
            .map(|(key, value)| (key.to_owned(), value)),
    );
    section
}
