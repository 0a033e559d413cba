use super::*;
use crate::domain::merge_patch::{apply_merge_patch, changed_paths};
use serde_json::json;
use time::macros::{date, datetime};

const NOW: OffsetDateTime = datetime!(2026-11-20 12:00:00 UTC);

fn minimal() -> Value {
    json!({
        "external_id": "crm-1",
        "type": "individual",
        "email": "jane@example.com",
        "name": {"first": "Jane", "last": "Doe"},
        "date_of_birth": "1990-01-15",
        "address": {"country": "DE"}
    })
}

/// The full canonical user of the OpenAPI document's example, verbatim.
fn full() -> Value {
    json!({
      "external_id": "crm-000123",
      "type": "individual",
      "email": "jane.doe@example.com",
      "phone": "+4915112345678",
      "name": { "first": "Jane", "middle": "Q", "last": "Doe" },
      "date_of_birth": "1990-01-15",
      "birth_place": { "city": "Berlin", "country": "DE" },
      "nationalities": ["DE"],
      "citizenship": "DE",
      "address": { "line1": "Invalidenstr. 1", "line2": null, "city": "Berlin",
                   "region": "BE", "postal_code": "10115", "country": "DE" },
      "identity_document": { "type": "passport", "number": "C01X00T47", "issuing_country": "DE",
                             "issued_on": "2019-05-01", "expires_on": "2029-04-30" },
      "tax_ids": [ { "type": "steuer_id", "number": "12345678901", "issuing_country": "DE" } ],
      "employment": { "status": "employed", "industry": "computers_and_it",
                      "occupation": "Software Engineer", "employer_name": "Acme GmbH" },
      "financial_profile": { "source_of_funds": "employment", "total_assets_usd": "10k_100k",
                             "monthly_deposits": "up_to_5", "monthly_volume_usd": "1k_100k" },
      "language": "de",
      "terms": { "version": 3, "accepted_at": "2026-11-01T09:30:00Z" },
      "metadata": { "any": "caller-owned JSON, stored and returned, never sent to providers" }
    })
}

fn parse(v: &Value) -> Result<CanonicalUser, Vec<FieldError>> {
    parse_user_at(v, NOW)
}

fn errors_at(v: &Value, now: OffsetDateTime) -> Vec<(String, &'static str)> {
    parse_user_at(v, now)
        .expect_err("expected validation errors")
        .into_iter()
        .map(|e| (e.field, e.code))
        .collect()
}

fn errors(v: &Value) -> Vec<(String, &'static str)> {
    errors_at(v, NOW)
}

fn error_list(v: &Value) -> Vec<FieldError> {
    parse(v).expect_err("expected validation errors")
}

/// Sets a (dotted, with `[i]` indices) path in a JSON document, creating objects on the way.
fn set(mut doc: Value, path: &str, value: Value) -> Value {
    let mut cur = &mut doc;
    let parts: Vec<&str> = path.split('.').collect();
    for (n, part) in parts.iter().enumerate() {
        let (key, idx) = match part.split_once('[') {
            Some((k, rest)) => (
                k,
                Some(rest.trim_end_matches(']').parse::<usize>().unwrap()),
            ),
            None => (*part, None),
        };
        let last = n == parts.len() - 1;
        if !cur.is_object() {
            *cur = json!({});
        }
        let map = cur.as_object_mut().unwrap();
        if last && idx.is_none() {
            map.insert(key.to_owned(), value);
            return doc;
        }
        cur = map.entry(key.to_owned()).or_insert(json!({}));
        if let Some(i) = idx {
            cur = &mut cur.as_array_mut().unwrap()[i];
            if last {
                *cur = value;
                return doc;
            }
        }
    }
    doc
}

fn remove(mut doc: Value, key: &str) -> Value {
    doc.as_object_mut().unwrap().shift_remove(key);
    doc
}

fn one(field: &str, code: &'static str) -> Vec<(String, &'static str)> {
    vec![(field.to_owned(), code)]
}

#[track_caller]
fn assert_one(doc: Value, field: &str, code: &'static str) {
    assert_eq!(errors(&doc), one(field, code), "for {doc}");
}

#[track_caller]
fn assert_ok(doc: Value) -> CanonicalUser {
    match parse(&doc) {
        Ok(u) => u,
        Err(e) => panic!("expected {doc} to parse, got {e:?}"),
    }
}

// --- whole documents -------------------------------------------------------------------------

#[test]
fn api_example_parses_and_serialises_back_identically() {
    let user = assert_ok(full());
    assert_eq!(user.external_id, "crm-000123");
    assert_eq!(user.user_type, UserType::Individual);
    assert_eq!(user.email.as_str(), "jane.doe@example.com");
    assert_eq!(user.phone.as_ref().unwrap().as_str(), "+4915112345678");
    assert_eq!(user.date_of_birth.date(), date!(1990 - 01 - 15));
    assert_eq!(user.address.country.alpha3(), "DEU");
    assert_eq!(
        user.identity_document.as_ref().unwrap().doc_type,
        IdentityDocumentType::Passport
    );
    assert_eq!(
        user.financial_profile.as_ref().unwrap().total_assets_usd,
        Some(TotalAssetsUsd::From10kTo100k)
    );
    assert_eq!(serde_json::to_value(&user).unwrap(), full());
}

#[test]
fn minimal_user_parses_with_nulls_and_empty_metadata() {
    let user = assert_ok(minimal());
    assert_eq!(user.phone, None);
    assert_eq!(user.name.middle, None);
    assert_eq!(user.address.line1, None);
    assert_eq!(user.nationalities, None);
    assert!(user.metadata.is_empty());
    let out = serde_json::to_value(&user).unwrap();
    assert_eq!(out["phone"], Value::Null);
    assert_eq!(out["tax_ids"], Value::Null);
    assert_eq!(out["address"]["line1"], Value::Null);
    assert_eq!(out["metadata"], json!({}));
    assert_eq!(out.as_object().unwrap().len(), USER_KEYS.len());
}

