//! numcodecs' codecs that zarrs 0.23 lacks or does not look up by their Zarr v2 `id`, made
//! available to zarrs through its runtime codec registry ([`register`], called before any array
//! is opened): zarrs' own `crc32c` and `bitround` under their v2 ids, numcodecs' `delta` filter
//! (`delta` in v2, `numcodecs.delta` in v3) as [`DeltaCodec`] and its `lz4` compressor (`lz4`,
//! `numcodecs.lz4`) as [`Lz4Codec`]. Also the rules, checked when an array is opened, for the
//! numcodecs codecs that would run otherwise than numcodecs on that array (zuring refuses them
//! with `ArrayError::Unsupported`, and zarr-python's pipeline falls back to its own).

use std::borrow::Cow;
use std::num::NonZeroU64;
use std::sync::Arc;

use zarrs::array::codec::api::{
    register_codec_v2, register_codec_v3, ArrayBytes, ArrayCodecTraits, ArrayToArrayCodecTraits,
    BytesToBytesCodecTraits, Codec, CodecError, CodecMetadataOptions, CodecOptions,
    CodecRuntimePluginV2, CodecRuntimePluginV3, CodecTraits, PartialDecoderCapability,
    PartialEncoderCapability, RecommendedConcurrency,
};
use zarrs::array::codec::{BitroundCodec, BitroundCodecConfiguration};
use zarrs::array::{ArrayBytesRaw, ArrayMetadata, BytesRepresentation, DataType, FillValue};
use zarrs::metadata::Configuration;
use zarrs::plugin::{PluginCreateError, ZarrVersion};

/// Register the codecs of this module with zarrs, once per process:
/// - `crc32c` (v2 id): zarrs 0.23 registers its codec for v3 names only; made from the v2
///   configuration, which keeps numcodecs' `location` of the checksum;
/// - `bitround` (v2 id): zarrs' codec has no v2 name; it takes `keepbits` (numcodecs' bitround
///   of other than floating-point elements is refused at open: numcodecs rounds only those);
/// - `delta` (v2 id) and `numcodecs.delta` (v3 name): [`DeltaCodec`];
/// - `lz4` (v2 id) and `numcodecs.lz4` (v3 name): [`Lz4Codec`].
pub fn register() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        register_codec_v2(CodecRuntimePluginV2::new(
            |id| ["crc32", "crc32c"].contains(&id),
            |metadata| Checksum32Codec::from_configuration(metadata.id(), metadata.configuration()),
        ));
        register_codec_v3(CodecRuntimePluginV3::new(
            |name| ["numcodecs.crc32", "numcodecs.crc32c"].contains(&name),
            |metadata| {
                let configuration = metadata.configuration().cloned().unwrap_or_default();
                Checksum32Codec::from_configuration(metadata.name(), &configuration)
            },
        ));
        register_codec_v2(CodecRuntimePluginV2::new(
            |id| id == "bitround",
            |metadata| {
                let configuration: BitroundCodecConfiguration =
                    metadata.to_typed_configuration()?;
                let codec = BitroundCodec::new_with_configuration(&configuration)?;
                Ok(Codec::ArrayToArray(Arc::new(codec)))
            },
        ));
        register_codec_v2(CodecRuntimePluginV2::new(
            |id| id == "delta",
            |metadata| DeltaCodec::from_configuration(metadata.configuration()),
        ));
        register_codec_v3(CodecRuntimePluginV3::new(
            |name| name == DeltaCodec::NAME,
            |metadata| {
                DeltaCodec::from_configuration(
                    &metadata.configuration().cloned().unwrap_or_default(),
                )
            },
        ));
        register_codec_v2(CodecRuntimePluginV2::new(
            |id| id == "lz4",
            |metadata| Lz4Codec::from_configuration(metadata.configuration()),
        ));
        register_codec_v3(CodecRuntimePluginV3::new(
            |name| name == Lz4Codec::NAME,
            |metadata| {
                Lz4Codec::from_configuration(&metadata.configuration().cloned().unwrap_or_default())
            },
        ));
    });
}

/// Every codec (`{"name": ...}` in v3, `{"id": ...}` in v2) at any depth of `value` (inside
/// sharding too, but not among a shard index's codecs, which never see the elements) named one
/// of `names`.
fn codecs_named<'a>(
    value: &'a serde_json::Value,
    names: &[&str],
    found: &mut Vec<&'a serde_json::Value>,
) {
    match value {
        serde_json::Value::Object(map) => {
            let name = map.get("name").or_else(|| map.get("id"));
            if name
                .and_then(serde_json::Value::as_str)
                .is_some_and(|n| names.contains(&n))
            {
                found.push(value);
            }
            map.iter()
                .filter(|(key, _)| key.as_str() != "index_codecs")
                .for_each(|(_, v)| codecs_named(v, names, found));
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| codecs_named(v, names, found)),
        _ => {}
    }
}

