//! The shape of the house, checked on the source tree (`docs/adding-a-provider.md`):
//! - a provider is one folder: outside `src/providers/<name>/`, `src/sim/<name>.rs` and the one
//!   provider list, no code under `src/` names a particular provider (comments, OpenAPI
//!   examples and tests may);
//! - the top-level modules import each other one way (no cycles), settings is plain data,
//!   providers never reach up into the API, the use-cases, the store or the simulators;
//! - the modules inside `onboarding/` and `sim/` import each other one way too.
//!
//! The reading is textual (what `crate::…` and `super::…` paths a file mentions), which is what
//! a newcomer sees and what an import cycle is made of.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use onboarding_gateway::domain::provider::ProviderId;

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `dir`, as paths relative to `src/`, sorted.
fn rust_files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix(src()).unwrap();
                out.push(rel.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    out.sort();
    out
}

/// The file's code as the checks read it: without its unit tests (`#[cfg(test)]` to the end of
/// the file, where this codebase keeps them), and each line without its comment.
fn code_lines(rel: &str) -> Vec<(usize, String)> {
    let text = std::fs::read_to_string(src().join(rel)).unwrap();
    let text = match text.find("#[cfg(test)]") {
        Some(i) => &text[..i],
        None => &text[..],
    };
    text.lines()
        .enumerate()
        .map(|(i, line)| (i + 1, strip_comment(line)))
        .collect()
}

/// The line up to a `//` that is not inside a string literal.
fn strip_comment(line: &str) -> String {
    let mut in_string = false;
    let mut escaped = false;
    let bytes = line.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
        } else if b == b'"' {
            in_string = true;
        } else if b == b'/' && bytes.get(i + 1) == Some(&b'/') {
            return line[..i].to_owned();
        }
    }
    line.to_owned()
}

/// Lines that document rather than run: OpenAPI examples (`example = json!(…)`,
/// `#[schema(example …)]`), which name a provider the way the README does.
fn example_lines(lines: &[(usize, String)]) -> BTreeSet<usize> {
    let mut inside = BTreeSet::new();
    let mut depth: i64 = 0;
    for (n, line) in lines {
        let starts = line.contains("example = json!(") || line.contains("#[schema(example");
        if depth > 0 || starts {
            inside.insert(*n);
            let opened = line.matches(['(', '[', '{']).count() as i64;
            let closed = line.matches([')', ']', '}']).count() as i64;
            depth = (depth + opened - closed).max(0);
        }
    }
    inside
}

fn provider_names() -> Vec<String> {
    ProviderId::ALL
        .iter()
        .map(|id| id.as_str().to_ascii_lowercase())
        .collect()
}

/// Where a provider may be named: its folder, its simulator, and the list itself.
fn is_a_providers_own_place(rel: &str) -> bool {
    provider_names().iter().any(|name| {
        rel.starts_with(&format!("providers/{name}/")) || rel == format!("sim/{name}.rs")
    })
}

