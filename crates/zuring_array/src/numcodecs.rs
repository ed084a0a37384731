//! numcodecs' codecs that zarrs 0.23 lacks, does otherwise, or does not look up by their Zarr
//! v2 `id`, made available to zarrs through its runtime codec registry ([`register`], called
//! before any array is opened): zarrs' own `bitround` under its v2 id; numcodecs' checksums
//! ([`Checksum32Codec`]), `lz4` ([`Lz4Codec`]) and filters `delta` ([`DeltaCodec`]),
//! `fixedscaleoffset` ([`FixedScaleOffsetCodec`]), `quantize` ([`QuantizeCodec`]), `astype`
//! ([`AsTypeCodec`]) and `packbits` ([`PackBitsCodec`]) under their v2 ids and v3 names
//! (`numcodecs.` and the id), computing as numpy does so chunks are byte for byte
//! numcodecs'. Also the rules, checked when an array is opened, for the numcodecs codecs that
//! would run otherwise than numcodecs on that array (zuring refuses them with
//! `ArrayError::Unsupported`, and zarr-python's pipeline falls back to its own).

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
use zarrs::array::{
    data_type, ArrayBytesRaw, ArrayMetadata, BytesRepresentation, DataType, FillValue,
};
use zarrs::metadata::Configuration;
use zarrs::plugin::{PluginCreateError, ZarrVersion};

mod lzma;
pub use lzma::LzmaCodec;

/// How a codec of this module is made from its configuration (v3 when the flag is set).
type Make = fn(&Configuration, bool) -> Result<Codec, PluginCreateError>;

/// numcodecs' codecs this module makes, by v2 id and v3 name.
const CODECS: [(&str, &str, Make); 7] = [
    ("delta", DeltaCodec::NAME, |c, _| {
        DeltaCodec::from_configuration(c)
    }),
    ("lz4", Lz4Codec::NAME, |c, _| {
        Lz4Codec::from_configuration(c)
    }),
    ("fixedscaleoffset", FixedScaleOffsetCodec::NAME, |c, _| {
        FixedScaleOffsetCodec::from_configuration(c)
    }),
    (
        "quantize",
        QuantizeCodec::NAME,
        QuantizeCodec::from_configuration,
    ),
    ("astype", AsTypeCodec::NAME, |c, _| {
        AsTypeCodec::from_configuration(c)
    }),
    ("packbits", PackBitsCodec::NAME, |c, _| {
        PackBitsCodec::from_configuration(c)
    }),
    ("lzma", LzmaCodec::NAME, |c, _| {
        LzmaCodec::from_configuration(c)
    }),
];

