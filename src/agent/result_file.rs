//! A job's result as apportd hands it over: a sealed memfd holding one
//! strings-only BSON document of the new keys (up to the 50 MB job cap plus
//! base64 growth), validated in one streaming pass and then read again, from
//! the start, to compress it on its way to the server.
//!
//! Nothing is ever held in memory whole: the agent's RSS stays bounded
//! whatever the result's size (issue 5: under 32 MiB for a 50 MB result).
//! The two passes are safe because the descriptor must carry the seals
//! apportd sets (no write, grow or shrink): the bytes validated are the bytes
//! sent. A descriptor without them is refused rather than copied.
//!
//! The validation accepts exactly what
//! [`decode_report`](crate::wire::decode_report) accepts with the caps of
//! [`read_result`](crate::apportd::output::read_result) (one BSON document,
//! declared length equal to the file's, every field a UTF-8 string without
//! NUL under a valid, unique report key, at most
//! [`DEFAULT_MAX_FIELDS`] fields), except that a key longer than
//! [`MAX_KEY_BYTES`] is refused too (whoopsie's BSON readers trusted
//! lengths: CVE-2019-11484; here nothing is allocated from a length).

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileExt as _;
use std::sync::Arc;

use thiserror::Error;

use crate::apportd::output::MAX_RESULT_BYTES;
use crate::report::{Key, ValueError};
use crate::wire::{DEFAULT_MAX_FIELDS, WireError};

/// Longest key accepted in a result (a glob step's key is built from a path).
pub const MAX_KEY_BYTES: usize = 4096;
/// Size of the chunks read from the descriptor.
pub const CHUNK_BYTES: usize = 64 * 1024;

/// The result descriptor cannot be used.
#[derive(Debug, Error)]
pub enum ResultFileError {
    /// Not a sealed memfd (apportd always seals its results).
    #[error(
        "the result descriptor is not sealed against changes ({0}); \
         is apportd the version shipped with this apport-hook?"
    )]
    NotSealed(String),
    /// The bytes are not a valid result document.
    #[error("the result document is invalid: {0}")]
    Invalid(#[from] WireError),
    /// Reading failed.
    #[error("reading the result descriptor: {0}")]
    Io(#[from] io::Error),
}

/// One key of a result and the size of its value on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultKey {
    /// The report key.
    pub name: String,
    /// Bytes of its value (the text, or the base64 lines of a binary value).
    pub bytes: u64,
}

/// A validated, sealed result document.
#[derive(Debug, Clone)]
pub struct ResultFile {
    file: Arc<File>,
    len: u64,
    keys: Vec<ResultKey>,
}

/// Reads a file from an offset with `pread`, so independent readers of one
/// descriptor never share (or race on) its file position.
#[derive(Debug)]
pub struct FileReader {
    file: Arc<File>,
    pos: u64,
    end: u64,
}

impl Read for FileReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = usize::try_from(self.end.saturating_sub(self.pos)).unwrap_or(usize::MAX);
        let want = buf.len().min(left);
        let Some(buf) = buf.get_mut(..want) else {
            return Ok(0);
        };
        if buf.is_empty() {
            return Ok(0);
        }
        let n = self.file.read_at(buf, self.pos)?;
        self.pos = self
            .pos
            .saturating_add(u64::try_from(n).unwrap_or(u64::MAX));
        Ok(n)
    }
}

fn check_sealed(file: &File) -> Result<(), ResultFileError> {
    use nix::fcntl::{FcntlArg, SealFlag, fcntl};
    let seals = fcntl(file, FcntlArg::F_GET_SEALS)
        .map_err(|e| ResultFileError::NotSealed(format!("F_GET_SEALS: {e}")))?;
    let seals = SealFlag::from_bits_truncate(seals);
    let needed = SealFlag::F_SEAL_WRITE | SealFlag::F_SEAL_GROW | SealFlag::F_SEAL_SHRINK;
    if !seals.contains(needed) {
        return Err(ResultFileError::NotSealed(format!("seals {seals:?}")));
    }
    Ok(())
}

