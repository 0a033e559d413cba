//! Property tests (proptest): the domain parsers (countries, phones, dates), JSON merge patch
//! (RFC 7396 laws) and every connector's transformers, on generated input. 256 cases each
//! (`PROPTEST_CASES` overrides); pure, no database or network.

use onboarding_gateway::domain::merge_patch::{apply_merge_patch, changed_paths};
use onboarding_gateway::domain::provider::ProviderId;
use onboarding_gateway::domain::user::{iso_date, CountryCode, Phone};
use onboarding_gateway::domain::{
    parse_user_at, CanonicalUser, EmploymentStatus, IdentityDocumentType, Industry,
    MonthlyDeposits, MonthlyVolumeUsd, SourceOfFunds, TotalAssetsUsd,
};
use onboarding_gateway::providers::carbn::transformers::{CarbnCreateUser, CarbnUpdateUser};
use onboarding_gateway::providers::killb::transformers::{KillbCreateUser, KillbUpdateUser};
use onboarding_gateway::providers::kraken::transformers::{CreateUserRequest, UpdateUserRequest};
use onboarding_gateway::providers::requirements::missing_fields;
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::{json, Map, Value};
use time::macros::datetime;
use time::{Date, Duration, OffsetDateTime};

const NOW: OffsetDateTime = datetime!(2026-11-20 12:00:00 UTC);

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(256),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Generators

fn alpha2() -> impl Strategy<Value = &'static str> {
    select(
        rust_iso3166::ALL
            .iter()
            .map(|c| c.alpha2)
            .collect::<Vec<&'static str>>(),
    )
}

/// Any case of `s`, by a mask.
fn recase(s: &str, mask: u8) -> String {
    s.chars()
        .enumerate()
        .map(|(i, c)| {
            if mask >> (i % 8) & 1 == 1 {
                c.to_ascii_lowercase()
            } else {
                c.to_ascii_uppercase()
            }
        })
        .collect()
}

/// Valid E.164 numbers of several countries (libphonenumber's example numbers).
const PHONES: &[&str] = &[
    "+4915112345678",
    "+14155552671",
    "+447911123456",
    "+33612345678",
    "+34612345678",
    "+393123456789",
    "+573001234567",
    "+5511961234567",
    "+525512345678",
    "+61412345678",
];

/// A phone number written the ways people write them: separators between any digits.
fn formatted_phone() -> impl Strategy<Value = (String, String)> {
    (
        select(PHONES),
        prop::collection::vec(select(&["", "", "", " ", "-", ".", "(", ")"][..]), 16),
    )
        .prop_map(|(phone, seps)| {
            let mut out = String::from("+");
            for (i, digit) in phone[1..].chars().enumerate() {
                if i > 0 {
                    out.push_str(seps[i % seps.len()]);
                }
                out.push(digit);
            }
            (phone.to_owned(), out)
        })
}

fn date_between(from: Date, to: Date) -> impl Strategy<Value = Date> {
    let days = (to - from).whole_days();
    (0..=days).prop_map(move |d| from + Duration::days(d))
}

/// Free text as users type it: letters of many scripts, marks, spaces inside.
fn text(max: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!(
        "[A-Za-zÀ-ÿĀ-žА-я一-龥][A-Za-zÀ-ÿА-я一-龥 '.-]{{0,{}}}[A-Za-zÀ-ÿ]",
        max.saturating_sub(2).min(30)
    ))
    .unwrap()
}

fn pick<T: Copy + std::fmt::Debug + 'static>(all: &'static [T]) -> impl Strategy<Value = T> {
    select(all)
}