/// Register the codecs of this module with zarrs, once per process (zarrs looks in its runtime
/// registry before its own codecs):
/// - `crc32`, `crc32c`, `jenkins_lookup3` (v2 ids) and the same with `numcodecs.` (v3 names):
///   [`Checksum32Codec`];
/// - `bitround` (v2 id): zarrs' codec has no v2 name; it takes `keepbits` (numcodecs' bitround
///   of other than floating-point elements is refused at open: numcodecs rounds only those);
/// - by v2 id and v3 name (`numcodecs.` and the id): [`DeltaCodec`], [`Lz4Codec`],
///   [`FixedScaleOffsetCodec`] (in place of zarrs' own, which computes in float32),
///   [`QuantizeCodec`], [`AsTypeCodec`], [`PackBitsCodec`].
pub fn register() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        register_codec_v2(CodecRuntimePluginV2::new(
            |id| ["crc32", "crc32c", "jenkins_lookup3"].contains(&id),
            |metadata| Checksum32Codec::from_configuration(metadata.id(), metadata.configuration()),
        ));
        register_codec_v3(CodecRuntimePluginV3::new(
            |name| {
                [
                    "numcodecs.crc32",
                    "numcodecs.crc32c",
                    "numcodecs.jenkins_lookup3",
                ]
                .contains(&name)
            },
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
        for (id, name, make) in CODECS {
            register_codec_v2(CodecRuntimePluginV2::new(
                move |i| i == id,
                move |metadata| make(metadata.configuration(), false),
            ));
            register_codec_v3(CodecRuntimePluginV3::new(
                move |n| n == name,
                move |metadata| make(&metadata.configuration().cloned().unwrap_or_default(), true),
            ));
        }
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

/// The elements a numcodecs filter named `id` (its v2 id) takes and gives, as numpy sees them
/// (byte order, Zarr v3 type; `'|'` for one-byte types), from its configuration; `Some(None)`
/// for one of these filters with a type its codec refuses when made, `None` for a codec that
/// is not one of these filters.
#[allow(clippy::type_complexity)]
fn filter_types(
    id: &str,
    configuration: &serde_json::Value,
) -> Option<Option<((char, &'static str), (char, &'static str))>> {
    let dtype = |key: &str| {
        let (element, order) = Element::parse(configuration.get(key)?.as_str()?)?;
        Some((order, element.v3_name()))
    };
    let pair = |input: &str, output: &str| {
        let input = dtype(input);
        let output = match configuration.get(output) {
            None | Some(serde_json::Value::Null) => input,
            Some(_) => dtype(output),
        };
        input.zip(output)
    };
    match id {
        "delta" | "fixedscaleoffset" | "quantize" => Some(pair("dtype", "astype")),
        "astype" => Some(pair("decode_dtype", "encode_dtype")),
        "packbits" => Some(Some((('|', "bool"), ('|', "uint8")))),
        _ => None,
    }
}

/// A numcodecs codec of the array (at any depth: inside sharding too) that zarrs' implementation
/// (or this module's) would run otherwise than numcodecs, which wrote the data, for this
/// array: refused when the array is opened rather than read (and written) differently. Its
/// name and why.
pub(crate) fn refused(metadata: &ArrayMetadata) -> Option<(String, &'static str)> {
    let value = serde_json::to_value(metadata).ok()?;
    match metadata {
        ArrayMetadata::V3(_) => {
            // Elements in memory are little-endian (the bytes codec orders them).
            let data_type = value.get("data_type").and_then(serde_json::Value::as_str)?;
            let codecs = value.get("codecs")?.as_array()?;
            refused_in_chain(codecs, ('<', data_type), true).err()
        }
        ArrayMetadata::V2(_) => {
            // Elements in memory in their dtype's order; the filters' last type is stored in
            // the order zarrs stores the array's (this machine's for one-byte types).
            let dtype = value.get("dtype")?.as_str()?;
            let Some((element, order)) = Element::parse(dtype) else {
                // Another type (bool, strings, ...): only packbits takes any of these.
                let array_type = if dtype.trim_start_matches(['<', '>', '|']) == "b1" {
                    "bool"
                } else {
                    "(other)"
                };
                let filters = value.get("filters").and_then(serde_json::Value::as_array);
                let filters = filters.map_or(&[][..], Vec::as_slice);
                let last = refused_in_chain(filters, ('|', array_type), false);
                return v2_stored(last, '<');
            };
            let filters = value.get("filters").and_then(serde_json::Value::as_array);
            let filters = filters.map_or(&[][..], Vec::as_slice);
            let last = refused_in_chain(filters, (order, element.v3_name()), false);
            v2_stored(last, if order == '|' { '<' } else { order })
        }
    }
}

/// The filters' last elements of a v2 array (or why refused), checked to be stored in `order`.
fn v2_stored(
    last: Result<(char, &str), (String, &'static str)>,
    order: char,
) -> Option<(String, &'static str)> {
    const ORDER: &str = "the filters give elements in another byte order than zarrs stores \
        the array's in";
    match last {
        Err(refused) => Some(refused),
        Ok((last, _)) if last != '|' && last != order => Some(("filters".into(), ORDER)),
        Ok(_) => None,
    }
}

/// Walk a codec chain from elements `input` (byte order, Zarr v3 type): the elements its
/// numcodecs filters leave, or the first codec refused and why. Sharding's inner chain starts
/// from the elements before it.
fn refused_in_chain<'a>(
    chain: &'a [serde_json::Value],
    input: (char, &'a str),
    v3: bool,
) -> Result<(char, &'a str), (String, &'static str)> {
    const REINTERPRETS: &str = "a numcodecs filter whose dtype is another element type or \
        byte order than the elements it is given would reinterpret their bytes";
    const BITROUND: &str = "numcodecs' bitround rounds floating-point elements only (zarrs' \
        would round these; zarr-python refuses to write them)";
    const KEEPBITS: &str = "numcodecs' bitround refuses to keep more bits than the element \
        type's mantissa has (zarr-python cannot write these; zarrs would)";
    const BIG_ENDIAN: &str = "zarr-python hands numcodecs' filters the elements of a v3 array \
        stored big-endian in the byte order the array was created with, which differs \
        between the session that wrote it and one that reads it: left to zarr-python";
    let mut current = input;
    let big_endian = v3 && {
        let mut found = Vec::new();
        for codec in chain {
            codecs_named(codec, &["bytes"], &mut found);
        }
        found.iter().any(|c| {
            c.get("configuration").and_then(|c| c.get("endian")) == Some(&serde_json::json!("big"))
        })
    };
    for codec in chain {
        let name = codec
            .get("name")
            .or_else(|| codec.get("id"))
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default();
        let configuration = codec.get("configuration").unwrap_or(codec);
        if v3 && name == "sharding_indexed" {
            let inner = configuration
                .get("codecs")
                .and_then(serde_json::Value::as_array);
            refused_in_chain(inner.map_or(&[][..], Vec::as_slice), current, true)?;
            continue;
        }
        let id = if v3 {
            match name.strip_prefix("numcodecs.") {
                Some(id) => id,
                None => continue,
            }
        } else {
            name
        };
        let refuse = |why| Err((name.to_owned(), why));
        if id == "bitround" {
            let mantissa = match current.1 {
                "float16" => 10,
                "float32" => 23,
                "float64" => 52,
                _ => return refuse(BITROUND),
            };
            let keepbits = configuration
                .get("keepbits")
                .and_then(serde_json::Value::as_u64);
            if keepbits.is_some_and(|bits| bits > mantissa) {
                return refuse(KEEPBITS);
            }
            continue;
        }
        let Some(types) = filter_types(id, configuration) else {
            continue;
        };
        let Some((takes, gives)) = types else {
            continue;
        };
        let same_order = takes.0 == '|' || current.0 == '|' || takes.0 == current.0;
        if takes.1 != current.1 || !same_order {
            return refuse(REINTERPRETS);
        }
        if big_endian && id != "packbits" {
            return refuse(BIG_ENDIAN);
        }
        current = gives;
    }
    Ok(current)
}

/// A numcodecs configuration as the codecs of this module keep it (and report it back): checked
/// to have only `members` (and a v2 `id`, left out).
pub(crate) fn kept_configuration(
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

/// Register with zarrs a Zarr v3 codec of this crate named `name`, made by `make` from its
/// configuration (none given: empty).
pub(crate) fn register_v3(
    name: &'static str,
    make: fn(&Configuration) -> Result<Codec, PluginCreateError>,
) {
    register_codec_v3(CodecRuntimePluginV3::new(
        move |n| n == name,
        move |metadata| make(&metadata.configuration().cloned().unwrap_or_default()),
    ));
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
pub(crate) use numcodecs_codec_traits;

/// The members of [`BytesToBytesCodecTraits`] the bytes-to-bytes codecs of this module share:
/// the codec as a trait object, and one thread per chunk (each chunk is one call of numcodecs'
/// codec; zuring decodes chunks in parallel).
macro_rules! bytes_codec_members {
    () => {
        fn into_dyn(self: Arc<Self>) -> Arc<dyn BytesToBytesCodecTraits> {
            self as Arc<dyn BytesToBytesCodecTraits>
        }

        fn recommended_concurrency(
            &self,
            _decoded_representation: &BytesRepresentation,
        ) -> Result<RecommendedConcurrency, CodecError> {
            Ok(RecommendedConcurrency::new_maximum(1))
        }
    };
}
pub(crate) use bytes_codec_members;

/// The encoded representation of a compressor whose output for `size` bytes is at most
/// `bound(size)` bytes.
pub(crate) fn compressed_bound(
    decoded_representation: &BytesRepresentation,
    bound: impl FnOnce(usize) -> usize,
) -> BytesRepresentation {
    decoded_representation
        .size()
        .map_or(BytesRepresentation::UnboundedSize, |size| {
            let bound = bound(usize::try_from(size).unwrap_or(usize::MAX));
            BytesRepresentation::BoundedSize(u64::try_from(bound).unwrap_or(u64::MAX))
        })
}

/// [`CodecTraits`] and [`ArrayCodecTraits`] of an array-to-array codec of this module (and of
/// `scale_offset` and `cast_value`): one chunk decoded by one thread.
macro_rules! array_codec_traits {
    ($codec:ty) => {
        $crate::numcodecs::numcodecs_codec_traits!($codec);

        impl ArrayCodecTraits for $codec {
            fn recommended_concurrency(
                &self,
                _shape: &[NonZeroU64],
                _data_type: &DataType,
            ) -> Result<RecommendedConcurrency, CodecError> {
                Ok(RecommendedConcurrency::new_maximum(1))
            }
        }
    };
}
pub(crate) use array_codec_traits;

/// Run `$body` with `$t` the Rust type of `$element` (an [`Element`]).
macro_rules! with_element {
    ($element:expr, $t:ident => $body:expr) => {
        with_element!(@arms $element, $t, $body,
            I8 i8, I16 i16, I32 i32, I64 i64, U8 u8, U16 u16, U32 u32, U64 u64, F32 f32, F64 f64)
    };
    (@arms $element:expr, $t:ident, $body:expr, $($variant:ident $rust:ty),*) => {
        match $element {
            $(Element::$variant => {
                type $t = $rust;
                $body
            })*
        }
    };
}
pub(crate) use with_element;

/// One of zarrs' data type makers (`zarrs::array::data_type::int8`, ...).
type MakeDataType = fn() -> DataType;

/// An element type of numcodecs' filters (delta, fixedscaleoffset, quantize, astype).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Element {
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
    /// Each element type with its numpy type code, its Zarr v3 data type and zarrs' maker of it.
    const TABLE: [(Self, &'static str, &'static str, MakeDataType); 10] = [
        (Self::I8, "i1", "int8", data_type::int8),
        (Self::I16, "i2", "int16", data_type::int16),
        (Self::I32, "i4", "int32", data_type::int32),
        (Self::I64, "i8", "int64", data_type::int64),
        (Self::U8, "u1", "uint8", data_type::uint8),
        (Self::U16, "u2", "uint16", data_type::uint16),
        (Self::U32, "u4", "uint32", data_type::uint32),
        (Self::U64, "u8", "uint64", data_type::uint64),
        (Self::F32, "f4", "float32", data_type::float32),
        (Self::F64, "f8", "float64", data_type::float64),
    ];

    /// From a numpy dtype as numcodecs' configurations give it (`"<i4"`, `"|u1"`, `"i8"`,
    /// `"float32"`), with its byte order (`'<'`, `'>'`, or `'|'` for one-byte types; none or
    /// `'='` is this machine's, little-endian).
    fn parse(dtype: &str) -> Option<(Self, char)> {
        let (order, code) = match dtype.chars().next()? {
            order @ ('<' | '>' | '|' | '=') => (order, &dtype[1..]),
            _ => ('=', dtype),
        };
        let (element, ..) = Self::TABLE
            .into_iter()
            .find(|&(_, c, name, _)| c == code || (order == '=' && name == dtype))?;
        let order = match (element.size(), order) {
            (1, _) => '|',
            (_, '=' | '<') => '<',
            (_, other) => other,
        };
        Some((element, order))
    }

    pub(crate) const fn size(self) -> usize {
        match self {
            Self::I8 | Self::U8 => 1,
            Self::I16 | Self::U16 => 2,
            Self::I32 | Self::U32 | Self::F32 => 4,
            Self::I64 | Self::U64 | Self::F64 => 8,
        }
    }

    /// The least and greatest value of an integer type.
    pub(crate) fn integer_range(self) -> Option<(i128, i128)> {
        with_element!(self, T => match (T::MIN.number(), T::MAX.number()) {
            (Number::Int(min), Number::Int(max)) => Some((min, max)),
            _ => None,
        })
    }

    const fn is_float(self) -> bool {
        matches!(self, Self::F32 | Self::F64)
    }

    /// zarrs' data type of the same elements.
    pub(crate) fn data_type(self) -> DataType {
        Self::TABLE
            .into_iter()
            .find_map(|(e, .., make)| (e == self).then(make))
            .unwrap_or_else(data_type::uint8)
    }

    /// The element type of a Zarr v3 data type name (`"int16"`, `"float32"`).
    pub(crate) fn from_v3_name(name: &str) -> Option<Self> {
        Self::TABLE
            .into_iter()
            .find_map(|(e, _, n, _)| (n == name).then_some(e))
    }

    /// The Zarr v3 data type of the same elements.
    pub(crate) fn v3_name(self) -> &'static str {
        Self::TABLE
            .into_iter()
            .find_map(|(e, _, name, _)| (e == self).then_some(name))
            .unwrap_or_default()
    }
}

/// numcodecs' `Delta` filter: a chunk's elements, flattened in the order they are stored,
/// become the first element and then the difference of each from the one before (wrapping for
/// integers, in the element type for floats, as numpy computes them), stored as `astype`;
/// decoding is the running sum, in the element type for integers and in the wider of the two
/// for floats, as numpy's `cumsum` sums them. `dtype` and `astype` are both integers or both
/// floats, and not `uint64` with a signed type (numpy would sum those in float64); a first
/// element out of an integer `astype`'s range is an error when encoding, as in numpy.
#[derive(Debug, Clone)]
pub struct DeltaCodec {
    element: Element,
    astype: Element,
    /// The configuration as given, less a v2 `id` (numcodecs writes `dtype` and `astype`).
    configuration: serde_json::Map<String, serde_json::Value>,
}

zarrs::plugin::impl_extension_aliases!(DeltaCodec, v3: "numcodecs.delta", v2: "delta");

impl DeltaCodec {
    /// The codec's Zarr v3 name.
    pub const NAME: &'static str = "numcodecs.delta";

    /// The codec of a numcodecs configuration (`{"dtype": "<i4", "astype": "<i2"}`).
    ///
    /// # Errors
    /// [`PluginCreateError`] naming the codec and what it cannot do: a `dtype` or `astype` that
    /// is not an integer or float32 / float64 type, an integer with a float, `uint64` with a
    /// signed integer, another member.
    pub fn from_configuration(configuration: &Configuration) -> Result<Codec, PluginCreateError> {
        let kept = kept_configuration(Self::NAME, configuration, &["dtype", "astype"])?;
        let (element, _) = dtype_member(Self::NAME, configuration, "dtype", None)?;
        let (astype, _) = dtype_member(Self::NAME, configuration, "astype", Some((element, '<')))?;
        let signed =
            |e: Element| matches!(e, Element::I8 | Element::I16 | Element::I32 | Element::I64);
        let mixed = element.is_float() != astype.is_float()
            || [(element, astype), (astype, element)]
                .iter()
                .any(|&(u, i)| u == Element::U64 && signed(i));
        if mixed {
            return Err(PluginCreateError::Other(format!(
                "{}: astype {:?} with dtype {:?} is not supported (numpy would sum in another \
                 kind of number)",
                Self::NAME,
                astype.v3_name(),
                element.v3_name()
            )));
        }
        let codec = Self {
            element,
            astype,
            configuration: kept,
        };
        Ok(Codec::ArrayToArray(Arc::new(codec)))
    }

    /// The type numpy's `cumsum` sums in: the element type for integers (wrapping sums in a
    /// wider type come to the same), the wider of the two for floats.
    fn accumulator(&self) -> Element {
        if self.element.is_float() && (self.element == Element::F64 || self.astype == Element::F64)
        {
            Element::F64
        } else {
            self.element
        }
    }
}

impl ElementFilter for DeltaCodec {
    const NAME: &'static str = Self::NAME;
    fn decoded(&self) -> Element {
        self.element
    }
    fn encoded(&self) -> Element {
        self.astype
    }
    fn encode_elements(&self, bytes: &[u8]) -> Result<Vec<u8>, CodecError> {
        let first = numbers(
            bytes.get(..self.element.size()).unwrap_or_default(),
            self.element,
        );
        if let (Some(&Number::Int(first)), Some((min, max))) =
            (first.first(), self.astype.integer_range())
        {
            if !(min..=max).contains(&first) {
                return Err(CodecError::Other(format!(
                    "{}: the first element {first} is out of the range of astype {:?}",
                    Self::NAME,
                    self.astype.v3_name()
                )));
            }
        }
        let mut differences = bytes.to_vec();
        transform(self.element, &mut differences, true);
        Ok(if self.astype == self.element {
            differences
        } else {
            cast(&differences, self.element, self.astype)
        })
    }
    fn decode_elements(&self, bytes: &[u8]) -> Vec<u8> {
        let sum = self.accumulator();
        let mut sums = cast(bytes, self.astype, sum);
        transform(sum, &mut sums, false);
        if sum == self.element {
            sums
        } else {
            cast(&sums, sum, self.element)
        }
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

/// A number on its way from one element type to another: integers exact, floats as float64
/// (which holds every float32 exactly).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Number {
    Int(i128),
    Float(f64),
}

/// The element types' conversions as numpy's `astype` makes them on x86-64 (numpy's casts are
/// C casts): integers wrap; integers become the nearest float; floats round to nearest;
/// floats become integers truncated toward zero, through the processor's truncation to a
/// 32-bit signed integer for the types of up to 16 bits and `int32`, to a 64-bit one for
/// `int64`, and for `uint32` / `uint64` through the signed truncation of the same width,
/// less the top bit when the value reaches it. Out of range, or NaN, that truncation gives the
/// smallest signed value (x86's "integer indefinite"), which is what numpy stores: as happens
/// to the fill value padding an edge chunk when it is out of the stored type's range (-2.0
/// stored as `uint8` is 254). Checked against numpy's results for each type.
pub(crate) trait Scalar: Copy {
    fn number(self) -> Number;
    fn from_number(number: Number) -> Self;
}

/// x86-64's truncation of `value` to a signed integer of `bits` (32 or 64) bits.
#[allow(clippy::cast_possible_truncation)] // checked to be in range first
fn truncate_x86(value: f64, bits: u32) -> i64 {
    let limit = 2f64.powi(i32::try_from(bits).unwrap_or(64) - 1);
    if value.is_nan() || value >= limit || value < -limit {
        if bits == 32 {
            i64::from(i32::MIN)
        } else {
            i64::MIN
        }
    } else {
        value.trunc() as i64
    }
}

/// x86-64's truncation to an unsigned integer of `bits` (32 or 64) bits, as C compilers make
/// it from the signed one.
#[allow(clippy::cast_sign_loss)] // the bits as they are
fn truncate_x86_unsigned(value: f64, bits: u32) -> u64 {
    let top = 2f64.powi(i32::try_from(bits).unwrap_or(64) - 1);
    let mask = if bits == 32 {
        u64::from(u32::MAX)
    } else {
        u64::MAX
    };
    if value >= top {
        (truncate_x86(value - top, bits) as u64 ^ (1 << (bits - 1))) & mask
    } else {
        truncate_x86(value, bits) as u64 & mask
    }
}

macro_rules! scalar {
    (int $t:ty, $float:expr) => {
        impl Scalar for $t {
            fn number(self) -> Number {
                Number::Int(i128::from(self))
            }

            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // numpy wraps
            fn from_number(number: Number) -> Self {
                match number {
                    Number::Int(i) => i as Self,
                    Number::Float(f) => $float(f) as Self,
                }
            }
        }
    };
    (float $t:ty) => {
        impl Scalar for $t {
            fn number(self) -> Number {
                Number::Float(f64::from(self))
            }

            #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)] // numpy's
            fn from_number(number: Number) -> Self {
                match number {
                    Number::Int(i) => i as Self,
                    Number::Float(f) => f as Self,
                }
            }
        }
    };
}

scalar!(int i8, |f| truncate_x86(f, 32));
scalar!(int i16, |f| truncate_x86(f, 32));
scalar!(int i32, |f| truncate_x86(f, 32));
scalar!(int i64, |f| truncate_x86(f, 64));
scalar!(int u8, |f| truncate_x86(f, 32));
scalar!(int u16, |f| truncate_x86(f, 32));
scalar!(int u32, |f| truncate_x86_unsigned(f, 32));
scalar!(int u64, |f| truncate_x86_unsigned(f, 64));
scalar!(float f32);
scalar!(float f64);

/// A Python number as numpy takes it into float32 arithmetic (the nearest float32).
fn in_float32(value: f64) -> f32 {
    f32::from_number(Number::Float(value))
}

/// Native-endian elements of Rust type `$f`, each mapped by `map` (in that type) and then
/// converted to the element type `$to` as numpy's `astype` does ([`Scalar`]).
macro_rules! map_to {
    ($bytes:expr, $f:ty, $to:expr, |$x:ident| $map:expr) => {
        with_element!($to, T => {
            const N: usize = size_of::<$f>();
            let mut out = Vec::with_capacity($bytes.len() / N * size_of::<T>());
            for chunk in $bytes.chunks_exact(N) {
                let mut raw = [0u8; N];
                raw.copy_from_slice(chunk);
                let $x = <$f>::from_ne_bytes(raw);
                let value = T::from_number(Scalar::number($map));
                out.extend_from_slice(&value.to_ne_bytes());
            }
            out
        })
    };
}

/// Native-endian elements of `element` as [`Number`]s.
pub(crate) fn numbers(bytes: &[u8], element: Element) -> Vec<Number> {
    with_element!(element, T => {
        const N: usize = size_of::<T>();
        bytes
            .chunks_exact(N)
            .map(|chunk| {
                let mut raw = [0u8; N];
                raw.copy_from_slice(chunk);
                T::from_ne_bytes(raw).number()
            })
            .collect()
    })
}

/// [`Number`]s as native-endian elements of `element`, converted as numpy converts them.
pub(crate) fn from_numbers(numbers: impl Iterator<Item = Number>, element: Element) -> Vec<u8> {
    with_element!(element, T => numbers.flat_map(|n| T::from_number(n).to_ne_bytes()).collect())
}

/// numpy's `astype` of native-endian elements ([`Scalar`]): a copy to the same type.
fn cast(bytes: &[u8], from: Element, to: Element) -> Vec<u8> {
    if from == to {
        return bytes.to_vec();
    }
    from_numbers(numbers(bytes, from).into_iter(), to)
}

/// The elements of `bytes` (whole elements of `size` bytes, named for errors by `codec`).
pub(crate) fn whole_elements<'a>(
    codec: &str,
    bytes: ArrayBytes<'a>,
    size: usize,
) -> Result<Cow<'a, [u8]>, CodecError> {
    let bytes = bytes
        .into_fixed()
        .map_err(|e| CodecError::Other(e.to_string()))?;
    if !bytes.len().is_multiple_of(size) {
        return Err(CodecError::Other(format!(
            "{codec}: {} bytes are not a whole number of {size}-byte elements",
            bytes.len(),
        )));
    }
    Ok(bytes)
}

/// `data_type` checked to be `element`'s, for `codec`.
fn check_type(codec: &str, data_type: &DataType, element: Element) -> Result<(), CodecError> {
    let name = data_type.name_v3();
    if name.as_deref() == Some(element.v3_name()) {
        return Ok(());
    }
    Err(CodecError::Other(format!(
        "{codec}: dtype {} on elements of data type {} is not supported (numcodecs would \
         reinterpret their bytes)",
        element.v3_name(),
        name.as_deref().unwrap_or("(unnamed)")
    )))
}

/// A numcodecs configuration's dtype member `key`, parsed; `default` when absent or null.
fn dtype_member(
    codec: &str,
    configuration: &Configuration,
    key: &str,
    default: Option<(Element, char)>,
) -> Result<(Element, char), PluginCreateError> {
    let refuse = |what: String| PluginCreateError::Other(format!("{codec}: {what}"));
    match configuration.get(key) {
        None | Some(serde_json::Value::Null) => {
            default.ok_or_else(|| refuse(format!("{key:?} must be a numpy dtype string")))
        }
        Some(value) => value.as_str().and_then(Element::parse).ok_or_else(|| {
            refuse(format!(
                "{key} {value} is not supported (integer, float32 or float64 types)"
            ))
        }),
    }
}

/// numcodecs' `FixedScaleOffset` filter: encoded as `round((x - offset) * scale)` (halves to
/// even), stored as `astype`; decoded as `stored / scale + offset` converted to the element
/// type. Computed as numpy 2 computes it (NEP 50): for float elements in their type (the
/// Python numbers taken in that type); for integer elements each step in the element type
/// (wrapping) while `offset` (then `scale`) is a Python int, in float64 from the first that is
/// a float; decoding in float64 for integer `astype` (in `astype` for floats).
#[derive(Debug, Clone)]
pub struct FixedScaleOffsetCodec {
    dtype: Element,
    astype: Element,
    scale: f64,
    offset: f64,
    /// `scale` and `offset` where the configuration gives them as integers (Python ints) and
    /// the elements are integers.
    scale_int: Option<i128>,
    offset_int: Option<i128>,
    /// The configuration as given, less a v2 `id`.
    configuration: serde_json::Map<String, serde_json::Value>,
}

zarrs::plugin::impl_extension_aliases!(
    FixedScaleOffsetCodec,
    v3: "numcodecs.fixedscaleoffset",
    v2: "fixedscaleoffset"
);

impl FixedScaleOffsetCodec {
    /// The codec's Zarr v3 name.
    pub const NAME: &'static str = "numcodecs.fixedscaleoffset";

    /// The codec of a numcodecs configuration (`{"scale": 100, "offset": 5, "dtype": "<f8",
    /// "astype": "<i2"}`).
    ///
    /// # Errors
    /// [`PluginCreateError`] naming the codec and what it cannot do: a `dtype` or `astype`
    /// that is not an integer or float32 / float64 type, `scale` or `offset` that is not a
    /// number, or an integer out of the range of integer elements (numpy raises), another
    /// member.
    pub fn from_configuration(configuration: &Configuration) -> Result<Codec, PluginCreateError> {
        let refuse = |what: String| PluginCreateError::Other(format!("{}: {what}", Self::NAME));
        let kept = kept_configuration(
            Self::NAME,
            configuration,
            &["scale", "offset", "dtype", "astype"],
        )?;
        let dtype = dtype_member(Self::NAME, configuration, "dtype", None)?.0;
        let astype = dtype_member(Self::NAME, configuration, "astype", Some((dtype, '<')))?.0;
        let number = |key: &str| {
            configuration
                .get(key)
                .and_then(serde_json::Value::as_f64)
                .ok_or_else(|| refuse(format!("{key:?} must be a number")))
        };
        // A Python int of integer elements: it must fit them (numpy raises otherwise).
        let integer = |key: &str| -> Result<Option<i128>, PluginCreateError> {
            let Some((min, max)) = dtype.integer_range() else {
                return Ok(None);
            };
            let value = configuration.get(key);
            let int = value.and_then(|v| {
                v.as_i64()
                    .map(i128::from)
                    .or_else(|| v.as_u64().map(i128::from))
            });
            match int {
                Some(int) if int < min || int > max => Err(refuse(format!(
                    "{key} {int} is out of the range of dtype {:?} (numpy raises)",
                    dtype.v3_name()
                ))),
                int => Ok(int),
            }
        };
        let codec = Self {
            dtype,
            astype,
            scale: number("scale")?,
            offset: number("offset")?,
            scale_int: integer("scale")?,
            offset_int: integer("offset")?,
            configuration: kept,
        };
        Ok(Codec::ArrayToArray(Arc::new(codec)))
    }

    /// Encode integer elements, each step as numpy types it.
    #[allow(clippy::cast_precision_loss)] // numpy's conversion of integers to float64
    fn encode_integers(&self, bytes: &[u8]) -> Vec<u8> {
        let dtype = self.dtype;
        let wrap = |v: i128| match with_element!(dtype, T => T::from_number(Number::Int(v)).number())
        {
            Number::Int(i) => i,
            Number::Float(_) => v,
        };
        let step = |x: Number,
                    int: Option<i128>,
                    float: f64,
                    on_ints: fn(i128, i128) -> i128,
                    on_floats: fn(f64, f64) -> f64| match (x, int) {
            (Number::Int(i), Some(by)) => Number::Int(wrap(on_ints(i, by))),
            (Number::Int(i), None) => Number::Float(on_floats(i as f64, float)),
            (Number::Float(f), _) => Number::Float(on_floats(f, float)),
        };
        let encoded = numbers(bytes, dtype).into_iter().map(|x| {
            let shifted = step(
                x,
                self.offset_int,
                self.offset,
                i128::wrapping_sub,
                |a, b| a - b,
            );
            match step(
                shifted,
                self.scale_int,
                self.scale,
                i128::wrapping_mul,
                |a, b| a * b,
            ) {
                Number::Float(f) => Number::Float(f.round_ties_even()),
                int @ Number::Int(_) => int,
            }
        });
        from_numbers(encoded, self.astype)
    }
}

/// numcodecs' `Quantize` filter on float32 or float64 elements: encoded as
/// `round(x * 2^bits) / 2^bits` in the element type (halves to even; `bits` from `digits` as
/// numcodecs computes it), stored as `astype`; decoding only converts back.
#[derive(Debug, Clone)]
pub struct QuantizeCodec {
    dtype: Element,
    astype: Element,
    scale: f64,
    /// The configuration as given, less a v2 `id`.
    configuration: serde_json::Map<String, serde_json::Value>,
}

zarrs::plugin::impl_extension_aliases!(QuantizeCodec, v3: "numcodecs.quantize", v2: "quantize");

impl QuantizeCodec {
    /// The codec's Zarr v3 name.
    pub const NAME: &'static str = "numcodecs.quantize";

    /// The codec of a numcodecs configuration (`{"digits": 3, "dtype": "<f8", "astype":
    /// "<f4"}`), for a v3 array when `v3` (where zarr-python hands the next codec the stored
    /// type as if it were the element type, so only `astype` equal to `dtype` is read alike).
    ///
    /// # Errors
    /// [`PluginCreateError`] naming the codec and what it cannot do: `dtype` or `astype` other
    /// than float32 or float64 (or differing in v3), `digits` that is not an integer, another
    /// member.
    pub fn from_configuration(
        configuration: &Configuration,
        v3: bool,
    ) -> Result<Codec, PluginCreateError> {
        let refuse = |what: String| PluginCreateError::Other(format!("{}: {what}", Self::NAME));
        let kept = kept_configuration(Self::NAME, configuration, &["digits", "dtype", "astype"])?;
        let dtype = dtype_member(Self::NAME, configuration, "dtype", None)?;
        let astype = dtype_member(Self::NAME, configuration, "astype", Some(dtype))?;
        if !dtype.0.is_float() || !astype.0.is_float() {
            return Err(refuse("only float32 and float64 are supported".into()));
        }
        if v3 && astype.0 != dtype.0 {
            return Err(refuse(format!(
                "astype {:?} other than dtype {:?} is not supported in a Zarr v3 array \
                 (zarr-python stores it as the array's type)",
                astype.0.v3_name(),
                dtype.0.v3_name()
            )));
        }
        let digits = configuration
            .get("digits")
            .and_then(serde_json::Value::as_i64)
            .ok_or_else(|| refuse("\"digits\" must be an integer".into()))?;
        let codec = Self {
            dtype: dtype.0,
            astype: astype.0,
            scale: Self::scale(digits),
            configuration: kept,
        };
        Ok(Codec::ArrayToArray(Arc::new(codec)))
    }

    /// numcodecs' power of two for `digits` decimal digits, computed as it does.
    #[allow(clippy::cast_precision_loss)] // digits is a small integer
    fn scale(digits: i64) -> f64 {
        let precision = 10f64.powf(-(digits as f64));
        let exp = precision.log10();
        let exp = if exp < 0.0 { exp.floor() } else { exp.ceil() };
        2f64.powf(10f64.powf(-exp).log2().ceil())
    }
}

/// numcodecs' `AsType` filter: elements of `decode_dtype` stored as `encode_dtype`, converted
/// as numpy's `astype` converts them (integers wrap, floats round to nearest, floats become
/// integers truncated toward zero) both ways.
#[derive(Debug, Clone)]
pub struct AsTypeCodec {
    decoded: Element,
    encoded: Element,
    /// The configuration as given, less a v2 `id`.
    configuration: serde_json::Map<String, serde_json::Value>,
}

zarrs::plugin::impl_extension_aliases!(AsTypeCodec, v3: "numcodecs.astype", v2: "astype");

impl AsTypeCodec {
    /// The codec's Zarr v3 name.
    pub const NAME: &'static str = "numcodecs.astype";

    /// The codec of a numcodecs configuration (`{"encode_dtype": "<f4", "decode_dtype":
    /// "<f8"}`).
    ///
    /// # Errors
    /// [`PluginCreateError`] naming the codec for a type that is not an integer or float32 /
    /// float64 type, or another member.
    pub fn from_configuration(configuration: &Configuration) -> Result<Codec, PluginCreateError> {
        let kept =
            kept_configuration(Self::NAME, configuration, &["encode_dtype", "decode_dtype"])?;
        let encoded = dtype_member(Self::NAME, configuration, "encode_dtype", None)?;
        let decoded = dtype_member(Self::NAME, configuration, "decode_dtype", None)?;
        let codec = Self {
            decoded: decoded.0,
            encoded: encoded.0,
            configuration: kept,
        };
        Ok(Codec::ArrayToArray(Arc::new(codec)))
    }
}

/// One of numcodecs' filters from elements of one type to elements of another (possibly the
/// same) type, each converted by its own `encode_elements` and `decode_elements`.
trait ElementFilter {
    const NAME: &'static str;
    fn decoded(&self) -> Element;
    fn encoded(&self) -> Element;
    fn encode_elements(&self, bytes: &[u8]) -> Result<Vec<u8>, CodecError>;
    fn decode_elements(&self, bytes: &[u8]) -> Vec<u8>;
}

impl ElementFilter for FixedScaleOffsetCodec {
    const NAME: &'static str = Self::NAME;
    fn decoded(&self) -> Element {
        self.dtype
    }
    fn encoded(&self) -> Element {
        self.astype
    }
    fn encode_elements(&self, bytes: &[u8]) -> Result<Vec<u8>, CodecError> {
        let (scale, offset) = (self.scale, self.offset);
        Ok(match self.dtype {
            Element::F32 => {
                let (scale, offset) = (in_float32(scale), in_float32(offset));
                map_to!(bytes, f32, self.astype, |x| ((x - offset) * scale)
                    .round_ties_even())
            }
            Element::F64 => map_to!(bytes, f64, self.astype, |x| {
                ((x - offset) * scale).round_ties_even()
            }),
            _ => self.encode_integers(bytes),
        })
    }

    fn decode_elements(&self, bytes: &[u8]) -> Vec<u8> {
        let (scale, offset) = (self.scale, self.offset);
        match self.astype {
            Element::F32 => {
                let (scale, offset) = (in_float32(scale), in_float32(offset));
                map_to!(bytes, f32, self.dtype, |x| x / scale + offset)
            }
            Element::F64 => map_to!(bytes, f64, self.dtype, |x| x / scale + offset),
            integer => {
                let wide = cast(bytes, integer, Element::F64);
                map_to!(&wide, f64, self.dtype, |x| x / scale + offset)
            }
        }
    }
}

impl ElementFilter for QuantizeCodec {
    const NAME: &'static str = Self::NAME;
    fn decoded(&self) -> Element {
        self.dtype
    }
    fn encoded(&self) -> Element {
        self.astype
    }
    fn encode_elements(&self, bytes: &[u8]) -> Result<Vec<u8>, CodecError> {
        let scale = self.scale;
        Ok(match self.dtype {
            Element::F32 => {
                let scale = in_float32(scale);
                map_to!(bytes, f32, self.astype, |x| (x * scale).round_ties_even()
                    / scale)
            }
            _ => map_to!(bytes, f64, self.astype, |x| {
                (x * scale).round_ties_even() / scale
            }),
        })
    }
    fn decode_elements(&self, bytes: &[u8]) -> Vec<u8> {
        cast(bytes, self.astype, self.dtype)
    }
}

impl ElementFilter for AsTypeCodec {
    const NAME: &'static str = Self::NAME;
    fn decoded(&self) -> Element {
        self.decoded
    }
    fn encoded(&self) -> Element {
        self.encoded
    }
    fn encode_elements(&self, bytes: &[u8]) -> Result<Vec<u8>, CodecError> {
        Ok(cast(bytes, self.decoded, self.encoded))
    }
    fn decode_elements(&self, bytes: &[u8]) -> Vec<u8> {
        cast(bytes, self.encoded, self.decoded)
    }
}

/// zarrs' codec traits of an [`ElementFilter`]: whole chunks, the encoded data type its
/// `encoded()` type, the fill value converted as zarr-python converts it (numpy's `astype`).
macro_rules! element_filter_codec {
    ($codec:ty) => {
        array_codec_traits!($codec);

        impl ArrayToArrayCodecTraits for $codec {
            fn into_dyn(self: Arc<Self>) -> Arc<dyn ArrayToArrayCodecTraits> {
                self as Arc<dyn ArrayToArrayCodecTraits>
            }

            fn encoded_data_type(
                &self,
                decoded_data_type: &DataType,
            ) -> Result<DataType, CodecError> {
                check_type(
                    <Self as ElementFilter>::NAME,
                    decoded_data_type,
                    self.decoded(),
                )?;
                Ok(self.encoded().data_type())
            }

            fn encoded_fill_value(
                &self,
                decoded_data_type: &DataType,
                decoded_fill_value: &FillValue,
            ) -> Result<FillValue, CodecError> {
                check_type(
                    <Self as ElementFilter>::NAME,
                    decoded_data_type,
                    self.decoded(),
                )?;
                let bytes = decoded_fill_value.as_ne_bytes();
                Ok(FillValue::new(cast(bytes, self.decoded(), self.encoded())))
            }

            fn encode<'a>(
                &self,
                bytes: ArrayBytes<'a>,
                _shape: &[NonZeroU64],
                data_type: &DataType,
                _fill_value: &FillValue,
                _options: &CodecOptions,
            ) -> Result<ArrayBytes<'a>, CodecError> {
                let name = <Self as ElementFilter>::NAME;
                check_type(name, data_type, self.decoded())?;
                let elements = whole_elements(name, bytes, self.decoded().size())?;
                Ok(ArrayBytes::new_flen(Cow::Owned(
                    self.encode_elements(&elements)?,
                )))
            }

            fn decode<'a>(
                &self,
                bytes: ArrayBytes<'a>,
                _shape: &[NonZeroU64],
                data_type: &DataType,
                _fill_value: &FillValue,
                _options: &CodecOptions,
            ) -> Result<ArrayBytes<'a>, CodecError> {
                let name = <Self as ElementFilter>::NAME;
                check_type(name, data_type, self.decoded())?;
                let elements = whole_elements(name, bytes, self.encoded().size())?;
                Ok(ArrayBytes::new_flen(Cow::Owned(
                    self.decode_elements(&elements),
                )))
            }
        }
    };
}

