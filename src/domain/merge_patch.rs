//! JSON Merge Patch (RFC 7396) and the list of leaf paths a change touched.
//!
//! The PATCH flow: serialise the stored `CanonicalUser` to a `Value`, [`apply_merge_patch`],
//! run `parse_user` on the result (same rules, same JSON paths), then [`changed_paths`]
//! between the two serialised users.

use serde_json::{Map, Value};

use super::errors::join;

/// Applies `patch` to `target` exactly as RFC 7396 §2 `MergePatch(Target, Patch)`:
/// an object patch merges key by key (`null` removes the key), anything else replaces.
pub fn apply_merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(map) = target else {
        unreachable!("target was just made an object");
    };
    for (key, value) in patch {
        if value.is_null() {
            map.shift_remove(key);
        } else {
            apply_merge_patch(map.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

/// The sorted, de-duplicated dotted paths of the leaves that differ between `before` and
/// `after`. Objects are walked (an absent key equals `null`; an object replacing `null`
/// reports its non-null leaves); arrays and scalars are compared whole, so a change inside
/// `nationalities` or `tax_ids` is reported as `nationalities` / `tax_ids`.
pub fn changed_paths(before: &Value, after: &Value) -> Vec<String> {
    let mut out = Vec::new();
    diff(before, after, "", &mut out);
    out.sort();
    out.dedup();
    out
}

fn diff(a: &Value, b: &Value, path: &str, out: &mut Vec<String>) {
    let object_like = |v: &Value| v.is_object() || v.is_null();
    if (a.is_object() || b.is_object()) && object_like(a) && object_like(b) {
        let ma = object_or_empty(a);
        let mb = object_or_empty(b);
        for (key, va) in ma {
            diff(
                va,
                mb.get(key).unwrap_or(&Value::Null),
                &join(path, key),
                out,
            );
        }
        for (key, vb) in mb {
            if !ma.contains_key(key) {
                diff(&Value::Null, vb, &join(path, key), out);
            }
        }
    } else if a != b {
        out.push(path.to_owned());
    }
}

fn object_or_empty(v: &Value) -> &Map<String, Value> {
    static EMPTY: std::sync::LazyLock<Map<String, Value>> = std::sync::LazyLock::new(Map::new);
    match v {
        Value::Object(m) => m,
        _ => &EMPTY,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn merged(target: Value, patch: Value) -> Value {
        let mut t = target;
        apply_merge_patch(&mut t, &patch);
        t
    }

    /// RFC 7396 Appendix A, every row.
    #[test]
    fn rfc7396_appendix_a() {
        let cases = [
            (json!({"a":"b"}), json!({"a":"c"}), json!({"a":"c"})),
            (json!({"a":"b"}), json!({"b":"c"}), json!({"a":"b","b":"c"})),
            (json!({"a":"b"}), json!({"a":null}), json!({})),
            (
                json!({"a":"b","b":"c"}),
                json!({"a":null}),
                json!({"b":"c"}),
            ),
            (json!({"a":["b"]}), json!({"a":"c"}), json!({"a":"c"})),
            (json!({"a":"c"}), json!({"a":["b"]}), json!({"a":["b"]})),
            (
                json!({"a":{"b":"c"}}),
                json!({"a":{"b":"d","c":null}}),
                json!({"a":{"b":"d"}}),
            ),
            (json!({"a":[{"b":"c"}]}), json!({"a":[1]}), json!({"a":[1]})),
            (json!(["a", "b"]), json!(["c", "d"]), json!(["c", "d"])),
            (json!({"a":"b"}), json!(["c"]), json!(["c"])),
            (json!({"a":"foo"}), json!(null), json!(null)),
            (json!({"a":"foo"}), json!("bar"), json!("bar")),
            (json!({"e":null}), json!({"a":1}), json!({"e":null,"a":1})),
            (json!([1, 2]), json!({"a":"b","c":null}), json!({"a":"b"})),
            (
                json!({}),
                json!({"a":{"bb":{"ccc":null}}}),
                json!({"a":{"bb":{}}}),
            ),
        ];
        for (target, patch, want) in cases {
            assert_eq!(
                merged(target.clone(), patch.clone()),
                want,
                "{target} + {patch}"
            );
        }
    }

    /// RFC 7396 §3 example.
    #[test]
    fn rfc7396_section_3_example() {
        let target = json!({
            "title": "Goodbye!",
            "author": {"givenName": "John", "familyName": "Doe"},
            "tags": ["example", "sample"],
            "content": "This will be unchanged"
        });
        let patch = json!({
            "title": "Hello!",
            "phoneNumber": "+01-123-456-7890",
            "author": {"familyName": null},
            "tags": ["example"]
        });
        let want = json!({
            "title": "Hello!",
            "author": {"givenName": "John"},
            "tags": ["example"],
            "content": "This will be unchanged",
            "phoneNumber": "+01-123-456-7890"
        });
        assert_eq!(merged(target, patch), want);
    }

    #[test]
    fn removal_keeps_key_order() {
        let out = merged(json!({"a":1,"b":2,"c":3}), json!({"a":null}));
        let keys: Vec<_> = out.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["b", "c"]);
    }

    #[test]
    fn changed_paths_lists_sorted_leaves() {
        let before = json!({
            "email": "a@example.com",
            "name": {"first": "Jane", "middle": null, "last": "Doe"},
            "address": {"city": "Berlin", "country": "DE", "line1": null},
            "nationalities": ["DE"],
            "tax_ids": [{"type": "steuer_id", "number": "1", "issuing_country": "DE"}],
            "phone": null,
            "birth_place": null,
            "metadata": {}
        });
        let after = json!({
            "email": "a@example.com",
            "name": {"first": "Janet", "middle": "Q", "last": "Doe"},
            "address": {"city": "Berlin", "country": "AT", "line1": null},
            "nationalities": ["DE", "AT"],
            "tax_ids": [{"type": "steuer_id", "number": "2", "issuing_country": "DE"}],
            "phone": "+4915112345678",
            "birth_place": {"city": null, "country": "DE"},
            "metadata": {"k": 1}
        });
        assert_eq!(
            changed_paths(&before, &after),
            vec![
                "address.country",
                "birth_place.country",
                "metadata.k",
                "name.first",
                "name.middle",
                "nationalities",
                "phone",
                "tax_ids",
            ]
        );
    }

    #[test]
    fn changed_paths_when_objects_are_cleared() {
        let before = json!({"employment": {"status": "employed", "industry": null}, "x": 1});
        let after = json!({"employment": null, "x": 1});
        assert_eq!(changed_paths(&before, &after), vec!["employment.status"]);
        // An absent key equals null.
        assert!(changed_paths(&json!({"a": null}), &json!({})).is_empty());
        assert!(changed_paths(&before, &before).is_empty());
    }

    #[test]
    fn changed_paths_for_type_changes_and_roots() {
        assert_eq!(
            changed_paths(&json!({"a": {"b": 1}}), &json!({"a": 5})),
            vec!["a"]
        );
        assert_eq!(changed_paths(&json!(1), &json!(2)), vec![""]);
        assert_eq!(
            changed_paths(&json!({"a": [1]}), &json!({"a": [1]})).len(),
            0
        );
    }
}
