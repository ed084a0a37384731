//! Chunk decoding and encoding: zarrs' codec chain in general, and hand-rolled paths for two
//! chains. `[bytes, zstd]`, the most common, reuses one (de)compression context and one scratch
//! buffer per thread instead of allocating both per chunk (measured in `benches/array_bench`:
//! a fresh zstd compression context per chunk costs its setup and the page faults of its
//! workspace). `[bytes]` alone stores the elements themselves: a chunk is used where its bytes
//! lie, and a read that needs part of one fetches only that part (`array_bench`, its raw dataset).
//! The tests below check both directions agree with zarrs byte for byte.

use std::borrow::Cow;
use std::cell::RefCell;

use zarrs::array::{
    ArrayBytes, ArrayToBytesCodecTraits, CodecChain, CodecOptions, DataType, FillValue,
};
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
        /// The run of bytes whose order is reversed after decompression (before compression):
        /// an element's components (a complex number's two parts, a UTF-32 string's code
        /// units) when stored in the other byte order, 1 (nothing to do) when native.
        swap_unit: usize,
        /// The compression level written in the metadata.
        level: i32,
        /// Whether frames carry zstd's content checksum.
        checksum: bool,
    },
    /// `bytes` alone: the stored bytes are the elements, reversed in runs of `swap_unit` when
    /// stored in the other byte order (see `Zstd`), so any run of whole elements of a stored
    /// chunk decodes on its own.
    Raw {
        /// As `Zstd`'s.
        swap_unit: usize,
    },
}

impl ChunkDecoder {
    /// Pick the decoder for a chunk codec chain given as metadata, for elements of
    /// `data_type`.
    #[must_use]
    pub fn for_codecs(codecs: &[MetadataV3], data_type: &DataType, fill: &FillValue) -> Self {
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
                // zarrs reports what is wrong with a configuration it would refuse, and decodes
                // element types whose stored order is not a reversal of equal runs.
                match (level, checksum, swap_unit(bytes, data_type, fill)) {
                    (Some(level), Some(checksum), Some(swap_unit)) => Self::Zstd {
                        swap_unit,
                        level,
                        checksum,
                    },
                    _ => Self::Zarrs,
                }
            }
            [bytes] if bytes.name() == "bytes" => swap_unit(bytes, data_type, fill)
                .map_or(Self::Zarrs, |swap_unit| Self::Raw { swap_unit }),
            _ => Self::Zarrs,
        }
    }

    /// Whether a run of whole elements of a stored chunk decodes on its own
    /// ([`with_decoded_part`]).
    #[must_use]
    pub fn decodes_parts(self) -> bool {
        matches!(self, Self::Raw { .. })
    }
}

/// How the `bytes` codec `bytes` stores an element of `data_type`, as the length of the runs
/// whose byte order it reverses (1: stored as in memory), found by asking zarrs to encode one
/// element of distinct bytes, so the hand-rolled path agrees with zarrs for every type it
/// knows (a complex number's parts and a UTF-32 string's code units are swapped one by one,
/// not as one element). None for a variable-size type, an error (zarrs will report it), or an
/// order that is no such reversal.
fn swap_unit(bytes: &MetadataV3, data_type: &DataType, fill: &FillValue) -> Option<usize> {
    let size = data_type.fixed_size()?;
    let chain = CodecChain::from_metadata(std::slice::from_ref(bytes)).ok()?;
    // Distinct byte values in every 251 bytes (the pattern repeats in longer elements).
    let element: Vec<u8> = (1..=251u8).cycle().take(size).collect();
    let one = [std::num::NonZeroU64::MIN];
    let stored = chain
        .encode(
            ArrayBytes::new_flen(Cow::Borrowed(element.as_slice())),
            &one,
            data_type,
            fill,
            &CodecOptions::default(),
        )
        .ok()?;
    // A shorter run could only pass for a longer one if it were a multiple of the pattern's
    // period (251): such runs are not tried (beyond the whole element).
    (1..=size)
        .filter(|&unit| size % unit == 0 && (unit < 251 || unit == size))
        .find(|&unit| {
            let mut reversed = element.clone();
            reverse_runs(&mut reversed, unit);
            reversed == *stored
        })
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
            swap_unit,
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
            if swap_unit > 1 {
                let swapped = &mut scratch.swapped;
                swapped.clear();
                swapped.extend_from_slice(decoded);
                reverse_runs(swapped, swap_unit);
                let encoded = compress(swapped, &mut scratch.out);
                trim(swapped);
                encoded
            } else {
                compress(decoded, &mut scratch.out)
            }
        }),
        ChunkDecoder::Raw { swap_unit } => {
            let mut stored = decoded.to_vec();
            reverse_runs(&mut stored, swap_unit);
            Ok(stored)
        }
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