element_filter_codec!(DeltaCodec);
element_filter_codec!(FixedScaleOffsetCodec);
element_filter_codec!(QuantizeCodec);
element_filter_codec!(AsTypeCodec);

/// numcodecs' `PackBits` filter on boolean elements: one byte giving the number of padding
/// bits, then the elements eight to a byte, the first in the most significant bit (numpy's
/// `packbits`). Decoding checks the count against the chunk's.
#[derive(Debug, Clone)]
pub struct PackBitsCodec {
    /// The configuration as given, less a v2 `id` (numcodecs' has no members).
    configuration: serde_json::Map<String, serde_json::Value>,
}

zarrs::plugin::impl_extension_aliases!(PackBitsCodec, v3: "numcodecs.packbits", v2: "packbits");

impl PackBitsCodec {
    /// The codec's Zarr v3 name.
    pub const NAME: &'static str = "numcodecs.packbits";

    /// The codec of a numcodecs configuration (`{}`).
    ///
    /// # Errors
    /// [`PluginCreateError`] naming the codec for any member.
    pub fn from_configuration(configuration: &Configuration) -> Result<Codec, PluginCreateError> {
        let configuration = kept_configuration(Self::NAME, configuration, &[])?;
        Ok(Codec::ArrayToArray(Arc::new(Self { configuration })))
    }