#[test]
fn parse_user_uses_the_current_clock() {
    assert!(parse_user(&minimal()).is_ok());
    assert!(parse_create_request(&minimal()).is_ok());
}

#[test]
fn root_must_be_an_object() {
    for v in [
        json!([]),
        json!("user"),
        json!(null),
        json!(42),
        json!(true),
    ] {
        let errs = error_list(&v);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].field, "");
        assert_eq!(errs[0].code, codes::INVALID_TYPE);
        assert!(errs[0]
            .message
            .starts_with("the request body must be a JSON object"));
    }
}

#[test]
fn empty_object_reports_every_required_field() {
    assert_eq!(
        errors(&json!({})),
        vec![
            ("external_id".to_owned(), codes::REQUIRED),
            ("type".to_owned(), codes::REQUIRED),
            ("email".to_owned(), codes::REQUIRED),
            ("name.first".to_owned(), codes::REQUIRED),
            ("name.last".to_owned(), codes::REQUIRED),
            ("date_of_birth".to_owned(), codes::REQUIRED),
            ("address.country".to_owned(), codes::REQUIRED),
        ]
    );
}

#[test]
fn required_fields_reject_null_and_blank() {
    for key in ["external_id", "type", "email", "date_of_birth"] {
        assert_one(set(minimal(), key, Value::Null), key, codes::REQUIRED);
        assert_one(set(minimal(), key, json!("   ")), key, codes::REQUIRED);
        assert_one(remove(minimal(), key), key, codes::REQUIRED);
    }
    assert_one(
        set(minimal(), "name.first", json!("")),
        "name.first",
        codes::REQUIRED,
    );
    assert_one(
        set(minimal(), "name.last", Value::Null),
        "name.last",
        codes::REQUIRED,
    );
    assert_one(
        set(minimal(), "address.country", json!(" ")),
        "address.country",
        codes::REQUIRED,
    );
    assert_eq!(
        errors(&set(minimal(), "name", Value::Null)),
        vec![
            ("name.first".to_owned(), codes::REQUIRED),
            ("name.last".to_owned(), codes::REQUIRED)
        ]
    );
    assert_eq!(
        errors(&set(minimal(), "name", json!({}))),
        vec![
            ("name.first".to_owned(), codes::REQUIRED),
            ("name.last".to_owned(), codes::REQUIRED)
        ]
    );
    assert_one(
        remove(minimal(), "address"),
        "address.country",
        codes::REQUIRED,
    );
    assert_one(
        set(minimal(), "address", Value::Null),
        "address.country",
        codes::REQUIRED,
    );
}

#[test]
fn optional_fields_accept_null_as_absent() {
    let mut doc = minimal();
    for key in [
        "phone",
        "birth_place",
        "nationalities",
        "citizenship",
        "identity_document",
        "tax_ids",
        "employment",
        "financial_profile",
        "language",
        "terms",
        "metadata",
    ] {
        doc = set(doc, key, Value::Null);
    }
    doc = set(doc, "name.middle", Value::Null);
    doc = set(doc, "address.line2", Value::Null);
    let user = assert_ok(doc);
    assert_eq!(user.phone, None);
    assert!(user.metadata.is_empty());
}

#[test]
fn optional_blank_strings_are_too_short() {
    for path in [
        "phone",
        "citizenship",
        "language",
        "name.middle",
        "address.line1",
        "address.line2",
        "address.city",
        "address.region",
        "address.postal_code",
    ] {
        assert_one(set(minimal(), path, json!("  ")), path, codes::TOO_SHORT);
    }
    let errs = error_list(&set(minimal(), "phone", json!("")));
    assert!(errs[0].message.contains("send null"));
}

#[test]
fn strings_are_trimmed() {
    let doc = set(minimal(), "external_id", json!("  crm-1\t"));
    let doc = set(doc, "name.first", json!(" Jane "));
    let doc = set(doc, "email", json!(" jane@example.com\n"));
    let doc = set(doc, "address.city", json!("  Berlin  "));
    let user = assert_ok(doc);
    assert_eq!(user.external_id, "crm-1");
    assert_eq!(user.name.first, "Jane");
    assert_eq!(user.email.as_str(), "jane@example.com");
    assert_eq!(user.address.city.as_deref(), Some("Berlin"));
}

#[test]
fn collects_all_errors_at_once() {
    let doc = json!({
        "external_id": "bad id!",
        "type": "company",
        "email": "nope",
        "phone": "12345",
        "name": {"first": "Jane", "last": "Doe", "nick": "JD"},
        "date_of_birth": "2020-01-01",
        "nationalities": ["DE", "de"],
        "address": {"country": "XX"},
        "tax_ids": [{"number": "1"}],
        "language": "xx",
        "terms": {"version": 0},
        "extra": 1
    });
    assert_eq!(
        errors(&doc),
        vec![
            ("extra".to_owned(), codes::UNKNOWN_FIELD),
            ("external_id".to_owned(), codes::INVALID_FORMAT),
            ("type".to_owned(), codes::INVALID_VALUE),
            ("email".to_owned(), codes::INVALID_EMAIL),
            ("phone".to_owned(), codes::INVALID_PHONE),
            ("name.nick".to_owned(), codes::UNKNOWN_FIELD),
            ("date_of_birth".to_owned(), codes::UNDERAGE),
            ("nationalities[1]".to_owned(), codes::DUPLICATE_ITEM),
            ("address.country".to_owned(), codes::INVALID_COUNTRY),
            ("tax_ids[0].issuing_country".to_owned(), codes::REQUIRED),
            ("language".to_owned(), codes::INVALID_LANGUAGE),
            ("terms.version".to_owned(), codes::INVALID_VALUE),
        ]
    );
}

