//! Caps applied while reading a report.
//!
//! whoopsie took allocation sizes from the file (CVE-2020-15570) and overflowed
//! integers while parsing (CVE-2019-11476, CVE-2019-11484); every size here is
//! checked before anything is allocated for it.

/// Default cap on the size of a report file: 512 MiB.
///
/// Reports with a `CoreDump` of a large program are hundreds of MiB; a
/// report bigger than this is refused rather than read into memory.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 512 * 1024 * 1024;

/// Default cap on the number of keys in one report: 10,000.
///
/// Real reports hold fewer than 100; glob steps in hooks add one key per
/// matched file.
pub const DEFAULT_MAX_KEYS: usize = 10_000;

/// Default cap on the size of one value: 512 MiB (the text, or the base64
/// text of a binary value).
pub const DEFAULT_MAX_VALUE_BYTES: u64 = 512 * 1024 * 1024;

/// Default cap on the decompressed size of one binary value: 2 GiB.
pub const DEFAULT_MAX_DECOMPRESSED_BYTES: u64 = 2 * 1024 * 1024 * 1024;

/// Caps applied while parsing, opening and decompressing a report.
///
/// Parsing holds the input and a copy of its values, so peak memory is about
/// twice the file size; decompression adds at most `max_decompressed_bytes`
/// per value asked for.
///
/// `ReportLimits::default()` gives the documented defaults
/// ([`DEFAULT_MAX_FILE_BYTES`], [`DEFAULT_MAX_KEYS`],
/// [`DEFAULT_MAX_VALUE_BYTES`], [`DEFAULT_MAX_DECOMPRESSED_BYTES`]); every
/// field can be changed for one caller (e.g. daisy uses much smaller caps for
/// hook results).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportLimits {
    /// Largest report file (or byte slice) accepted, in bytes.
    pub max_file_bytes: u64,
    /// Largest number of keys in one report.
    pub max_keys: usize,
    /// Largest value (text bytes, or base64 text of a binary value), in bytes.
    pub max_value_bytes: u64,
    /// Largest decompressed binary value, in bytes (see
    /// [`Report::decompress`](super::Report::decompress)).
    pub max_decompressed_bytes: u64,
}

impl Default for ReportLimits {
    fn default() -> Self {
        Self {
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
            max_keys: DEFAULT_MAX_KEYS,
            max_value_bytes: DEFAULT_MAX_VALUE_BYTES,
            max_decompressed_bytes: DEFAULT_MAX_DECOMPRESSED_BYTES,
        }
    }
}