    fn check(data_type: &DataType) -> Result<(), CodecError> {
        match data_type.name_v3().as_deref() {
            Some("bool") => Ok(()),
            other => Err(CodecError::Other(format!(
                "{}: elements of data type {} are not booleans",
                Self::NAME,
                other.unwrap_or("(unnamed)")
            ))),
        }
    }
}

array_codec_traits!(PackBitsCodec);

impl ArrayToArrayCodecTraits for PackBitsCodec {
    fn into_dyn(self: Arc<Self>) -> Arc<dyn ArrayToArrayCodecTraits> {
        self as Arc<dyn ArrayToArrayCodecTraits>
    }

    fn encoded_data_type(&self, decoded_data_type: &DataType) -> Result<DataType, CodecError> {
        Self::check(decoded_data_type)?;
        Ok(zarrs::array::data_type::uint8())
    }

    fn encoded_fill_value(
        &self,
        decoded_data_type: &DataType,
        decoded_fill_value: &FillValue,
    ) -> Result<FillValue, CodecError> {
        Self::check(decoded_data_type)?;
        Ok(decoded_fill_value.clone())
    }

    fn encoded_shape(&self, decoded_shape: &[NonZeroU64]) -> Result<Vec<NonZeroU64>, CodecError> {
        let count = decoded_shape.iter().map(|n| n.get()).product::<u64>();
        let bytes = NonZeroU64::new(1 + count.div_ceil(8)).unwrap_or(NonZeroU64::MIN);
        Ok(vec![bytes])
    }

