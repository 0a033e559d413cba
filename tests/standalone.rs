//! The repository stands alone: nothing in it reads or cites files outside the checkout.
//!
//! Scans the tracked text of `src/`, `tests/`, `scripts/`, `.ci/`, `config/` and the top-level
//! build and documentation files for a path that leaves the repository (the folder of notes some
//! checkouts have beside them) or a citation of one of its documents, and fails naming each file
//! and line. Provider facts cite the providers' public documentation by URL; the product
//! contract is the README and `openapi/openapi.json`.

use std::path::{Path, PathBuf};

/// The forbidden strings, assembled so that this file does not match itself.
fn forbidden() -> Vec<String> {
    let shared = ["..", "/shared"].concat();
    let providers = ["shared", "/providers"].concat();
    let mut all = vec![shared, providers];
    // Citations of the notes beside the repository (a provider note or the API contract).
    for doc in ["API", "killb", "kraken", "carbn", "verification", "DESIGN"] {
        all.push([doc, ".md"].concat());
    }
    all
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, files);
        } else {
            files.push(path);
        }
    }
}

#[test]
fn nothing_reads_or_cites_files_beside_the_repository() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in [
        "src",
        "tests",
        "scripts",
        ".ci",
        "config",
        "openapi",
        "migrations",
        "docs",
    ] {
        collect(&root.join(dir), &mut files);
    }
    for file in [
        "README.md",
        "Cargo.toml",
        "Dockerfile",
        "docker-compose.yml",
        ".dockerignore",
    ] {
        files.push(root.join(file));
    }
    assert!(files.len() > 20, "scanned only {} files", files.len());
    let forbidden = forbidden();
    let mut hits = Vec::new();
    for file in &files {
        // Binary or absent files hold no citations.
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        for (n, line) in text.lines().enumerate() {
            for needle in &forbidden {
                if line.contains(needle.as_str()) {
                    let shown = file.strip_prefix(root).unwrap_or(file).display();
                    hits.push(format!("{shown}:{}: `{needle}` in: {}", n + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        hits.is_empty(),
        "the repository must stand alone; these lines read or cite files outside it:\n{}",
        hits.join("\n")
    );
}