/// A numcodecs codec of the array (at any depth: inside sharding too) that zarrs' implementation
/// (or this module's) would run otherwise than numcodecs, which wrote the data, for this
/// array: refused when the array is opened rather than read (and written) differently. Its
/// name and why.
pub(crate) fn refused(metadata: &ArrayMetadata) -> Option<(String, &'static str)> {
    const FIXEDSCALEOFFSET: &str = "zarrs' implementation decodes in the element type and \
        rounds halves away from zero, so values would differ from numcodecs' (which wrote them) \
        in the last bit or at ties";
    const BITROUND: &str = "numcodecs' bitround rounds floating-point elements only (zarrs' \
        would round these; zarr-python refuses to write them)";
    const DELTA: &str = "numcodecs' delta in another element type or byte order than the \
        array's elements in memory would reinterpret their bytes";
    const DELTA_BIG_ENDIAN: &str = "zarr-python hands numcodecs' delta the elements of a v3 \
        array stored big-endian in the byte order the array was created with, which differs \
        between the session that wrote it and one that reads it: left to zarr-python";
    let value = serde_json::to_value(metadata).ok()?;
    let named = |names: &[&str]| {
        let mut found = Vec::new();
        for member in ["codecs", "filters", "compressor"] {
            if let Some(v) = value.get(member) {
                codecs_named(v, names, &mut found);
            }
        }
        found
    };
    let name_of = |codec: &serde_json::Value| {
        let name = codec.get("name").or_else(|| codec.get("id"));
        name.and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    if let Some(codec) = named(&["numcodecs.fixedscaleoffset", "fixedscaleoffset"]).first() {
        return Some((name_of(codec), FIXEDSCALEOFFSET));
    }
    // numcodecs' codecs by their v3 names (zarrs' own `bitround` rounds integers too, by
    // design) or v2 ids; the array's elements in memory (numcodecs' delta views them in its
    // `dtype`), as the Zarr v3 type and byte order: v3 arrays hold them little-endian (the
    // bytes codec orders them), v2 arrays in their `dtype`'s order.
    let (bitround, delta, float, elements) = match metadata {
        ArrayMetadata::V3(_) => {
            let data_type = value.get("data_type").and_then(serde_json::Value::as_str);
            let float = data_type.is_some_and(|t| ["float16", "float32", "float64"].contains(&t));
            (
                "numcodecs.bitround",
                "numcodecs.delta",
                float,
                data_type.map(|t| ('<', t)),
            )
        }
        ArrayMetadata::V2(_) => {
            let dtype = value
                .get("dtype")
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default();
            let code = dtype.trim_start_matches(['<', '>', '|', '=']);
            let elements = DeltaCodec::dtype_of(&serde_json::json!({ "dtype": dtype }));
            (
                "bitround",
                "delta",
                ["f2", "f4", "f8"].contains(&code),
                elements,
            )
        }
    };
    let reinterprets = |codec: &&serde_json::Value| {
        let configuration = codec.get("configuration").unwrap_or(codec);
        let same = DeltaCodec::dtype_of(configuration)
            .zip(elements)
            .is_some_and(|((o, t), (order, array_type))| {
                t == array_type && (o == '|' || o == order)
            });
        !same
    };
    let deltas = named(&[delta]);
    if let Some(codec) = deltas.iter().copied().find(reinterprets) {
        return Some((name_of(codec), DELTA));
    }
    let big_endian = named(&["bytes"]).iter().any(|c| {
        c.get("configuration").and_then(|c| c.get("endian")) == Some(&serde_json::json!("big"))
    });
    if let (Some(codec), true) = (deltas.first(), big_endian) {
        return Some((name_of(codec), DELTA_BIG_ENDIAN));
    }
    if float {
        return None;
    }
    named(&[bitround])
        .first()
        .map(|codec| (name_of(codec), BITROUND))
}

/// A numcodecs configuration as the codecs of this module keep it (and report it back): checked
/// to have only `members` (and a v2 `id`, left out).
fn kept_configuration(
    name: &str,
    configuration: &Configuration,
    members: &[&str],
) -> Result<serde_json::Map<String, serde_json::Value>, PluginCreateError> {
    let known = |k: &&String| k.as_str() == "id" || members.contains(&k.as_str());
    if let Some(other) = configuration.keys().find(|k| !known(k)) {
        return Err(PluginCreateError::Other(format!(
            "{name}: unknown configuration member {other:?}"
        )));
    }
    let mut kept = (**configuration).clone();
    kept.remove("id");
    Ok(kept)
}

/// [`CodecTraits`] of a codec of this module: the configuration it was made from, whole chunks
/// only (nothing decoded or encoded in part).
macro_rules! numcodecs_codec_traits {
    ($codec:ty) => {
        impl CodecTraits for $codec {
            fn as_any(&self) -> &dyn std::any::Any {
                self
            }

            fn configuration(
                &self,
                _version: ZarrVersion,
                _options: &CodecMetadataOptions,
            ) -> Option<Configuration> {
                Some(Configuration::from(self.configuration.clone()))
            }

            fn partial_decoder_capability(&self) -> PartialDecoderCapability {
                PartialDecoderCapability {
                    partial_read: false,
                    partial_decode: false,
                }
            }

            fn partial_encoder_capability(&self) -> PartialEncoderCapability {
                PartialEncoderCapability {
                    partial_encode: false,
                }
            }
        }
    };
}

/// An element type numcodecs' delta works in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Element {
    I8,
    I16,
    I32,
    I64,
    U8,
    U16,
    U32,
    U64,
    F32,
    F64,
}

impl Element {
    /// Each element type with its numpy type code and its Zarr v3 data type.
    const TABLE: [(Self, &'static str, &'static str); 10] = [
        (Self::I8, "i1", "int8"),
        (Self::I16, "i2", "int16"),
        (Self::I32, "i4", "int32"),
        (Self::I64, "i8", "int64"),
        (Self::U8, "u1", "uint8"),
        (Self::U16, "u2", "uint16"),
        (Self::U32, "u4", "uint32"),
        (Self::U64, "u8", "uint64"),
        (Self::F32, "f4", "float32"),
        (Self::F64, "f8", "float64"),
    ];

