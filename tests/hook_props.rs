//! Property tests: the hook parser never panics and always points inside
//! the file, whatever it is given.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use apport_hooks::hook::{LintConfig, parse_hook, parse_hook_bytes};
use proptest::prelude::*;

const LIGHTDM: &str = include_str!("../examples/hooks/lightdm.toml");

/// Lines a hook author might plausibly write, right or wrong.
const FRAGMENTS: &[&str] = &[
    "[[step]]",
    "[step]",
    "[target]",
    "[when]",
    "[limits]",
    "key = \"K\"",
    "key = \"\"",
    "file = \"/etc/shadow\"",
    "glob = \"/etc/*\"",
    "glob = \"/var/log/**\"",
    "command = []",
    "command = [\"sh\", \"-c\", \"id\"]",
    "command = [\"dmesg\", 1]",
    "journal = { grep = \"(\" }",
    "journal = true",
    "as = \"root\"",
    "replaces = true",
    "max_bytes = -1",
    "max_bytes = 99999999999999999999",
    "timeout_secs = 0x7fffffff",
    "days = 1e3",
    "package = \"x\"",
    "sas = \"\u{0}\"",
    "Package = { matches = '\\\\' }",
    "a.b.c.d = 1",
    "name = \"é\"",
    "\"\" = 1",
];

fn check_positions(text: &str, cfg: &LintConfig) {
    if let Err(diags) = parse_hook(text, "p.toml", cfg) {
        assert!(!diags.is_empty());
        let lines = u32::try_from(text.lines().count()).unwrap() + 1;
        for d in diags {
            assert!(d.line >= 1 && d.line <= lines, "{d} outside {lines} lines");
            assert!(d.column >= 1, "{d}");
            assert!(!d.message.contains('\n'), "multi-line message: {d:?}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,400}") {
        check_positions(&text, &LintConfig::default());
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = parse_hook_bytes(&bytes, "p.toml", &LintConfig::default());
    }

    #[test]
    fn edited_examples_never_panic_and_point_inside_the_file(
        edits in proptest::collection::vec((0usize..60, 0usize..FRAGMENTS.len(), any::<bool>()), 1..6)
    ) {
        let mut lines: Vec<String> = LIGHTDM.lines().map(str::to_owned).collect();
        for (at, fragment, delete) in edits {
            let at = at % (lines.len() + 1);
            if delete && at < lines.len() {
                lines.remove(at);
            } else {
                lines.insert(at, FRAGMENTS[fragment].to_owned());
            }
        }
        check_positions(&lines.join("\n"), &LintConfig::default());
    }
}