/// Decode `encoded` (one read-granularity chunk, of `shape`: the layout's `chunk_shape` unless
/// the grid is rectilinear) and hand the decoded bytes (native endian, C order, exactly
/// `shape`'s elements times `element_size` long) to `f`.
///
/// # Errors
/// A message saying what failed (the caller names the file and chunk).
pub fn with_decoded<R>(
    layout: &ArrayLayout,
    decoder: ChunkDecoder,
    shape: &[u64],
    encoded: &[u8],
    options: &CodecOptions,
    f: impl FnOnce(&[u8]) -> R,
) -> Result<R, String> {
    let expected = shape
        .iter()
        .try_fold(layout.element_size as u64, |n, &d| n.checked_mul(d))
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| "chunk too large".to_owned())?;
    match decoder {
        ChunkDecoder::Zstd { swap_unit, .. } => ZSTD.with(|cell| {
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
            reverse_runs(scratch, swap_unit);
            let result = f(scratch);
            trim(scratch);
            Ok(result)
        }),
        ChunkDecoder::Raw { swap_unit } => {
            if encoded.len() == expected {
                Ok(with_native_order(swap_unit, encoded, f))
            } else {
                Err(format!(
                    "stored {} bytes, expected {expected} (uncompressed)",
                    encoded.len()
                ))
            }
        }
        ChunkDecoder::Zarrs => {
            let decoded = layout
                .chunk_codecs
                .decode(
                    Cow::Borrowed(encoded),
                    &crate::layout::nonzero(shape),
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

/// Hand `f` the elements that `part` (a run of whole elements of a chunk stored by a decoder
/// that [`decodes_parts`](ChunkDecoder::decodes_parts)) holds, native endian.
///
/// # Errors
/// A message when `part` is not a whole number of `element_size` elements, or the decoder
/// cannot decode parts.
pub fn with_decoded_part<R>(
    decoder: ChunkDecoder,
    element_size: usize,
    part: &[u8],
    f: impl FnOnce(&[u8]) -> R,
) -> Result<R, String> {
    match decoder {
        ChunkDecoder::Raw { swap_unit }
            if element_size > 0 && part.len().is_multiple_of(element_size) =>
        {
            Ok(with_native_order(swap_unit, part, f))
        }
        ChunkDecoder::Raw { .. } => Err(format!(
            "{} bytes are not whole {element_size}-byte elements",
            part.len()
        )),
        _ => Err("this chunk encoding does not decode in parts".to_owned()),
    }
}

/// Reverse each run of `unit` bytes of `buf` (between native and stored byte order; nothing
/// to do when `unit` is 1).
fn reverse_runs(buf: &mut [u8], unit: usize) {
    if unit > 1 {
        buf.chunks_exact_mut(unit).for_each(<[u8]>::reverse);
    }
}

/// `f` of `stored` with each run of `swap_unit` bytes reversed (as stored when 1).
fn with_native_order<R>(swap_unit: usize, stored: &[u8], f: impl FnOnce(&[u8]) -> R) -> R {
    if swap_unit > 1 {
        with_scratch(|scratch| {
            scratch.extend_from_slice(stored);
            reverse_runs(scratch, swap_unit);
            f(scratch)
        })
    } else {
        f(stored)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::array::ZarrArray;

    /// Metadata of a 40 x 30 array in 16 x 16 chunks, `[bytes, zstd]`; `dtype` and `fill` are
    /// JSON.
    fn meta(endian: &str, dtype: &str, fill: &str) -> String {
        format!(
            r#"{{"zarr_format":3,"node_type":"array","shape":[40,30],"data_type":{dtype},
            "chunk_grid":{{"name":"regular","configuration":{{"chunk_shape":[16,16]}}}},
            "chunk_key_encoding":{{"name":"default"}},"fill_value":{fill},
            "codecs":[{{"name":"bytes","configuration":{{"endian":"{endian}"}}}},{{"name":"zstd","configuration":{{"level":5,"checksum":true}}}}]}}"#
        )
    }

    /// (endian, data type, fill value, element size, the swap unit stored big-endian).
    const TYPES: [(&str, &str, &str, usize, usize); 7] = [
        ("little", r#""uint16""#, "0", 2, 2),
        ("big", r#""int32""#, "0", 4, 4),
        ("big", r#""float64""#, "0", 8, 8),
        ("little", r#""uint8""#, "0", 1, 1),
        // Complex numbers store each part in the byte order, not the whole element.
        ("big", r#""complex64""#, "[0,0]", 8, 4),
        ("big", r#""complex128""#, "[0,0]", 16, 8),
        // So do UTF-32 strings' code units.
        (
            "big",
            r#"{"name":"fixed_length_utf32","configuration":{"length_bytes":12}}"#,
            r#""""#,
            12,
            4,
        ),
    ];

    /// `n` bytes of elements of every type in `TYPES`: code points for UTF-32 too (every fourth
    /// byte 0, the one before it below 0x11).
    fn elements(n: usize) -> Vec<u8> {
        (0..n)
            .map(|i| match i % 4 {
                3 => 0,
                2 => (i % 17).to_le_bytes()[0],
                _ => (i * 7 % 251).to_le_bytes()[0],
            })
            .collect()
    }

    #[test]
    fn zstd_fast_path_agrees_with_zarrs() {
        for (endian, dtype, fill, size, unit) in TYPES {
            let dir = tempfile::tempdir().unwrap();
            let array = ZarrArray::create(dir.path(), &meta(endian, dtype, fill)).unwrap();
            let data = elements(40 * 30 * size);
            array.write_region(&[0..40, 0..30], &data).unwrap();
            let layout = array.layout();
            assert_eq!(
                layout.decoder,
                ChunkDecoder::Zstd {
                    swap_unit: if endian == "big" { unit } else { 1 },
                    level: 5,
                    checksum: true,
                },
                "{dtype}"
            );
            let encoded = std::fs::read(dir.path().join("c/1/1")).unwrap();
            let options = CodecOptions::default();
            let shape = &layout.chunk_shape;
            let fast = with_decoded(
                layout,
                layout.decoder,
                shape,
                &encoded,
                &options,
                <[u8]>::to_vec,
            )
            .unwrap();
            let slow = with_decoded(
                layout,
                ChunkDecoder::Zarrs,
                shape,
                &encoded,
                &options,
                <[u8]>::to_vec,
            )
            .unwrap();
            assert_eq!(fast, slow, "{endian} {dtype}");
            // Truncated input fails on both paths, never returns short data.
            let cut = &encoded[..encoded.len() - 3];
            assert!(
                with_decoded(layout, layout.decoder, shape, cut, &options, <[u8]>::len).is_err()
            );
            assert!(with_decoded(
                layout,
                ChunkDecoder::Zarrs,
                shape,
                cut,
                &options,
                <[u8]>::len
            )
            .is_err());
        }
    }

    #[test]
    fn uncompressed_path_agrees_with_zarrs() {
        let options = CodecOptions::default();
        for (endian, dtype, fill, size, unit) in TYPES {
            let meta = meta(endian, dtype, fill).replace(
                r#",{"name":"zstd","configuration":{"level":5,"checksum":true}}"#,
                "",
            );
            let dir = tempfile::tempdir().unwrap();
            let array = ZarrArray::create(dir.path(), &meta).unwrap();
            let layout = array.layout();
            let swap_unit = if endian == "big" { unit } else { 1 };
            assert_eq!(layout.decoder, ChunkDecoder::Raw { swap_unit }, "{dtype}");
            assert!(layout.decoder.decodes_parts());
            let chunk = elements(16 * 16 * size);
            let ours = encode_chunk(layout, layout.decoder, &chunk, &options).unwrap();
            let zarrs = encode_chunk(layout, ChunkDecoder::Zarrs, &chunk, &options).unwrap();
            assert_eq!(ours, zarrs, "{endian} {dtype}");
            let shape = &layout.chunk_shape;
            let decode = |decoder| {
                with_decoded(layout, decoder, shape, &ours, &options, <[u8]>::to_vec).unwrap()
            };
            assert_eq!(decode(layout.decoder), chunk, "{endian} {dtype}");
            assert_eq!(decode(ChunkDecoder::Zarrs), chunk, "{endian} {dtype}");
            // Any run of whole elements decodes alone to the same elements.
            let (first, end) = (3 * size, 40 * size);
            let part = with_decoded_part(layout.decoder, size, &ours[first..end], <[u8]>::to_vec);
            assert_eq!(part.unwrap(), &chunk[first..end], "{endian} {dtype}");
            // A chunk of another size, and a part that is no whole number of elements, fail.
            let cut = &ours[..ours.len() - size];
            let err = with_decoded(layout, layout.decoder, shape, cut, &options, <[u8]>::len);
            assert!(err.unwrap_err().contains("expected"), "{dtype}");
            if size > 1 {
                let part = with_decoded_part(layout.decoder, size, &ours[..size + 1], <[u8]>::len);
                assert!(part.is_err(), "{dtype}");
            }
        }
        // Other decoders do not decode parts.
        let zstd = ChunkDecoder::Zstd {
            swap_unit: 1,
            level: 3,
            checksum: false,
        };
        assert!(!zstd.decodes_parts() && !ChunkDecoder::Zarrs.decodes_parts());
        assert!(with_decoded_part(zstd, 1, &[0; 4], <[u8]>::len).is_err());
    }

    #[test]
    fn other_chains_use_zarrs() {
        let pick = |codecs: &str, data_type: DataType| {
            let codecs: Vec<MetadataV3> = serde_json::from_str(codecs).unwrap();
            let fill = FillValue::new(vec![0; data_type.fixed_size().unwrap_or(1)]);
            ChunkDecoder::for_codecs(&codecs, &data_type, &fill)
        };
        let u16 = zarrs::array::data_type::uint16;
        assert_eq!(
            pick(
                r#"[{"name":"bytes"},{"name":"gzip","configuration":{"level":1}}]"#,
                u16()
            ),
            ChunkDecoder::Zarrs
        );
        assert_eq!(
            pick(
                r#"[{"name":"bytes"},{"name":"zstd","configuration":{"level":1,"checksum":false}},{"name":"crc32c"}]"#,
                u16()
            ),
            ChunkDecoder::Zarrs
        );
        assert_eq!(
            pick(
                r#"[{"name":"bytes"},{"name":"zstd","configuration":{"level":1,"checksum":false}}]"#,
                zarrs::array::data_type::uint8()
            ),
            ChunkDecoder::Zstd {
                swap_unit: 1,
                level: 1,
                checksum: false
            }
        );
        // Configurations zarrs would refuse are left to zarrs (which names what is wrong): a
        // level that is not a number, a multi-byte type without an endian.
        assert_eq!(
            pick(
                r#"[{"name":"bytes"},{"name":"zstd","configuration":{"level":"high"}}]"#,
                u16()
            ),
            ChunkDecoder::Zarrs
        );
        assert_eq!(
            pick(
                r#"[{"name":"bytes"},{"name":"zstd","configuration":{"level":1}}]"#,
                u16()
            ),
            ChunkDecoder::Zarrs
        );
    }

    #[test]
    fn swap_unit_follows_zarrs_per_type() {
        use zarrs::array::data_type as dt;
        let big: MetadataV3 =
            serde_json::from_str(r#"{"name":"bytes","configuration":{"endian":"big"}}"#).unwrap();
        let little: MetadataV3 =
            serde_json::from_str(r#"{"name":"bytes","configuration":{"endian":"little"}}"#)
                .unwrap();
        let utf32 = |n: u64| dt::fixed_length_utf32(std::num::NonZeroU64::new(n).unwrap()).unwrap();
        for (data_type, unit) in [
            (dt::bool(), 1),
            (dt::int8(), 1),
            (dt::uint16(), 2),
            (dt::float32(), 4),
            (dt::int64(), 8),
            (dt::complex64(), 4),
            (dt::complex128(), 8),
            (utf32(4), 4),
            (utf32(1024), 4),
            (dt::raw_bits(6), 1),
        ] {
            let size = data_type.fixed_size().unwrap();
            let fill = FillValue::new(vec![0; size]);
            let name = format!("{data_type:?}");
            assert_eq!(swap_unit(&big, &data_type, &fill), Some(unit), "{name}");
            assert_eq!(swap_unit(&little, &data_type, &fill), Some(1), "{name}");
        }
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
        for (endian, dtype, fill, size, level, checksum) in [
            ("little", r#""uint16""#, "0", 2, 3, false),
            ("little", r#""uint16""#, "0", 2, 5, true),
            ("big", r#""int32""#, "0", 4, 1, false),
            ("big", r#""float64""#, "0", 8, -1, true),
            ("little", r#""uint8""#, "0", 1, 19, false),
            ("big", r#""complex64""#, "[0,0]", 8, 2, false),
            (
                "big",
                r#"{"name":"fixed_length_utf32","configuration":{"length_bytes":8}}"#,
                r#""""#,
                8,
                2,
                true,
            ),
        ] {
            let meta = meta(endian, dtype, fill)
                .replace(r#""level":5"#, &format!(r#""level":{level}"#))
                .replace(r#""checksum":true"#, &format!(r#""checksum":{checksum}"#));
            let dir = tempfile::tempdir().unwrap();
            let array = ZarrArray::create(dir.path(), &meta).unwrap();
            let layout = array.layout();
            let shape = &layout.chunk_shape;
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
                let back = with_decoded(
                    layout,
                    layout.decoder,
                    shape,
                    &fast,
                    &options,
                    <[u8]>::to_vec,
                );
                assert_eq!(back.unwrap(), chunk);
            }
        }
    }
}