    /// From a numpy dtype as numcodecs' configurations give it (`"<i4"`, `"|u1"`, `"i8"`,
    /// `"float32"`), with its byte order (`'<'`, `'>'`, or `'|'` for one-byte types; none or
    /// `'='` is this machine's, little-endian).
    fn parse(dtype: &str) -> Option<(Self, char)> {
        let (order, code) = match dtype.chars().next()? {
            order @ ('<' | '>' | '|' | '=') => (order, &dtype[1..]),
            _ => ('=', dtype),
        };
        let (element, _, _) = Self::TABLE
            .into_iter()
            .find(|&(_, c, name)| c == code || (order == '=' && name == dtype))?;
        let order = match (element.size(), order) {
            (1, _) => '|',
            (_, '=' | '<') => '<',
            (_, other) => other,
        };
        Some((element, order))
    }

    const fn size(self) -> usize {
        match self {
            Self::I8 | Self::U8 => 1,
            Self::I16 | Self::U16 => 2,
            Self::I32 | Self::U32 | Self::F32 => 4,
            Self::I64 | Self::U64 | Self::F64 => 8,
        }
    }

    /// The Zarr v3 data type of the same elements.
    fn v3_name(self) -> &'static str {
        Self::TABLE
            .into_iter()
            .find_map(|(e, _, name)| (e == self).then_some(name))
            .unwrap_or_default()
    }
}

/// numcodecs' `Delta` filter: a chunk's elements, flattened in the order they are stored,
/// become the first element and then the difference of each from the one before (wrapping for
/// integers, in the element type for floats, as numpy computes them); decoding is the running
/// sum. Only `astype` equal to `dtype` (the common case; another `astype` changes the chain's
/// data type, which zarr-python handles) and an element type equal to the array's: anything
/// else is refused when the codec is made or used, never read otherwise.
#[derive(Debug, Clone)]
pub struct DeltaCodec {
    element: Element,
    /// The configuration as given, less a v2 `id` (numcodecs writes `dtype` and `astype`).
    configuration: serde_json::Map<String, serde_json::Value>,
}

zarrs::plugin::impl_extension_aliases!(DeltaCodec, v3: "numcodecs.delta", v2: "delta");

impl DeltaCodec {
    /// The codec's Zarr v3 name.
    pub const NAME: &'static str = "numcodecs.delta";

    /// The codec of a numcodecs configuration (`{"dtype": "<i4", "astype": "<i4"}`).
    ///
    /// # Errors
    /// [`PluginCreateError`] naming the codec and what it cannot do: a `dtype` that is not an
    /// integer or float32 / float64 type, an `astype` other than the `dtype`, another member.
    pub fn from_configuration(configuration: &Configuration) -> Result<Codec, PluginCreateError> {
        let refuse = |what: String| PluginCreateError::Other(format!("{}: {what}", Self::NAME));
        let kept = kept_configuration(Self::NAME, configuration, &["dtype", "astype"])?;
        let dtype = configuration
            .get("dtype")
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| refuse("\"dtype\" must be a numpy dtype string".into()))?;
        let parsed = Element::parse(dtype).ok_or_else(|| {
            refuse(format!(
                "dtype {dtype:?} is not supported (integer, float32 or float64 types)"
            ))
        })?;
        match configuration.get("astype") {
            None | Some(serde_json::Value::Null) => {}
            Some(astype) => {
                let same = astype
                    .as_str()
                    .and_then(Element::parse)
                    .is_some_and(|a| a == parsed);
                if !same {
                    return Err(refuse(format!(
                        "astype {astype} other than dtype {dtype:?} is not supported"
                    )));
                }
            }
        }
        let codec = Self {
            element: parsed.0,
            configuration: kept,
        };
        Ok(Codec::ArrayToArray(Arc::new(codec)))
    }

    /// numcodecs' byte order of the `dtype` in `configuration` (`'<'`, `'>'`, or `'|'` for
    /// one-byte types), and the Zarr v3 data type of its elements; None when numcodecs' delta
    /// cannot be made from it.
    #[must_use]
    pub fn dtype_of(configuration: &serde_json::Value) -> Option<(char, &'static str)> {
        let (element, order) = Element::parse(configuration.get("dtype")?.as_str()?)?;
        Some((order, element.v3_name()))
    }

    /// [`transform`] a chunk's elements of `data_type`, checked to be this codec's.
    fn apply<'a>(
        &self,
        bytes: ArrayBytes<'a>,
        data_type: &DataType,
        encode: bool,
    ) -> Result<ArrayBytes<'a>, CodecError> {
        let mut owned = bytes
            .into_fixed()
            .map_err(|e| CodecError::Other(e.to_string()))?
            .into_owned();
        self.check(data_type, owned.len())?;
        transform(self.element, &mut owned, encode);
        Ok(ArrayBytes::new_flen(Cow::Owned(owned)))
    }

    fn check(&self, data_type: &DataType, len: usize) -> Result<(), CodecError> {
        let name = data_type.name_v3();
        if name.as_deref() != Some(self.element.v3_name()) {
            return Err(CodecError::Other(format!(
                "{}: dtype {} on elements of data type {} is not supported (numcodecs would \
                 reinterpret their bytes)",
                Self::NAME,
                self.element.v3_name(),
                name.as_deref().unwrap_or("(unnamed)")
            )));
        }
        if !len.is_multiple_of(self.element.size()) {
            return Err(CodecError::Other(format!(
                "{}: {len} bytes are not a whole number of {}-byte elements",
                Self::NAME,
                self.element.size()
            )));
        }
        Ok(())
    }
}

