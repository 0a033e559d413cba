//! Provider identifiers.

string_enum! {
    /// A KYC provider the gateway can onboard users at.
    #[schema(examples("killb"))]
    pub enum ProviderId {
        /// Kraken Embed.
        Kraken => "kraken",
        /// KillB.
        Killb => "killb",
        /// Carbn Connect.
        Carbn => "carbn",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for p in ProviderId::ALL {
            assert_eq!(p.as_str().parse::<ProviderId>().unwrap(), *p);
            assert_eq!(
                serde_json::to_value(p).unwrap(),
                serde_json::json!(p.as_str())
            );
        }
        assert_eq!(ProviderId::ALL.len(), 3);
    }

    #[test]
    fn rejects_unknown_and_wrong_case() {
        let err = "Kraken".parse::<ProviderId>().unwrap_err();
        assert_eq!(err.allowed, "kraken, killb, carbn");
        assert!(err.to_string().contains("kraken, killb, carbn"));
        assert!("stripe".parse::<ProviderId>().is_err());
    }
}
