//! Chunk decoding and encoding: zarrs' codec chain in general, and a hand-rolled path for the
//! most common chain, `[bytes, zstd]`, that reuses one (de)compression context and one scratch
//! buffer per thread instead of allocating both per chunk (measured in `benches/array_bench`:
//! a fresh zstd compression context per chunk costs its setup and the page faults of its
//! workspace; the tests below check both directions agree with zarrs byte for byte).

use std::borrow::Cow;
use std::cell::RefCell;

use zarrs::array::{ArrayBytes, ArrayToBytesCodecTraits, CodecOptions};
use zarrs::metadata::v3::MetadataV3;

use crate::layout::ArrayLayout;

/// How a chunk's bytes become elements (and elements bytes again: [`encode_chunk`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkDecoder {
    /// zarrs' codec chain.
    Zarrs,
    /// `bytes` then `zstd`: decompress into a per-thread scratch buffer, then swap bytes when
    /// the stored endianness is not native (and the reverse to encode).
    Zstd {
        /// Swap each element's bytes after decompression (before compression).
        swap: bool,
        /// The compression level written in the metadata.
        level: i32,
        /// Whether frames carry zstd's content checksum.
        checksum: bool,
    },
}

impl ChunkDecoder {
    /// Pick the decoder for a chunk codec chain given as metadata.
    #[must_use]
    pub fn for_codecs(codecs: &[MetadataV3], element_size: usize) -> Self {
        match codecs {
            [bytes, zstd] if bytes.name() == "bytes" && zstd.name() == "zstd" => {
                let config = zstd.configuration();
                let level = config
                    .and_then(|c| c.get("level"))
                    .and_then(serde_json::Value::as_i64)
                    .and_then(|l| i32::try_from(l).ok());
                let checksum = config
                    .and_then(|c| c.get("checksum"))
                    .map_or(Some(false), serde_json::Value::as_bool);
                let (Some(level), Some(checksum)) = (level, checksum) else {
                    // zarrs reports what is wrong with the configuration.
                    return Self::Zarrs;
                };
                let endian = bytes
                    .configuration()
                    .and_then(|c| c.get("endian"))
                    .and_then(|e| e.as_str())
                    .unwrap_or("little");
                let native = if cfg!(target_endian = "little") {
                    "little"
                } else {
                    "big"
                };
                Self::Zstd {
                    swap: element_size > 1 && endian != native,
                    level,
                    checksum,
                }
            }
            _ => Self::Zarrs,
        }
    }
}

thread_local! {
    static ZSTD: RefCell<Option<(zstd::bulk::Decompressor<'static>, Vec<u8>)>> = const { RefCell::new(None) };
    /// A compressor with the (level, checksum) it was set up for, and its scratch buffers.
    static ZSTD_ENCODE: RefCell<Option<(i32, bool, zstd::bulk::Compressor<'static>, EncodeScratch)>> =
        const { RefCell::new(None) };
    /// The scratch of [`with_scratch`].
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Scratch capacity a thread keeps between chunks; a larger buffer (a chunk of unusual size) is
/// given back after use rather than held for the thread's life.
const SCRATCH_KEEP_BYTES: usize = 16 << 20;

/// Give back `buf`'s memory when it grew past [`SCRATCH_KEEP_BYTES`].
fn trim(buf: &mut Vec<u8>) {
    if buf.capacity() > SCRATCH_KEEP_BYTES {
        *buf = Vec::new();
    }
}

/// The reused buffers of the zstd encoder: compressed output (at the compress bound) and
/// byte-swapped input.
#[derive(Default)]
struct EncodeScratch {
    out: Vec<u8>,
    swapped: Vec<u8>,
}

/// Run `f` with this thread's reusable scratch vector (emptied first; its capacity is kept for
/// the next call), or a new one when the thread's is in use (re-entered).
pub(crate) fn with_scratch<R>(f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut scratch) => {
            scratch.clear();
            let result = f(&mut scratch);
            trim(&mut scratch);
            result
        }
        Err(_) => f(&mut Vec::new()),
    })
}