/// A canonical user as JSON that satisfies every rule, with optional parts present or not.
fn user_json() -> impl Strategy<Value = Value> {
    let dob_latest = NOW.date() - Duration::days(366 * 18);
    let base = (
        "[A-Za-z0-9][A-Za-z0-9._:@-]{0,40}",
        "[a-z0-9]{1,12}(\\.[a-z0-9]{1,8})?",
        text(100),
        prop::option::of(text(100)),
        text(100),
        date_between(
            Date::from_calendar_date(1900, time::Month::January, 1).unwrap(),
            dob_latest,
        ),
        prop::option::of(select(PHONES)),
    );
    let address = (
        prop::option::of(text(200)),
        prop::option::of(text(200)),
        prop::option::of(text(100)),
        prop::option::of(text(100)),
        prop::option::of("[A-Z0-9]{3,10}"),
        alpha2(),
    );
    let extra = (
        prop::option::of(prop::collection::btree_set(alpha2(), 1..4)),
        prop::option::of(alpha2()),
        prop::option::of((pick(IdentityDocumentType::ALL), "[A-Z0-9]{5,20}", alpha2())),
        prop::option::of(prop::collection::vec(("[0-9]{5,15}", alpha2()), 1..3)),
        prop::option::of((
            pick(EmploymentStatus::ALL),
            prop::option::of(pick(Industry::ALL)),
        )),
        prop::option::of((
            pick(SourceOfFunds::ALL),
            pick(TotalAssetsUsd::ALL),
            pick(MonthlyDeposits::ALL),
            pick(MonthlyVolumeUsd::ALL),
        )),
        prop::option::of((1u32..100, 1i64..3_000)),
        prop::option::of(alpha2()),
    );
    (base, address, extra).prop_map(
        |(
            (external_id, local, first, middle, last, dob, phone),
            (line1, line2, city, region, postal, country),
            (nationalities, citizenship, document, tax_ids, employment, financial, terms, birth),
        )| {
            let mut user = json!({
                "external_id": external_id,
                "type": "individual",
                "email": format!("{local}@example.com"),
                "name": {"first": first, "middle": middle, "last": last},
                "date_of_birth": iso_date::format(dob),
                "phone": phone,
                "address": {
                    "line1": line1, "line2": line2, "city": city, "region": region,
                    "postal_code": postal, "country": country,
                },
                "nationalities": nationalities,
                "citizenship": citizenship,
            });
            let m = user.as_object_mut().unwrap();
            if let Some((kind, number, issuer)) = document {
                m.insert(
                    "identity_document".into(),
                    json!({"type": kind.as_str(), "number": number, "issuing_country": issuer}),
                );
            }
            if let Some(ids) = tax_ids {
                let ids: Vec<Value> = ids
                    .into_iter()
                    .map(|(n, c)| json!({"type": "tin", "number": n, "issuing_country": c}))
                    .collect();
                m.insert("tax_ids".into(), Value::Array(ids));
            }
            if let Some((status, industry)) = employment {
                m.insert(
                    "employment".into(),
                    json!({"status": status.as_str(), "industry": industry.map(|i| i.as_str())}),
                );
            }
            if let Some((s, t, d, v)) = financial {
                m.insert(
                    "financial_profile".into(),
                    json!({"source_of_funds": s.as_str(), "total_assets_usd": t.as_str(),
                           "monthly_deposits": d.as_str(), "monthly_volume_usd": v.as_str()}),
                );
            }
            if let Some((version, days_ago)) = terms {
                let at = NOW - Duration::days(days_ago);
                m.insert(
                    "terms".into(),
                    json!({"version": version, "accepted_at": at.format(&time::format_description::well_known::Rfc3339).unwrap()}),
                );
            }
            if let Some(country) = birth {
                m.insert("birth_place".into(), json!({"city": "Springfield", "country": country}));
            }
            user
        },
    )
}

fn canonical_user() -> impl Strategy<Value = CanonicalUser> {
    user_json().prop_map(|json| match parse_user_at(&json, NOW) {
        Ok(user) => user,
        Err(errors) => panic!("the generator made an invalid user: {errors:?}\n{json}"),
    })
}

/// JSON values up to a small depth, with keys from a small alphabet so patches collide.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-5i64..5).prop_map(Value::from),
        "[a-c]{0,2}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            prop::collection::btree_map("[a-d]", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn json_object() -> impl Strategy<Value = Value> {
    prop::collection::btree_map("[a-d]", json_value(), 0..4)
        .prop_map(|m| Value::Object(m.into_iter().collect()))
}

fn merged(target: &Value, patch: &Value) -> Value {
    let mut t = target.clone();
    apply_merge_patch(&mut t, patch);
    t
}

/// RFC 7396 says an object patch never leaves a `null` member in an object it wrote.
fn has_null_member_from(patch: &Value, result: &Value) -> bool {
    match (patch, result) {
        (Value::Object(p), Value::Object(r)) => p.iter().any(|(k, pv)| match r.get(k) {
            Some(Value::Null) => true,
            Some(rv) => pv.is_object() && has_null_member_from(pv, rv),
            None => false,
        }),
        _ => false,
    }
}

// ---------------------------------------------------------------------------------------------
// Domain parsers

