//! Decoding a hook result's body as it streams in.
//!
//! Each chunk is pushed through the decoder of its `Content-Encoding` the
//! moment it arrives, and the decompressed bytes are counted against two
//! caps: the per-result cap (`limits.max_result_bytes`) and what the hook
//! may still store before its disk cap. Crossing either stops the upload at
//! that chunk, so a small compressed body that inflates past the disk cap is
//! cut off as early as an uncompressed one, and a decompression bomb never
//! gets more than `cap + 1` bytes of memory (the zstd window is capped too).
//!
//! zstd, the coding clients use, is decoded straight into the result's
//! buffer (no intermediate copy) with a decoder context reused from a small
//! pool: creating one per upload and growing its buffers cost more than
//! decoding a typical result.

use std::io::{self, Write};
use std::sync::Mutex;

use apport_hooks::report::ZSTD_MAX_WINDOW_LOG;
use axum::http::{HeaderMap, header};
use zstd::zstd_safe::{DCtx, DParameter, InBuffer, OutBuffer, ResetDirective};

use crate::body_budget::BodyCharge;

/// The content codings accepted for results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    /// No compression.
    Identity,
    /// `zstd`.
    Zstd,
    /// `gzip` (or `x-gzip`).
    Gzip,
    /// `deflate` (zlib-wrapped, as HTTP defines it).
    Deflate,
}

impl Coding {
    /// The coding named by `Content-Encoding`; `None` for one daisy does
    /// not accept (answer `415`).
    pub fn from_headers(headers: &HeaderMap) -> Option<Coding> {
        let Some(value) = headers.get(header::CONTENT_ENCODING) else {
            return Some(Coding::Identity);
        };
        let name = value.to_str().ok()?.trim();
        [
            ("", Coding::Identity),
            ("identity", Coding::Identity),
            ("zstd", Coding::Zstd),
            ("gzip", Coding::Gzip),
            ("x-gzip", Coding::Gzip),
            ("deflate", Coding::Deflate),
        ]
        .into_iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, coding)| coding)
    }
}

/// Why a result body was not taken.
#[derive(Debug)]
pub enum BodyStop {
    /// The decompressed bytes went over what the hook may still store:
    /// cut the upload off and disable the hook.
    OverDiskCap {
        /// Decompressed bytes when the cap was crossed.
        decompressed: usize,
    },
    /// The body, compressed or decompressed, went over the result cap.
    TooLarge,
    /// The compressed stream is broken or truncated.
    Undecodable(io::Error),
    /// The decompressed bytes reached what is decoded before the token is
    /// known to be good ([`ResultBody::unverified`]): check it, then decode
    /// the body again from its start without that limit.
    Unverified,
    /// The bodies in flight used up their memory budget
    /// ([`ResultBody::charged`]): refuse for later.
    Busy,
}

/// Collects the decompressed bytes, refusing to hold more than `limit`.
struct CappedSink {
    out: Vec<u8>,
    limit: usize,
    /// Decompressed bytes the decoder tried to hand over when it crossed
    /// the limit (0 while under it).
    crossed_at: usize,
    /// The share of the bodies' memory budget the buffer holds, grown
    /// before the buffer is: one pushed chunk may inflate to the whole cap,
    /// which the budget must see before the memory is taken, not after.
    charge: Option<BodyCharge>,
    /// The budget refused to grow.
    busy: bool,
}

impl CappedSink {
    /// Charges the budget for a buffer of `bytes`.
    fn cover(&mut self, bytes: usize) -> io::Result<()> {
        let Some(charge) = self.charge.as_mut() else {
            return Ok(());
        };
        charge.cover(bytes).map_err(|_| {
            self.busy = true;
            io::Error::other("the bodies in flight used up their memory budget")
        })
    }
}

impl Write for CappedSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let total = self.out.len().saturating_add(buf.len());
        if total > self.limit {
            self.crossed_at = total;
            return Err(io::Error::other("decompressed result over its cap"));
        }
        self.cover(total)?;
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Decoder contexts kept for the next uploads.
static ZSTD_POOL: Mutex<Vec<DCtx<'static>>> = Mutex::new(Vec::new());

