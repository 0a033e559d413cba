//! A small OpenAPI/JSON-Schema checker for test-time validation of outbound bodies against the
//! third-party provider specs vendored in `tests/fixtures/` (trimmed to what the tests use; see
//! `tests/fixtures/README.md` for each file's origin and licence).
//!
//! Supported: `$ref` (local), `type` (string or list), `nullable`, `enum`, `const`, `required`,
//! `properties`, `additionalProperties` (bool or schema), `items`, `allOf`/`anyOf`/`oneOf`,
//! `minLength`/`maxLength`, `minItems`/`maxItems`, `minimum`/`maximum`, `pattern`, `format: date`.

use serde_json::Value;

/// Loads a spec from `tests/fixtures/`; the tests need nothing outside the repository.
pub fn load_spec(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
        .join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("spec {} not readable: {e}", path.display()));
    serde_json::from_str(&text).expect("spec is JSON")
}

/// Follows a JSON pointer such as `#/components/schemas/CreateUserDto`.
pub fn pointer<'a>(spec: &'a Value, reference: &str) -> &'a Value {
    let pointer = reference.trim_start_matches('#');
    spec.pointer(pointer)
        .unwrap_or_else(|| panic!("unresolvable $ref {reference}"))
}

/// Validates `instance` against `schema`, returning every violation with its JSON path.
pub fn validate(spec: &Value, schema: &Value, instance: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    check(spec, schema, instance, "$", &mut errors);
    errors
}

/// Panics with every violation when `instance` does not conform.
pub fn assert_valid(spec: &Value, schema: &Value, instance: &Value) {
    let errors = validate(spec, schema, instance);
    assert!(
        errors.is_empty(),
        "body does not match the spec:\n{}\nbody: {instance}",
        errors.join("\n")
    );
}

fn type_matches(expected: &str, instance: &Value) -> bool {
    match expected {
        "string" => instance.is_string(),
        "integer" => instance.is_i64() || instance.is_u64(),
        "number" => instance.is_number(),
        "boolean" => instance.is_boolean(),
        "array" => instance.is_array(),
        "object" => instance.is_object(),
        "null" => instance.is_null(),
        _ => true,
    }
}

fn check(spec: &Value, schema: &Value, instance: &Value, path: &str, errors: &mut Vec<String>) {
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        check(spec, pointer(spec, reference), instance, path, errors);
        return;
    }
    if instance.is_null() && schema.get("nullable").and_then(Value::as_bool) == Some(true) {
        return;
    }
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        for sub in all {
            check(spec, sub, instance, path, errors);
        }
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(options) = schema.get(key).and_then(Value::as_array) {
            let matching = options
                .iter()
                .filter(|sub| validate(spec, sub, instance).is_empty())
                .count();
            let ok = if key == "anyOf" {
                matching >= 1
            } else {
                matching == 1
            };
            if !ok {
                errors.push(format!(
                    "{path}: matches {matching} of the {key} alternatives"
                ));
            }
        }
    }
    match schema.get("type") {
        Some(Value::String(t)) if !type_matches(t, instance) => {
            errors.push(format!("{path}: expected {t}, got {instance}"));
            return;
        }
        Some(Value::Array(types))
            if !types
                .iter()
                .filter_map(Value::as_str)
                .any(|t| type_matches(t, instance)) =>
        {
            errors.push(format!("{path}: expected one of {types:?}, got {instance}"));
            return;
        }
        _ => {}
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array) {
        if !options.contains(instance) {
            errors.push(format!("{path}: {instance} is not one of {options:?}"));
        }
    }
    if let Some(constant) = schema.get("const") {
        if constant != instance {
            errors.push(format!("{path}: expected const {constant}, got {instance}"));
        }
    }
    if let Some(s) = instance.as_str() {
        let len = s.chars().count() as u64;
        if let Some(min) = schema.get("minLength").and_then(Value::as_u64) {
            if len < min {
                errors.push(format!("{path}: shorter than {min}"));
            }
        }
        if let Some(max) = schema.get("maxLength").and_then(Value::as_u64) {
            if len > max {
                errors.push(format!("{path}: longer than {max}"));
            }
        }
        if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
            match regex_lite::Regex::new(pattern) {
                Ok(re) if !re.is_match(s) => {
                    errors.push(format!("{path}: does not match /{pattern}/"))
                }
                _ => {}
            }
        }
        if schema.get("format").and_then(Value::as_str) == Some("date")
            && time::Date::parse(s, &time::format_description::well_known::Iso8601::DATE).is_err()
        {
            errors.push(format!("{path}: not a YYYY-MM-DD date"));
        }
    }
    if let Some(n) = instance.as_f64() {
        if let Some(min) = schema.get("minimum").and_then(Value::as_f64) {
            if n < min {
                errors.push(format!("{path}: below minimum {min}"));
            }
        }
        if let Some(max) = schema.get("maximum").and_then(Value::as_f64) {
            if n > max {
                errors.push(format!("{path}: above maximum {max}"));
            }
        }
    }
    if let Some(items) = instance.as_array() {
        if let Some(min) = schema.get("minItems").and_then(Value::as_u64) {
            if (items.len() as u64) < min {
                errors.push(format!("{path}: fewer than {min} items"));
            }
        }
        if let Some(max) = schema.get("maxItems").and_then(Value::as_u64) {
            if (items.len() as u64) > max {
                errors.push(format!("{path}: more than {max} items"));
            }
        }
        if let Some(item_schema) = schema.get("items") {
            for (i, item) in items.iter().enumerate() {
                check(spec, item_schema, item, &format!("{path}[{i}]"), errors);
            }
        }
    }
    if let Some(object) = instance.as_object() {
        if let Some(required) = schema.get("required").and_then(Value::as_array) {
            for key in required.iter().filter_map(Value::as_str) {
                if !object.contains_key(key) {
                    errors.push(format!("{path}: missing required `{key}`"));
                }
            }
        }
        let properties = schema.get("properties").and_then(Value::as_object);
        for (key, value) in object {
            let child = format!("{path}.{key}");
            match properties.and_then(|p| p.get(key)) {
                Some(prop_schema) => check(spec, prop_schema, value, &child, errors),
                None => match schema.get("additionalProperties") {
                    Some(Value::Bool(false)) => {
                        errors.push(format!("{path}: unexpected property `{key}`"))
                    }
                    Some(extra @ Value::Object(_)) => check(spec, extra, value, &child, errors),
                    _ => {}
                },
            }
        }
    }
}

#[test]
fn the_checker_catches_what_it_claims() {
    let spec = serde_json::json!({"components": {"schemas": {
        "Name": {"type": "object", "required": ["first"], "additionalProperties": false,
                 "properties": {"first": {"type": "string", "minLength": 1}}},
        "User": {"type": "object", "required": ["name", "kind"], "properties": {
            "name": {"$ref": "#/components/schemas/Name"},
            "kind": {"type": "string", "enum": ["a", "b"]},
            "dob": {"type": "string", "format": "date"},
            "phone": {"type": "string", "pattern": "^\\+?[1-9]\\d{1,14}$"},
            "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 1}}}}}});
    let user = pointer(&spec, "#/components/schemas/User");
    assert!(validate(
        &spec,
        user,
        &serde_json::json!({"name": {"first": "x"}, "kind": "a"})
    )
    .is_empty());
    let errors = validate(
        &spec,
        user,
        &serde_json::json!({"name": {"first": "", "x": 1}, "kind": "c", "dob": "1990-13-01",
                            "phone": "0049", "tags": ["a", 2]}),
    );
    assert_eq!(errors.len(), 7, "{errors:#?}");
}
