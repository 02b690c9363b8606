//! Typed, spanned access to the fields of a parsed TOML table, reporting
//! unknown fields and wrong types as it goes.

use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::diagnostic::Sink;
use super::lints;

/// A byte range in the hook file.
pub(crate) type Span = Range<usize>;

/// The outcome of reading one field.
#[derive(Debug)]
pub(crate) enum Got<T> {
    /// Not in the table.
    Absent,
    /// Present but unusable; already reported.
    Bad,
    /// The value and where it is.
    Ok(T, Span),
}

impl<T> Got<T> {
    pub(crate) fn ok(self) -> Option<(T, Span)> {
        match self {
            Got::Ok(v, s) => Some((v, s)),
            Got::Absent | Got::Bad => None,
        }
    }
}

/// Reports every key of `table` not in `allowed`, suggesting the closest
/// allowed one (a typo like `timeout_sec` must not silently drop a limit).
pub(crate) fn reject_unknown(
    sink: &mut Sink<'_>,
    table: &DeTable<'_>,
    allowed: &[&str],
    place: &str,
) {
    for (key, _) in table.iter() {
        let name: &str = key.get_ref();
        if allowed.contains(&name) {
            continue;
        }
        let hint = closest(name, allowed)
            .map(|s| format!("; did you mean `{s}`?"))
            .unwrap_or_else(|| format!("; {place} takes: {}", allowed.join(", ")));
        sink.at(
            &key.span(),
            lints::UNKNOWN_FIELD,
            format!("unknown field `{}` in {place}{hint}", name.escape_debug()),
        );
    }
}

/// The allowed name closest to `name`, ignoring ASCII case: within edit
/// distance 1 for names under 8 characters, 2 otherwise.
pub(crate) fn closest<'a>(name: &str, allowed: &[&'a str]) -> Option<&'a str> {
    let lower = name.to_ascii_lowercase();
    let max = if name.len() < 8 { 1 } else { 2 };
    allowed
        .iter()
        .map(|a| (edit_distance(&lower, &a.to_ascii_lowercase()), *a))
        .filter(|(d, _)| *d <= max)
        .min_by_key(|(d, _)| *d)
        .map(|(_, a)| a)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    if a.chars().count() > 64 || b.len() > 64 {
        return usize::MAX;
    }
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i.saturating_add(1)];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev
                .get(j)
                .copied()
                .unwrap_or(0)
                .saturating_add(usize::from(ca != *cb));
            let del = prev
                .get(j.saturating_add(1))
                .copied()
                .unwrap_or(0)
                .saturating_add(1);
            let ins = cur.get(j).copied().unwrap_or(0).saturating_add(1);
            cur.push(sub.min(del).min(ins));
        }
        prev = cur;
    }
    prev.last().copied().unwrap_or(usize::MAX)
}

/// The value of `name` in `table`, if present.
pub(crate) fn value<'a, 'i>(
    table: &'a DeTable<'i>,
    name: &str,
) -> Option<&'a Spanned<DeValue<'i>>> {
    table.get(name)
}

/// The span of the key `name` in `table`.
pub(crate) fn key_span(table: &DeTable<'_>, name: &str) -> Option<Span> {
    table.get_key_value(name).map(|(k, _)| k.span())
}

fn wrong_type(sink: &mut Sink<'_>, v: &Spanned<DeValue<'_>>, name: &str, expected: &str) {
    sink.at(
        &v.span(),
        lints::WRONG_TYPE,
        format!(
            "`{name}` must be {expected}, not {}",
            v.get_ref().type_str()
        ),
    );
}

/// A string field.
pub(crate) fn string(sink: &mut Sink<'_>, table: &DeTable<'_>, name: &str) -> Got<String> {
    match value(table, name) {
        None => Got::Absent,
        Some(v) => match v.get_ref() {
            DeValue::String(s) => Got::Ok(s.to_string(), v.span()),
            _ => {
                wrong_type(sink, v, name, "a string");
                Got::Bad
            }
        },
    }
}

