//! Chunk decoding: zarrs' codec chain in general, and a hand-rolled path for the most common
//! chain, `[bytes, zstd]`, that reuses one decompression context and one scratch buffer per
//! thread instead of allocating both per chunk (measured in `benches/array_bench`; the test
//! below checks it agrees with zarrs byte for byte).

use std::borrow::Cow;
use std::cell::RefCell;

use zarrs::array::{ArrayToBytesCodecTraits, CodecOptions};
use zarrs::metadata::v3::MetadataV3;

use crate::layout::ArrayLayout;

/// How a chunk's bytes become elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkDecoder {
    /// zarrs' codec chain.
    Zarrs,
    /// `bytes` then `zstd`: decompress into a per-thread scratch buffer, then swap bytes when
    /// the stored endianness is not native.
    Zstd {
        /// Swap each element's bytes after decompression.
        swap: bool,
    },
}

impl ChunkDecoder {
    /// Pick the decoder for a chunk codec chain given as metadata.
    #[must_use]
    pub fn for_codecs(codecs: &[MetadataV3], element_size: usize) -> Self {
        match codecs {
            [bytes, zstd] if bytes.name() == "bytes" && zstd.name() == "zstd" => {
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
                }
            }
            _ => Self::Zarrs,
        }
    }
}

thread_local! {
    static ZSTD: RefCell<Option<(zstd::bulk::Decompressor<'static>, Vec<u8>)>> = const { RefCell::new(None) };
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
        ChunkDecoder::Zstd { swap } => ZSTD.with(|cell| {
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
            Ok(f(scratch))
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
                    swap: endian == "big" && size > 1
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
            ChunkDecoder::Zstd { swap: false }
        );
    }
}
