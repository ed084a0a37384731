//! numcodecs' `LZMA` compressor (v2 id `lzma`, v3 `numcodecs.lzma`) through liblzma, the
//! library Python's `lzma` module wraps, with the module's rules: the same container formats
//! (xz, the legacy `.lzma` "alone" format, raw), integrity checks, presets and filter chains,
//! so chunks are byte for byte what numcodecs writes (liblzma's encoders are deterministic for
//! the options given; a test holds Python-made streams).

use std::borrow::Cow;
use std::sync::Arc;

use liblzma::stream::{
    Action, Check, Filters, LzmaOptions, MatchFinder, Mode, Status, Stream, PRESET_EXTREME,
};
use zarrs::array::codec::api::{
    BytesToBytesCodecTraits, Codec, CodecError, CodecMetadataOptions, CodecOptions, CodecTraits,
    PartialDecoderCapability, PartialEncoderCapability, RecommendedConcurrency,
};
use zarrs::array::{ArrayBytesRaw, BytesRepresentation};
use zarrs::metadata::Configuration;
use zarrs::plugin::{PluginCreateError, ZarrVersion};

use super::{bytes_codec_members, compressed_bound, kept_configuration, numcodecs_codec_traits};

/// `lzma.FORMAT_*`: the container around the compressed data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    /// `FORMAT_AUTO` (0): xz or alone, found when decoding; Python cannot encode with it.
    Auto,
    /// `FORMAT_XZ` (1, numcodecs' default).
    Xz,
    /// `FORMAT_ALONE` (2): the legacy `.lzma` format, one LZMA1 filter.
    Alone,
    /// `FORMAT_RAW` (3): the filter chain's output alone; the chain is needed to decode.
    Raw,
}

/// Python's `lzma.FILTER_*` ids.
const FILTER_LZMA1: u64 = 0x4000_0000_0000_0001;
const FILTER_LZMA2: u64 = 0x21;
const FILTER_DELTA: u64 = 0x03;
/// The branch/call/jump filters: x86, powerpc, ia64, arm, armthumb, sparc.
const FILTERS_BCJ: std::ops::RangeInclusive<u64> = 0x04..=0x09;
/// liblzma's default preset (`lzma.PRESET_DEFAULT`).
const PRESET_DEFAULT: u32 = 6;

/// An LZMA1 or LZMA2 filter: a preset, then the members given.
#[derive(Debug, Clone)]
struct LzmaSpec {
    lzma1: bool,
    preset: u32,
    /// `dict_size`, `lc`, `lp`, `pb`, `mode`, `nice_len`, `mf`, `depth` as given.
    dict_size: Option<u32>,
    lc: Option<u32>,
    lp: Option<u32>,
    pb: Option<u32>,
    mode: Option<Mode>,
    nice_len: Option<u32>,
    mf: Option<MatchFinder>,
    depth: Option<u32>,
}

impl LzmaSpec {
    /// The options liblzma takes: the preset's, with the members given in their place.
    fn options(&self) -> Result<LzmaOptions, String> {
        let mut options = LzmaOptions::new_preset(self.preset)
            .map_err(|_| format!("invalid compression preset {}", self.preset))?;
        type Set = fn(&mut LzmaOptions, u32) -> &mut LzmaOptions;
        let numbers: [(Option<u32>, Set); 6] = [
            (self.dict_size, LzmaOptions::dict_size),
            (self.lc, LzmaOptions::literal_context_bits),
            (self.lp, LzmaOptions::literal_position_bits),
            (self.pb, LzmaOptions::position_bits),
            (self.nice_len, LzmaOptions::nice_len),
            (self.depth, LzmaOptions::depth),
        ];
        for (value, set) in numbers {
            if let Some(value) = value {
                set(&mut options, value);
            }
        }
        if let Some(mode) = self.mode {
            options.mode(mode);
        }
        if let Some(mf) = self.mf {
            options.match_finder(mf);
        }
        Ok(options)
    }
}