#[test]
fn error_count_is_capped() {
    let mut doc = minimal();
    for i in 0..500 {
        doc = set(doc, &format!("junk{i}"), json!(1));
    }
    assert_eq!(error_list(&doc).len(), MAX_ERRORS);
}

#[test]
fn messages_never_echo_the_submitted_value() {
    let doc = json!({
        "external_id": "secret id",
        "type": "secrettype",
        "email": "secret@@example.com",
        "phone": "+49 secret",
        "name": {"first": "x".repeat(101), "last": "Doe"},
        "date_of_birth": "secret",
        "address": {"country": "secret"},
        "language": "secret"
    });
    for e in error_list(&doc) {
        assert!(!e.message.contains("secret"), "{e:?}");
        assert!(!e.message.contains("xxxx"), "{e:?}");
    }
}

// --- unknown fields and types ----------------------------------------------------------------

#[test]
fn unknown_fields_are_rejected_at_every_level() {
    let cases = [
        ("nickname", json!("JD")),
        ("name.nickname", json!("JD")),
        ("address.street", json!("x")),
        ("birth_place.region", json!("x")),
        ("identity_document.expiry", json!("2030-01-01")),
        ("employment.salary", json!(1)),
        ("financial_profile.income", json!("high")),
        ("terms.ip", json!("1.2.3.4")),
    ];
    let base = full();
    for (path, value) in cases {
        assert_one(set(base.clone(), path, value), path, codes::UNKNOWN_FIELD);
    }
    let doc = set(full(), "tax_ids[0].kind", json!("x"));
    assert_one(doc, "tax_ids[0].kind", codes::UNKNOWN_FIELD);
    let errs = error_list(&set(minimal(), "name.nickname", json!("JD")));
    assert_eq!(
        errs[0].message,
        "is not a known field; allowed: first, middle, last"
    );
    // `providers` belongs to the create request, not to the user.
    assert_one(
        set(minimal(), "providers", json!(["killb"])),
        "providers",
        codes::UNKNOWN_FIELD,
    );
    // A user field named like a key (no nulls treated as known).
    assert_one(
        set(minimal(), "Email", json!("a@b.co")),
        "Email",
        codes::UNKNOWN_FIELD,
    );
}

#[test]
fn wrong_json_types_are_invalid_type() {
    let cases = [
        ("external_id", json!(123)),
        ("type", json!(true)),
        ("email", json!(["a@b.co"])),
        ("phone", json!(4915112345678u64)),
        ("name", json!("Jane Doe")),
        ("name.first", json!({"x": 1})),
        ("date_of_birth", json!(19900115)),
        ("birth_place", json!("Berlin")),
        ("nationalities", json!("DE")),
        ("citizenship", json!(["DE"])),
        ("address", json!([])),
        ("address.line1", json!(1)),
        ("identity_document", json!("passport")),
        ("tax_ids", json!({"number": "1"})),
        ("employment", json!("employed")),
        ("financial_profile", json!([])),
        ("language", json!(1)),
        ("terms", json!(3)),
        ("terms.version", json!("3")),
        ("terms.accepted_at", json!(1_700_000_000)),
        ("metadata", json!(["a"])),
    ];
    for (path, value) in cases {
        assert_one(set(full(), path, value), path, codes::INVALID_TYPE);
    }
    let errs = error_list(&set(minimal(), "email", json!(5)));
    assert_eq!(errs[0].message, "must be a string, not a number");
    let errs = error_list(&set(minimal(), "nationalities", json!("DE")));
    assert_eq!(
        errs[0].message,
        "must be an array of country codes, not a string"
    );
}

// --- individual rules ------------------------------------------------------------------------

#[test]
fn external_id_format_and_length() {
    let ok = ["a", "crm-000123", "A.b_c:d@e-f", &"x".repeat(128)];
    for id in ok {
        assert_eq!(
            assert_ok(set(minimal(), "external_id", json!(id))).external_id,
            id
        );
    }
    for bad in ["crm 1", "crm/1", "crm#1", "é", "crm,1", "a+b"] {
        assert_one(
            set(minimal(), "external_id", json!(bad)),
            "external_id",
            codes::INVALID_FORMAT,
        );
    }
    assert_one(
        set(minimal(), "external_id", json!("x".repeat(129))),
        "external_id",
        codes::TOO_LONG,
    );
}

#[test]
fn type_must_be_individual() {
    let errs = error_list(&set(minimal(), "type", json!("company")));
    assert_eq!(errs[0].field, "type");
    assert_eq!(errs[0].code, codes::INVALID_VALUE);
    assert_eq!(errs[0].message, "must be one of: individual");
    assert_one(
        set(minimal(), "type", json!("Individual")),
        "type",
        codes::INVALID_VALUE,
    );
}

#[test]
fn email_is_validated_and_domain_lowercased() {
    let user = assert_ok(set(minimal(), "email", json!("Jane.Doe@Example.COM")));
    assert_eq!(user.email.as_str(), "Jane.Doe@example.com");
    for bad in [
        "jane",
        "jane@example",
        "jane@@example.com",
        "ja ne@example.com",
        "@x.de",
    ] {
        assert_one(
            set(minimal(), "email", json!(bad)),
            "email",
            codes::INVALID_EMAIL,
        );
    }
}