    fn decoded_shape(
        &self,
        _encoded_shape: &[NonZeroU64],
    ) -> Result<Option<Vec<NonZeroU64>>, CodecError> {
        Ok(None)
    }

    fn encode<'a>(
        &self,
        bytes: ArrayBytes<'a>,
        _shape: &[NonZeroU64],
        data_type: &DataType,
        _fill_value: &FillValue,
        _options: &CodecOptions,
    ) -> Result<ArrayBytes<'a>, CodecError> {
        Self::check(data_type)?;
        let elements = whole_elements(Self::NAME, bytes, 1)?;
        let padding = (8 - elements.len() % 8) % 8;
        let mut packed = Vec::with_capacity(1 + elements.len().div_ceil(8));
        packed.push(u8::try_from(padding).unwrap_or_default());
        packed.extend(elements.chunks(8).map(|bits| {
            bits.iter().enumerate().fold(0u8, |byte, (i, &bit)| {
                byte | (u8::from(bit != 0) << (7 - i))
            })
        }));
        Ok(ArrayBytes::new_flen(Cow::Owned(packed)))
    }

    fn decode<'a>(
        &self,
        bytes: ArrayBytes<'a>,
        shape: &[NonZeroU64],
        data_type: &DataType,
        _fill_value: &FillValue,
        _options: &CodecOptions,
    ) -> Result<ArrayBytes<'a>, CodecError> {
        Self::check(data_type)?;
        let packed = whole_elements(Self::NAME, bytes, 1)?;
        let expected = shape.iter().map(|n| n.get()).product::<u64>();
        let count = packed.split_first().and_then(|(&padding, bits)| {
            let count = (bits.len() as u64 * 8).checked_sub(u64::from(padding))?;
            (padding < 8 && count == expected).then_some(count)
        });
        let Some(count) = count else {
            return Err(CodecError::Other(format!(
                "{}: {} bytes (padding {:?}) do not hold the chunk's {expected} elements",
                Self::NAME,
                packed.len(),
                packed.first()
            )));
        };
        let unpacked = packed[1..]
            .iter()
            .flat_map(|&byte| (0..8).map(move |i| (byte >> (7 - i)) & 1))
            .take(usize::try_from(count).unwrap_or(usize::MAX))
            .collect();
        Ok(ArrayBytes::new_flen(Cow::Owned(unpacked)))
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
    bytes_codec_members!();

    fn encoded_representation(
        &self,
        decoded_representation: &BytesRepresentation,
    ) -> BytesRepresentation {
        compressed_bound(decoded_representation, |size| {
            lz4_flex::block::get_maximum_output_size(size).saturating_add(4)
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
    /// Bob Jenkins' lookup3 with its seed (`numcodecs.JenkinsLookup3`, HDF5's checksum).
    JenkinsLookup3 { initval: u32 },
}

/// numcodecs' 32-bit checksum codecs `CRC32`, `CRC32C` and `JenkinsLookup3` (v2 `crc32`,
/// `crc32c`, `jenkins_lookup3`; v3 the same with `numcodecs.`): the data with its checksum as
/// a little-endian `u32` before it (`"location": "start"`, numcodecs' default for CRC32) or
/// after it (`"end"`, its default for CRC32C, where the stream is the Zarr v3 `crc32c`
/// codec's, and the only place of JenkinsLookup3's, seeded by its `initval`). The checksum is
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
            (ZarrVersion::V3, Checksum::JenkinsLookup3 { .. }) => "numcodecs.jenkins_lookup3",
            (ZarrVersion::V2, Checksum::Crc32) => "crc32",
            (ZarrVersion::V2, Checksum::Crc32c) => "crc32c",
            (ZarrVersion::V2, Checksum::JenkinsLookup3 { .. }) => "jenkins_lookup3",
        };
        Some(Cow::Borrowed(name))
    }
}