/// Encode one chunk's `decoded` bytes (native endian, C order, the whole chunk) as stored.
///
/// # Errors
/// A message saying what failed (the caller names the file and chunk).
pub fn encode_chunk(
    layout: &ArrayLayout,
    decoder: ChunkDecoder,
    decoded: &[u8],
    options: &CodecOptions,
) -> Result<Vec<u8>, String> {
    match decoder {
        ChunkDecoder::Zstd {
            swap,
            level,
            checksum,
        } => ZSTD_ENCODE.with(|cell| {
            let Ok(mut slot) = cell.try_borrow_mut() else {
                return encode_with_zarrs(layout, decoded, options);
            };
            if !matches!(&*slot, Some((l, c, _, _)) if *l == level && *c == checksum) {
                let mut compressor =
                    zstd::bulk::Compressor::new(level).map_err(|e| format!("zstd: {e}"))?;
                compressor
                    .include_checksum(checksum)
                    .map_err(|e| format!("zstd: {e}"))?;
                *slot = Some((level, checksum, compressor, EncodeScratch::default()));
            }
            let Some((_, _, compressor, scratch)) = slot.as_mut() else {
                return Err("zstd context unavailable".to_owned());
            };
            let mut compress = |input: &[u8], out: &mut Vec<u8>| -> Result<Vec<u8>, String> {
                out.clear();
                out.try_reserve(zstd::zstd_safe::compress_bound(input.len()))
                    .map_err(|_| format!("cannot allocate for {} encoded bytes", input.len()))?;
                let n = compressor
                    .compress_to_buffer(input, out)
                    .map_err(|e| format!("zstd: {e}"))?;
                // An exact-size copy: the scratch keeps the compress bound's capacity.
                let encoded = out[..n].to_vec();
                trim(out);
                Ok(encoded)
            };
            if swap {
                let swapped = &mut scratch.swapped;
                swapped.clear();
                swapped.extend_from_slice(decoded);
                for element in swapped.chunks_exact_mut(layout.element_size) {
                    element.reverse();
                }
                let encoded = compress(swapped, &mut scratch.out);
                trim(swapped);
                encoded
            } else {
                compress(decoded, &mut scratch.out)
            }
        }),
        ChunkDecoder::Zarrs => encode_with_zarrs(layout, decoded, options),
    }
}

fn encode_with_zarrs(
    layout: &ArrayLayout,
    decoded: &[u8],
    options: &CodecOptions,
) -> Result<Vec<u8>, String> {
    layout
        .chunk_codecs
        .encode(
            ArrayBytes::new_flen(Cow::Borrowed(decoded)),
            &layout.chunk_shape_nonzero(),
            &layout.data_type,
            &layout.fill_value,
            options,
        )
        .map(Cow::into_owned)
        .map_err(|e| e.to_string())
}