/// A boolean field.
pub(crate) fn boolean(sink: &mut Sink<'_>, table: &DeTable<'_>, name: &str) -> Got<bool> {
    match value(table, name) {
        None => Got::Absent,
        Some(v) => match v.get_ref() {
            DeValue::Boolean(b) => Got::Ok(*b, v.span()),
            _ => {
                wrong_type(sink, v, name, "`true` or `false`");
                Got::Bad
            }
        },
    }
}

/// A non-negative integer field (values beyond `u64` are reported as
/// `limit-too-high`).
pub(crate) fn count(sink: &mut Sink<'_>, table: &DeTable<'_>, name: &str) -> Got<u64> {
    match value(table, name) {
        None => Got::Absent,
        Some(v) => match v.get_ref() {
            DeValue::Integer(i) => {
                let text = i.as_str();
                if text.starts_with('-') {
                    sink.at(
                        &v.span(),
                        lints::INVALID_VALUE,
                        format!("`{name}` must not be negative"),
                    );
                    return Got::Bad;
                }
                match u64::from_str_radix(text.trim_start_matches('+'), i.radix()) {
                    Ok(n) => Got::Ok(n, v.span()),
                    Err(_) => {
                        sink.at(
                            &v.span(),
                            lints::LIMIT_TOO_HIGH,
                            format!("`{name} = {text}` is far above any bound"),
                        );
                        Got::Bad
                    }
                }
            }
            _ => {
                wrong_type(sink, v, name, "an integer");
                Got::Bad
            }
        },
    }
}

/// An array of strings, each with its span.
pub(crate) fn strings(
    sink: &mut Sink<'_>,
    table: &DeTable<'_>,
    name: &str,
) -> Got<Vec<(String, Span)>> {
    match value(table, name) {
        None => Got::Absent,
        Some(v) => string_list(sink, v, name),
    }
}

/// An array of strings from a value.
pub(crate) fn string_list(
    sink: &mut Sink<'_>,
    v: &Spanned<DeValue<'_>>,
    name: &str,
) -> Got<Vec<(String, Span)>> {
    let DeValue::Array(items) = v.get_ref() else {
        wrong_type(sink, v, name, "an array of strings");
        return Got::Bad;
    };
    let mut out = Vec::with_capacity(items.len());
    let mut bad = false;
    for item in items.iter() {
        match item.get_ref() {
            DeValue::String(s) => out.push((s.to_string(), item.span())),
            _ => {
                wrong_type(sink, item, name, "an array of strings");
                bad = true;
            }
        }
    }
    if bad {
        Got::Bad
    } else {
        Got::Ok(out, v.span())
    }
}

/// A table field.
pub(crate) fn table<'a, 'i>(
    sink: &mut Sink<'_>,
    parent: &'a DeTable<'i>,
    name: &str,
) -> Got<&'a DeTable<'i>> {
    match value(parent, name) {
        None => Got::Absent,
        Some(v) => match v.get_ref() {
            DeValue::Table(t) => Got::Ok(t, v.span()),
            _ => {
                wrong_type(sink, v, name, &format!("a table (`[{name}]`)"));
                Got::Bad
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_get_suggestions() {
        let allowed = ["key", "timeout_secs", "max_bytes", "optional"];
        assert_eq!(closest("timeout_sec", &allowed), Some("timeout_secs"));
        assert_eq!(closest("Optional", &allowed), Some("optional"));
        assert_eq!(closest("zzzzzzzz", &allowed), None);
        assert_eq!(
            closest("DistroRelase", &["DistroRelease"]),
            Some("DistroRelease")
        );
        assert_eq!(closest("Data", &["Date"]), Some("Date"));
        assert_eq!(closest("Dat", &["Date", "Tags"]), Some("Date"));
        assert_eq!(closest("Tg", &["Tags"]), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