/// One filter of a chain, as a Python `lzma` filter specifier gives it.
#[derive(Debug, Clone)]
enum FilterSpec {
    Lzma(LzmaSpec),
    /// Delta of bytes `dist` apart (1 to 256).
    Delta {
        dist: u32,
    },
    /// A branch/call/jump filter (`id` 4 to 9) with its `start_offset`.
    Bcj {
        id: u64,
        start_offset: u32,
    },
}

impl FilterSpec {
    /// A filter specifier (`{"id": ..., ...}`) as Python's `lzma` module reads it.
    fn parse(spec: &serde_json::Value) -> Result<Self, String> {
        let map = spec
            .as_object()
            .ok_or_else(|| format!("filter specifier {spec} is not an object"))?;
        let id = map
            .get("id")
            .ok_or_else(|| format!("filter specifier {spec} has no \"id\""))?
            .as_u64()
            .ok_or_else(|| format!("filter id {} is not an integer", map["id"]))?;
        let allowed: &[&str] = match id {
            FILTER_LZMA1 | FILTER_LZMA2 => &[
                "preset",
                "dict_size",
                "lc",
                "lp",
                "pb",
                "mode",
                "nice_len",
                "mf",
                "depth",
            ],
            FILTER_DELTA => &["dist"],
            id if FILTERS_BCJ.contains(&id) => &["start_offset"],
            _ => return Err(format!("filter id {id} is not one Python's lzma knows")),
        };
        if let Some(other) = map
            .keys()
            .find(|k| k.as_str() != "id" && !allowed.contains(&k.as_str()))
        {
            return Err(format!("filter {id} has no member {other:?}"));
        }
        let uint = |key: &str| -> Result<Option<u32>, String> {
            map.get(key)
                .map(|v| {
                    v.as_u64()
                        .and_then(|n| u32::try_from(n).ok())
                        .ok_or_else(|| format!("filter {id}: {key} {v} is not a 32-bit unsigned"))
                })
                .transpose()
        };
        Ok(match id {
            FILTER_LZMA1 | FILTER_LZMA2 => FilterSpec::Lzma(LzmaSpec {
                lzma1: id == FILTER_LZMA1,
                preset: uint("preset")?.unwrap_or(PRESET_DEFAULT),
                dict_size: uint("dict_size")?,
                lc: uint("lc")?,
                lp: uint("lp")?,
                pb: uint("pb")?,
                mode: uint("mode")?
                    .map(|m| match m {
                        1 => Ok(Mode::Fast),
                        2 => Ok(Mode::Normal),
                        _ => Err(format!(
                            "filter {id}: mode {m} is not MODE_FAST or MODE_NORMAL"
                        )),
                    })
                    .transpose()?,
                nice_len: uint("nice_len")?,
                mf: uint("mf")?
                    .map(|m| match m {
                        0x03 => Ok(MatchFinder::HashChain3),
                        0x04 => Ok(MatchFinder::HashChain4),
                        0x12 => Ok(MatchFinder::BinaryTree2),
                        0x13 => Ok(MatchFinder::BinaryTree3),
                        0x14 => Ok(MatchFinder::BinaryTree4),
                        _ => Err(format!("filter {id}: mf {m} is not a match finder")),
                    })
                    .transpose()?,
                depth: uint("depth")?,
            }),
            FILTER_DELTA => {
                let dist = uint("dist")?.unwrap_or(1);
                if !(1..=256).contains(&dist) {
                    return Err(format!("delta filter: dist {dist} is not in 1 to 256"));
                }
                FilterSpec::Delta { dist }
            }
            _ => FilterSpec::Bcj {
                id,
                start_offset: uint("start_offset")?.unwrap_or(0),
            },
        })
    }
}

