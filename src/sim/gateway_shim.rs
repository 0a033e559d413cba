//! Temporary: the gateway-facing configuration of the simulators, until each simulator says it.

use serde_json::{json, Map, Value};

use super::SimConfig;
use crate::domain::provider::ProviderId;

impl SimConfig {
    /// The gateway's `[providers.<id>]` section that points it at this simulator.
    pub fn gateway_settings(&self, id: ProviderId, base_url: &str) -> Map<String, Value> {
        let value = match id {
            ProviderId::Kraken => json!({
                "base_url": base_url,
                "api_key": self.kraken.api_key,
                "api_secret": self.kraken.api_secret_b64,
                "webhook_secret": self.kraken.webhook_secret_b64,
            }),
            ProviderId::Killb => json!({
                "base_url": base_url,
                "email": self.killb.email,
                "password": self.killb.password,
                "webhook_secret": self.killb.webhook_secret,
                "webhook_signature_scheme": self.killb.webhook_scheme,
            }),
            ProviderId::Carbn => json!({
                "base_url": base_url,
                "api_key": self.carbn.api_key,
                "webhook_public_key": self.carbn.webhook_public_key_pem,
            }),
        };
        match value {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }

    /// Follows the choices a gateway's section makes among a provider's documented variants.
    pub fn follow_gateway_settings(&mut self, id: ProviderId, section: &Map<String, Value>) {
        if id == ProviderId::Killb {
            if let Some(scheme) = section
                .get("webhook_signature_scheme")
                .and_then(|v| serde_json::from_value(v.clone()).ok())
            {
                self.killb.webhook_scheme = scheme;
            }
        }
    }
}
