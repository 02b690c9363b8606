//! The keys a hook added.

use super::Report;

/// The keys (with their values from `after`) that are in `after` but not in
/// `before`, in `after`'s order: what apport's `new_keys()` and
/// `write(only_new=True)` give. A key that exists in `before` is not new,
/// even if `after` gives it another value (a hook re-setting `Package`).
#[must_use]
pub fn new_keys(before: &Report, after: &Report) -> Report {
    let mut out = Report::new();
    for (key, value) in after.iter() {
        if !before.contains_key(key.as_str()) {
            out.insert(key.clone(), value.clone());
        }
    }
    out
}