#[test]
fn no_code_outside_a_providers_folder_names_a_provider() {
    let names = provider_names();
    let mut found = Vec::new();
    for rel in rust_files(&src()) {
        if is_a_providers_own_place(&rel) || rel.ends_with("/tests.rs") {
            continue;
        }
        let lines = code_lines(&rel);
        let examples = example_lines(&lines);
        let mut in_list = false;
        for (n, line) in &lines {
            // The one list: the body of `with_providers!` in `domain/provider.rs`.
            if rel == "domain/provider.rs" && line.contains("macro_rules! with_providers") {
                in_list = true;
            }
            if in_list {
                if line.starts_with('}') {
                    in_list = false;
                }
                continue;
            }
            if examples.contains(n) {
                continue;
            }
            let lower = line.to_ascii_lowercase();
            if names.iter().any(|name| lower.contains(name.as_str())) {
                found.push(format!("src/{rel}:{n}: {}", line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "provider-specific code outside the provider's folder (move it into \
         src/providers/<name>/ or src/sim/<name>.rs, or derive it from the provider list):\n{}",
        found.join("\n")
    );
}

/// Which modules each module's files mention through `prefix` (`crate::` for the top level,
/// `super::` or `crate::<parent>::` inside a folder).
fn mentions(
    files: &[String],
    module_of: impl Fn(&str) -> Option<String>,
    patterns: &[&str],
) -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for rel in files {
        let Some(from) = module_of(rel) else { continue };
        if rel.ends_with("/tests.rs") {
            continue;
        }
        let entry = graph.entry(from.clone()).or_default();
        for (_, line) in code_lines(rel) {
            for pattern in patterns {
                let mut rest = line.as_str();
                while let Some(i) = rest.find(pattern) {
                    rest = &rest[i + pattern.len()..];
                    let targets: Vec<&str> = if let Some(group) = rest.strip_prefix('{') {
                        let end = group.find('}').unwrap_or(group.len());
                        group[..end]
                            .split(',')
                            .map(|t| t.trim().split("::").next().unwrap_or("").trim())
                            .collect()
                    } else {
                        let end = rest
                            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                            .unwrap_or(rest.len());
                        vec![&rest[..end]]
                    };
                    for target in targets {
                        if !target.is_empty() && target != from && target != "self" {
                            entry.insert(target.to_owned());
                        }
                    }
                }
            }
        }
    }
    // Only edges between modules of this graph.
    let modules: BTreeSet<String> = graph.keys().cloned().collect();
    for targets in graph.values_mut() {
        targets.retain(|t| modules.contains(t));
    }
    graph
}

/// A cycle in `graph`, if there is one, as `a -> b -> a`.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<String> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<String> {
        if let Some(i) = path.iter().position(|p| p == node) {
            let mut cycle = path[i..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle.join(" -> "));
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

fn top_level_graph() -> BTreeMap<String, BTreeSet<String>> {
    let files = rust_files(&src());
    mentions(
        &files,
        |rel| {
            if rel.starts_with("bin/") || rel == "main.rs" || rel == "lib.rs" {
                return None;
            }
            Some(rel.split('/').next()?.trim_end_matches(".rs").to_owned())
        },
        &["crate::"],
    )
}

#[test]
fn the_top_level_modules_import_each_other_one_way() {
    let graph = top_level_graph();
    assert!(
        graph.contains_key("providers") && graph.contains_key("settings"),
        "{graph:?}"
    );
    if let Some(cycle) = find_cycle(&graph) {
        panic!("import cycle between top-level modules: {cycle}\n{graph:#?}");
    }
    let forbidden: &[(&str, &[&str])] = &[
        // Plain data: the application builds keyrings, registries and clients from it.
        (
            "settings",
            &[
                "auth",
                "crypto",
                "providers",
                "store",
                "onboarding",
                "api",
                "sim",
                "app",
                "workers",
            ],
        ),
        (
            "domain",
            &[
                "settings",
                "auth",
                "crypto",
                "providers",
                "store",
                "onboarding",
                "api",
                "sim",
                "app",
                "workers",
                "telemetry",
            ],
        ),
        // Connectors are stateless translators: no database, no HTTP edge, no simulator.
        (
            "providers",
            &["api", "onboarding", "store", "sim", "app", "workers"],
        ),
        (
            "store",
            &["providers", "onboarding", "api", "sim", "app", "workers"],
        ),
        ("onboarding", &["api", "sim", "app", "workers"]),
        ("sim", &["api", "onboarding", "store", "app", "workers"]),
        ("api", &["app", "sim", "workers"]),
    ];
    let mut broken = Vec::new();
    for (from, targets) in forbidden {
        for target in *targets {
            if graph.get(*from).is_some_and(|t| t.contains(*target)) {
                broken.push(format!("{from} imports {target}"));
            }
        }
    }
    assert!(broken.is_empty(), "layering broken: {broken:?}\n{graph:#?}");
}

/// The modules of one folder (`onboarding`, `sim`) and what each mentions of its siblings.
fn folder_graph(folder: &str) -> BTreeMap<String, BTreeSet<String>> {
    let files = rust_files(&src().join(folder));
    let prefix = format!("{folder}/");
    let crate_path = format!("crate::{folder}::");
    mentions(
        &files,
        |rel| {
            let inner = rel.strip_prefix(&prefix)?;
            let module = inner.split('/').next()?.trim_end_matches(".rs");
            // `mod.rs` declares the folder's modules: it is the folder, not a sibling.
            (module != "mod").then(|| module.to_owned())
        },
        &["super::", crate_path.as_str()],
    )
}

#[test]
fn the_modules_inside_onboarding_and_sim_import_each_other_one_way() {
    for folder in ["onboarding", "sim"] {
        let graph = folder_graph(folder);
        assert!(graph.len() > 2, "{folder}: {graph:?}");
        if let Some(cycle) = find_cycle(&graph) {
            panic!("import cycle inside {folder}/: {cycle}\n{graph:#?}");
        }
    }
}

#[test]
fn the_checks_catch_what_they_look_for() {
    // A cycle is found, and a one-way graph is not a cycle.
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a".to_owned(), BTreeSet::from(["b".to_owned()])),
        ("b".to_owned(), BTreeSet::from(["c".to_owned()])),
        ("c".to_owned(), BTreeSet::from(["a".to_owned()])),
    ]
    .into();
    assert_eq!(find_cycle(&graph).as_deref(), Some("a -> b -> c -> a"));
    let mut one_way = graph.clone();
    one_way.get_mut("c").unwrap().clear();
    assert_eq!(find_cycle(&one_way), None);
    // Comments are not code; strings are.
    assert_eq!(
        strip_comment(r#"let x = "a//b"; // c"#),
        r#"let x = "a//b"; "#
    );
    // An example spans its lines until its brackets close.
    let lines: Vec<(usize, String)> = [
        "#[schema(example = json!({",
        "  \"provider\": \"x\"",
        "}))]",
        "pub struct After;",
    ]
    .iter()
    .enumerate()
    .map(|(i, l)| (i + 1, l.to_string()))
    .collect();
    assert_eq!(example_lines(&lines), BTreeSet::from([1, 2, 3]));
}
