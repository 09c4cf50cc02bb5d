//! The crate's folders are layers, and imports only point down (docs/src/architecture.md):
//! a module may name `crate::X` only for an `X` below its own layer. This test reads every
//! source file under `src/` and fails on an upward edge, naming the file, the line and both
//! layers. Comments (doc links included) count: a link into a higher layer is a dependency a
//! reader follows.

use std::fs;
use std::path::{Path, PathBuf};

/// The layers, bottom up. `lib.rs` and `main.rs` sit above all of them.
const LAYERS: [&str; 13] = [
    "error", "io", "exact", "model", "region", "dtd", "check", "lp", "audit", "report", "repro",
    "torch", "cli",
];

fn rank(layer: &str) -> Option<usize> {
    LAYERS.iter().position(|&l| l == layer)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The layer a file under `src/` belongs to: its top folder, or its own name at the top.
fn layer_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_string()
}

/// Every `crate::NAME` on `line`, and `crate::{NAME, ...}` groups (one level).
fn crate_paths(line: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find("crate::") {
        let before = &rest[..at];
        rest = &rest[at + "crate::".len()..];
        // `dtdcert::`-style paths to other crates, or identifiers ending in `crate`, are not ours.
        if before.ends_with(|c: char| c.is_alphanumeric() || c == '_') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            // The first name of each item at the group's own depth.
            let mut depth = 0;
            let mut item_start = true;
            let mut name = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if item_start && (c.is_alphanumeric() || c == '_') => name.push(c),
                    _ if !name.is_empty() => {
                        names.push(std::mem::take(&mut name));
                        item_start = false;
                    }
                    _ => {}
                }
            }
            if !name.is_empty() {
                names.push(name);
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            names.push(name);
        }
    }
    names
}

#[test]
fn imports_only_point_down() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut upward = Vec::new();
    let mut unknown = Vec::new();
    for file in &files {
        let from = layer_of(&src, file);
        if from == "lib" || from == "main" {
            continue;
        }
        let Some(from_rank) = rank(&from) else {
            unknown.push(format!("{}: not in any layer", file.display()));
            continue;
        };
        let text = fs::read_to_string(file).unwrap();
        for (n, line) in text.lines().enumerate() {
            for to in crate_paths(line) {
                match rank(&to) {
                    Some(to_rank) if to_rank > from_rank => upward.push(format!(
                        "{}:{}: {from} imports {to}, a layer above it: {}",
                        file.strip_prefix(&src).unwrap().display(),
                        n + 1,
                        line.trim()
                    )),
                    Some(_) => {}
                    // Crate-root re-exports (`crate::Error`, `crate::Result`) live in `error`.
                    None if to == "Error" || to == "Result" => {}
                    None => unknown.push(format!(
                        "{}:{}: crate::{to} is not a layer",
                        file.strip_prefix(&src).unwrap().display(),
                        n + 1
                    )),
                }
            }
        }
    }
    assert!(unknown.is_empty(), "{}", unknown.join("\n"));
    assert!(upward.is_empty(), "upward imports:\n{}", upward.join("\n"));
}

#[test]
fn every_layer_is_a_module_of_the_crate() {
    let lib = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).unwrap();
    for layer in LAYERS {
        assert!(
            lib.contains(&format!("pub mod {layer};")),
            "src/lib.rs declares no module {layer}"
        );
    }
}

#[test]
fn the_path_scanner_sees_single_and_grouped_paths() {
    assert_eq!(crate_paths("use crate::model::Model;"), ["model"]);
    assert_eq!(
        crate_paths("use crate::{audit::X, lp::{a, b}};"),
        ["audit", "lp"]
    );
    assert_eq!(crate_paths("/// see [`crate::lp::nearest_valid`]"), ["lp"]);
    assert!(crate_paths("use dtdcert::model;").is_empty());
    assert!(crate_paths("let x = my_crate::lp;").is_empty());
}