/// Apply `delta` (encode) or its inverse (decode) to native-endian elements of `element`.
fn transform(element: Element, bytes: &mut [u8], encode: bool) {
    macro_rules! run {
        ($t:ty, $sub:expr, $add:expr) => {{
            const N: usize = size_of::<$t>();
            let mut previous: Option<$t> = None;
            for chunk in bytes.chunks_exact_mut(N) {
                let mut raw = [0u8; N];
                raw.copy_from_slice(chunk);
                let value = <$t>::from_ne_bytes(raw);
                let out = match previous {
                    None => value,
                    Some(p) if encode => $sub(value, p),
                    Some(p) => $add(value, p),
                };
                // Encoding differences the stored values; decoding sums the decoded ones.
                previous = Some(if encode { value } else { out });
                chunk.copy_from_slice(&out.to_ne_bytes());
            }
        }};
    }
    match element {
        Element::I8 => run!(i8, i8::wrapping_sub, i8::wrapping_add),
        Element::I16 => run!(i16, i16::wrapping_sub, i16::wrapping_add),
        Element::I32 => run!(i32, i32::wrapping_sub, i32::wrapping_add),
        Element::I64 => run!(i64, i64::wrapping_sub, i64::wrapping_add),
        Element::U8 => run!(u8, u8::wrapping_sub, u8::wrapping_add),
        Element::U16 => run!(u16, u16::wrapping_sub, u16::wrapping_add),
        Element::U32 => run!(u32, u32::wrapping_sub, u32::wrapping_add),
        Element::U64 => run!(u64, u64::wrapping_sub, u64::wrapping_add),
        Element::F32 => run!(f32, |a: f32, b: f32| a - b, |a: f32, b: f32| a + b),
        Element::F64 => run!(f64, |a: f64, b: f64| a - b, |a: f64, b: f64| a + b),
    }
}

numcodecs_codec_traits!(DeltaCodec);

impl ArrayCodecTraits for DeltaCodec {
    fn recommended_concurrency(
        &self,
        _shape: &[NonZeroU64],
        _data_type: &DataType,
    ) -> Result<RecommendedConcurrency, CodecError> {
        Ok(RecommendedConcurrency::new_maximum(1))
    }
}

impl ArrayToArrayCodecTraits for DeltaCodec {
    fn into_dyn(self: Arc<Self>) -> Arc<dyn ArrayToArrayCodecTraits> {
        self as Arc<dyn ArrayToArrayCodecTraits>
    }

    fn encoded_data_type(&self, decoded_data_type: &DataType) -> Result<DataType, CodecError> {
        self.check(decoded_data_type, 0)?;
        Ok(decoded_data_type.clone())
    }

    fn encoded_fill_value(
        &self,
        _decoded_data_type: &DataType,
        decoded_fill_value: &FillValue,
    ) -> Result<FillValue, CodecError> {
        Ok(decoded_fill_value.clone())
    }

    fn encode<'a>(
        &self,
        bytes: ArrayBytes<'a>,
        _shape: &[NonZeroU64],
        data_type: &DataType,
        _fill_value: &FillValue,
        _options: &CodecOptions,
    ) -> Result<ArrayBytes<'a>, CodecError> {
        self.apply(bytes, data_type, true)
    }

    fn decode<'a>(
        &self,
        bytes: ArrayBytes<'a>,
        _shape: &[NonZeroU64],
        data_type: &DataType,
        _fill_value: &FillValue,
        _options: &CodecOptions,
    ) -> Result<ArrayBytes<'a>, CodecError> {
        self.apply(bytes, data_type, false)
    }
}

/// numcodecs' `LZ4` compressor: the decoded length as a little-endian `u32`, then one LZ4
/// block (the format of `numcodecs.lz4` in v3 and `lz4` in v2). Encoded with lz4_flex, whose
/// blocks every LZ4 decoder reads (numcodecs' `acceleration` trades its own compression speed
/// for size and is kept in the metadata, not used here).
#[derive(Debug, Clone)]
pub struct Lz4Codec {
    /// The configuration as given, less a v2 `id`.
    configuration: serde_json::Map<String, serde_json::Value>,
}

zarrs::plugin::impl_extension_aliases!(Lz4Codec, v3: "numcodecs.lz4", v2: "lz4");

/// The most an LZ4 block expands to: each input byte of a match run stands for at most 255.
const LZ4_MAX_RATIO: usize = 255;

impl Lz4Codec {
    /// The codec's Zarr v3 name.
    pub const NAME: &'static str = "numcodecs.lz4";

    /// The codec of a numcodecs configuration (`{"acceleration": 1}`).
    ///
    /// # Errors
    /// [`PluginCreateError`] naming the codec for a member numcodecs' LZ4 does not have or an
    /// acceleration that is not an integer.
    pub fn from_configuration(configuration: &Configuration) -> Result<Codec, PluginCreateError> {
        let configuration = kept_configuration(Self::NAME, configuration, &["acceleration"])?;
        if let Some(acceleration) = configuration.get("acceleration") {
            if !acceleration.is_i64() {
                return Err(PluginCreateError::Other(format!(
                    "{}: acceleration {acceleration} must be an integer",
                    Self::NAME
                )));
            }
        }
        Ok(Codec::BytesToBytes(Arc::new(Self { configuration })))
    }
}

numcodecs_codec_traits!(Lz4Codec);

impl BytesToBytesCodecTraits for Lz4Codec {
    fn into_dyn(self: Arc<Self>) -> Arc<dyn BytesToBytesCodecTraits> {
        self as Arc<dyn BytesToBytesCodecTraits>
    }

    fn recommended_concurrency(
        &self,
        _decoded_representation: &BytesRepresentation,
    ) -> Result<RecommendedConcurrency, CodecError> {
        Ok(RecommendedConcurrency::new_maximum(1))
    }

    fn encoded_representation(
        &self,
        decoded_representation: &BytesRepresentation,
    ) -> BytesRepresentation {
        decoded_representation
            .size()
            .map_or(BytesRepresentation::UnboundedSize, |size| {
                let size = usize::try_from(size).unwrap_or(usize::MAX);
                let bound = lz4_flex::block::get_maximum_output_size(size).saturating_add(4);
                BytesRepresentation::BoundedSize(u64::try_from(bound).unwrap_or(u64::MAX))
            })
    }