impl ResultFile {
    /// Takes apportd's result descriptor: checks its seals and size, then
    /// validates the document in one streaming pass.
    ///
    /// # Errors
    /// [`ResultFileError`].
    pub fn from_fd(fd: OwnedFd) -> Result<Self, ResultFileError> {
        let file = File::from(fd);
        check_sealed(&file)?;
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(ResultFileError::NotSealed("not a regular file".into()));
        }
        let len = meta.len();
        let file = Arc::new(file);
        let reader = FileReader {
            file: file.clone(),
            pos: 0,
            end: len,
        };
        let keys = validate(reader, len)?;
        Ok(Self { file, len, keys })
    }

    /// The keys, in document order, with their sizes.
    pub fn keys(&self) -> &[ResultKey] {
        &self.keys
    }

    /// Whether the job produced no key (nothing to send).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Size of the BSON document in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// A reader of the whole document from its start (independent of any
    /// other reader).
    pub fn reader(&self) -> FileReader {
        FileReader {
            file: self.file.clone(),
            pos: 0,
            end: self.len,
        }
    }
}

fn malformed(what: impl Into<String>) -> WireError {
    WireError::Malformed(what.into())
}

/// Reads exactly `buf.len()` bytes, counting them against `remaining`.
fn take_exact(r: &mut impl Read, buf: &mut [u8], remaining: &mut u64) -> Result<(), WireError> {
    let n = u64::try_from(buf.len()).unwrap_or(u64::MAX);
    if n > *remaining {
        return Err(malformed("an element runs past the end of the document"));
    }
    r.read_exact(buf)
        .map_err(|e| malformed(format!("reading: {e}")))?;
    *remaining = remaining.saturating_sub(n);
    Ok(())
}

/// Validates the result document read from `r` (`len` bytes in all) and
/// returns its keys with their sizes. See the module documentation for what
/// is checked.
///
/// # Errors
/// [`WireError`] naming the first problem.
pub fn validate(r: impl Read, len: u64) -> Result<Vec<ResultKey>, WireError> {
    let cap = usize::try_from(MAX_RESULT_BYTES).unwrap_or(usize::MAX);
    let size = usize::try_from(len).unwrap_or(usize::MAX);
    if len > MAX_RESULT_BYTES {
        return Err(WireError::TooLarge { size, max: cap });
    }
    let mut r = io::BufReader::with_capacity(CHUNK_BYTES, r.take(len));
    let mut prefix = [0u8; 4];
    if len < 4 {
        return Err(WireError::TooShort { size });
    }
    r.read_exact(&mut prefix)
        .map_err(|e| malformed(format!("reading: {e}")))?;
    let declared = i32::from_le_bytes(prefix);
    let declared_len = usize::try_from(declared)
        .ok()
        .filter(|&d| d >= 5)
        .ok_or(WireError::BadLength { declared })?;
    if declared_len > cap {
        return Err(WireError::TooLarge {
            size: declared_len,
            max: cap,
        });
    }
    if declared_len > size {
        return Err(WireError::Truncated {
            declared: declared_len,
            actual: size,
        });
    }
    if declared_len < size {
        return Err(WireError::TrailingBytes {
            declared: declared_len,
            actual: size,
        });
    }
    let mut remaining = len.saturating_sub(4);
    let mut keys = Vec::new();
    let mut names = HashSet::new();
    let mut buf = vec![0u8; CHUNK_BYTES];
    loop {
        let mut tag = [0u8; 1];
        take_exact(&mut r, &mut tag, &mut remaining)?;
        if tag[0] == 0 {
            if remaining != 0 {
                return Err(malformed("the document ends before its declared length"));
            }
            return Ok(keys);
        }
        if keys.len() >= DEFAULT_MAX_FIELDS {
            return Err(WireError::TooManyFields {
                max: DEFAULT_MAX_FIELDS,
            });
        }
        let name = read_key(&mut r, &mut remaining)?;
        if tag[0] != 0x02 {
            return Err(malformed(format!(
                "field {name:?} is BSON type 0x{:02x}; every report field must be a string",
                tag[0]
            )));
        }
        let key = Key::from_bytes(name.as_bytes()).map_err(|source| WireError::InvalidKey {
            key: name.clone(),
            source,
        })?;
        if !names.insert(key.as_str().to_owned()) {
            return Err(WireError::DuplicateField { key: name });
        }
        let mut len_bytes = [0u8; 4];
        take_exact(&mut r, &mut len_bytes, &mut remaining)?;
        let with_nul = u64::try_from(i32::from_le_bytes(len_bytes))
            .ok()
            .filter(|&l| l >= 1 && l <= remaining)
            .ok_or_else(|| malformed(format!("bad string length for field {name:?}")))?;
        let value_len = with_nul.saturating_sub(1);
        if value_len > MAX_RESULT_BYTES {
            return Err(WireError::ValueTooLarge {
                key: name,
                max: MAX_RESULT_BYTES,
            });
        }
        check_text(&mut r, &mut buf, value_len, &mut remaining, &name)?;
        let mut nul = [0u8; 1];
        take_exact(&mut r, &mut nul, &mut remaining)?;
        if nul[0] != 0 {
            return Err(malformed(format!(
                "string of field {name:?} is not terminated"
            )));
        }
        keys.push(ResultKey {
            name,
            bytes: value_len,
        });
    }
}

