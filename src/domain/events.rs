//! The kinds of audit-trail events, told apart for a timeline: every event type the gateway
//! writes and its category, in one table, so a client needs no table of its own.

string_enum! {
    /// What kind of thing an audit-trail event records.
    #[schema(examples("provider_call"))]
    pub enum EventCategory {
        /// A change made through the API (create, update, link, erase, hosted session).
        ApiCall => "api_call",
        /// A call to a provider, or what a provider's answer did to the link.
        ProviderCall => "provider_call",
        /// A verified webhook from a provider.
        Webhook => "webhook",
        /// A link's status moved, or was flagged for a person.
        StatusChange => "status_change",
        /// A notification delivery attempt to a subscriber.
        Notification => "notification",
        /// A document uploaded, or its submission to a provider.
        Document => "document",
        /// An operator's action (reveal, re-drive, sync) with its reason.
        Operator => "operator",
        /// A type this table does not know (none today; kept for forward compatibility).
        Other => "other",
    }
}

/// Every event type written to the audit trail, with its category.
pub const EVENT_TYPES: &[(&str, EventCategory)] = &[
    ("user_created", EventCategory::ApiCall),
    ("user_updated", EventCategory::ApiCall),
    ("provider_linked", EventCategory::ApiCall),
    ("user_erased", EventCategory::ApiCall),
    ("verification_session_created", EventCategory::ApiCall),
    ("provider_call", EventCategory::ProviderCall),
    ("provider_update", EventCategory::ProviderCall),
    ("provider_erased", EventCategory::ProviderCall),
    ("provider_account_adopted", EventCategory::ProviderCall),
    (
        "provider_account_after_erasure",
        EventCategory::ProviderCall,
    ),
    ("webhook_received", EventCategory::Webhook),
    ("status_changed", EventCategory::StatusChange),
    ("status_signal_ignored", EventCategory::StatusChange),
    ("provider_status_unrecognized", EventCategory::StatusChange),
    (
        "provider_requirement_unrecognized",
        EventCategory::StatusChange,
    ),
    ("link_needs_review", EventCategory::StatusChange),
    ("link_missing_at_provider", EventCategory::StatusChange),
    ("notification_sent", EventCategory::Notification),
    ("document_uploaded", EventCategory::Document),
    ("document_submitted", EventCategory::Document),
    ("pii_revealed", EventCategory::Operator),
    ("job_redriven", EventCategory::Operator),
    ("sync_requested", EventCategory::Operator),
];

/// The category of an event type (`other` for one the table does not list).
pub fn category(event_type: &str) -> EventCategory {
    EVENT_TYPES
        .iter()
        .find(|(t, _)| *t == event_type)
        .map_or(EventCategory::Other, |(_, c)| *c)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The event types the source writes: every string literal handed to an event-writing call
    /// (`events::insert`, `insert_many`, `.event(`, trail pushes, `event_type:`) under
    /// `src/onboarding/`. A new event type fails here until the table lists it.
    fn written_event_types() -> Vec<String> {
        let writers = regex_lite::Regex::new(
            r#"(?:events::insert|events::insert_many|\.event|push)\(\s*\(?\s*(?:[&a-z_.* ]+,\s*){0,2}"([a-z_]+)""#,
        )
        .unwrap();
        let field = regex_lite::Regex::new(r#"event_type: "([a-z_]+)""#).unwrap();
        let mut found = Vec::new();
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/onboarding");
        for entry in std::fs::read_dir(dir).unwrap() {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            for re in [&writers, &field] {
                found.extend(re.captures_iter(&text).map(|c| c[1].to_owned()));
            }
        }
        found.sort();
        found.dedup();
        found
    }

    #[test]
    fn every_written_event_type_has_a_category() {
        let written = written_event_types();
        assert!(
            written.len() >= 20,
            "the scan finds the writers: {written:?}"
        );
        for event_type in &written {
            assert_ne!(
                category(event_type),
                EventCategory::Other,
                "{event_type} is written but has no category"
            );
        }
    }

    #[test]
    fn categories_are_as_the_timeline_expects() {
        assert_eq!(category("provider_call"), EventCategory::ProviderCall);
        assert_eq!(category("webhook_received"), EventCategory::Webhook);
        assert_eq!(category("status_changed"), EventCategory::StatusChange);
        assert_eq!(category("notification_sent"), EventCategory::Notification);
        assert_eq!(category("document_submitted"), EventCategory::Document);
        assert_eq!(category("pii_revealed"), EventCategory::Operator);
        assert_eq!(category("user_created"), EventCategory::ApiCall);
        assert_eq!(category("something_new"), EventCategory::Other);
        let mut types: Vec<&str> = EVENT_TYPES.iter().map(|(t, _)| *t).collect();
        types.sort();
        types.dedup();
        assert_eq!(types.len(), EVENT_TYPES.len(), "each type listed once");
    }
}