/// Decode `encoded` (one read-granularity chunk) and hand the decoded bytes (native endian, C
/// order, exactly `chunk_elements * element_size` long) to `f`.
///
/// # Errors
/// A message saying what failed (the caller names the file and chunk).
pub fn with_decoded<R>(
    layout: &ArrayLayout,
    decoder: ChunkDecoder,
    encoded: &[u8],
    options: &CodecOptions,
    f: impl FnOnce(&[u8]) -> R,
) -> Result<R, String> {
    let expected = usize::try_from(layout.chunk_elements())
        .ok()
        .and_then(|n| n.checked_mul(layout.element_size))
        .ok_or_else(|| "chunk too large".to_owned())?;
    match decoder {
        ChunkDecoder::Zstd { swap, .. } => ZSTD.with(|cell| {
            let mut slot = cell.borrow_mut();
            if slot.is_none() {
                let d = zstd::bulk::Decompressor::new().map_err(|e| e.to_string())?;
                *slot = Some((d, Vec::new()));
            }
            let Some((dctx, scratch)) = slot.as_mut() else {
                return Err("zstd context unavailable".to_owned());
            };
            scratch.clear();
            // One spare byte: a frame that decodes to more than expected fails the size check
            // instead of being cut silently.
            scratch
                .try_reserve(expected + 1)
                .map_err(|_| format!("cannot allocate {expected} bytes for the decoded chunk"))?;
            let n = dctx
                .decompress_to_buffer(encoded, scratch)
                .map_err(|e| format!("zstd: {e}"))?;
            if n != expected {
                return Err(format!("zstd decoded {n} bytes, expected {expected}"));
            }
            if swap {
                for element in scratch.chunks_exact_mut(layout.element_size) {
                    element.reverse();
                }
            }
            let result = f(scratch);
            trim(scratch);
            Ok(result)
        }),
        ChunkDecoder::Zarrs => {
            let decoded = layout
                .chunk_codecs
                .decode(
                    Cow::Borrowed(encoded),
                    &layout.chunk_shape_nonzero(),
                    &layout.data_type,
                    &layout.fill_value,
                    options,
                )
                .map_err(|e| e.to_string())?
                .into_fixed()
                .map_err(|e| e.to_string())?;
            if decoded.len() == expected {
                Ok(f(&decoded))
            } else {
                Err(format!(
                    "decoded to {} bytes, expected {expected}",
                    decoded.len()
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::array::ZarrArray;

    fn meta(endian: &str, dtype: &str) -> String {
        format!(
            r#"{{"zarr_format":3,"node_type":"array","shape":[40,30],"data_type":"{dtype}",
            "chunk_grid":{{"name":"regular","configuration":{{"chunk_shape":[16,16]}}}},
            "chunk_key_encoding":{{"name":"default"}},"fill_value":0,
            "codecs":[{{"name":"bytes","configuration":{{"endian":"{endian}"}}}},{{"name":"zstd","configuration":{{"level":5,"checksum":true}}}}]}}"#
        )
    }

    #[test]
    fn zstd_fast_path_agrees_with_zarrs() {
        for (endian, dtype, size) in [
            ("little", "uint16", 2),
            ("big", "int32", 4),
            ("big", "float64", 8),
            ("little", "uint8", 1),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let array = ZarrArray::create(dir.path(), &meta(endian, dtype)).unwrap();
            let data: Vec<u8> = (0..40 * 30 * size).map(|i| (i * 7 % 251) as u8).collect();
            array.write_region(&[0..40, 0..30], &data).unwrap();
            let layout = array.layout();
            assert_eq!(
                layout.decoder,
                ChunkDecoder::Zstd {
                    swap: endian == "big" && size > 1,
                    level: 5,
                    checksum: true,
                },
                "{dtype}"
            );
            let encoded = std::fs::read(dir.path().join("c/1/1")).unwrap();
            let options = CodecOptions::default();
            let fast =
                with_decoded(layout, layout.decoder, &encoded, &options, <[u8]>::to_vec).unwrap();
            let slow = with_decoded(
                layout,
                ChunkDecoder::Zarrs,
                &encoded,
                &options,
                <[u8]>::to_vec,
            )
            .unwrap();
            assert_eq!(fast, slow, "{endian} {dtype}");
            // Truncated input fails on both paths, never returns short data.
            let cut = &encoded[..encoded.len() - 3];
            assert!(with_decoded(layout, layout.decoder, cut, &options, <[u8]>::len).is_err());
            assert!(with_decoded(layout, ChunkDecoder::Zarrs, cut, &options, <[u8]>::len).is_err());
        }
    }

    #[test]
    fn other_chains_use_zarrs() {
        let parse = |s: &str| -> Vec<MetadataV3> { serde_json::from_str(s).unwrap() };
        assert_eq!(
            ChunkDecoder::for_codecs(
                &parse(r#"[{"name":"bytes"},{"name":"gzip","configuration":{"level":1}}]"#),
                2
            ),
            ChunkDecoder::Zarrs
        );
        assert_eq!(
            ChunkDecoder::for_codecs(
                &parse(
                    r#"[{"name":"bytes"},{"name":"zstd","configuration":{"level":1,"checksum":false}},{"name":"crc32c"}]"#
                ),
                2
            ),
            ChunkDecoder::Zarrs
        );
        assert_eq!(
            ChunkDecoder::for_codecs(
                &parse(
                    r#"[{"name":"bytes"},{"name":"zstd","configuration":{"level":1,"checksum":false}}]"#
                ),
                1
            ),
            ChunkDecoder::Zstd {
                swap: false,
                level: 1,
                checksum: false
            }
        );
        // A configuration zarrs would refuse is left to zarrs (which names what is wrong).
        assert_eq!(
            ChunkDecoder::for_codecs(
                &parse(r#"[{"name":"bytes"},{"name":"zstd","configuration":{"level":"high"}}]"#),
                2
            ),
            ChunkDecoder::Zarrs
        );
    }

    #[test]
    fn scratch_is_reused_and_large_ones_given_back() {
        with_scratch(|v| v.resize(1000, 7));
        // Reused: emptied, capacity kept.
        with_scratch(|v| assert!(v.is_empty() && v.capacity() >= 1000));
        // Re-entered: a separate buffer, the outer one untouched.
        with_scratch(|outer| {
            outer.push(1);
            with_scratch(|inner| assert!(inner.is_empty() && inner.capacity() == 0));
            assert_eq!(outer.as_slice(), &[1]);
        });
        with_scratch(|v| v.resize(SCRATCH_KEEP_BYTES + 1, 0));
        with_scratch(|v| assert_eq!(v.capacity(), 0));
    }

    #[test]
    fn zstd_encoder_agrees_with_zarrs() {
        let options = CodecOptions::default();
        for (endian, dtype, size, level, checksum) in [
            ("little", "uint16", 2, 3, false),
            ("little", "uint16", 2, 5, true),
            ("big", "int32", 4, 1, false),
            ("big", "float64", 8, -1, true),
            ("little", "uint8", 1, 19, false),
        ] {
            let meta = meta(endian, dtype)
                .replace(r#""level":5"#, &format!(r#""level":{level}"#))
                .replace(r#""checksum":true"#, &format!(r#""checksum":{checksum}"#));
            let dir = tempfile::tempdir().unwrap();
            let array = ZarrArray::create(dir.path(), &meta).unwrap();
            let layout = array.layout();
            assert!(
                matches!(layout.decoder, ChunkDecoder::Zstd { level: l, checksum: c, .. } if l == level && c == checksum)
            );
            // Smooth values with noise, so the encoder has matches and literals to find.
            let chunk: Vec<u8> = (0..16 * 16 * size)
                .map(|i: usize| (i / 7 + i * 31 % 5).to_le_bytes()[0])
                .collect();
            // Twice: the second call reuses the thread's compressor.
            for _ in 0..2 {
                let fast = encode_chunk(layout, layout.decoder, &chunk, &options).unwrap();
                let slow = encode_chunk(layout, ChunkDecoder::Zarrs, &chunk, &options).unwrap();
                assert_eq!(fast, slow, "{endian} {dtype} level {level}");
                let back = with_decoded(layout, layout.decoder, &fast, &options, <[u8]>::to_vec);
                assert_eq!(back.unwrap(), chunk);
            }
        }
    }
}