impl Checksum32Codec {
    /// The codec of a numcodecs configuration (`{"location": "start"}`, `{"initval": 0}`) for
    /// `name`: `crc32`, `crc32c` or `jenkins_lookup3`, with or without the `numcodecs.` prefix.
    ///
    /// # Errors
    /// [`PluginCreateError`] naming the codec for a member numcodecs' codec does not have, a
    /// location other than `start` and `end`, an `initval` that is not a 32-bit unsigned
    /// integer, or a `prefix` (numcodecs cannot write one into JSON metadata).
    pub fn from_configuration(
        name: &str,
        configuration: &Configuration,
    ) -> Result<Codec, PluginCreateError> {
        let name = name.strip_prefix("numcodecs.").unwrap_or(name);
        let refuse = |what: String| PluginCreateError::Other(format!("numcodecs.{name}: {what}"));
        let (checksum, default_start, members): (_, _, &[&str]) = match name {
            "crc32" => (Checksum::Crc32, true, &["location"]),
            "crc32c" => (Checksum::Crc32c, false, &["location"]),
            "jenkins_lookup3" => {
                let initval = match configuration.get("initval") {
                    None | Some(serde_json::Value::Null) => Some(0),
                    Some(v) => v.as_u64().and_then(|v| u32::try_from(v).ok()),
                }
                .ok_or_else(|| refuse("initval must be a 32-bit unsigned integer".into()))?;
                if configuration.get("prefix").is_some_and(|p| !p.is_null()) {
                    return Err(refuse("a prefix is not supported".into()));
                }
                (
                    Checksum::JenkinsLookup3 { initval },
                    false,
                    &["initval", "prefix"],
                )
            }
            _ => return Err(refuse("not a numcodecs 32-bit checksum".into())),
        };
        let configuration =
            kept_configuration(&format!("numcodecs.{name}"), configuration, members)?;
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
            Checksum::JenkinsLookup3 { initval } => lookup3(data, initval),
        }
        .to_le_bytes()
    }
}

/// Bob Jenkins' lookup3 `hashlittle` of `data` seeded with `initval`, reading bytes one by one
/// (HDF5's `H5_checksum_lookup3`, which numcodecs' `jenkins_lookup3` is): 12-byte blocks mixed
/// into three words, the last 1 to 12 bytes zero-padded and finalised.
fn lookup3(data: &[u8], initval: u32) -> u32 {
    // The length is taken modulo 2^32, as HDF5's C takes it.
    #[allow(clippy::cast_possible_truncation)]
    let start = 0xdead_beef_u32
        .wrapping_add(data.len() as u32)
        .wrapping_add(initval);
    // The three words a, b, c.
    let mut h = [start; 3];
    let add = |h: &mut [u32; 3], block: &[u8]| {
        let mut padded = [0u8; 12];
        padded[..block.len()].copy_from_slice(block);
        for (word, bytes) in h.iter_mut().zip(padded.chunks_exact(4)) {
            let bytes = [bytes[0], bytes[1], bytes[2], bytes[3]];
            *word = word.wrapping_add(u32::from_le_bytes(bytes));
        }
    };
    // lookup3's mix, each step `x -= y; x ^= rot(y, k); y += z`.
    const MIX: [(usize, usize, usize, u32); 6] = [
        (0, 2, 1, 4),
        (1, 0, 2, 6),
        (2, 1, 0, 8),
        (0, 2, 1, 16),
        (1, 0, 2, 19),
        (2, 1, 0, 4),
    ];
    // Its final, each step `x ^= y; x -= rot(y, k)`.
    const FINAL: [(usize, usize, u32); 7] = [
        (2, 1, 14),
        (0, 2, 11),
        (1, 0, 25),
        (2, 1, 16),
        (0, 2, 4),
        (1, 0, 14),
        (2, 1, 24),
    ];
    let mut rest = data;
    while rest.len() > 12 {
        add(&mut h, &rest[..12]);
        for (x, y, z, k) in MIX {
            h[x] = h[x].wrapping_sub(h[y]) ^ h[y].rotate_left(k);
            h[y] = h[y].wrapping_add(h[z]);
        }
        rest = &rest[12..];
    }
    if rest.is_empty() {
        return h[2];
    }
    add(&mut h, rest);
    for (x, y, k) in FINAL {
        h[x] = (h[x] ^ h[y]).wrapping_sub(h[y].rotate_left(k));
    }
    h[2]
}