#[test]
fn phone_is_lenient_on_input_and_stored_as_e164() {
    let user = assert_ok(set(minimal(), "phone", json!("+49 (151) 1234-56.78")));
    assert_eq!(user.phone.unwrap().as_str(), "+4915112345678");
    for bad in [
        "015112345678",
        "+49 151 CALL ME",
        "+",
        "+1234567890123456",
        "+49 1",
    ] {
        assert_one(
            set(minimal(), "phone", json!(bad)),
            "phone",
            codes::INVALID_PHONE,
        );
    }
    let errs = error_list(&set(minimal(), "phone", json!("015112345678")));
    assert!(errs[0].message.contains("e.g. +4915112345678"));
}

#[test]
fn countries_are_case_insensitive_and_validated_everywhere() {
    let paths = [
        "address.country",
        "birth_place.country",
        "citizenship",
        "identity_document.issuing_country",
        "tax_ids[0].issuing_country",
        "nationalities[0]",
    ];
    for path in paths {
        let user = assert_ok(set(full(), path, json!("at")));
        let v = serde_json::to_value(&user).unwrap();
        let got = match path {
            "address.country" => &v["address"]["country"],
            "birth_place.country" => &v["birth_place"]["country"],
            "citizenship" => &v["citizenship"],
            "identity_document.issuing_country" => &v["identity_document"]["issuing_country"],
            "tax_ids[0].issuing_country" => &v["tax_ids"][0]["issuing_country"],
            _ => &v["nationalities"][0],
        };
        assert_eq!(got, &json!("AT"), "{path}");
        for bad in ["XX", "DEU", "D", "UK", "12"] {
            assert_one(set(full(), path, json!(bad)), path, codes::INVALID_COUNTRY);
        }
    }
    let errs = error_list(&set(minimal(), "address.country", json!("Germany")));
    assert_eq!(
        errs[0].message,
        "must be an ISO 3166-1 alpha-2 country code, e.g. DE"
    );
    // birth_place needs its country.
    assert_one(
        set(minimal(), "birth_place", json!({"city": "Berlin"})),
        "birth_place.country",
        codes::REQUIRED,
    );
}

#[test]
fn nationalities_rules() {
    let user = assert_ok(set(minimal(), "nationalities", json!(["de", "AT", "co"])));
    let codes_out: Vec<_> = user
        .nationalities
        .unwrap()
        .iter()
        .map(|c| c.as_str())
        .collect();
    assert_eq!(codes_out, ["DE", "AT", "CO"]);

    assert_one(
        set(minimal(), "nationalities", json!([])),
        "nationalities",
        codes::TOO_SHORT,
    );
    let ten = json!(["DE", "AT", "FR", "ES", "IT", "NL", "BE", "PL", "CZ", "DK"]);
    assert!(parse(&set(minimal(), "nationalities", ten)).is_ok());
    let eleven = json!(["DE", "AT", "FR", "ES", "IT", "NL", "BE", "PL", "CZ", "DK", "SE"]);
    assert_one(
        set(minimal(), "nationalities", eleven),
        "nationalities",
        codes::TOO_MANY_ITEMS,
    );
    assert_one(
        set(minimal(), "nationalities", json!(["DE", "de"])),
        "nationalities[1]",
        codes::DUPLICATE_ITEM,
    );
    assert_one(
        set(minimal(), "nationalities", json!(["DE", 5])),
        "nationalities[1]",
        codes::INVALID_TYPE,
    );
    assert_one(
        set(minimal(), "nationalities", json!(["DE", null])),
        "nationalities[1]",
        codes::INVALID_TYPE,
    );
    assert_one(
        set(minimal(), "nationalities", json!(["XX", "DE"])),
        "nationalities[0]",
        codes::INVALID_COUNTRY,
    );
    assert_one(
        set(minimal(), "nationalities", json!(["DE", ""])),
        "nationalities[1]",
        codes::REQUIRED,
    );
}

#[test]
fn language_is_iso_639_1_lowercased() {
    let user = assert_ok(set(minimal(), "language", json!("PT")));
    assert_eq!(user.language.unwrap().as_str(), "pt");
    for bad in ["xx", "deu", "d", "de-DE", "english"] {
        assert_one(
            set(minimal(), "language", json!(bad)),
            "language",
            codes::INVALID_LANGUAGE,
        );
    }
}

#[test]
fn date_of_birth_format_and_range() {
    for bad in [
        "15.01.1990",
        "1990-1-15",
        "1990-02-30",
        "1990-13-01",
        "1990-01-15T00:00:00Z",
    ] {
        assert_one(
            set(minimal(), "date_of_birth", json!(bad)),
            "date_of_birth",
            codes::INVALID_DATE,
        );
    }
    assert_one(
        set(minimal(), "date_of_birth", json!("2026-11-20")),
        "date_of_birth",
        codes::DATE_NOT_IN_PAST,
    );
    assert_one(
        set(minimal(), "date_of_birth", json!("2030-01-01")),
        "date_of_birth",
        codes::DATE_NOT_IN_PAST,
    );
    assert_one(
        set(minimal(), "date_of_birth", json!("1899-12-31")),
        "date_of_birth",
        codes::INVALID_DATE,
    );
    assert!(parse(&set(minimal(), "date_of_birth", json!("1900-01-01"))).is_ok());
}

#[test]
fn date_of_birth_eighteenth_birthday_boundary() {
    // Today is 2026-11-20.
    assert!(parse(&set(minimal(), "date_of_birth", json!("2008-11-20"))).is_ok());
    assert!(parse(&set(minimal(), "date_of_birth", json!("2008-11-19"))).is_ok());
    let errs = error_list(&set(minimal(), "date_of_birth", json!("2008-11-21")));
    assert_eq!(errs[0].field, "date_of_birth");
    assert_eq!(errs[0].code, codes::UNDERAGE);
    assert_eq!(errs[0].message, "the user must be at least 18 years old");
    assert_one(
        set(minimal(), "date_of_birth", json!("2026-11-19")),
        "date_of_birth",
        codes::UNDERAGE,
    );
}