/// Reads a field name (a NUL-terminated string of at most [`MAX_KEY_BYTES`]).
fn read_key(r: &mut impl Read, remaining: &mut u64) -> Result<String, WireError> {
    let mut name = Vec::new();
    loop {
        let mut b = [0u8; 1];
        take_exact(r, &mut b, remaining)?;
        if b[0] == 0 {
            break;
        }
        if name.len() >= MAX_KEY_BYTES {
            return Err(malformed(format!(
                "a field name is longer than {MAX_KEY_BYTES} bytes"
            )));
        }
        name.push(b[0]);
    }
    String::from_utf8(name).map_err(|_| malformed("a field name is not UTF-8"))
}

/// Streams `len` value bytes: UTF-8 (checked across chunk boundaries) and no NUL.
fn check_text(
    r: &mut impl Read,
    buf: &mut [u8],
    len: u64,
    remaining: &mut u64,
    key: &str,
) -> Result<(), WireError> {
    let mut left = len;
    // Bytes of a character split across two chunks, moved to the buffer's start.
    let mut carry = 0usize;
    let mut offset = 0u64;
    while left > 0 {
        let room = buf.len().saturating_sub(carry);
        let want = usize::try_from(left).unwrap_or(usize::MAX).min(room);
        let end = carry.saturating_add(want);
        let chunk = buf
            .get_mut(carry..end)
            .ok_or_else(|| malformed("internal buffer"))?;
        take_exact(r, chunk, remaining)?;
        left = left.saturating_sub(u64::try_from(want).unwrap_or(u64::MAX));
        let data = buf.get(..end).ok_or_else(|| malformed("internal buffer"))?;
        if let Some(pos) = memchr::memchr(0, data) {
            let at = offset
                .saturating_add(u64::try_from(pos).unwrap_or(u64::MAX))
                .saturating_sub(u64::try_from(carry).unwrap_or(0));
            return Err(WireError::InvalidValue {
                key: key.to_owned(),
                source: ValueError::NulByte {
                    offset: usize::try_from(at).unwrap_or(usize::MAX),
                },
            });
        }
        let valid = match std::str::from_utf8(data) {
            Ok(_) => end,
            // An incomplete character at the end: finished by the next chunk.
            Err(e) if e.error_len().is_none() && left > 0 => e.valid_up_to(),
            Err(e) => {
                let at = offset
                    .saturating_add(u64::try_from(e.valid_up_to()).unwrap_or(u64::MAX))
                    .saturating_sub(u64::try_from(carry).unwrap_or(0));
                return Err(WireError::NotUtf8 {
                    key: key.to_owned(),
                    offset: usize::try_from(at).unwrap_or(usize::MAX),
                });
            }
        };
        offset = offset.saturating_add(u64::try_from(want).unwrap_or(u64::MAX));
        buf.copy_within(valid..end, 0);
        carry = end.saturating_sub(valid);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects
    )]
    use super::*;
    use crate::apportd::output::{encode_fields, sealed_memfd};
    use crate::report::ReportLimits;
    use crate::wire::{WireLimits, decode_report};
    use proptest::prelude::*;

    fn reference(bytes: &[u8]) -> bool {
        let cap = usize::try_from(MAX_RESULT_BYTES).unwrap();
        let wire = WireLimits {
            max_document_bytes: cap,
            ..WireLimits::default()
        };
        let limits = ReportLimits {
            max_file_bytes: MAX_RESULT_BYTES,
            max_value_bytes: MAX_RESULT_BYTES,
            ..ReportLimits::default()
        };
        decode_report(bytes, &wire, &limits).is_ok()
    }

    fn ours(bytes: &[u8]) -> bool {
        validate(bytes, u64::try_from(bytes.len()).unwrap()).is_ok()
    }

    #[test]
    fn a_result_from_apportd_is_taken_with_its_key_sizes() {
        let fields = vec![
            ("Text".to_owned(), "héllo\nworld".as_bytes().to_vec()),
            ("Binary".to_owned(), vec![0xff, 0, 1, 2]),
        ];
        let bytes = encode_fields(&fields).unwrap();
        let file = ResultFile::from_fd(sealed_memfd("t", &bytes).unwrap()).unwrap();
        assert_eq!(file.keys()[0].name, "Text");
        assert_eq!(file.keys()[0].bytes, 12);
        assert_eq!(file.keys().len(), 2);
        let mut back = Vec::new();
        file.reader().read_to_end(&mut back).unwrap();
        assert_eq!(back, bytes);
    }

    #[test]
    fn an_unsealed_descriptor_is_refused() {
        let bytes = encode_fields(&[("A".to_owned(), b"x".to_vec())]).unwrap();
        let mut tmp = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut tmp, &bytes).unwrap();
        let err = ResultFile::from_fd(OwnedFd::from(tmp)).unwrap_err();
        assert!(matches!(err, ResultFileError::NotSealed(_)), "{err}");
    }

    #[test]
    fn a_value_split_mid_character_across_chunks_is_valid_utf8() {
        // "é" is two bytes; put its first byte at the end of a chunk.
        let mut text = "a".repeat(CHUNK_BYTES - 1 - 4 - 3 - 1);
        text.push_str(&"é".repeat(CHUNK_BYTES));
        let bytes = encode_fields(&[("K".to_owned(), text.into_bytes())]).unwrap();
        assert!(ours(&bytes));
        for cut in [CHUNK_BYTES - 1, CHUNK_BYTES, CHUNK_BYTES + 1] {
            let mut bad = bytes.clone();
            bad[cut] = 0xff;
            assert!(!ours(&bad));
            assert!(!reference(&bad));
        }
    }

    #[test]
    fn hostile_documents_are_refused() {
        let good = encode_fields(&[("A".to_owned(), b"x".to_vec())]).unwrap();
        assert!(ours(&good));
        let mut dup = encode_fields(&[("A".to_owned(), b"x".to_vec())]).unwrap();
        dup.truncate(dup.len() - 1);
        dup.extend_from_slice(&good[4..good.len() - 1]);
        dup.push(0);
        let n = i32::try_from(dup.len()).unwrap().to_le_bytes();
        dup[..4].copy_from_slice(&n);
        assert!(!ours(&dup) && !reference(&dup));
        let mut nul = good.clone();
        nul[good.len() - 3] = 0;
        assert!(!ours(&nul) && !reference(&nul));
        let mut long = good.clone();
        long[..4].copy_from_slice(&i32::MAX.to_le_bytes());
        assert!(!ours(&long));
        assert!(!ours(&good[..good.len() - 1]));
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(!ours(&trailing));
    }

    fn document() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(
            (
                "[A-Za-z0-9._-]{1,12}",
                proptest::collection::vec(any::<u8>(), 0..40),
            ),
            0..5,
        )
        .prop_map(|fields| {
            // Strings-only BSON built by hand, so values may hold anything.
            let mut out = vec![0u8; 4];
            for (k, v) in fields {
                out.push(2);
                out.extend_from_slice(k.as_bytes());
                out.push(0);
                out.extend_from_slice(&i32::try_from(v.len() + 1).unwrap().to_le_bytes());
                out.extend_from_slice(&v);
                out.push(0);
            }
            out.push(0);
            let n = i32::try_from(out.len()).unwrap().to_le_bytes();
            out[..4].copy_from_slice(&n);
            out
        })
    }

    proptest! {
        #[test]
        fn streaming_validation_agrees_with_decode_report(
            doc in document(),
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..3),
        ) {
            let mut doc = doc;
            for (at, byte) in flips {
                let i = at.index(doc.len());
                doc[i] = byte;
            }
            prop_assert_eq!(ours(&doc), reference(&doc), "{:?}", doc);
        }
    }
}