/// Most pooled contexts (about one per upload in flight on a busy server).
const ZSTD_POOL_SIZE: usize = 64;

/// A context whose buffers grew past this (a frame with a large window)
/// is freed instead of pooled, so the pool stays small.
const ZSTD_POOL_MAX_BYTES: usize = 1 << 20;

/// How much the zstd output buffer grows at least per step.
const ZSTD_MIN_GROWTH: usize = 16 * 1024;

/// A zstd stream decoded into a [`CappedSink`]'s buffer directly.
struct ZstdStream {
    dctx: Option<DCtx<'static>>,
    sink: CappedSink,
    /// zstd's hint after the last call: 0 once a frame is complete and
    /// flushed (nothing received yet counts as complete: an empty body is
    /// refused later as an invalid document).
    hint: usize,
}

impl ZstdStream {
    fn new(sink: CappedSink) -> io::Result<ZstdStream> {
        let pooled = ZSTD_POOL.lock().ok().and_then(|mut pool| pool.pop());
        let dctx = match pooled {
            Some(dctx) => dctx,
            None => {
                let mut dctx = DCtx::try_create()
                    .ok_or_else(|| io::Error::other("cannot allocate a zstd decoder"))?;
                // A frame may demand a window of up to 2 GiB; cap it like the
                // client side does, before any byte is decoded. A reset
                // keeps the parameter for the context's next uses.
                dctx.set_parameter(DParameter::WindowLogMax(ZSTD_MAX_WINDOW_LOG))
                    .map_err(zstd_error)?;
                dctx
            }
        };
        Ok(ZstdStream {
            dctx: Some(dctx),
            sink,
            hint: 0,
        })
    }

    /// Decodes `data`; with empty `data`, flushes what zstd still holds.
    fn write(&mut self, data: &[u8]) -> io::Result<()> {
        if data.is_empty() && self.hint == 0 {
            // Between frames (or before the first): nothing to flush.
            return Ok(());
        }
        let Some(dctx) = self.dctx.as_mut() else {
            return Err(io::Error::other("zstd decoder already released"));
        };
        let sink = &mut self.sink;
        let mut input = InBuffer::around(data);
        loop {
            // Room for at most `limit + 1` bytes: one past the limit is
            // enough to know it was crossed.
            let most = sink.limit.saturating_add(1);
            if sink.out.len() == sink.out.capacity() {
                let len = sink.out.len();
                if len >= most {
                    sink.crossed_at = len.saturating_add(1);
                    return Err(io::Error::other("decompressed result over its cap"));
                }
                let target = len.saturating_mul(2).max(ZSTD_MIN_GROWTH).min(most);
                // What the buffer may come to hold (the byte past the
                // limit only shows it was crossed).
                sink.cover(target.min(sink.limit))?;
                sink.out.reserve_exact(target.saturating_sub(len));
            }
            let full = {
                let len = sink.out.len();
                let mut output = OutBuffer::around_pos(&mut sink.out, len);
                self.hint = dctx
                    .decompress_stream(&mut output, &mut input)
                    .map_err(zstd_error)?;
                output.pos() == output.capacity()
            };
            if sink.out.len() > sink.limit {
                sink.crossed_at = sink.out.len();
                return Err(io::Error::other("decompressed result over its cap"));
            }
            // Done with this chunk once zstd took all of it and did not
            // fill the output (it would otherwise hold more to flush).
            if input.pos() == data.len() && !full {
                return Ok(());
            }
        }
    }

    fn finish(&mut self) -> io::Result<()> {
        self.write(&[])?;
        if self.hint != 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the zstd stream ends inside a frame",
            ));
        }
        Ok(())
    }
}

impl Drop for ZstdStream {
    fn drop(&mut self) {
        let Some(mut dctx) = self.dctx.take() else {
            return;
        };
        if dctx.sizeof() > ZSTD_POOL_MAX_BYTES || dctx.reset(ResetDirective::SessionOnly).is_err() {
            return;
        }
        if let Ok(mut pool) = ZSTD_POOL.lock()
            && pool.len() < ZSTD_POOL_SIZE
        {
            pool.push(dctx);
        }
    }
}