#[test]
fn date_of_birth_on_february_29() {
    let doc = set(minimal(), "date_of_birth", json!("2008-02-29"));
    // 2026 is not a leap year: the 18th birthday counts from 1 March.
    assert_eq!(
        errors_at(&doc, datetime!(2026-02-28 23:59:59 UTC)),
        one("date_of_birth", codes::UNDERAGE)
    );
    assert!(parse_user_at(&doc, datetime!(2026-03-01 00:00:00 UTC)).is_ok());
    // In a leap year, 29 February itself.
    let doc = set(minimal(), "date_of_birth", json!("2010-02-29"));
    assert_one(doc, "date_of_birth", codes::INVALID_DATE); // 2010 is not a leap year
    let doc = set(minimal(), "date_of_birth", json!("2012-02-29"));
    assert!(parse_user_at(&doc, datetime!(2030-02-28 12:00:00 UTC)).is_err());
    assert!(parse_user_at(&doc, datetime!(2030-03-01 00:00:00 UTC)).is_ok());
    let doc = set(minimal(), "date_of_birth", json!("2000-02-29"));
    assert!(parse_user_at(&doc, datetime!(2018-02-28 12:00:00 UTC)).is_err());
    assert!(parse_user_at(&doc, datetime!(2018-03-01 00:00:00 UTC)).is_ok());
}

#[test]
fn today_is_the_utc_date_of_now() {
    // 2026-11-21 01:00 in +02:00 is still 2026-11-20 in UTC.
    let now = datetime!(2026-11-21 01:00:00 +02:00);
    let doc = set(minimal(), "date_of_birth", json!("2008-11-21"));
    assert_eq!(errors_at(&doc, now), one("date_of_birth", codes::UNDERAGE));
}

#[test]
fn identity_document_rules() {
    let base = full();
    let p = "identity_document";
    for key in ["type", "number", "issuing_country"] {
        let doc = set(base.clone(), &format!("{p}.{key}"), Value::Null);
        assert_one(doc, &format!("{p}.{key}"), codes::REQUIRED);
    }
    let errs = error_list(&set(base.clone(), "identity_document.type", json!("visa")));
    assert_eq!(errs[0].code, codes::INVALID_VALUE);
    assert_eq!(
        errs[0].message,
        "must be one of: passport, national_id, drivers_license, residence_permit"
    );
    for t in IdentityDocumentType::ALL {
        assert!(parse(&set(
            base.clone(),
            "identity_document.type",
            json!(t.as_str())
        ))
        .is_ok());
    }
    // Number: letters, digits, spaces, hyphens; ≤ 64.
    assert!(parse(&set(
        base.clone(),
        "identity_document.number",
        json!("AB 12-34")
    ))
    .is_ok());
    for bad in ["C01/X00", "C01.X00", "Ñ123"] {
        assert_one(
            set(base.clone(), "identity_document.number", json!(bad)),
            "identity_document.number",
            codes::INVALID_FORMAT,
        );
    }
    assert!(parse(&set(
        base.clone(),
        "identity_document.number",
        json!("9".repeat(64))
    ))
    .is_ok());
    assert_one(
        set(
            base.clone(),
            "identity_document.number",
            json!("9".repeat(65)),
        ),
        "identity_document.number",
        codes::TOO_LONG,
    );
}

#[test]
fn identity_document_dates() {
    let base = full();
    let issued = "identity_document.issued_on";
    let expires = "identity_document.expires_on";
    // Issued today is fine; tomorrow is not.
    assert!(parse(&set(base.clone(), issued, json!("2026-11-20"))).is_ok());
    assert_one(
        set(base.clone(), issued, json!("2026-11-21")),
        issued,
        codes::DATE_NOT_IN_PAST,
    );
    assert_one(
        set(base.clone(), issued, json!("2019-02-29")),
        issued,
        codes::INVALID_DATE,
    );
    assert_one(
        set(base.clone(), issued, json!("1899-01-01")),
        issued,
        codes::INVALID_DATE,
    );
    // Expiry must follow issue.
    assert_one(
        set(base.clone(), expires, json!("2019-05-01")),
        expires,
        codes::INVALID_DATE,
    );
    assert_one(
        set(base.clone(), expires, json!("2018-01-01")),
        expires,
        codes::INVALID_DATE,
    );
    let errs = error_list(&set(base.clone(), expires, json!("2019-04-30")));
    assert_eq!(errs[0].message, "must be after issued_on");
    assert_one(
        set(base.clone(), expires, json!("2029-13-01")),
        expires,
        codes::INVALID_DATE,
    );
    // An expired document is accepted, as is an expiry without an issue date.
    assert!(parse(&set(base.clone(), expires, json!("2020-01-01"))).is_ok());
    let doc = set(
        set(base.clone(), issued, Value::Null),
        expires,
        json!("2001-01-01"),
    );
    let user = assert_ok(doc);
    let d = user.identity_document.unwrap();
    assert_eq!(d.issued_on, None);
    assert_eq!(d.expires_on, Some(date!(2001 - 01 - 01)));
}

