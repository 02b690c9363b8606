//! The result a job hands back: new keys as a BSON document of strings in a
//! sealed memfd, so a result of many megabytes never travels inside a D-Bus
//! message and the receiver can trust it will not change under it.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::OwnedFd;

use base64::Engine;
use bson::{Bson, Document};
use nix::fcntl::{FcntlArg, SealFlag, fcntl};
use nix::sys::memfd::{MFdFlags, memfd_create};

/// Largest result document accepted back from a descriptor.
pub const MAX_RESULT_BYTES: u64 = 64 * 1024 * 1024;

/// Prefix of a value that is not UTF-8: the rest is base64 of its gzip stream,
/// as apport writes binary values.
const BINARY_PREFIX: &str = "base64\n";

/// Encoding or decoding a result failed.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// BSON encoding or decoding.
    #[error("result document: {0}")]
    Bson(#[from] bson::error::Error),
    /// memfd or I/O.
    #[error("result descriptor: {0}")]
    Io(#[from] std::io::Error),
    /// The document is not what apportd writes.
    #[error("result document: {0}")]
    Malformed(String),
}

/// Encode fields as one BSON document whose values are all strings
/// (the whoopsie convention); non-UTF-8 values become `base64\n<gzip base64>`.
pub fn encode_fields(fields: &[(String, Vec<u8>)]) -> Result<Vec<u8>, OutputError> {
    let mut document = Document::new();
    for (key, value) in fields {
        let text = match std::str::from_utf8(value) {
            Ok(text) if !text.starts_with(BINARY_PREFIX) => text.to_owned(),
            _ => {
                let mut gz =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                gz.write_all(value)?;
                let compressed = gz.finish()?;
                format!(
                    "{BINARY_PREFIX}{}",
                    base64::engine::general_purpose::STANDARD.encode(compressed)
                )
            }
        };
        document.insert(key.clone(), Bson::String(text));
    }
    Ok(document.to_vec()?)
}

/// Decode what [`encode_fields`] wrote, refusing anything but string values.
pub fn decode_fields(bytes: &[u8]) -> Result<Vec<(String, Vec<u8>)>, OutputError> {
    let document = Document::from_reader(bytes)?;
    let mut fields = Vec::with_capacity(document.len());
    for (key, value) in document {
        let Bson::String(text) = value else {
            return Err(OutputError::Malformed(format!("{key} is not a string")));
        };
        let value = match text.strip_prefix(BINARY_PREFIX) {
            Some(encoded) => {
                let compressed = base64::engine::general_purpose::STANDARD
                    .decode(encoded)
                    .map_err(|e| OutputError::Malformed(format!("{key}: {e}")))?;
                let mut plain = Vec::new();
                flate2::read::GzDecoder::new(compressed.as_slice())
                    .take(MAX_RESULT_BYTES)
                    .read_to_end(&mut plain)?;
                plain
            }
            None => text.into_bytes(),
        };
        fields.push((key, value));
    }
    Ok(fields)
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

/// Read a result descriptor back into fields (what `apport-hook run` and tests do).
pub fn read_result(fd: OwnedFd) -> Result<Vec<(String, Vec<u8>)>, OutputError> {
    let mut file = File::from(fd);
    file.seek(SeekFrom::Start(0))?;
    let mut bytes = Vec::new();
    file.take(MAX_RESULT_BYTES.saturating_add(1))
        .read_to_end(&mut bytes)?;
    if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > MAX_RESULT_BYTES {
        return Err(OutputError::Malformed("result larger than 64 MiB".into()));
    }
    decode_fields(&bytes)
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
            ("Tricky".to_owned(), b"base64\nnot really".to_vec()),
        ];
        let bytes = encode_fields(&fields).unwrap();
        let fd = sealed_memfd("test", &bytes).unwrap();
        assert_eq!(read_result(fd).unwrap(), fields);
    }

    #[test]
    fn sealed_result_cannot_be_changed() {
        let fd = sealed_memfd("test", b"abc").unwrap();
        let mut file = File::from(fd);
        assert!(file.write_all(b"x").is_err());
    }
}