proptest! {
    #![proptest_config(config())]

    #[test]
    fn every_assigned_country_parses_in_any_case_and_round_trips_through_alpha3(
        code in alpha2(), mask in any::<u8>()
    ) {
        let parsed = CountryCode::parse(&recase(code, mask)).unwrap();
        prop_assert_eq!(parsed.as_str(), code);
        let back = rust_iso3166::from_alpha3(parsed.alpha3()).unwrap();
        prop_assert_eq!(back.alpha2, code);
        prop_assert_eq!(parsed.alpha3().len(), 3);
    }

    #[test]
    fn country_parsing_accepts_exactly_the_assigned_codes(s in "\\PC{0,4}") {
        let assigned = s.len() == 2
            && s.bytes().all(|b| b.is_ascii_alphabetic())
            && rust_iso3166::from_alpha2(&s.to_ascii_uppercase()).is_some();
        prop_assert_eq!(CountryCode::parse(&s).is_ok(), assigned, "{:?}", s);
    }

    #[test]
    fn the_openapi_country_pattern_accepts_exactly_what_the_parser_accepts(
        s in "[A-Za-z]{2}|\\PC{0,3}"
    ) {
        use utoipa::PartialSchema;
        let schema = serde_json::to_value(CountryCode::schema()).unwrap();
        let pattern = regex_lite::Regex::new(schema["pattern"].as_str().unwrap()).unwrap();
        prop_assert_eq!(pattern.is_match(&s), CountryCode::parse(&s).is_ok(), "{:?}", s);
    }

    #[test]
    fn phones_normalise_to_e164_whatever_the_separators((e164, written) in formatted_phone()) {
        let phone = Phone::parse(&written).unwrap();
        prop_assert_eq!(phone.as_str(), e164.as_str());
        // Normalised form is a fixed point.
        prop_assert_eq!(Phone::parse(phone.as_str()).unwrap(), phone);
    }

    #[test]
    fn phone_parsing_never_panics_and_accepts_only_e164_shapes(s in "[+0-9 ().-]{0,24}|\\PC{0,24}") {
        if let Ok(phone) = Phone::parse(&s) {
            let p = phone.as_str();
            prop_assert!(p.starts_with('+'));
            prop_assert!((3..=16).contains(&p.len()));
            prop_assert!(p[1..].bytes().all(|b| b.is_ascii_digit()));
        }
    }

    #[test]
    fn real_dates_round_trip_through_iso_format(
        date in date_between(
            Date::from_calendar_date(1, time::Month::January, 1).unwrap(),
            Date::from_calendar_date(9999, time::Month::December, 31).unwrap(),
        )
    ) {
        let text = iso_date::format(date);
        prop_assert_eq!(text.len(), 10);
        prop_assert_eq!(iso_date::parse(&text).unwrap(), date);
    }

    #[test]
    fn date_parsing_accepts_exactly_real_calendar_dates(
        y in 0u32..10_000, m in 0u32..14, d in 0u32..33
    ) {
        let text = format!("{y:04}-{m:02}-{d:02}");
        let real = time::Month::try_from(m as u8)
            .ok()
            .and_then(|month| Date::from_calendar_date(y as i32, month, d as u8).ok());
        match real {
            Some(date) => prop_assert_eq!(iso_date::parse(&text).unwrap(), date),
            None => prop_assert!(iso_date::parse(&text).is_err(), "{}", text),
        }
    }

    #[test]
    fn date_parsing_never_panics(s in "\\PC{0,12}|[0-9-]{8,12}") {
        let _ = iso_date::parse(&s);
    }

    #[test]
    fn user_parsing_never_panics_on_arbitrary_json(value in json_value()) {
        let _ = parse_user_at(&value, NOW);
    }

    #[test]
    fn a_parsed_user_serialises_to_json_that_parses_to_the_same_user(user in canonical_user()) {
        let json = serde_json::to_value(&user).unwrap();
        let again = parse_user_at(&json, NOW).unwrap();
        prop_assert_eq!(serde_json::to_value(&again).unwrap(), json);
    }
}

// ---------------------------------------------------------------------------------------------
// JSON merge patch (RFC 7396)