/// A filter chain as liblzma takes it.
fn filters(chain: &[FilterSpec]) -> Result<Filters, String> {
    let mut filters = Filters::new();
    for spec in chain {
        let added = match spec {
            FilterSpec::Lzma(spec) => {
                let options = spec.options()?;
                if spec.lzma1 {
                    filters.lzma1(&options);
                } else {
                    filters.lzma2(&options);
                }
                Ok(())
            }
            // liblzma's delta properties: the distance less one, one byte.
            FilterSpec::Delta { dist } => filters
                .delta_properties(&[u8::try_from(dist - 1).unwrap_or(u8::MAX)])
                .map(drop),
            FilterSpec::Bcj { id, start_offset } => {
                let properties = start_offset.to_le_bytes();
                match id {
                    0x04 => filters.x86_properties(&properties),
                    0x05 => filters.powerpc_properties(&properties),
                    0x06 => filters.ia64_properties(&properties),
                    0x07 => filters.arm_properties(&properties),
                    0x08 => filters.arm_thumb_properties(&properties),
                    _ => filters.sparc_properties(&properties),
                }
                .map(drop)
            }
        };
        added.map_err(|e| format!("filter chain: {e}"))?;
    }
    Ok(filters)
}

/// numcodecs' `LZMA` compressor: Python's `lzma.compress` / `lzma.decompress` with the
/// codec's `format`, `check`, `preset` and `filters` (the v3 configuration and v2 members of
/// numcodecs' `LZMA`). Decoding reads every stream of a chunk one after the other, as
/// `lzma.decompress` does; unlike numcodecs it also reads xz and alone streams whose
/// configuration names filters (numcodecs raises, Python refusing filters with those formats
/// when decoding).
#[derive(Debug, Clone)]
pub struct LzmaCodec {
    /// The configuration as given, less a v2 `id`.
    configuration: serde_json::Map<String, serde_json::Value>,
    format: Format,
    /// `lzma.CHECK_*`, or -1: the format's default (CRC64 for xz, none otherwise).
    check: i64,
    preset: Option<u32>,
    filters: Option<Vec<FilterSpec>>,
}

zarrs::plugin::impl_extension_aliases!(LzmaCodec, v3: "numcodecs.lzma", v2: "lzma");

impl LzmaCodec {
    /// The codec's Zarr v3 name.
    pub const NAME: &'static str = "numcodecs.lzma";

