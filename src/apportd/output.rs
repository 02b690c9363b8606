//! The result a job hands back: the new keys as a report, encoded the way
//! whoopsie sends reports (one BSON document, every value a string, binary
//! values as their base64 lines), in a sealed memfd, so a result of many
//! megabytes never travels inside a D-Bus message and the receiver can trust
//! it will not change under it.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::OwnedFd;

use nix::fcntl::{FcntlArg, SealFlag, fcntl};
use nix::sys::memfd::{MFdFlags, memfd_create};

use crate::report::{Key, Report, ReportLimits, Value};
use crate::wire::{WireError, WireLimits, decode_report, report_to_strings_bson};

/// Largest result document accepted back from a descriptor: the 50 MB job cap
/// plus base64 growth of binary values and the field names.
pub const MAX_RESULT_BYTES: u64 = 80 * 1024 * 1024;

/// Encoding or decoding a result failed.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// BSON or report rules.
    #[error("result document: {0}")]
    Wire(#[from] WireError),
    /// memfd or I/O.
    #[error("result descriptor: {0}")]
    Io(#[from] std::io::Error),
}

/// The fields as a report: text where the bytes allow (no NUL, UTF-8, as
/// the wire needs), else a gzip-compressed binary value, as apport stores
/// binary data. A field whose name is not a valid key is left out (hook keys
/// are linted and glob keys go through `path_to_key`, so this does not happen
/// for hooks the server accepted).
pub fn fields_to_report(fields: &[(String, Vec<u8>)]) -> Result<Report, OutputError> {
    let mut report = Report::new();
    for (name, bytes) in fields {
        let Ok(key) = Key::new(name.as_str()) else {
            tracing::warn!(key = %name, "not a valid report key: left out of the result");
            continue;
        };
        let text = std::str::from_utf8(bytes)
            .ok()
            .and_then(|_| Value::text(bytes.clone()).ok());
        let value = match text {
            Some(value) => value,
            None => Value::gzip(bytes)?,
        };
        report.insert(key, value);
    }
    Ok(report)
}

/// The BSON document of the fields (see [`fields_to_report`]).
pub fn encode_fields(fields: &[(String, Vec<u8>)]) -> Result<Vec<u8>, OutputError> {
    Ok(report_to_strings_bson(&fields_to_report(fields)?)?)
}

/// Write `bytes` into a new memfd, seal it against any change, rewind it.
pub fn sealed_memfd(name: &str, bytes: &[u8]) -> Result<OwnedFd, OutputError> {
    let fd = memfd_create(name, MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING)
        .map_err(std::io::Error::from)?;
    let mut file = File::from(fd);
    file.write_all(bytes)?;
    file.seek(SeekFrom::Start(0))?;
    let fd = OwnedFd::from(file);
    fcntl(
        &fd,
        FcntlArg::F_ADD_SEALS(
            SealFlag::F_SEAL_WRITE
                | SealFlag::F_SEAL_GROW
                | SealFlag::F_SEAL_SHRINK
                | SealFlag::F_SEAL_SEAL,
        ),
    )
    .map_err(std::io::Error::from)?;
    Ok(fd)
}

/// Read a result descriptor back into a report (what `apport-hook run` and
/// tests do). Binary values come back as the text of their base64 lines, as
/// whoopsie sends them.
pub fn read_result(fd: OwnedFd) -> Result<Report, OutputError> {
    let mut file = File::from(fd);
    file.seek(SeekFrom::Start(0))?;
    let mut bytes = Vec::new();
    file.take(MAX_RESULT_BYTES.saturating_add(1))
        .read_to_end(&mut bytes)?;
    let cap = usize::try_from(MAX_RESULT_BYTES).unwrap_or(usize::MAX);
    let wire = WireLimits {
        max_document_bytes: cap,
        ..WireLimits::default()
    };
    let limits = ReportLimits {
        max_file_bytes: MAX_RESULT_BYTES,
        max_value_bytes: MAX_RESULT_BYTES,
        ..ReportLimits::default()
    };
    Ok(decode_report(&bytes, &wire, &limits)?)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn text_and_binary_values_survive_the_memfd() {
        let fields = vec![
            ("Text".to_owned(), b"hello\nworld".to_vec()),
            ("Binary".to_owned(), vec![0xff, 0, 1, 2]),
        ];
        let bytes = encode_fields(&fields).unwrap();
        let report = read_result(sealed_memfd("test", &bytes).unwrap()).unwrap();
        assert_eq!(report.get_str("Text"), Some("hello\nworld"));
        let binary = report.get_str("Binary").unwrap();
        // The base64 lines of a gzip stream (`H4sI` is base64 of its magic), as whoopsie sends.
        assert!(binary.starts_with("H4sI"), "{binary}");
        assert_eq!(fields_to_report(&fields).unwrap().len(), 2);
    }

    #[test]
    fn sealed_result_cannot_be_changed() {
        let fd = sealed_memfd("test", b"abc").unwrap();
        let mut file = File::from(fd);
        assert!(file.write_all(b"x").is_err());
    }
}
