//! `docs/writing-hooks.md`: every hook in it lints clean with the real
//! parser, every excerpt is a verbatim part of a shipped example, and it
//! covers every target kind, step action and lint by name.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects
)]

use apport_hooks::hook::{ACTIONS, LintConfig, TARGET_KINDS, lints, parse_hook};

const DOC: &str = include_str!("../docs/writing-hooks.md");
const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The marker line that makes the next TOML block an excerpt of a file.
const EXCERPT_MARKER: &str = "<!-- excerpt: ";

/// A fenced ```toml block: its first line number, its text, and the file it
/// is an excerpt of (the marker on the line before the fence), if any.
struct Block {
    line: usize,
    text: String,
    excerpt_of: Option<String>,
}

fn toml_blocks() -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut lines = DOC.lines().enumerate().peekable();
    let mut previous = "";
    while let Some((n, line)) = lines.next() {
        if line.trim() == "```toml" {
            // A block inside a list item is indented; so is its text.
            let indent = line.strip_suffix(line.trim_start()).unwrap_or("");
            let excerpt_of = previous
                .trim()
                .strip_prefix(EXCERPT_MARKER)
                .and_then(|r| r.strip_suffix(" -->"))
                .map(str::to_owned);
            let mut text = String::new();
            for (_, l) in lines.by_ref() {
                if l.trim() == "```" {
                    break;
                }
                text.push_str(l.strip_prefix(indent).unwrap_or(l));
                text.push('\n');
            }
            blocks.push(Block {
                line: n + 1,
                text,
                excerpt_of,
            });
        }
        previous = line;
    }
    blocks
}

#[test]
fn every_whole_hook_in_the_guide_lints_clean() {
    let mut whole = 0;
    for block in toml_blocks().iter().filter(|b| b.excerpt_of.is_none()) {
        let name = format!("docs/writing-hooks.md:{}", block.line);
        if let Err(diags) = parse_hook(&block.text, &name, &LintConfig::default()) {
            let lines: Vec<String> = diags.iter().map(ToString::to_string).collect();
            panic!("{name} does not lint clean:\n{}", lines.join("\n"));
        }
        whole += 1;
    }
    assert!(
        whole >= 2,
        "expected whole hooks in the guide, found {whole}"
    );
}

#[test]
fn every_excerpt_is_verbatim_from_a_shipped_example_that_lints_clean() {
    let mut excerpts = 0;
    for block in toml_blocks() {
        let Some(file) = block.excerpt_of else {
            continue;
        };
        assert!(
            file.starts_with("examples/hooks/"),
            "line {}: excerpt of {file}",
            block.line
        );
        let source = std::fs::read_to_string(format!("{ROOT}/{file}"))
            .unwrap_or_else(|e| panic!("line {}: {file}: {e}", block.line));
        assert!(
            source.contains(&block.text),
            "docs/writing-hooks.md:{}: the excerpt is not verbatim in {file}:\n{}",
            block.line,
            block.text
        );
        parse_hook(&source, &file, &LintConfig::default())
            .unwrap_or_else(|_| panic!("{file} does not lint clean"));
        excerpts += 1;
    }
    assert!(
        excerpts >= 3,
        "expected excerpts of the examples, found {excerpts}"
    );
}

#[test]
fn every_shipped_example_is_referenced() {
    for entry in std::fs::read_dir(format!("{ROOT}/examples/hooks")).unwrap() {
        let name = entry.unwrap().file_name().to_str().unwrap().to_owned();
        if name.ends_with(".toml") {
            assert!(
                DOC.contains(&format!("examples/hooks/{name}")),
                "docs/writing-hooks.md does not mention examples/hooks/{name}"
            );
        }
    }
}

#[test]
fn every_target_kind_step_action_and_lint_is_covered() {
    for kind in TARGET_KINDS.iter().chain(ACTIONS) {
        assert!(
            DOC.contains(&format!("`{kind}`")),
            "docs/writing-hooks.md does not explain `{kind}`"
        );
    }
    for lint in lints::ALL {
        assert!(
            DOC.contains(&format!("`{}`", lint.name)),
            "docs/writing-hooks.md: no troubleshooting entry for lint `{}`",
            lint.name
        );
    }
}