#[test]
fn tax_id_rules() {
    let base = full();
    let user = assert_ok(set(
        base.clone(),
        "tax_ids",
        json!([{"number": "123-45-6789", "issuing_country": "us"}, {"type": "cpf", "number": "1", "issuing_country": "BR"}]),
    ));
    let tax = user.tax_ids.unwrap();
    assert_eq!(tax[0].tax_type, None);
    assert_eq!(tax[0].issuing_country.as_str(), "US");
    assert_eq!(tax[1].tax_type.as_deref(), Some("cpf"));

    assert_one(
        set(base.clone(), "tax_ids", json!([])),
        "tax_ids",
        codes::TOO_SHORT,
    );
    let item = json!({"number": "1", "issuing_country": "DE"});
    let eleven: Vec<Value> = (0..11)
        .map(|i| json!({"number": i.to_string(), "issuing_country": "DE"}))
        .collect();
    assert_one(
        set(base.clone(), "tax_ids", json!(eleven)),
        "tax_ids",
        codes::TOO_MANY_ITEMS,
    );
    assert!(parse(&set(base.clone(), "tax_ids", json!(eleven[..10]))).is_ok());
    assert_one(
        set(base.clone(), "tax_ids", json!([item, item])),
        "tax_ids[1]",
        codes::DUPLICATE_ITEM,
    );
    assert_one(
        set(base.clone(), "tax_ids", json!([item, "12345"])),
        "tax_ids[1]",
        codes::INVALID_TYPE,
    );
    assert_one(
        set(base.clone(), "tax_ids[0].number", Value::Null),
        "tax_ids[0].number",
        codes::REQUIRED,
    );
    assert_one(
        set(base.clone(), "tax_ids[0].number", json!("1".repeat(65))),
        "tax_ids[0].number",
        codes::TOO_LONG,
    );
    for bad in ["Steuer-ID", "steuer id", "STEUER_ID", "ß"] {
        assert_one(
            set(base.clone(), "tax_ids[0].type", json!(bad)),
            "tax_ids[0].type",
            codes::INVALID_FORMAT,
        );
    }
    assert!(parse(&set(base.clone(), "tax_ids[0].type", json!("a".repeat(40)))).is_ok());
    assert_one(
        set(base.clone(), "tax_ids[0].type", json!("a".repeat(41))),
        "tax_ids[0].type",
        codes::TOO_LONG,
    );
    assert_one(
        set(base.clone(), "tax_ids[0].type", json!("")),
        "tax_ids[0].type",
        codes::TOO_SHORT,
    );
}

#[test]
fn text_length_limits_count_characters() {
    let cases = [
        ("name.first", 100),
        ("name.middle", 100),
        ("name.last", 100),
        ("address.line1", 200),
        ("address.line2", 200),
        ("address.city", 100),
        ("address.region", 100),
        ("address.postal_code", 20),
        ("birth_place.city", 100),
        ("employment.occupation", 200),
        ("employment.employer_name", 200),
    ];
    for (path, max) in cases {
        // Multi-byte characters count once.
        assert!(
            parse(&set(full(), path, json!("Ä".repeat(max)))).is_ok(),
            "{path} at {max}"
        );
        assert_one(
            set(full(), path, json!("Ä".repeat(max + 1))),
            path,
            codes::TOO_LONG,
        );
    }
    let errs = error_list(&set(full(), "address.postal_code", json!("1".repeat(21))));
    assert_eq!(errs[0].message, "must be at most 20 characters");
}

#[test]
fn control_characters_are_rejected_in_text() {
    assert_one(
        set(minimal(), "name.first", json!("Ja\nne")),
        "name.first",
        codes::INVALID_FORMAT,
    );
    assert_one(
        set(minimal(), "address.line1", json!("a\u{0}b")),
        "address.line1",
        codes::INVALID_FORMAT,
    );
}

#[test]
fn employment_rules() {
    let base = full();
    assert_one(
        set(base.clone(), "employment.status", Value::Null),
        "employment.status",
        codes::REQUIRED,
    );
    let user = assert_ok(set(
        base.clone(),
        "employment",
        json!({"status": "retired"}),
    ));
    let e = user.employment.unwrap();
    assert_eq!(e.status, EmploymentStatus::Retired);
    assert_eq!(e.industry, None);
    for s in EmploymentStatus::ALL {
        assert!(parse(&set(base.clone(), "employment.status", json!(s.as_str()))).is_ok());
    }
    for i in Industry::ALL {
        assert!(parse(&set(base.clone(), "employment.industry", json!(i.as_str()))).is_ok());
    }
    let errs = error_list(&set(base.clone(), "employment.industry", json!("it")));
    assert_eq!(errs[0].field, "employment.industry");
    assert_eq!(errs[0].code, codes::INVALID_VALUE);
    assert!(errs[0].message.contains("computers_and_it"));
    assert_one(
        set(base.clone(), "employment.status", json!("EMPLOYED")),
        "employment.status",
        codes::INVALID_VALUE,
    );
}

