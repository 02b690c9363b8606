//! Parsing a report from bytes.
//!
//! The parser accepts exactly the forms apport writes (see the grammar in the
//! [module docs](super)), so every report it accepts is written back byte for
//! byte. Anything else is an error naming its 1-based line.

use std::collections::HashMap;

use thiserror::Error;

use super::Report;
use super::key::{Key, KeyError};
use super::limits::ReportLimits;
use super::value::{BASE64_MARKER, Binary, Text, Value, check_base64_line};

/// What is wrong with one line of a report.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LineError {
    /// The key before `:` breaks the key grammar.
    #[error("invalid key: {0}")]
    InvalidKey(KeyError),
    /// A line that is neither `Key: value`, `Key:` nor a continuation line.
    #[error("no ':' after the key; every line is `Key: value`, `Key:` or starts with one space")]
    MissingColon,
    /// `Key:value`: apport always writes a space after the colon.
    #[error("expected a space or the end of the line after ':'")]
    MissingSpaceAfterColon,
    /// A continuation line before any key.
    #[error("the report starts with a continuation line (a line starting with a space)")]
    ContinuationBeforeKey,
    /// A continuation line after a one-line `Key: value`.
    #[error(
        "continuation line after the one-line value of key {key}; write `{key}:` on its own line for a multi-line value"
    )]
    ContinuationAfterOneLineValue {
        /// The key the line would belong to.
        key: String,
    },
    /// An empty line.
    #[error("empty line; a multi-line value writes an empty line as a single space")]
    EmptyLine,
    /// `Key:` without any continuation line.
    #[error("key {key} has no value; write `{key}: ` for an empty value")]
    NoValue {
        /// The key.
        key: String,
    },
    /// `Key: base64` without any data line.
    #[error("key {key} is marked base64 but has no data lines")]
    EmptyBinary {
        /// The key.
        key: String,
    },
    /// A line of a base64 value is not canonical base64.
    #[error("base64 line of key {key}: {reason}")]
    Base64 {
        /// The key.
        key: String,
        /// What is wrong with the line.
        reason: &'static str,
    },
    /// A NUL byte in a value (C consumers would silently truncate there).
    #[error("NUL byte in the value; text values cannot hold NUL")]
    NulByte,
    /// The file does not end with a newline (often a truncated report).
    #[error("the file ends without a newline; the report is probably truncated")]
    MissingFinalNewline,
    /// A key appears a second time.
    #[error("duplicate key {key}, first set on line {first_line}")]
    DuplicateKey {
        /// The key.
        key: String,
        /// Where it was first set.
        first_line: usize,
    },
    /// More keys than [`ReportLimits::max_keys`].
    #[error("more than {max} keys; raise ReportLimits::max_keys if this report is expected")]
    TooManyKeys {
        /// The limit.
        max: usize,
    },
    /// A value larger than [`ReportLimits::max_value_bytes`].
    #[error(
        "value of key {key} exceeds {max} bytes; raise ReportLimits::max_value_bytes if expected"
    )]
    ValueTooLarge {
        /// The key.
        key: String,
        /// The limit.
        max: u64,
    },
    /// The line number overflowed (cannot happen below 2^64 lines).
    #[error("too many lines")]
    TooManyLines,
}

/// Why a report could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseError {
    /// The input is larger than [`ReportLimits::max_file_bytes`].
    #[error(
        "report is {size} bytes, over the limit of {max} bytes; \
         raise ReportLimits::max_file_bytes if reports this large are expected"
    )]
    FileTooLarge {
        /// The input size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// A problem on one line.
    #[error("line {line}: {kind}")]
    Line {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        kind: LineError,
    },
}

impl ParseError {
    /// The 1-based line of the error, if it is about one line.
    #[must_use]
    pub fn line(&self) -> Option<usize> {
        match self {
            Self::Line { line, .. } => Some(*line),
            Self::FileTooLarge { .. } => None,
        }
    }

    /// What is wrong with the line, if the error is about one line.
    #[must_use]
    pub fn kind(&self) -> Option<&LineError> {
        match self {
            Self::Line { kind, .. } => Some(kind),
            Self::FileTooLarge { .. } => None,
        }
    }
}

fn at(line: usize, kind: LineError) -> ParseError {
    ParseError::Line { line, kind }
}

enum Body {
    /// `Key: value` — no continuation allowed.
    Inline(Vec<u8>),
    /// `Key:` — continuation lines joined with `\n`; count of lines.
    Block(Vec<u8>, usize),
    /// `Key: base64` — base64 lines joined with `\n`; count of lines.
    Binary(Vec<u8>, usize),
}

struct Pending {
    key: Key,
    line: usize,
    body: Body,
}

struct Parser<'l> {
    limits: &'l ReportLimits,
    report: Report,
    first_lines: HashMap<Key, usize>,
    pending: Option<Pending>,
}

fn over(len: usize, max: u64) -> bool {
    u64::try_from(len).map_or(true, |len| len > max)
}