fn zstd_error(code: usize) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        zstd::zstd_safe::get_error_name(code),
    )
}

enum Decoder {
    Identity(CappedSink),
    Zstd(ZstdStream),
    Gzip(Box<flate2::write::GzDecoder<CappedSink>>),
    Deflate(Box<flate2::write::ZlibDecoder<CappedSink>>),
}

impl Decoder {
    fn sink(&self) -> &CappedSink {
        match self {
            Decoder::Identity(s) => s,
            Decoder::Zstd(d) => &d.sink,
            Decoder::Gzip(d) => d.get_ref(),
            Decoder::Deflate(d) => d.get_ref(),
        }
    }

    fn sink_mut(&mut self) -> &mut CappedSink {
        match self {
            Decoder::Identity(s) => s,
            Decoder::Zstd(d) => &mut d.sink,
            Decoder::Gzip(d) => d.get_mut(),
            Decoder::Deflate(d) => d.get_mut(),
        }
    }
}

/// A result body being decoded chunk by chunk.
pub struct ResultBody {
    decoder: Decoder,
    /// Bytes received on the wire so far.
    received: usize,
    /// The result cap (wire bytes and decompressed bytes).
    cap: usize,
    /// What the hook may still store (decompressed bytes).
    room: usize,
    /// Where decoding stops until the token is checked (`usize::MAX`: it
    /// was).
    verify_at: usize,
}

impl ResultBody {
    /// A decoder for `coding` that stops past `cap` bytes (wire or
    /// decompressed) or past `room` decompressed bytes.
    pub fn new(coding: Coding, cap: usize, room: usize) -> io::Result<ResultBody> {
        Self::unverified(coding, cap, room, usize::MAX)
    }

    /// The same, for a token not yet checked: it also stops with
    /// [`BodyStop::Unverified`] past `verify_at` decompressed bytes, so a
    /// stranger's small compressed body cannot make daisy inflate and hold
    /// up to the whole cap before its token is refused.
    pub fn unverified(
        coding: Coding,
        cap: usize,
        room: usize,
        verify_at: usize,
    ) -> io::Result<ResultBody> {
        let sink = CappedSink {
            out: Vec::new(),
            limit: cap.min(room).min(verify_at),
            crossed_at: 0,
            charge: None,
            busy: false,
        };
        let decoder = match coding {
            Coding::Identity => Decoder::Identity(sink),
            Coding::Zstd => Decoder::Zstd(ZstdStream::new(sink)?),
            Coding::Gzip => Decoder::Gzip(Box::new(flate2::write::GzDecoder::new(sink))),
            Coding::Deflate => Decoder::Deflate(Box::new(flate2::write::ZlibDecoder::new(sink))),
        };
        Ok(ResultBody {
            decoder,
            received: 0,
            cap,
            room,
            verify_at,
        })
    }

    /// Charges the decompressed bytes to `charge` as they are decoded,
    /// before each buffer grows ([`BodyStop::Busy`] when it cannot).
    #[must_use]
    pub fn charged(mut self, charge: BodyCharge) -> ResultBody {
        self.decoder.sink_mut().charge = Some(charge);
        self
    }

    /// The charge given to [`ResultBody::charged`], to carry it over to the
    /// decoder that replaces this one.
    pub fn take_charge(&mut self) -> Option<BodyCharge> {
        self.decoder.sink_mut().charge.take()
    }

    /// Decodes one chunk of the body as received.
    pub fn push(&mut self, data: &[u8]) -> Result<(), BodyStop> {
        self.received = self.received.saturating_add(data.len());
        // Wire bytes of a compressed body count too: a stream that decodes
        // to little (skippable frames, empty blocks) must still end. An
        // identity body is its decompressed bytes, counted by the sink.
        if self.received > self.cap && !self.is_identity() {
            return Err(BodyStop::TooLarge);
        }
        let written = match &mut self.decoder {
            Decoder::Identity(s) => s.write_all(data),
            Decoder::Zstd(d) => d.write(data),
            Decoder::Gzip(d) => d.write_all(data),
            Decoder::Deflate(d) => d.write_all(data),
        };
        written.map_err(|e| self.stop(e))
    }