#[test]
fn financial_profile_bands() {
    let base = full();
    let user = assert_ok(set(
        base.clone(),
        "financial_profile",
        json!({"source_of_funds": "savings", "total_assets_usd": "more_than_250m",
               "monthly_deposits": "more_than_25", "monthly_volume_usd": "up_to_1k"}),
    ));
    let f = user.financial_profile.unwrap();
    assert_eq!(f.source_of_funds, Some(SourceOfFunds::Savings));
    assert_eq!(f.total_assets_usd, Some(TotalAssetsUsd::MoreThan250m));
    assert_eq!(f.monthly_deposits, Some(MonthlyDeposits::MoreThan25));
    assert_eq!(f.monthly_volume_usd, Some(MonthlyVolumeUsd::UpTo1k));
    assert!(parse(&set(base.clone(), "financial_profile", json!({}))).is_ok());

    let cases: [(&str, Vec<&str>); 4] = [
        (
            "source_of_funds",
            SourceOfFunds::ALL.iter().map(|v| v.as_str()).collect(),
        ),
        (
            "total_assets_usd",
            TotalAssetsUsd::ALL.iter().map(|v| v.as_str()).collect(),
        ),
        (
            "monthly_deposits",
            MonthlyDeposits::ALL.iter().map(|v| v.as_str()).collect(),
        ),
        (
            "monthly_volume_usd",
            MonthlyVolumeUsd::ALL.iter().map(|v| v.as_str()).collect(),
        ),
    ];
    for (key, values) in cases {
        let path = format!("financial_profile.{key}");
        for v in &values {
            assert!(
                parse(&set(base.clone(), &path, json!(v))).is_ok(),
                "{path}={v}"
            );
        }
        let errs = error_list(&set(base.clone(), &path, json!("TEN_TO_100K")));
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].field, path);
        assert_eq!(errs[0].code, codes::INVALID_VALUE);
        assert_eq!(
            errs[0].message,
            format!("must be one of: {}", values.join(", "))
        );
    }
    // Company-only KillB sources are not offered for a person.
    assert_one(
        set(
            base,
            "financial_profile.source_of_funds",
            json!("company_capital"),
        ),
        "financial_profile.source_of_funds",
        codes::INVALID_VALUE,
    );
}

#[test]
fn terms_version() {
    let base = full();
    let p = "terms.version";
    for ok in [1, 3, 10_000] {
        let user = assert_ok(set(base.clone(), p, json!(ok)));
        assert_eq!(user.terms.unwrap().version, Some(ok));
    }
    for bad in [json!(0), json!(10_001), json!(-1), json!(u64::MAX)] {
        assert_one(set(base.clone(), p, bad), p, codes::INVALID_VALUE);
    }
    for bad in [json!(3.5), json!(3.0), json!("3"), json!(true)] {
        assert_one(set(base.clone(), p, bad), p, codes::INVALID_TYPE);
    }
    let errs = error_list(&set(base, p, json!(0)));
    assert_eq!(errs[0].message, "must be between 1 and 10000");
}

#[test]
fn terms_accepted_at() {
    let base = full();
    let p = "terms.accepted_at";
    let user = assert_ok(set(base.clone(), p, json!("2026-11-01T11:30:00+02:00")));
    let at = user.terms.as_ref().unwrap().accepted_at.unwrap();
    assert_eq!(at, datetime!(2026-11-01 09:30:00 UTC));
    assert!(at.offset().is_utc());
    assert_eq!(
        serde_json::to_value(&user).unwrap()["terms"]["accepted_at"],
        json!("2026-11-01T09:30:00Z")
    );
    // Within the 5-minute skew.
    assert!(parse(&set(base.clone(), p, json!("2026-11-20T12:05:00Z"))).is_ok());
    assert_one(
        set(base.clone(), p, json!("2026-11-20T12:05:01Z")),
        p,
        codes::DATE_NOT_IN_PAST,
    );
    for bad in [
        "2026-11-01",
        "2026-11-01T09:30:00",
        "2026-11-01 09:30",
        "yesterday",
        "2026-02-30T09:30:00Z",
    ] {
        assert_one(set(base.clone(), p, json!(bad)), p, codes::INVALID_DATE);
    }
    // Both fields optional.
    assert!(parse(&set(base, "terms", json!({"version": 2}))).is_ok());
}

