//! The bad-hook corpus: `tests/hooks/bad/<lint-name>.toml` holds one hook per
//! lint that must fail with exactly that lint, at the line marked `# expect`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use std::path::{Path, PathBuf};

use apport_hooks::hook::{LintConfig, lints, parse_hook_bytes};

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/hooks/bad");

/// The corpus runs with the default bounds, except a small file-size cap (8 KiB) so
/// that `file-too-large.toml` need not be 256 KiB (every other corpus file
/// is well under it).
fn corpus_config() -> LintConfig {
    LintConfig {
        max_file_bytes: 8192,
        ..LintConfig::default()
    }
}

fn corpus_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(CORPUS)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

/// The 1-based line that carries the `# expect` marker.
fn expected_line(bytes: &[u8], path: &Path) -> u32 {
    let text = String::from_utf8_lossy(bytes);
    let index = text
        .lines()
        .position(|l| l.contains("# expect"))
        .unwrap_or_else(|| panic!("{} has no `# expect` marker", path.display()));
    u32::try_from(index + 1).unwrap()
}

#[test]
fn every_bad_hook_fails_with_exactly_its_lint_at_the_marked_line() {
    let cfg = corpus_config();
    let mut failures = Vec::new();
    for path in corpus_files() {
        let lint = path.file_stem().unwrap().to_str().unwrap().to_owned();
        let bytes = std::fs::read(&path).unwrap();
        let line = expected_line(&bytes, &path);
        let name = path.file_name().unwrap().to_str().unwrap();
        match parse_hook_bytes(&bytes, name, &cfg) {
            Ok(_) => failures.push(format!("{name}: accepted, expected {lint} at line {line}")),
            Err(diags) => {
                let ok = diags.len() == 1 && diags[0].lint == lint && diags[0].line == line;
                if !ok {
                    let got: Vec<String> = diags.iter().map(ToString::to_string).collect();
                    failures.push(format!(
                        "{name}: expected exactly {lint} at line {line}, got:\n  {}",
                        got.join("\n  ")
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_lint_has_a_bad_hook_and_every_bad_hook_names_a_lint() {
    let stems: Vec<String> = corpus_files()
        .iter()
        .map(|p| p.file_stem().unwrap().to_str().unwrap().to_owned())
        .collect();
    for lint in lints::ALL {
        assert!(
            stems.iter().any(|s| s == lint.name),
            "no tests/hooks/bad/{}.toml",
            lint.name
        );
    }
    for stem in &stems {
        assert!(lints::find(stem).is_some(), "{stem}.toml names no lint");
    }
}

#[test]
fn the_default_file_size_cap_is_256_kib() {
    let cfg = LintConfig::default();
    let mut text = String::from("name = \"x\"\n");
    while text.len() <= 256 * 1024 {
        text.push_str("# padding padding padding padding padding padding padding\n");
    }
    let diags = parse_hook_bytes(text.as_bytes(), "big.toml", &cfg).unwrap_err();
    assert_eq!(diags.len(), 1);
    assert_eq!(diags[0].lint, lints::FILE_TOO_LARGE);
    assert_eq!((diags[0].line, diags[0].column), (1, 1));
}