    /// Decompressed bytes held so far.
    pub fn held(&self) -> usize {
        self.decoder.sink().out.len()
    }

    /// The decompressed body, once the whole request body was pushed.
    pub fn finish(mut self) -> Result<Vec<u8>, BodyStop> {
        // Finishing flushes what the decoders still hold, which may cross a
        // cap too; zstd also refuses a stream that stops inside a frame.
        let finished = match &mut self.decoder {
            Decoder::Identity(_) => Ok(()),
            Decoder::Zstd(d) => d.finish(),
            Decoder::Gzip(d) => d.try_finish(),
            Decoder::Deflate(d) => d.try_finish(),
        };
        finished.map_err(|e| self.stop(e))?;
        Ok(std::mem::take(&mut self.decoder.sink_mut().out))
    }

    fn is_identity(&self) -> bool {
        matches!(self.decoder, Decoder::Identity(_))
    }

    fn stop(&self, error: io::Error) -> BodyStop {
        let sink = self.decoder.sink();
        if sink.busy {
            BodyStop::Busy
        } else if sink.crossed_at == 0 {
            BodyStop::Undecodable(error)
        } else if sink.limit == self.verify_at && self.verify_at < self.cap.min(self.room) {
            BodyStop::Unverified
        } else if sink.crossed_at > self.room {
            BodyStop::OverDiskCap {
                decompressed: sink.crossed_at,
            }
        } else {
            BodyStop::TooLarge
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use std::io::Write as _;

    use super::*;

    fn compress(coding: Coding, data: &[u8]) -> Vec<u8> {
        match coding {
            Coding::Identity => data.to_vec(),
            Coding::Zstd => zstd::encode_all(data, 3).unwrap(),
            Coding::Gzip => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            Coding::Deflate => {
                let mut e =
                    flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
        }
    }

    const CODINGS: [Coding; 4] = [
        Coding::Identity,
        Coding::Zstd,
        Coding::Gzip,
        Coding::Deflate,
    ];

    /// Pushes `body` in chunks of `chunk` bytes, then finishes.
    fn decode(
        coding: Coding,
        body: &[u8],
        chunk: usize,
        cap: usize,
        room: usize,
    ) -> Result<Vec<u8>, BodyStop> {
        let mut d = ResultBody::new(coding, cap, room).unwrap();
        for part in body.chunks(chunk) {
            d.push(part)?;
        }
        d.finish()
    }

    #[test]
    fn every_coding_decodes_in_small_chunks() {
        let data: Vec<u8> = (0..100_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        for coding in CODINGS {
            let out = decode(coding, &compress(coding, &data), 7, 1 << 20, 1 << 20).unwrap();
            assert_eq!(out, data, "{coding:?}");
        }
    }

    #[test]
    fn an_unverified_body_stops_where_its_token_must_be_checked() {
        let bomb = vec![b'x'; 4 << 20];
        let small = vec![b'y'; 1000];
        for coding in CODINGS {
            let mut d = ResultBody::unverified(coding, 8 << 20, 8 << 20, 4096).unwrap();
            let mut stop = None;
            for part in compress(coding, &bomb).chunks(512) {
                if let Err(s) = d.push(part) {
                    stop = Some(s);
                    break;
                }
            }
            assert!(
                matches!(stop, Some(BodyStop::Unverified)),
                "{coding:?}: {stop:?}"
            );
            // At most one byte past the limit (how the zstd stream sees it).
            assert!(d.decoder.sink().out.len() <= 4097, "{coding:?}");
            // Under the limit, the body decodes as it would once verified.
            let mut d = ResultBody::unverified(coding, 8 << 20, 8 << 20, 4096).unwrap();
            d.push(&compress(coding, &small)).unwrap();
            assert_eq!(d.finish().unwrap(), small, "{coding:?}");
            // Room and cap below the check keep their own answers.
            let mut d = ResultBody::unverified(coding, 8 << 20, 100, 4096).unwrap();
            let r = d
                .push(&compress(coding, &small))
                .and_then(|()| d.finish().map(drop));
            assert!(
                matches!(r, Err(BodyStop::OverDiskCap { .. })),
                "{coding:?}: {r:?}"
            );
        }
    }

    #[test]
    fn inflating_past_the_room_is_over_the_disk_cap() {
        let data = vec![b'x'; 1 << 20];
        for coding in CODINGS {
            let r = decode(coding, &compress(coding, &data), 4096, 2 << 20, 1000);
            assert!(
                matches!(r, Err(BodyStop::OverDiskCap { decompressed }) if decompressed > 1000),
                "{coding:?}: {r:?}"
            );
        }
    }

    #[test]
    fn inflating_past_the_result_cap_is_too_large() {
        let data = vec![b'x'; 1 << 20];
        for coding in CODINGS {
            let r = decode(coding, &compress(coding, &data), 4096, 1000, 2 << 20);
            assert!(matches!(r, Err(BodyStop::TooLarge)), "{coding:?}: {r:?}");
        }
    }

    #[test]
    fn exactly_the_cap_is_accepted() {
        let data = vec![b'y'; 5000];
        for coding in CODINGS {
            let out = decode(coding, &compress(coding, &data), 100, 5000, 5000).unwrap();
            assert_eq!(out.len(), 5000, "{coding:?}");
        }
    }

    #[test]
    fn truncated_or_garbage_streams_are_undecodable() {
        let data = vec![b'z'; 10_000];
        let zstd = compress(Coding::Zstd, &data);
        let r = decode(Coding::Zstd, &zstd[..zstd.len() - 3], 64, 1 << 20, 1 << 20);
        assert!(matches!(r, Err(BodyStop::Undecodable(_))), "{r:?}");
        for coding in [Coding::Zstd, Coding::Gzip, Coding::Deflate] {
            let r = decode(
                coding,
                b"certainly not compressed data",
                64,
                1 << 20,
                1 << 20,
            );
            assert!(
                matches!(r, Err(BodyStop::Undecodable(_))),
                "{coding:?}: {r:?}"
            );
        }
    }

    #[test]
    fn a_pooled_zstd_context_decodes_cleanly_after_a_broken_stream() {
        let data: Vec<u8> = (0..50_000u32)
            .flat_map(|i| (i % 97).to_le_bytes())
            .collect();
        let good = compress(Coding::Zstd, &data);
        for _ in 0..3 {
            // Stops inside a frame, then goes back to the pool.
            let r = decode(Coding::Zstd, &good[..good.len() / 2], 100, 1 << 20, 1 << 20);
            assert!(matches!(r, Err(BodyStop::Undecodable(_))), "{r:?}");
            // Cut off at the cap mid-frame, then back to the pool too.
            let r = decode(Coding::Zstd, &good, 100, 1000, 1 << 20);
            assert!(matches!(r, Err(BodyStop::TooLarge)), "{r:?}");
            let out = decode(Coding::Zstd, &good, 100, 1 << 20, 1 << 20).unwrap();
            assert_eq!(out, data);
        }
    }

    #[test]
    fn compressed_bytes_count_against_the_result_cap() {
        // A zstd skippable frame decodes to nothing: only the wire count
        // stops a body made of them.
        let mut body = Vec::new();
        body.extend_from_slice(&0x184D_2A50u32.to_le_bytes());
        body.extend_from_slice(&20_000u32.to_le_bytes());
        body.extend_from_slice(&[0u8; 20_000]);
        body.extend_from_slice(&compress(Coding::Zstd, b"small"));
        let fits = decode(Coding::Zstd, &body, 512, 30_000, 1 << 20).unwrap();
        assert_eq!(fits, b"small");
        let r = decode(Coding::Zstd, &body, 512, 10_000, 1 << 20);
        assert!(matches!(r, Err(BodyStop::TooLarge)), "{r:?}");
    }
}