#[test]
fn metadata_rules() {
    let base = minimal();
    let meta = json!({"crm": {"tags": ["vip", " spaced "], "score": 1.5}, "ok": true});
    let user = assert_ok(set(base.clone(), "metadata", meta.clone()));
    assert_eq!(
        Value::Object(user.metadata),
        meta,
        "stored verbatim, not trimmed"
    );

    let fifty: Map<String, Value> = (0..50).map(|i| (format!("k{i}"), json!(i))).collect();
    assert!(parse(&set(base.clone(), "metadata", Value::Object(fifty.clone()))).is_ok());
    let mut fifty_one = fifty;
    fifty_one.insert("k50".into(), json!(50));
    assert_one(
        set(base.clone(), "metadata", Value::Object(fifty_one)),
        "metadata",
        codes::TOO_LARGE,
    );

    let long_key = "k".repeat(41);
    assert!(parse(&set(base.clone(), "metadata", json!({"k".repeat(40): 1}))).is_ok());
    assert_one(
        set(base.clone(), "metadata", json!({long_key.clone(): 1})),
        &format!("metadata.{long_key}"),
        codes::TOO_LONG,
    );
    assert_one(
        set(base.clone(), "metadata", json!({"": 1})),
        "metadata",
        codes::TOO_SHORT,
    );

    // 8 KiB: {"a":"…"} is 8 bytes of overhead.
    let fits = json!({"a": "x".repeat(8192 - 8)});
    assert_eq!(serde_json::to_vec(&fits).unwrap().len(), 8192);
    assert!(parse(&set(base.clone(), "metadata", fits)).is_ok());
    assert_one(
        set(base.clone(), "metadata", json!({"a": "x".repeat(8192 - 7)})),
        "metadata",
        codes::TOO_LARGE,
    );

    // Depth: metadata itself is level 1.
    let five = json!({"a": {"b": {"c": {"d": 1}}}, "z": [[[["ok"]]]]});
    assert_eq!(depth(&five), 5);
    assert!(parse(&set(base.clone(), "metadata", five)).is_ok());
    assert_one(
        set(
            base.clone(),
            "metadata",
            json!({"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}}),
        ),
        "metadata",
        codes::TOO_DEEP,
    );
    assert_one(
        set(base, "metadata", json!({"a": [[[[[1]]]]]})),
        "metadata",
        codes::TOO_DEEP,
    );
}

// --- create request --------------------------------------------------------------------------

fn create_errors(v: &Value) -> Vec<(String, &'static str)> {
    parse_create_request_at(v, NOW)
        .expect_err("expected errors")
        .into_iter()
        .map(|e| (e.field, e.code))
        .collect()
}

#[test]
fn create_request_providers() {
    let (user, providers) = parse_create_request_at(&minimal(), NOW).unwrap();
    assert_eq!(user.external_id, "crm-1");
    assert_eq!(providers, None);

    let doc = set(minimal(), "providers", Value::Null);
    assert_eq!(parse_create_request_at(&doc, NOW).unwrap().1, None);

    let doc = set(minimal(), "providers", json!(["killb", " carbn "]));
    assert_eq!(
        parse_create_request_at(&doc, NOW).unwrap().1,
        Some(vec![ProviderId::Killb, ProviderId::Carbn])
    );
    let doc = set(minimal(), "providers", json!(["kraken", "killb", "carbn"]));
    assert_eq!(
        parse_create_request_at(&doc, NOW).unwrap().1.unwrap().len(),
        3
    );

    let cases = [
        (json!([]), "providers", codes::TOO_SHORT),
        (json!("killb"), "providers", codes::INVALID_TYPE),
        (
            json!(["killb", "carbn", "kraken", "killb"]),
            "providers",
            codes::TOO_MANY_ITEMS,
        ),
        (
            json!(["killb", "killb"]),
            "providers[1]",
            codes::DUPLICATE_ITEM,
        ),
        (json!(["stripe"]), "providers[0]", codes::INVALID_VALUE),
        (json!(["KillB"]), "providers[0]", codes::INVALID_VALUE),
        (json!([""]), "providers[0]", codes::REQUIRED),
        (json!([1]), "providers[0]", codes::INVALID_TYPE),
    ];
    for (value, field, code) in cases {
        let doc = set(minimal(), "providers", value.clone());
        assert_eq!(create_errors(&doc), one(field, code), "{value}");
    }
    let errs =
        parse_create_request_at(&set(minimal(), "providers", json!(["x"])), NOW).unwrap_err();
    assert_eq!(errs[0].message, "must be one of: kraken, killb, carbn");
}

#[test]
fn create_request_reports_user_and_provider_errors_together() {
    let doc = set(remove(minimal(), "email"), "providers", json!(["nope"]));
    assert_eq!(
        create_errors(&doc),
        vec![
            ("email".to_owned(), codes::REQUIRED),
            ("providers[0]".to_owned(), codes::INVALID_VALUE),
        ]
    );
    assert_eq!(create_errors(&json!([1])), one("", codes::INVALID_TYPE));
}

// --- the PATCH flow --------------------------------------------------------------------------

fn patch_flow(patch: Value) -> Result<(CanonicalUser, Vec<String>), Vec<FieldError>> {
    let stored = parse(&full()).unwrap();
    let before = serde_json::to_value(&stored).unwrap();
    let mut doc = before.clone();
    apply_merge_patch(&mut doc, &patch);
    let updated = parse(&doc)?;
    let after = serde_json::to_value(&updated).unwrap();
    Ok((updated, changed_paths(&before, &after)))
}

#[test]
fn patch_flow_reports_changed_paths() {
    let (user, changed) = patch_flow(json!({
        "phone": null,
        "address": {"city": "Hamburg", "line2": "3. OG"},
        "nationalities": ["de", "at"],
        "language": "DE",
        "metadata": {"any": null, "new": 1}
    }))
    .unwrap();
    assert_eq!(user.phone, None);
    assert_eq!(
        changed,
        vec![
            "address.city",
            "address.line2",
            "metadata.any",
            "metadata.new",
            "nationalities",
            "phone",
        ]
    );
    // Normalisation makes a case-only change a no-op.
    let (_, changed) =
        patch_flow(json!({"citizenship": "de", "email": "jane.doe@EXAMPLE.com"})).unwrap();
    assert!(changed.is_empty(), "{changed:?}");
    // Clearing a whole object reports its leaves.
    let (_, changed) = patch_flow(json!({"employment": null})).unwrap();
    assert_eq!(
        changed,
        vec![
            "employment.employer_name",
            "employment.industry",
            "employment.occupation",
            "employment.status",
        ]
    );
}

#[test]
fn patch_flow_applies_the_same_rules_and_paths() {
    let errs = patch_flow(json!({"name": null})).unwrap_err();
    let got: Vec<_> = errs.iter().map(|e| (e.field.as_str(), e.code)).collect();
    assert_eq!(
        got,
        vec![
            ("name.first", codes::REQUIRED),
            ("name.last", codes::REQUIRED)
        ]
    );
    let errs = patch_flow(json!({"email": null})).unwrap_err();
    assert_eq!(
        (errs[0].field.as_str(), errs[0].code),
        ("email", codes::REQUIRED)
    );
    let errs =
        patch_flow(json!({"tax_ids": [{"number": "1"}], "address": {"zip": "1"}})).unwrap_err();
    let got: Vec<_> = errs.iter().map(|e| (e.field.as_str(), e.code)).collect();
    assert_eq!(
        got,
        vec![
            ("address.zip", codes::UNKNOWN_FIELD),
            ("tax_ids[0].issuing_country", codes::REQUIRED),
        ]
    );
}

#[test]
fn parsed_user_debug_has_no_pii() {
    let user = assert_ok(full());
    let debug = format!("{user:?}");
    for pii in [
        "jane.doe",
        "4915112345678",
        "\"Jane\"",
        "\"Doe\"",
        "1990",
        "Invalidenstr",
        "10115",
        "C01X00T47",
        "12345678901",
        "caller-owned",
    ] {
        assert!(!debug.contains(pii), "{pii} leaked: {debug}");
    }
}