    /// The codec of a numcodecs configuration (`{"format": 1, "check": -1, "preset": null,
    /// "filters": null}`, each member optional, null meaning numcodecs' default).
    ///
    /// # Errors
    /// [`PluginCreateError`] naming the codec and member for a member numcodecs' LZMA does not
    /// have, a format or check Python's `lzma` does not know, a preset out of 0 to 9 (with
    /// `PRESET_EXTREME` or not), or a filter specifier it would refuse.
    pub fn from_configuration(configuration: &Configuration) -> Result<Codec, PluginCreateError> {
        let configuration = kept_configuration(
            Self::NAME,
            configuration,
            &["format", "check", "preset", "filters"],
        )?;
        let fail = |what: String| PluginCreateError::Other(format!("{}: {what}", Self::NAME));
        let member = |key: &str| configuration.get(key).filter(|v| !v.is_null());
        let format = match member("format").map(|v| (v, v.as_i64())) {
            None | Some((_, Some(1))) => Format::Xz,
            Some((_, Some(0))) => Format::Auto,
            Some((_, Some(2))) => Format::Alone,
            Some((_, Some(3))) => Format::Raw,
            Some((v, _)) => return Err(fail(format!("format {v} is not one of 0 to 3"))),
        };
        let check = match member("check").map(|v| (v, v.as_i64())) {
            None => -1,
            Some((_, Some(c @ (-1 | 0 | 1 | 4 | 10)))) => c,
            Some((v, _)) => {
                return Err(fail(format!(
                    "check {v} is not -1, CHECK_NONE, CHECK_CRC32, CHECK_CRC64 or CHECK_SHA256"
                )))
            }
        };
        let preset = match member("preset") {
            None => None,
            Some(v) => {
                let preset = v
                    .as_u64()
                    .and_then(|p| u32::try_from(p).ok())
                    .filter(|p| p & !PRESET_EXTREME <= 9)
                    .ok_or_else(|| fail(format!("preset {v} is not 0 to 9 (| PRESET_EXTREME)")))?;
                Some(preset)
            }
        };
        let filters = match member("filters") {
            None => None,
            Some(v) => Some(
                v.as_array()
                    .ok_or_else(|| fail(format!("filters {v} is not a list")))?
                    .iter()
                    .map(FilterSpec::parse)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| fail(format!("filters: {e}")))?,
            ),
        };
        Ok(Codec::BytesToBytes(Arc::new(Self {
            configuration,
            format,
            check,
            preset,
            filters,
        })))
    }

    /// The integrity check to write in an xz stream (`-1`: CRC64, as Python's default).
    fn xz_check(&self) -> Check {
        match self.check {
            0 => Check::None,
            1 => Check::Crc32,
            10 => Check::Sha256,
            _ => Check::Crc64,
        }
    }

    /// An encoder, with the checks Python's `LZMACompressor` makes (its messages).
    fn encoder(&self) -> Result<Stream, String> {
        if self.format != Format::Xz && !matches!(self.check, -1 | 0) {
            return Err("integrity checks are only supported by FORMAT_XZ".to_owned());
        }
        if self.preset.is_some() && self.filters.is_some() {
            return Err("cannot specify both preset and filter chain".to_owned());
        }
        let preset = self.preset.unwrap_or(PRESET_DEFAULT);
        let stream = match (self.format, &self.filters) {
            (Format::Xz, None) => Stream::new_easy_encoder(preset, self.xz_check()),
            (Format::Xz, Some(chain)) => {
                Stream::new_stream_encoder(&filters(chain)?, self.xz_check())
            }
            (Format::Alone, None) => {
                let options = LzmaOptions::new_preset(preset)
                    .map_err(|_| format!("invalid compression preset {preset}"))?;
                Stream::new_lzma_encoder(&options)
            }
            (Format::Alone, Some(chain)) => match chain.as_slice() {
                [FilterSpec::Lzma(spec)] if spec.lzma1 => {
                    Stream::new_lzma_encoder(&spec.options()?)
                }
                _ => {
                    return Err(
                        "invalid filter chain for FORMAT_ALONE: it must be a single \
                        LZMA1 filter"
                            .to_owned(),
                    )
                }
            },
            (Format::Raw, Some(chain)) => Stream::new_raw_encoder(&filters(chain)?),
            (Format::Raw, None) => return Err("FORMAT_RAW needs a filter chain".to_owned()),
            (Format::Auto, _) => {
                return Err(
                    "FORMAT_AUTO only decodes: Python's lzma cannot encode with it".to_owned(),
                )
            }
        };
        stream.map_err(|e| format!("cannot make the encoder: {e}"))
    }

    /// A decoder of one stream (no memory limit, as Python's default).
    fn decoder(&self) -> Result<Stream, String> {
        let stream = match self.format {
            Format::Auto => Stream::new_auto_decoder(u64::MAX, 0),
            Format::Xz => Stream::new_stream_decoder(u64::MAX, 0),
            Format::Alone => Stream::new_lzma_decoder(u64::MAX),
            Format::Raw => match &self.filters {
                Some(chain) => Stream::new_raw_decoder(&filters(chain)?),
                None => return Err("FORMAT_RAW needs a filter chain".to_owned()),
            },
        };
        stream.map_err(|e| format!("cannot make the decoder: {e}"))
    }

    /// Decompress every stream of `input` one after the other (`lzma.decompress`); with
    /// `size`, the output never grows past it: more is an error, not an allocation.
    fn decompress(&self, mut input: &[u8], size: Option<usize>) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        let first = size.map_or(input.len().saturating_mul(4).max(4096), |s| s + 1);
        out.try_reserve_exact(first)
            .map_err(|_| format!("cannot allocate {first} bytes"))?;
        loop {
            let used = drive(&mut self.decoder()?, input, &mut out, Action::Run, size)?;
            input = input.get(used..).unwrap_or_default();
            if input.is_empty() {
                return Ok(out);
            }
        }
    }

    /// Compress `input` into one stream (`lzma.compress`).
    fn compress(&self, input: &[u8]) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        let first = encoded_bound(input.len());
        out.try_reserve_exact(first)
            .map_err(|_| format!("cannot allocate {first} bytes"))?;
        drive(&mut self.encoder()?, input, &mut out, Action::Finish, None)?;
        Ok(out)
    }
}