    fn encode<'a>(
        &self,
        decoded_value: ArrayBytesRaw<'a>,
        _options: &CodecOptions,
    ) -> Result<ArrayBytesRaw<'a>, CodecError> {
        if u32::try_from(decoded_value.len()).is_err() {
            return Err(CodecError::Other(format!(
                "{}: {} bytes do not fit numcodecs' 32-bit length header",
                Self::NAME,
                decoded_value.len()
            )));
        }
        Ok(Cow::Owned(lz4_flex::block::compress_prepend_size(
            &decoded_value,
        )))
    }

    fn decode<'a>(
        &self,
        encoded_value: ArrayBytesRaw<'a>,
        decoded_representation: &BytesRepresentation,
        _options: &CodecOptions,
    ) -> Result<ArrayBytesRaw<'a>, CodecError> {
        let fail = |what: String| CodecError::Other(format!("{}: {what}", Self::NAME));
        let Some((header, block)) = encoded_value.split_first_chunk::<4>() else {
            return Err(fail(format!(
                "{} bytes are too short for the length header",
                encoded_value.len()
            )));
        };
        let len = u32::from_le_bytes(*header) as usize;
        // A corrupt header must not allocate: the length is checked against what the chunk
        // holds, or can hold, first.
        let most = block.len().saturating_mul(LZ4_MAX_RATIO).saturating_add(16) as u64;
        let wrong = match *decoded_representation {
            BytesRepresentation::FixedSize(size) => (size != len as u64).then_some(size),
            BytesRepresentation::BoundedSize(size) => {
                (len as u64 > size.min(most)).then_some(size.min(most))
            }
            BytesRepresentation::UnboundedSize => (len as u64 > most).then_some(most),
        };
        if let Some(size) = wrong {
            return Err(fail(format!(
                "the header says {len} decoded bytes; {} encoded bytes of this chunk decode to {size}{}",
                block.len(),
                if matches!(decoded_representation, BytesRepresentation::FixedSize(_)) { "" } else { " at most" }
            )));
        }
        let mut out = vec![0u8; len];
        let n =
            lz4_flex::block::decompress_into(block, &mut out).map_err(|e| fail(e.to_string()))?;
        if n != len {
            return Err(fail(format!("decoded {n} bytes, the header says {len}")));
        }
        Ok(Cow::Owned(out))
    }
}

/// Which checksum a [`Checksum32Codec`] computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Checksum {
    /// zlib's CRC-32 (`numcodecs.CRC32`).
    Crc32,
    /// CRC-32C, Castagnoli (`numcodecs.CRC32C`).
    Crc32c,
}

/// numcodecs' 32-bit checksum codecs `CRC32` and `CRC32C` (v2 `crc32`, `crc32c`; v3
/// `numcodecs.crc32`, `numcodecs.crc32c`): the data with its checksum as a little-endian `u32`
/// before it (`"location": "start"`, numcodecs' default for CRC32) or after it (`"end"`, its
/// default for CRC32C, where the stream is the Zarr v3 `crc32c` codec's). The checksum is
/// checked on decode unless checksum validation is off.
#[derive(Debug, Clone)]
pub struct Checksum32Codec {
    checksum: Checksum,
    at_start: bool,
    /// The configuration as given, less a v2 `id`.
    configuration: serde_json::Map<String, serde_json::Value>,
}

/// Each instance by its own checksum's name, so a chain rebuilt from its metadata (the inner
/// codecs of a shard) makes the same checksum again.
impl zarrs::plugin::ExtensionName for Checksum32Codec {
    fn name(&self, version: ZarrVersion) -> Option<Cow<'static, str>> {
        let name = match (version, self.checksum) {
            (ZarrVersion::V3, Checksum::Crc32) => "numcodecs.crc32",
            (ZarrVersion::V3, Checksum::Crc32c) => "numcodecs.crc32c",
            (ZarrVersion::V2, Checksum::Crc32) => "crc32",
            (ZarrVersion::V2, Checksum::Crc32c) => "crc32c",
        };
        Some(Cow::Borrowed(name))
    }
}

impl Checksum32Codec {
    /// The codec of a numcodecs configuration (`{"location": "start"}`) for `name`: `crc32` or
    /// `crc32c`, with or without the `numcodecs.` prefix.
    ///
    /// # Errors
    /// [`PluginCreateError`] naming the codec for a member numcodecs' codec does not have or a
    /// location other than `start` and `end`.
    pub fn from_configuration(
        name: &str,
        configuration: &Configuration,
    ) -> Result<Codec, PluginCreateError> {
        let name = name.strip_prefix("numcodecs.").unwrap_or(name);
        let refuse = |what: String| PluginCreateError::Other(format!("numcodecs.{name}: {what}"));
        let (checksum, default_start) = match name {
            "crc32" => (Checksum::Crc32, true),
            "crc32c" => (Checksum::Crc32c, false),
            _ => return Err(refuse("not a numcodecs 32-bit checksum".into())),
        };
        let configuration =
            kept_configuration(&format!("numcodecs.{name}"), configuration, &["location"])?;
        let at_start = match configuration.get("location") {
            None | Some(serde_json::Value::Null) => default_start,
            Some(location) if location == "start" => true,
            Some(location) if location == "end" => false,
            Some(location) => {
                return Err(refuse(format!(
                    "location {location} must be \"start\" or \"end\""
                )))
            }
        };
        Ok(Codec::BytesToBytes(Arc::new(Self {
            checksum,
            at_start,
            configuration,
        })))
    }

