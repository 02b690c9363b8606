//! Writing a report in apport's format.

use std::io::{self, Write};

use super::Report;
use super::value::{BASE64_MARKER, Value, split_lines};

impl Report {
    /// Writes the report in apport's format: keys in this report's order,
    /// one-line values as `Key: value`, multi-line values as `Key:` followed
    /// by lines that start with one space, binary values as `Key: base64`
    /// followed by their base64 lines. A parsed, unmodified report is
    /// written back byte for byte.
    ///
    /// # Errors
    /// Any error of `out`.
    pub fn write_to(&self, mut out: impl Write) -> io::Result<()> {
        for (key, value) in self.iter() {
            out.write_all(key.as_str().as_bytes())?;
            match value {
                Value::Text(text) if text.is_multiline() => {
                    out.write_all(b":\n")?;
                    for line in split_lines(text.as_bytes()) {
                        out.write_all(b" ")?;
                        out.write_all(line)?;
                        out.write_all(b"\n")?;
                    }
                }
                Value::Text(text) => {
                    out.write_all(b": ")?;
                    out.write_all(text.as_bytes())?;
                    out.write_all(b"\n")?;
                }
                Value::Binary(binary) => {
                    out.write_all(b": ")?;
                    out.write_all(BASE64_MARKER)?;
                    for line in split_lines(binary.base64_lines()) {
                        out.write_all(b"\n ")?;
                        out.write_all(line)?;
                    }
                    out.write_all(b"\n")?;
                }
            }
        }
        Ok(())
    }

    /// The report in apport's format (see [`Report::write_to`]).
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        // Writing into a Vec cannot fail.
        let _ = self.write_to(&mut out);
        out
    }
}