numcodecs_codec_traits!(Checksum32Codec);

impl BytesToBytesCodecTraits for Checksum32Codec {
    bytes_codec_members!();

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

    /// lookup3 as numcodecs' `jenkins_lookup3` computes it (numcodecs 0.16), at each length
    /// around its 12-byte blocks.
    #[test]
    fn lookup3_as_numcodecs_computes_it() {
        for (len, initval, expected) in [
            (0usize, 0u32, 3_735_928_559u32),
            (1, 0, 3_116_429_366),
            (11, 0, 937_023_248),
            (12, 0, 947_476_729),
            (13, 7, 1_751_513_003),
            (24, 0, 764_879_783),
            (25, 0, 1_136_466_598),
            (100, 12345, 1_621_411_441),
        ] {
            let data: Vec<u8> = (0..len)
                .map(|i| u8::try_from((i * 37 + 11) % 256).unwrap())
                .collect();
            assert_eq!(lookup3(&data, initval), expected, "{len} {initval}");
        }
    }

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
            r#"{"dtype":"<i4","astype":"<i2"}"#,
            r#"{"dtype":"<i4","astype":">i4"}"#,
            r#"{"dtype":"<f8","astype":"<f4"}"#,
            r#"{"dtype":"i8"}"#,
            r#"{"dtype":"float32","astype":"<f4"}"#,
            r#"{"dtype":"|u1","astype":"u1"}"#,
            r#"{"id":"delta","dtype":">f8","astype":">f8"}"#,
        ] {
            assert!(made(ok).is_ok(), "{ok}");
        }
        for (bad, why) in [
            (r#"{"dtype":"<i4","astype":"<f4"}"#, "astype"),
            (r#"{"dtype":"<u8","astype":"<i8"}"#, "astype"),
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
        assert_eq!(Element::parse("i2"), Some((Element::I16, '<')));
        assert_eq!(Element::parse("<u1"), Some((Element::U8, '|')));
        assert_eq!(Element::parse(">f8"), Some((Element::F64, '>')));
        assert_eq!(Element::parse("float32"), Some((Element::F32, '<')));
        assert_eq!(Element::parse("<f2"), None);
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

    /// The bytes a hex string spells (test fixtures made by numcodecs / Python).
    pub(super) fn hex(text: &str) -> Vec<u8> {
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
            (
                "jenkins_lookup3",
                r#"{"id":"jenkins_lookup3","initval":0,"prefix":null}"#,
                "7a7572696e6720636865636b73756d730c4abcd3",
            ),
            (
                "numcodecs.jenkins_lookup3",
                r#"{"initval":5}"#,
                "7a7572696e6720636865636b73756d737c801ee7",
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
            ("jenkins_lookup3", r#"{"prefix":[97,98]}"#),
            ("jenkins_lookup3", r#"{"initval":-1}"#),
            ("jenkins_lookup3", r#"{"location":"end"}"#),
            ("adler32", "{}"),
        ] {
            assert!(
                Checksum32Codec::from_configuration(name, &serde_json::from_str(bad).unwrap())
                    .is_err(),
                "{name} {bad}"
            );
        }
    }

    /// Floats to each integer type as numpy converts them on x86-64, out of range and NaN too.
    #[test]
    fn casts_as_numpy_makes_them() {
        let values = [
            -2.0,
            -1.5,
            255.7,
            256.0,
            40000.0,
            -40000.0,
            3e9,
            -3e9,
            1e19,
            1.8e19,
            -1e19,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            2f64.powi(63),
            2f64.powi(64),
        ];
        // numpy 2.4's float64 -> integer astype of `values` on x86-64.
        let numpy: [(Element, &[i128]); 8] = [
            (
                Element::I8,
                &[-2, -1, -1, 0, 64, -64, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            ),
            (
                Element::I16,
                &[
                    -2, -1, 255, 256, -25536, 25536, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                ],
            ),
            (
                Element::I32,
                &[
                    -2,
                    -1,
                    255,
                    256,
                    40000,
                    -40000,
                    -2147483648,
                    -2147483648,
                    -2147483648,
                    -2147483648,
                    -2147483648,
                    -2147483648,
                    -2147483648,
                    -2147483648,
                    -2147483648,
                    -2147483648,
                ],
            ),
            (
                Element::I64,
                &[
                    -2,
                    -1,
                    255,
                    256,
                    40000,
                    -40000,
                    3000000000,
                    -3000000000,
                    -9223372036854775808,
                    -9223372036854775808,
                    -9223372036854775808,
                    -9223372036854775808,
                    -9223372036854775808,
                    -9223372036854775808,
                    -9223372036854775808,
                    -9223372036854775808,
                ],
            ),
            (
                Element::U8,
                &[254, 255, 255, 0, 64, 192, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            ),
            (
                Element::U16,
                &[
                    65534, 65535, 255, 256, 40000, 25536, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                ],
            ),
            (
                Element::U32,
                &[
                    4294967294, 4294967295, 255, 256, 40000, 4294927296, 3000000000, 2147483648, 0,
                    0, 2147483648, 2147483648, 0, 2147483648, 0, 0,
                ],
            ),
            (
                Element::U64,
                &[
                    18446744073709551614,
                    18446744073709551615,
                    255,
                    256,
                    40000,
                    18446744073709511616,
                    3000000000,
                    18446744070709551616,
                    10000000000000000000,
                    18000000000000000000,
                    9223372036854775808,
                    9223372036854775808,
                    0,
                    9223372036854775808,
                    9223372036854775808,
                    0,
                ],
            ),
        ];
        let bytes = bytes_of(&values, f64::to_ne_bytes);
        for (element, expected) in numpy {
            let out = cast(&bytes, Element::F64, element);
            let got: Vec<i128> = with_element!(element, T => out
                .chunks_exact(size_of::<T>())
                .map(|c| match T::from_ne_bytes(c.try_into().unwrap()).number() {
                    Number::Int(i) => i,
                    Number::Float(_) => unreachable!(),
                })
                .collect());
            assert_eq!(got, expected, "{element:?}");
        }
        // Integers wrap; to floats round to nearest.
        let wide = bytes_of(&[70000i32, -1, 16_777_217], i32::to_ne_bytes);
        assert_eq!(
            cast(&wide, Element::I32, Element::I16),
            bytes_of(&[4464i16, -1, 1], i16::to_ne_bytes)
        );
        assert_eq!(
            cast(&wide, Element::I32, Element::F32),
            bytes_of(&[70000f32, -1.0, 16_777_216.0], f32::to_ne_bytes)
        );
    }

    fn filter(codec: Result<Codec, PluginCreateError>) -> Arc<dyn ArrayToArrayCodecTraits> {
        match codec {
            Ok(Codec::ArrayToArray(codec)) => codec,
            other => panic!("{other:?}"),
        }
    }

    /// numcodecs' FixedScaleOffset, Quantize and PackBits streams (made by numcodecs 0.16):
    /// encoded bit for bit, decoded as numcodecs decodes them.
    #[test]
    fn value_filters_as_numcodecs_stores_them() {
        let config = |json: &str| -> Configuration { serde_json::from_str(json).unwrap() };
        let options = CodecOptions::default();
        let run = |codec: &Arc<dyn ArrayToArrayCodecTraits>,
                   data_type: DataType,
                   decoded: Vec<u8>,
                   encode: bool| {
            let n = NonZeroU64::new(decoded.len() as u64).unwrap();
            let fill = FillValue::new(vec![0; data_type.fixed_size().unwrap()]);
            let bytes = ArrayBytes::new_flen(Cow::Owned(decoded));
            let out = if encode {
                codec.encode(bytes, &[n], &data_type, &fill, &options)
            } else {
                codec.decode(bytes, &[n], &data_type, &fill, &options)
            };
            out.unwrap().into_fixed().unwrap().into_owned()
        };
        let f32s = bytes_of(
            &[
                1_069_547_520u32,
                1_075_838_976,
                3_204_448_256,
                1_056_964_607,
                1_078_530_000,
                1_232_348_160,
                3_221_225_472,
            ],
            u32::to_ne_bytes,
        );
        let fso = filter(FixedScaleOffsetCodec::from_configuration(&config(
            r#"{"id":"fixedscaleoffset","offset":1.25,"scale":10,"dtype":"<f4","astype":"<i4"}"#,
        )));
        let stored = run(&fso, Element::F32.data_type(), f32s.clone(), true);
        let i32s = bytes_of(&[2i32, 12, -18, -8, 19, 9_999_988, -32], i32::to_ne_bytes);
        assert_eq!(stored, i32s);
        // Decoded in float64, then float32.
        let back = bytes_of(
            &[
                1_069_128_090u32,
                1_075_629_261,
                3_205_287_117,
                1_055_286_886,
                1_078_565_274,
                1_232_348_161,
                3_220_806_042,
            ],
            u32::to_ne_bytes,
        );
        let decoded = fso.decode(
            ArrayBytes::new_flen(Cow::Owned(i32s)),
            &[NonZeroU64::new(7).unwrap()],
            &Element::F32.data_type(),
            &FillValue::new(vec![0; 4]),
            &options,
        );
        assert_eq!(decoded.unwrap().into_fixed().unwrap().into_owned(), back);
        // To uint8: out of range wraps as numpy's does.
        let fso = filter(FixedScaleOffsetCodec::from_configuration(&config(
            r#"{"offset":1.25,"scale":10,"dtype":"<f4","astype":"|u1"}"#,
        )));
        assert_eq!(
            run(&fso, Element::F32.data_type(), f32s, true),
            vec![2, 12, 238, 248, 19, 116, 224]
        );
        // Quantize: digits 2 is 2^7; -0.001 becomes -0.0.
        let quantize = filter(QuantizeCodec::from_configuration(
            &config(r#"{"digits":2,"dtype":"<f8"}"#),
            true,
        ));
        let f64s = bytes_of(
            &[
                4_599_976_659_396_224_614u64,
                4_599_676_419_421_066_581,
                4_604_180_019_048_437_077,
                13_785_626_545_772_145_148,
                4_638_387_860_618_067_575,
            ],
            u64::to_ne_bytes,
        );
        let quantized = bytes_of(
            &[
                4_600_004_806_893_895_680u64,
                4_599_723_331_917_185_024,
                4_604_156_562_800_377_856,
                9_223_372_036_854_775_808,
                4_638_387_658_307_928_064,
            ],
            u64::to_ne_bytes,
        );
        assert_eq!(
            run(&quantize, Element::F64.data_type(), f64s, true),
            quantized
        );
        for (digits, scale) in [(0, 1.0), (1, 16.0), (2, 128.0), (3, 1024.0), (-1, 0.125)] {
            assert_eq!(QuantizeCodec::scale(digits), scale, "{digits}");
        }
        // PackBits: the padding count, then the bits from the most significant.
        let packbits = filter(PackBitsCodec::from_configuration(&config("{}")));
        let bits = vec![1, 0, 1, 1, 0, 0, 0, 0, 1, 1];
        let bool_type = zarrs::array::data_type::bool();
        let packed = run(&packbits, bool_type.clone(), bits.clone(), true);
        assert_eq!(packed, vec![6, 176, 192]);
        let shape = [NonZeroU64::new(10).unwrap()];
        let fill = FillValue::new(vec![0]);
        let unpacked = packbits.decode(
            ArrayBytes::new_flen(Cow::Owned(packed.clone())),
            &shape,
            &bool_type,
            &fill,
            &options,
        );
        assert_eq!(unpacked.unwrap().into_fixed().unwrap().into_owned(), bits);
        // A count that disagrees with the chunk's, or padding of 8 or more: errors.
        for bad in [vec![5, 176, 192], vec![9, 176, 192], vec![6, 176], vec![]] {
            let err = packbits
                .decode(
                    ArrayBytes::new_flen(Cow::Owned(bad.clone())),
                    &shape,
                    &bool_type,
                    &fill,
                    &options,
                )
                .unwrap_err()
                .to_string();
            assert!(err.contains("numcodecs.packbits"), "{bad:?}: {err}");
        }
        // Configurations refused, naming the codec and what.
        for (made, why) in [
            (
                FixedScaleOffsetCodec::from_configuration(&config(
                    r#"{"offset":1,"scale":2,"dtype":"<f2"}"#,
                )),
                "dtype",
            ),
            (
                FixedScaleOffsetCodec::from_configuration(&config(
                    r#"{"offset":"1","scale":2,"dtype":"<f8"}"#,
                )),
                "offset",
            ),
            (
                QuantizeCodec::from_configuration(
                    &config(r#"{"digits":2,"dtype":"<f8","astype":"<f4"}"#),
                    true,
                ),
                "astype",
            ),
            (
                QuantizeCodec::from_configuration(
                    &config(r#"{"digits":2.5,"dtype":"<f8"}"#),
                    false,
                ),
                "digits",
            ),
            (
                AsTypeCodec::from_configuration(&config(
                    r#"{"encode_dtype":"<f2","decode_dtype":"<f8"}"#,
                )),
                "encode_dtype",
            ),
            (
                PackBitsCodec::from_configuration(&config(r#"{"bits":1}"#)),
                "bits",
            ),
        ] {
            let message = made.expect_err(why).to_string();
            assert!(
                message.contains("numcodecs.") && message.contains(why),
                "{message}"
            );
        }
        assert!(QuantizeCodec::from_configuration(
            &config(r#"{"digits":2,"dtype":"<f8","astype":"<f4"}"#),
            false
        )
        .is_ok());
    }

    /// Integer streams made by numcodecs 0.16 (numpy 2.4): fixedscaleoffset of integers, each
    /// step typed by whether scale and offset are Python ints, and delta storing another type.
    #[test]
    fn integer_filters_as_numcodecs_stores_them() {
        let ints = |values: &[i128], element: Element| {
            from_numbers(values.iter().map(|&v| Number::Int(v)), element)
        };
        let run = |json: &str,
                   make: Make,
                   (dtype, values): (Element, &[i128]),
                   (astype, stored): (Element, &[i128]),
                   back: &[i128]| {
            let codec = filter(make(&serde_json::from_str(json).unwrap(), false));
            let n = [NonZeroU64::new(values.len() as u64).unwrap()];
            let fill = FillValue::new(vec![0; dtype.size()]);
            let options = CodecOptions::default();
            let encoded = codec
                .encode(
                    ArrayBytes::new_flen(Cow::Owned(ints(values, dtype))),
                    &n,
                    &dtype.data_type(),
                    &fill,
                    &options,
                )
                .unwrap();
            assert_eq!(
                encoded.clone().into_fixed().unwrap().into_owned(),
                ints(stored, astype),
                "{json}"
            );
            let decoded = codec
                .decode(encoded, &n, &dtype.data_type(), &fill, &options)
                .unwrap();
            assert_eq!(
                decoded.into_fixed().unwrap().into_owned(),
                ints(back, dtype),
                "{json}"
            );
        };
        let fso: Make = |c, v3| {
            let _ = v3;
            FixedScaleOffsetCodec::from_configuration(c)
        };
        let delta: Make = |c, _| DeltaCodec::from_configuration(c);
        let x: &[i128] = &[100_000, -3, 7, 1 << 40, -(1 << 62)];
        run(
            r#"{"offset":5,"scale":3,"dtype":"<i8","astype":"<i2"}"#,
            fso,
            (Element::I64, x),
            (Element::I16, &[-27695, -24, 6, -15, -15]),
            &[-9226, -3, 7, 0, 0],
        );
        run(
            r#"{"offset":5.0,"scale":3,"dtype":"<i8","astype":"<i2"}"#,
            fso,
            (Element::I64, x),
            (Element::I16, &[-27695, -24, 6, 0, 0]),
            &[-9226, -3, 7, 5, 5],
        );
        run(
            r#"{"offset":5,"scale":3.0,"dtype":"<i8","astype":"<i4"}"#,
            fso,
            (Element::I64, x),
            (
                Element::I32,
                &[299_985, -24, 6, -2_147_483_648, -2_147_483_648],
            ),
            &[100_000, -3, 7, -715_827_877, -715_827_877],
        );
        run(
            r#"{"offset":1000,"scale":1,"dtype":"<i8","astype":"|u1"}"#,
            fso,
            (Element::I64, x),
            (Element::U8, &[184, 21, 31, 24, 24]),
            &[1184, 1021, 1031, 1024, 1024],
        );
        run(
            r#"{"dtype":"<i8","astype":"<i2"}"#,
            delta,
            (Element::I64, &[1000, -3, 7, 1 << 40]),
            (Element::I16, &[1000, -1003, 10, -7]),
            &[1000, -3, 7, 0],
        );
        run(
            r#"{"dtype":"<i2","astype":"<i8"}"#,
            delta,
            (Element::I16, &[30000, -30000, 5]),
            (Element::I64, &[30000, 5536, 30005]),
            &[30000, -30000, 5],
        );
        run(
            r#"{"dtype":"|u1","astype":"<i2"}"#,
            delta,
            (Element::U8, &[250, 3, 200]),
            (Element::I16, &[250, 9, 197]),
            &[250, 3, 200],
        );
        // A first element out of astype's range: an error naming the codec (numpy raises).
        let codec = filter(DeltaCodec::from_configuration(
            &serde_json::from_str(r#"{"dtype":"<i8","astype":"<i2"}"#).unwrap(),
        ));
        let err = codec
            .encode(
                ArrayBytes::new_flen(Cow::Owned(ints(&[100_000, 1], Element::I64))),
                &[NonZeroU64::new(2).unwrap()],
                &Element::I64.data_type(),
                &FillValue::new(vec![0; 8]),
                &CodecOptions::default(),
            )
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("numcodecs.delta") && err.contains("100000"),
            "{err}"
        );
        // A Python int out of the elements' range: refused (numpy raises).
        let err = FixedScaleOffsetCodec::from_configuration(
            &serde_json::from_str(r#"{"offset":1000,"scale":1,"dtype":"|u1"}"#).unwrap(),
        )
        .expect_err("made")
        .to_string();
        assert!(err.contains("offset 1000"), "{err}");
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