    fn v3_name(&self) -> Cow<'static, str> {
        zarrs::plugin::ExtensionName::name(self, ZarrVersion::V3).unwrap_or_default()
    }

    fn compute(&self, data: &[u8]) -> [u8; 4] {
        match self.checksum {
            Checksum::Crc32 => crc32fast::hash(data),
            Checksum::Crc32c => crc32c::crc32c(data),
        }
        .to_le_bytes()
    }
}

numcodecs_codec_traits!(Checksum32Codec);

impl BytesToBytesCodecTraits for Checksum32Codec {
    fn into_dyn(self: Arc<Self>) -> Arc<dyn BytesToBytesCodecTraits> {
        self as Arc<dyn BytesToBytesCodecTraits>
    }

    fn recommended_concurrency(
        &self,
        _decoded_representation: &BytesRepresentation,
    ) -> Result<RecommendedConcurrency, CodecError> {
        Ok(RecommendedConcurrency::new_maximum(1))
    }

    fn encoded_representation(
        &self,
        decoded_representation: &BytesRepresentation,
    ) -> BytesRepresentation {
        match *decoded_representation {
            BytesRepresentation::FixedSize(size) => BytesRepresentation::FixedSize(size + 4),
            BytesRepresentation::BoundedSize(size) => BytesRepresentation::BoundedSize(size + 4),
            BytesRepresentation::UnboundedSize => BytesRepresentation::UnboundedSize,
        }
    }