/// Run `stream` over `input` into `out` to the end of the stream; the input bytes it used.
/// `out` grows as needed, or with `limit` (a decoded chunk's size, `out` reserved one byte
/// past it) never past it: more output is an error.
fn drive(
    stream: &mut Stream,
    input: &[u8],
    out: &mut Vec<u8>,
    action: Action,
    limit: Option<usize>,
) -> Result<usize, String> {
    loop {
        if out.len() == out.capacity() {
            if let Some(limit) = limit {
                return Err(format!("decodes to more than the chunk's {limit} bytes"));
            }
            out.try_reserve(out.capacity().max(4096))
                .map_err(|_| format!("cannot allocate {} bytes", 2 * out.capacity()))?;
        }
        let used = usize::try_from(stream.total_in()).unwrap_or(usize::MAX);
        let before = (used, out.len());
        let status = stream
            .process_vec(input.get(used..).unwrap_or_default(), out, action)
            .map_err(|e| e.to_string())?;
        let used = usize::try_from(stream.total_in()).unwrap_or(usize::MAX);
        if status == Status::StreamEnd {
            return Ok(used);
        }
        // Room for output and no progress: the input ended inside the stream.
        if (used, out.len()) == before {
            return Err("the data ends before the end-of-stream marker".to_owned());
        }
    }
}

/// More than any container of these formats takes for `size` bytes (LZMA2 stores what it cannot
/// compress in chunks of 64 KiB with a few bytes each; LZMA1 may grow it by about 1.5 %;
/// headers and an xz index are under a kilobyte).
fn encoded_bound(size: usize) -> usize {
    size.saturating_add(size / 16).saturating_add(1024)
}

numcodecs_codec_traits!(LzmaCodec);

impl BytesToBytesCodecTraits for LzmaCodec {
    bytes_codec_members!();

    fn encoded_representation(
        &self,
        decoded_representation: &BytesRepresentation,
    ) -> BytesRepresentation {
        compressed_bound(decoded_representation, encoded_bound)
    }