impl Parser<'_> {
    fn finish_pending(&mut self) -> Result<(), ParseError> {
        let Some(Pending { key, line, body }) = self.pending.take() else {
            return Ok(());
        };
        let value = match body {
            Body::Inline(bytes) => Value::Text(Text::from_parsed(bytes, false)),
            Body::Block(_, 0) => {
                return Err(at(
                    line,
                    LineError::NoValue {
                        key: key.to_string(),
                    },
                ));
            }
            Body::Block(bytes, _) => Value::Text(Text::from_parsed(bytes, true)),
            Body::Binary(_, 0) => {
                return Err(at(
                    line,
                    LineError::EmptyBinary {
                        key: key.to_string(),
                    },
                ));
            }
            Body::Binary(lines, _) => Value::Binary(Binary::from_parsed(lines)),
        };
        self.first_lines.insert(key.clone(), line);
        self.report.insert(key, value);
        Ok(())
    }

    fn continuation(&mut self, lineno: usize, content: &[u8]) -> Result<(), ParseError> {
        let max = self.limits.max_value_bytes;
        let Some(pending) = self.pending.as_mut() else {
            return Err(at(lineno, LineError::ContinuationBeforeKey));
        };
        let key = || pending.key.to_string();
        let (buf, count) = match &mut pending.body {
            Body::Inline(_) => {
                return Err(at(
                    lineno,
                    LineError::ContinuationAfterOneLineValue { key: key() },
                ));
            }
            Body::Block(buf, count) => {
                if memchr::memchr(0, content).is_some() {
                    return Err(at(lineno, LineError::NulByte));
                }
                (buf, count)
            }
            Body::Binary(buf, count) => {
                check_base64_line(content)
                    .map_err(|reason| at(lineno, LineError::Base64 { key: key(), reason }))?;
                (buf, count)
            }
        };
        let separator = usize::from(*count > 0);
        let new_len = buf
            .len()
            .checked_add(separator)
            .and_then(|n| n.checked_add(content.len()));
        if new_len.is_none_or(|n| over(n, max)) {
            return Err(at(lineno, LineError::ValueTooLarge { key: key(), max }));
        }
        if separator == 1 {
            buf.push(b'\n');
        }
        buf.extend_from_slice(content);
        *count = count.saturating_add(1);
        Ok(())
    }

    fn key_line(&mut self, lineno: usize, line: &[u8]) -> Result<(), ParseError> {
        self.finish_pending()?;
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or_else(|| at(lineno, LineError::MissingColon))?;
        let (key_bytes, rest) = line.split_at(colon);
        let key = Key::from_bytes(key_bytes).map_err(|e| at(lineno, LineError::InvalidKey(e)))?;
        if let Some(&first_line) = self.first_lines.get(&key) {
            return Err(at(
                lineno,
                LineError::DuplicateKey {
                    key: key.to_string(),
                    first_line,
                },
            ));
        }
        if self.report.len() >= self.limits.max_keys {
            return Err(at(
                lineno,
                LineError::TooManyKeys {
                    max: self.limits.max_keys,
                },
            ));
        }
        let rest = rest.get(1..).unwrap_or_default();
        let body = match rest.split_first() {
            None => Body::Block(Vec::new(), 0),
            Some((b' ', value)) if value == BASE64_MARKER => Body::Binary(Vec::new(), 0),
            Some((b' ', value)) => {
                if memchr::memchr(0, value).is_some() {
                    return Err(at(lineno, LineError::NulByte));
                }
                if over(value.len(), self.limits.max_value_bytes) {
                    return Err(at(
                        lineno,
                        LineError::ValueTooLarge {
                            key: key.to_string(),
                            max: self.limits.max_value_bytes,
                        },
                    ));
                }
                Body::Inline(value.to_vec())
            }
            Some(_) => return Err(at(lineno, LineError::MissingSpaceAfterColon)),
        };
        self.pending = Some(Pending {
            key,
            line: lineno,
            body,
        });
        Ok(())
    }
}

impl Report {
    /// Parses a report from its bytes, enforcing `limits`.
    ///
    /// Accepts exactly the grammar in the [module docs](super); anything else
    /// is a [`ParseError`] naming the 1-based line. Never panics.
    ///
    /// # Errors
    /// [`ParseError`] for input over the size cap or any line that breaks the
    /// grammar or a limit.
    pub fn parse(data: &[u8], limits: &ReportLimits) -> Result<Self, ParseError> {
        let size = u64::try_from(data.len()).unwrap_or(u64::MAX);
        if size > limits.max_file_bytes {
            return Err(ParseError::FileTooLarge {
                size,
                max: limits.max_file_bytes,
            });
        }
        let mut parser = Parser {
            limits,
            report: Self::new(),
            first_lines: HashMap::new(),
            pending: None,
        };
        let mut rest = data;
        let mut lineno: usize = 0;
        while !rest.is_empty() {
            lineno = lineno
                .checked_add(1)
                .ok_or_else(|| at(lineno, LineError::TooManyLines))?;
            let Some(end) = memchr::memchr(b'\n', rest) else {
                return Err(at(lineno, LineError::MissingFinalNewline));
            };
            let (line, after) = rest.split_at(end);
            rest = after.get(1..).unwrap_or_default();
            match line.split_first() {
                None => return Err(at(lineno, LineError::EmptyLine)),
                Some((b' ', content)) => parser.continuation(lineno, content)?,
                Some(_) => parser.key_line(lineno, line)?,
            }
        }
        parser.finish_pending()?;
        Ok(parser.report)
    }
}
