//! Diagnostics: one problem in a hook file, pointing at a line and column.

use std::fmt;
use std::ops::Range;

use serde::Serialize;

/// One problem found in a hook file.
///
/// Displayed as `file:line:column: lint-name: message`, the format editors and
/// CI log parsers understand. `line` and `column` are 1-based; `column` counts
/// characters (Unicode scalar values), not bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// The file name the caller passed in (as given on the command line).
    pub file: String,
    /// 1-based line.
    pub line: u32,
    /// 1-based column, in characters.
    pub column: u32,
    /// The stable kebab-case name of the lint (see [`crate::hook::lints::ALL`]).
    pub lint: &'static str,
    /// What is wrong and what to do about it.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}: {}",
            self.file, self.line, self.column, self.lint, self.message
        )
    }
}

/// Turns byte offsets into 1-based line and character columns.
#[derive(Debug)]
pub(crate) struct LineIndex<'t> {
    text: &'t str,
    /// Byte offset of the start of every line.
    starts: Vec<usize>,
}

impl<'t> LineIndex<'t> {
    pub(crate) fn new(text: &'t str) -> Self {
        let mut starts = vec![0];
        for (i, b) in text.bytes().enumerate() {
            if b == b'\n' {
                starts.push(i.saturating_add(1));
            }
        }
        Self { text, starts }
    }

    /// 1-based (line, column) of a byte offset; offsets past the end or inside
    /// a character are clamped, so any span is safe to pass.
    pub(crate) fn position(&self, offset: usize) -> (u32, u32) {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset = offset.saturating_sub(1);
        }
        let line_idx = match self.starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i.saturating_sub(1),
        };
        let start = self.starts.get(line_idx).copied().unwrap_or(0);
        let column = self
            .text
            .get(start..offset)
            .map_or(0, |s| s.chars().count());
        (
            u32::try_from(line_idx.saturating_add(1)).unwrap_or(u32::MAX),
            u32::try_from(column.saturating_add(1)).unwrap_or(u32::MAX),
        )
    }
}

/// Collects diagnostics for one file.
#[derive(Debug)]
pub(crate) struct Sink<'t> {
    file: String,
    index: LineIndex<'t>,
    pub(crate) diagnostics: Vec<Diagnostic>,
}

impl<'t> Sink<'t> {
    pub(crate) fn new(file: &str, text: &'t str) -> Self {
        Self {
            file: file.to_owned(),
            index: LineIndex::new(text),
            diagnostics: Vec::new(),
        }
    }

    /// Reports `lint` at the start of `span`.
    pub(crate) fn at(
        &mut self,
        span: &Range<usize>,
        lint: &'static str,
        message: impl Into<String>,
    ) {
        let (line, column) = self.index.position(span.start);
        self.diagnostics.push(Diagnostic {
            file: self.file.clone(),
            line,
            column,
            lint,
            message: message.into(),
        });
    }

    /// 1-based line of a byte offset, for messages that refer to another place.
    pub(crate) fn line_of(&self, span: &Range<usize>) -> u32 {
        self.index.position(span.start).0
    }

    pub(crate) fn is_clean(&self) -> bool {
        self.diagnostics.is_empty()
    }

    /// The diagnostics in file order.
    pub(crate) fn finish(mut self) -> Vec<Diagnostic> {
        self.diagnostics
            .sort_by(|a, b| (a.line, a.column, a.lint).cmp(&(b.line, b.column, b.lint)));
        self.diagnostics
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn positions_are_one_based_and_count_characters() {
        let idx = LineIndex::new("ab\nçé = 1\n");
        assert_eq!(idx.position(0), (1, 1));
        assert_eq!(idx.position(3), (2, 1));
        // 'é' starts at byte 5 (ç is two bytes): the second character.
        assert_eq!(idx.position(5), (2, 2));
        // Inside a character and past the end are clamped, never a panic.
        assert_eq!(idx.position(6), (2, 2));
        assert_eq!(idx.position(1000), (3, 1));
    }

    #[test]
    fn display_is_file_line_column_lint_message() {
        let d = Diagnostic {
            file: "x.toml".into(),
            line: 3,
            column: 7,
            lint: "bad-key",
            message: "m".into(),
        };
        assert_eq!(d.to_string(), "x.toml:3:7: bad-key: m");
    }
}