    fn encode<'a>(
        &self,
        decoded_value: ArrayBytesRaw<'a>,
        _options: &CodecOptions,
    ) -> Result<ArrayBytesRaw<'a>, CodecError> {
        self.compress(&decoded_value)
            .map(Cow::Owned)
            .map_err(|e| CodecError::Other(format!("{}: {e}", Self::NAME)))
    }

    fn decode<'a>(
        &self,
        encoded_value: ArrayBytesRaw<'a>,
        decoded_representation: &BytesRepresentation,
        _options: &CodecOptions,
    ) -> Result<ArrayBytesRaw<'a>, CodecError> {
        let fail = |what: String| CodecError::Other(format!("{}: {what}", Self::NAME));
        let (size, exact) = match *decoded_representation {
            BytesRepresentation::FixedSize(size) => (Some(size), true),
            BytesRepresentation::BoundedSize(size) => (Some(size), false),
            BytesRepresentation::UnboundedSize => (None, false),
        };
        let size = size
            .map(|s| usize::try_from(s).map_err(|_| fail(format!("{s} bytes do not fit memory"))))
            .transpose()?;
        let out = self.decompress(&encoded_value, size).map_err(fail)?;
        match size {
            Some(size) if exact && out.len() != size => Err(fail(format!(
                "decodes to {} bytes, the chunk has {size}",
                out.len()
            ))),
            _ => Ok(Cow::Owned(out)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::hex;
    use super::*;

    fn codec(configuration: &str) -> Arc<dyn BytesToBytesCodecTraits> {
        match LzmaCodec::from_configuration(&serde_json::from_str(configuration).unwrap()) {
            Ok(Codec::BytesToBytes(codec)) => codec,
            other => panic!("{configuration}: {other:?}"),
        }
    }

    /// The bytes every stream below holds: `b"zuring " * 40 + bytes(range(200))`.
    fn data() -> Vec<u8> {
        let mut data = b"zuring ".repeat(40);
        data.extend(0..200u8);
        data
    }

    /// Streams Python 3.11's `lzma` (system liblzma 5.4.1) made of [`data`]:
    /// `lzma.compress(data, **kwargs).hex()` for each configuration.
    const PYTHON_MADE: [(&str, &str); 4] = [
        // lzma.compress(data)
        ("{}", include_str!("lzma_fixtures/xz_default.hex")),
        // format=FORMAT_ALONE, preset=1
        (
            r#"{"format": 2, "preset": 1}"#,
            include_str!("lzma_fixtures/alone_1.hex"),
        ),
        // check=CHECK_SHA256, preset=2 | PRESET_EXTREME
        (
            r#"{"format": 1, "check": 10, "preset": 2147483650}"#,
            include_str!("lzma_fixtures/xz_sha256_2e.hex"),
        ),
        // format=FORMAT_RAW, filters=[{"id": FILTER_DELTA, "dist": 4}, {"id": FILTER_LZMA2, "preset": 1, "lc": 2, "mf": MF_HC4}]
        (
            r#"{"format": 3, "check": -1, "preset": null, "filters": [{"id": 3, "dist": 4}, {"id": 33, "preset": 1, "lc": 2, "mf": 4}]}"#,
            include_str!("lzma_fixtures/raw_delta_lzma2.hex"),
        ),
    ];

    #[test]
    fn lzma_streams_are_python_lzmas_byte_for_byte() {
        let data = data();
        let size = BytesRepresentation::FixedSize(data.len() as u64);
        let options = CodecOptions::default();
        for (configuration, stream) in PYTHON_MADE {
            let python = hex(stream.trim());
            let codec = codec(configuration);
            let encoded = codec.encode(Cow::Borrowed(&data), &options).unwrap();
            assert_eq!(*encoded, *python, "{configuration}");
            let decoded = codec
                .decode(Cow::Borrowed(&python), &size, &options)
                .unwrap();
            assert_eq!(*decoded, *data, "{configuration}");
            // With no known size (a vlen chunk), the output grows as needed.
            let unbounded = codec
                .decode(
                    Cow::Borrowed(&python),
                    &BytesRepresentation::UnboundedSize,
                    &options,
                )
                .unwrap();
            assert_eq!(*unbounded, *data, "{configuration}");
        }
        // FORMAT_AUTO reads xz and alone streams.
        let auto = codec(r#"{"format": 0}"#);
        for stream in [PYTHON_MADE[0].1, PYTHON_MADE[1].1] {
            let python = hex(stream.trim());
            assert_eq!(
                *auto
                    .decode(Cow::Borrowed(&python), &size, &options)
                    .unwrap(),
                *data
            );
        }
        // Two streams one after the other decode to both, as lzma.decompress does.
        let one = hex(PYTHON_MADE[0].1.trim());
        let two = [one.clone(), one].concat();
        let twice = BytesRepresentation::FixedSize(2 * data.len() as u64);
        let decoded = codec("{}")
            .decode(Cow::Borrowed(&two), &twice, &options)
            .unwrap();
        assert_eq!(*decoded, *[data.clone(), data].concat());
    }

    /// Every truncation and every single-bit flip of each Python-made stream is an error or
    /// the chunk's exact size, never a panic or more output; in the xz streams, whose check
    /// covers the data, never wrong data either.
    #[test]
    fn lzma_damaged_streams_never_panic_and_xz_never_gives_wrong_data() {
        let data = data();
        let size = BytesRepresentation::FixedSize(data.len() as u64);
        let options = CodecOptions::default();
        for (configuration, stream) in PYTHON_MADE {
            let python = hex(stream.trim());
            let codec = codec(configuration);
            // The xz magic: FD '7zXZ' 00.
            let xz = python.starts_with(b"\xfd7zXZ\0");
            let mut damaged: Vec<Vec<u8>> =
                (0..python.len()).map(|n| python[..n].to_vec()).collect();
            for bit in 0..python.len() * 8 {
                let mut flipped = python.clone();
                flipped[bit / 8] ^= 1 << (bit % 8);
                damaged.push(flipped);
            }
            for bytes in damaged {
                if let Ok(decoded) = codec.decode(Cow::Borrowed(&bytes), &size, &options) {
                    assert_eq!(decoded.len(), data.len(), "{configuration}");
                    assert!(
                        !xz || *decoded == *data,
                        "{configuration}: wrong data decoded"
                    );
                }
            }
        }
    }

    #[test]
    fn lzma_bad_streams_and_configurations_are_errors() {
        let data = data();
        let size = BytesRepresentation::FixedSize(data.len() as u64);
        let options = CodecOptions::default();
        let python = hex(PYTHON_MADE[0].1.trim());
        let xz = codec("{}");
        let decode = |bytes: &[u8], size: &BytesRepresentation| {
            xz.decode(Cow::Borrowed(bytes), size, &options)
                .unwrap_err()
                .to_string()
        };
        // Truncated, a flipped byte, trailing garbage, more or fewer bytes than the chunk.
        let err = decode(&python[..python.len() - 9], &size);
        assert!(
            err.contains("numcodecs.lzma") && err.contains("end-of-stream"),
            "{err}"
        );
        let mut flipped = python.clone();
        flipped[30] ^= 0x40;
        assert!(decode(&flipped, &size).contains("numcodecs.lzma"));
        let garbage = [python.clone(), b"junk".to_vec()].concat();
        assert!(decode(&garbage, &size).contains("numcodecs.lzma"));
        let err = decode(&python, &BytesRepresentation::FixedSize(100));
        assert!(err.contains("more than the chunk's 100 bytes"), "{err}");
        let err = decode(
            &python,
            &BytesRepresentation::FixedSize(data.len() as u64 + 1),
        );
        assert!(
            err.contains(&format!("decodes to {} bytes", data.len())),
            "{err}"
        );
        assert!(decode(&[], &size).contains("end-of-stream"));
        // A raw stream without its filter chain cannot be read, nor written; FORMAT_AUTO and
        // checks outside xz cannot be written, as Python says.
        for (configuration, message) in [
            (r#"{"format": 3}"#, "FORMAT_RAW needs a filter chain"),
            (r#"{"format": 0}"#, "FORMAT_AUTO only decodes"),
            (
                r#"{"format": 2, "check": 4}"#,
                "only supported by FORMAT_XZ",
            ),
            (
                r#"{"preset": 1, "filters": [{"id": 33}]}"#,
                "both preset and filter chain",
            ),
            (
                r#"{"format": 2, "filters": [{"id": 33}]}"#,
                "a single LZMA1 filter",
            ),
            (
                r#"{"filters": [{"id": 33, "lc": 4, "lp": 4}]}"#,
                "cannot make the encoder",
            ),
        ] {
            let err = codec(configuration)
                .encode(Cow::Borrowed(&data), &options)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("numcodecs.lzma") && err.contains(message),
                "{configuration}: {err}"
            );
        }
        let raw = codec(r#"{"format": 3}"#);
        let err = raw
            .decode(Cow::Borrowed(&python), &size, &options)
            .unwrap_err();
        assert!(
            err.to_string().contains("FORMAT_RAW needs a filter chain"),
            "{err}"
        );
        // Configurations numcodecs' LZMA or Python's lzma refuse, named.
        for (bad, named) in [
            (r#"{"level": 1}"#, "level"),
            (r#"{"format": 4}"#, "format 4"),
            (r#"{"check": 2}"#, "check 2"),
            (r#"{"preset": 10}"#, "preset 10"),
            (r#"{"preset": -1}"#, "preset -1"),
            (r#"{"filters": {"id": 33}}"#, "not a list"),
            (r#"{"filters": [{"dist": 2}]}"#, "no \"id\""),
            (r#"{"filters": [{"id": 2}]}"#, "filter id 2"),
            (r#"{"filters": [{"id": 3, "dist": 0}]}"#, "dist 0"),
            (r#"{"filters": [{"id": 3, "preset": 1}]}"#, "\"preset\""),
            (r#"{"filters": [{"id": 33, "mode": 3}]}"#, "mode 3"),
            (r#"{"filters": [{"id": 33, "mf": 5}]}"#, "mf 5"),
            (
                r#"{"filters": [{"id": 33, "dict_size": -4}]}"#,
                "dict_size -4",
            ),
        ] {
            let err = LzmaCodec::from_configuration(&serde_json::from_str(bad).unwrap())
                .unwrap_err()
                .to_string();
            assert!(err.contains(named), "{bad}: {err}");
        }
    }
}
