//! What `apport-hook run` and `busctl` answered: the JSON result of a run
//! that must have succeeded, or the D-Bus error of one that must have failed.
#![allow(dead_code, clippy::unwrap_used, clippy::panic)]

use std::process::Output;

/// The client's standard error, as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The `--json` result of a client that must have succeeded.
pub fn json(output: &Output) -> serde_json::Value {
    assert!(
        output.status.success(),
        "client failed: {}\n{}",
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// Assert the call failed and its error names `error`
/// (e.g. `com.ubuntu.Apport1.Error.NotAuthorized`).
pub fn assert_refused(output: &Output, error: &str) {
    assert!(!output.status.success(), "succeeded, expected {error}");
    assert!(stderr(output).contains(error), "{}", stderr(output));
}

/// The outcome of step `key` in a `--json` result.
pub fn step_outcome<'a>(result: &'a serde_json::Value, key: &str) -> &'a str {
    result["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["key"] == key)
        .unwrap_or_else(|| panic!("no step {key} in {result}"))["outcome"]
        .as_str()
        .unwrap()
}