    fn encode<'a>(
        &self,
        decoded_value: ArrayBytesRaw<'a>,
        _options: &CodecOptions,
    ) -> Result<ArrayBytesRaw<'a>, CodecError> {
        let checksum = self.compute(&decoded_value);
        let mut encoded = Vec::with_capacity(decoded_value.len() + 4);
        if self.at_start {
            encoded.extend_from_slice(&checksum);
            encoded.extend_from_slice(&decoded_value);
        } else {
            encoded.extend_from_slice(&decoded_value);
            encoded.extend_from_slice(&checksum);
        }
        Ok(Cow::Owned(encoded))
    }

    fn decode<'a>(
        &self,
        encoded_value: ArrayBytesRaw<'a>,
        _decoded_representation: &BytesRepresentation,
        options: &CodecOptions,
    ) -> Result<ArrayBytesRaw<'a>, CodecError> {
        let split = if self.at_start {
            encoded_value
                .split_first_chunk::<4>()
                .map(|(checksum, data)| (data, *checksum))
        } else {
            encoded_value
                .split_last_chunk::<4>()
                .map(|(data, checksum)| (data, *checksum))
        };
        let Some((data, stored)) = split else {
            return Err(CodecError::Other(format!(
                "{}: {} bytes are too short for the checksum",
                self.v3_name(),
                encoded_value.len()
            )));
        };
        if options.validate_checksums() && self.compute(data) != stored {
            return Err(CodecError::Other(format!(
                "{}: the checksum does not match the data",
                self.v3_name()
            )));
        }
        Ok(Cow::Owned(data.to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ArrayError, Selection, ZarrArray};

    fn bytes_of<T: Copy, const N: usize>(values: &[T], to: impl Fn(T) -> [u8; N]) -> Vec<u8> {
        values.iter().flat_map(|&v| to(v)).collect()
    }

    #[test]
    fn differences_and_running_sums() {
        // numcodecs' own example (int16), unsigned wrapping, floats in their type.
        let cases: [(Element, Vec<u8>, Vec<u8>); 4] = [
            (
                Element::I16,
                bytes_of(&[100i16, 102, 104, 110, -32768], i16::to_ne_bytes),
                bytes_of(&[100i16, 2, 2, 6, 32658], i16::to_ne_bytes),
            ),
            (Element::U8, vec![250, 5, 5, 0], vec![250, 11, 0, 251]),
            (
                Element::F32,
                bytes_of(&[1.5f32, 0.25, -3.0, 4.5], f32::to_ne_bytes),
                bytes_of(&[1.5f32, -1.25, -3.25, 7.5], f32::to_ne_bytes),
            ),
            (
                Element::U64,
                bytes_of(&[0u64, u64::MAX, 1], u64::to_ne_bytes),
                bytes_of(&[0u64, u64::MAX, 2], u64::to_ne_bytes),
            ),
        ];
        for (element, decoded, encoded) in cases {
            let mut bytes = decoded.clone();
            transform(element, &mut bytes, true);
            assert_eq!(bytes, encoded, "{element:?} encode");
            transform(element, &mut bytes, false);
            assert_eq!(bytes, decoded, "{element:?} decode");
        }
    }

    #[test]
    fn configurations() {
        let config = |json: &str| -> Configuration { serde_json::from_str(json).unwrap() };
        let made = |json: &str| DeltaCodec::from_configuration(&config(json));
        for ok in [
            r#"{"dtype":"<i4","astype":"<i4"}"#,
            r#"{"dtype":"i8"}"#,
            r#"{"dtype":"float32","astype":"<f4"}"#,
            r#"{"dtype":"|u1","astype":"u1"}"#,
            r#"{"id":"delta","dtype":">f8","astype":">f8"}"#,
        ] {
            assert!(made(ok).is_ok(), "{ok}");
        }
        for (bad, why) in [
            (r#"{"dtype":"<i4","astype":"<i2"}"#, "astype"),
            (r#"{"dtype":"<i4","astype":">i4"}"#, "astype"),
            (r#"{"dtype":"<f2"}"#, "<f2"),
            (r#"{"dtype":"|b1"}"#, "|b1"),
            (r#"{"astype":"<i4"}"#, "dtype"),
            (r#"{"dtype":"<i4","order":"C"}"#, "order"),
        ] {
            let Err(err) = made(bad) else {
                panic!("{bad} accepted")
            };
            let message = err.to_string();
            assert!(
                message.contains("numcodecs.delta") && message.contains(why),
                "{message}"
            );
        }
        assert_eq!(
            DeltaCodec::dtype_of(&serde_json::json!({"dtype": "i2"})),
            Some(('<', "int16"))
        );
        assert_eq!(
            DeltaCodec::dtype_of(&serde_json::json!({"dtype": "<u1"})),
            Some(('|', "uint8"))
        );
        assert_eq!(
            DeltaCodec::dtype_of(&serde_json::json!({"dtype": ">f8"})),
            Some(('>', "float64"))
        );
    }

    /// numcodecs' LZ4 stream (made by numcodecs 0.16: `LZ4().encode` of 64 `<u2` values
    /// `i % 7`) decodes; lz4_flex's encoding decodes back; bad headers and blocks are errors
    /// naming the codec, never a panic or an allocation the chunk cannot fill.
    #[test]
    fn lz4_as_numcodecs_stores_it() {
        let Ok(Codec::BytesToBytes(codec)) = Lz4Codec::from_configuration(
            &serde_json::from_str(r#"{"id":"lz4","acceleration":1}"#).unwrap(),
        ) else {
            panic!("not made")
        };
        let decoded: Vec<u8> = (0u16..64).flat_map(|i| (i % 7).to_le_bytes()).collect();
        let numcodecs = (0..28)
            .map(|i| {
                u8::from_str_radix(
                    &"80000000ef00000100020003000400050006000e005a500006000000"[2 * i..2 * i + 2],
                    16,
                )
                .unwrap()
            })
            .collect::<Vec<u8>>();
        let fixed = BytesRepresentation::FixedSize(128);
        let options = CodecOptions::default();
        let got = codec
            .decode(Cow::Borrowed(&numcodecs), &fixed, &options)
            .unwrap();
        assert_eq!(&got[..], &decoded[..]);
        let ours = codec.encode(Cow::Borrowed(&decoded), &options).unwrap();
        assert_eq!(&ours[..4], &128u32.to_le_bytes());
        let back = codec
            .decode(ours.clone(), &BytesRepresentation::UnboundedSize, &options)
            .unwrap();
        assert_eq!(&back[..], &decoded[..]);
        let fails = |encoded: Vec<u8>, representation: BytesRepresentation| {
            let err = codec
                .decode(Cow::Owned(encoded), &representation, &options)
                .unwrap_err()
                .to_string();
            assert!(err.contains("numcodecs.lz4"), "{err}");
            err
        };
        // Too short for the header; a header that disagrees with the chunk's size; one claiming
        // 4 GiB from a few bytes; a cut block.
        fails(vec![1, 0], fixed);
        assert!(fails(numcodecs.clone(), BytesRepresentation::FixedSize(130)).contains("130"));
        let mut huge = numcodecs.clone();
        huge[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        fails(huge, BytesRepresentation::UnboundedSize);
        fails(numcodecs[..numcodecs.len() - 3].to_vec(), fixed);
        for bad in [r#"{"acceleration":"fast"}"#, r#"{"level":1}"#] {
            assert!(
                Lz4Codec::from_configuration(&serde_json::from_str(bad).unwrap()).is_err(),
                "{bad}"
            );
        }
    }

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len() / 2)
            .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).unwrap())
            .collect()
    }

    /// numcodecs' CRC32 and CRC32C streams (made by numcodecs 0.16 from `b"zuring checksums"`)
    /// with the checksum at either end: encoded byte for byte, decoded, and checked.
    #[test]
    fn checksums_as_numcodecs_stores_them() {
        let data = b"zuring checksums";
        let options = CodecOptions::default();
        let fixed = BytesRepresentation::FixedSize(16);
        for (name, config, stored) in [
            ("crc32", "{}", "4470006a7a7572696e6720636865636b73756d73"),
            (
                "numcodecs.crc32",
                r#"{"location":"end"}"#,
                "7a7572696e6720636865636b73756d734470006a",
            ),
            (
                "crc32c",
                r#"{"id":"crc32c"}"#,
                "7a7572696e6720636865636b73756d730904963c",
            ),
            (
                "numcodecs.crc32c",
                r#"{"location":"start"}"#,
                "0904963c7a7572696e6720636865636b73756d73",
            ),
        ] {
            let Ok(Codec::BytesToBytes(codec)) =
                Checksum32Codec::from_configuration(name, &serde_json::from_str(config).unwrap())
            else {
                panic!("{name} {config} not made")
            };
            let stored = hex(stored);
            assert_eq!(
                &codec.encode(Cow::Borrowed(data), &options).unwrap()[..],
                &stored[..],
                "{name} {config}"
            );
            assert_eq!(
                &codec
                    .decode(Cow::Borrowed(&stored), &fixed, &options)
                    .unwrap()[..],
                data
            );
            // A changed byte fails the check (unless checks are off); too short names the codec.
            let mut bad = stored.clone();
            bad[6] ^= 1;
            let err = codec
                .decode(Cow::Borrowed(&bad), &fixed, &options)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("checksum") && err.contains(name.trim_start_matches("numcodecs.")),
                "{err}"
            );
            let unchecked = CodecOptions::default().with_validate_checksums(false);
            assert!(codec
                .decode(Cow::Borrowed(&bad), &fixed, &unchecked)
                .is_ok());
            let err = codec
                .decode(Cow::Borrowed(&stored[..3]), &fixed, &options)
                .unwrap_err()
                .to_string();
            assert!(err.contains("too short"), "{err}");
            // Its own name, so a chain rebuilt from its metadata makes the same checksum.
            let full = if name.starts_with("numcodecs.") {
                name.to_owned()
            } else {
                format!("numcodecs.{name}")
            };
            assert_eq!(
                zarrs::plugin::ExtensionName::name_v3(&*codec).as_deref(),
                Some(full.as_str())
            );
        }
        for (name, bad) in [
            ("crc32", r#"{"location":"middle"}"#),
            ("crc32c", r#"{"seed":1}"#),
            ("adler32", "{}"),
        ] {
            assert!(
                Checksum32Codec::from_configuration(name, &serde_json::from_str(bad).unwrap())
                    .is_err(),
                "{name} {bad}"
            );
        }
    }

    /// v2 and v3 arrays (sharded too, either byte order) with numcodecs' delta: written and read
    /// back, stored as differences; refused where numcodecs would reinterpret the bytes.
    #[test]
    fn arrays_with_delta() {
        let dir = tempfile::tempdir().unwrap();
        let at = |name: &str, file: &str, meta: &str| {
            let path = dir.path().join(name);
            std::fs::create_dir(&path).unwrap();
            std::fs::write(path.join(file), meta).unwrap();
            ZarrArray::open(&path).map(|array| (path, array))
        };
        let values: Vec<i32> = (0..24).map(|i| (i * i * 37) - 500).collect();
        let bytes = bytes_of(&values, i32::to_ne_bytes);
        let v2 = |dtype: &str, delta: &str| {
            format!(
                r#"{{"zarr_format":2,"shape":[4,6],"chunks":[2,3],"dtype":"{dtype}","compressor":null,
                "fill_value":0,"order":"C","filters":[{{"id":"delta","dtype":"{delta}","astype":"{delta}"}}],"dimension_separator":"."}}"#
            )
        };
        for (name, dtype, stored) in [
            ("le", "<i4", i32::to_le_bytes as fn(i32) -> [u8; 4]),
            ("be", ">i4", i32::to_be_bytes),
        ] {
            let (path, array) = at(name, ".zarray", &v2(dtype, dtype)).unwrap();
            array.write_region(&[0..4, 0..6], &bytes).unwrap();
            assert_eq!(array.read_bytes(&Selection::all(&[4, 6])).unwrap(), bytes);
            // Chunk 1.1: rows 2..4, columns 3..6, differenced in C order.
            let values = &values;
            let chunk: Vec<i32> = [2, 3]
                .iter()
                .flat_map(|r| (3..6).map(move |c| values[r * 6 + c]))
                .collect();
            let differences: Vec<i32> = (0..chunk.len())
                .map(|i| {
                    if i == 0 {
                        chunk[0]
                    } else {
                        chunk[i] - chunk[i - 1]
                    }
                })
                .collect();
            assert_eq!(
                std::fs::read(path.join("1.1")).unwrap(),
                bytes_of(&differences, stored),
                "{name}"
            );
        }
        // Another byte order than the array's: refused, naming the codec.
        let Err(err) = at("order", ".zarray", &v2(">i4", "<i4")) else {
            panic!("opened")
        };
        assert!(
            matches!(err, ArrayError::Unsupported { .. }) && err.to_string().contains("delta"),
            "{err}"
        );
        // v3, inside shards; refused stored big-endian (zarr-python's delta sees such
        // elements in another byte order when writing than when reading).
        let v3 = |data_type: &str, delta: &str, endian: &str| {
            format!(
                r#"{{"zarr_format":3,"node_type":"array","shape":[4,6],"data_type":"{data_type}",
                "chunk_grid":{{"name":"regular","configuration":{{"chunk_shape":[4,6]}}}},
                "chunk_key_encoding":{{"name":"default"}},"fill_value":0,
                "codecs":[{{"name":"sharding_indexed","configuration":{{"chunk_shape":[2,3],
                  "codecs":[{{"name":"numcodecs.delta","configuration":{{"dtype":"{delta}"}}}},{{"name":"bytes","configuration":{{"endian":"{endian}"}}}}],
                  "index_codecs":[{{"name":"bytes","configuration":{{"endian":"little"}}}},{{"name":"crc32c"}}]}}}}]}}"#
            )
        };
        let (path, array) = at("v3", "zarr.json", &v3("int32", "<i4", "little")).unwrap();
        array.write_region(&[0..4, 0..6], &bytes).unwrap();
        let reopened = ZarrArray::open(&path).unwrap();
        assert_eq!(
            reopened.read_bytes(&Selection::all(&[4, 6])).unwrap(),
            bytes
        );
        let shard = std::fs::read(path.join("c/0/0")).unwrap();
        // The first inner chunk opens the shard: values[0], then differences.
        let first: Vec<u8> = [values[0], values[1] - values[0], values[2] - values[1]]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        assert_eq!(&shard[..12], &first[..]);
        for (name, data_type, delta, endian) in [
            ("v3-order", "int32", ">i4", "little"),
            ("v3-type", "float32", "<i4", "little"),
            ("v3-stored-big", "int32", "<i4", "big"),
        ] {
            let Err(err) = at(name, "zarr.json", &v3(data_type, delta, endian)) else {
                panic!("{name} opened")
            };
            assert!(
                matches!(err, ArrayError::Unsupported { .. }) && err.to_string().contains("delta"),
                "{name}: {err}"
            );
        }
        // A big-endian shard index holds no elements: opened.
        let index_big = v3("int32", "<i4", "little").replace(
            r#""index_codecs":[{"name":"bytes","configuration":{"endian":"little"}}"#,
            r#""index_codecs":[{"name":"bytes","configuration":{"endian":"big"}}"#,
        );
        assert!(index_big.contains(r#"{"endian":"big"}"#));
        assert!(at("v3-index-big", "zarr.json", &index_big).is_ok());
    }
}