proptest! {
    #![proptest_config(config())]

    #[test]
    fn an_empty_patch_is_the_identity_on_objects(target in json_object()) {
        prop_assert_eq!(merged(&target, &json!({})), target);
    }

    #[test]
    fn applying_a_patch_twice_equals_applying_it_once(target in json_value(), patch in json_value()) {
        let once = merged(&target, &patch);
        prop_assert_eq!(merged(&once, &patch), once);
    }

    #[test]
    fn null_removes_and_other_members_are_set(target in json_object(), patch in json_object()) {
        let result = merged(&target, &patch);
        let (p, r) = (patch.as_object().unwrap(), result.as_object().unwrap());
        for (key, value) in p {
            if value.is_null() {
                prop_assert!(!r.contains_key(key), "{} kept", key);
            } else if !value.is_object() {
                prop_assert_eq!(&r[key], value);
            } else {
                prop_assert!(r[key].is_object());
            }
        }
        // Members the patch does not name are untouched.
        for (key, value) in target.as_object().unwrap() {
            if !p.contains_key(key) {
                prop_assert_eq!(&r[key], value);
            }
        }
        prop_assert!(!has_null_member_from(&patch, &result));
    }

    #[test]
    fn a_non_object_patch_replaces_the_target(target in json_value(), patch in json_value()) {
        let patch = if patch.is_object() { Value::Array(vec![patch]) } else { patch };
        prop_assert_eq!(merged(&target, &patch), patch);
    }

    #[test]
    fn changed_paths_are_empty_exactly_when_nothing_changed(target in json_object(), patch in json_object()) {
        let result = merged(&target, &patch);
        prop_assert!(changed_paths(&target, &target).is_empty());
        if result == target {
            prop_assert!(changed_paths(&target, &result).is_empty());
        }
        let paths = changed_paths(&target, &result);
        let mut sorted = paths.clone();
        sorted.sort();
        sorted.dedup();
        prop_assert_eq!(paths, sorted);
    }
}

// ---------------------------------------------------------------------------------------------
// Connectors' transformers

fn every_field_path(user: &CanonicalUser) -> Vec<String> {
    changed_paths(&json!({}), &serde_json::to_value(user).unwrap())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn kraken_converts_every_user_that_meets_its_requirements(user in canonical_user()) {
        let request = CreateUserRequest::try_from(&user);
        let complete = missing_fields(ProviderId::Kraken, &user).is_empty();
        if complete {
            let request = request.unwrap();
            let body = serde_json::to_value(&request).unwrap();
            prop_assert_eq!(&body["residence"]["country"], user.address.country.as_str());
            prop_assert_eq!(body["email"].as_str(), Some(user.email.as_str()));
            prop_assert_eq!(body["external_id"].as_str(), Some(user.external_id.as_str()));
            prop_assert_eq!(body["phone"].as_str(), user.phone.as_ref().map(|p| p.as_str()));
            prop_assert!(body["nationalities"].as_array().is_some_and(|n| !n.is_empty()));
        }
        let _ = UpdateUserRequest::from_changes(&user, &every_field_path(&user));
    }

    #[test]
    fn killb_converts_every_user_that_meets_its_requirements(user in canonical_user()) {
        let request = KillbCreateUser::try_from(&user);
        if missing_fields(ProviderId::Killb, &user).is_empty() {
            let body = serde_json::to_value(request.unwrap()).unwrap();
            prop_assert_eq!(&body["data"]["address"]["countryCode"], user.address.country.as_str());
            prop_assert_eq!(body["externalId"].as_str(), Some(user.external_id.as_str()));
            prop_assert_eq!(body["data"]["email"].as_str(), Some(user.email.as_str()));
        }
        let _ = KillbUpdateUser::from_changes(&user, &every_field_path(&user));
    }

    #[test]
    fn carbn_converts_every_user_that_meets_its_requirements_with_alpha3_countries(
        user in canonical_user()
    ) {
        let request = CarbnCreateUser::try_from(&user);
        if missing_fields(ProviderId::Carbn, &user).is_empty() {
            let request = request.unwrap();
            let alpha2 = |alpha3: &str| rust_iso3166::from_alpha3(alpha3).map(|c| c.alpha2);
            prop_assert_eq!(alpha2(&request.address.country), Some(user.address.country.as_str()));
            let document = user.identity_document.as_ref().unwrap();
            prop_assert_eq!(
                alpha2(&request.identity.identity_country_code),
                Some(document.issuing_country.as_str())
            );
            let tax_ids = user.tax_ids.clone().unwrap_or_default();
            prop_assert_eq!(request.documents.len(), tax_ids.len());
            for (sent, tax_id) in request.documents.iter().zip(&tax_ids) {
                prop_assert_eq!(alpha2(&sent.issuing_country), Some(tax_id.issuing_country.as_str()));
            }
            let body = serde_json::to_value(&request).unwrap();
            prop_assert_eq!(body["email_address"].as_str(), Some(user.email.as_str()));
        }
        let _ = CarbnUpdateUser::from_changes(&user, &every_field_path(&user));
    }
}
