//! The `scale_offset` codec of the Zarr extensions (zarr-python 3.4's `ScaleOffset`), which
//! zarrs 0.23 lacks: an array-to-array codec of integer and float elements, encoded as
//! `(x - offset) * scale` and decoded as `x / scale + offset`, in the elements' own type as
//! zarr-python computes it: floats in their own precision (float32 elements in float32, the
//! configuration's numbers rounded to float32 first; float16 each step in float32 rounded to
//! float16, as numpy's half arithmetic and `half` compute it); integers exactly, a result out
//! of the type's range or a division that leaves a remainder an error, never wrapped or
//! truncated. `offset` and `scale` are JSON scalars of the array's data type (numbers, or
//! strings as zarr-python reads them: `"NaN"`, `"Infinity"`, `"0x"` and the bits of a float, a
//! decimal integer or float); a `scale` of zero is refused.

use std::borrow::Cow;
use std::num::NonZeroU64;
use std::sync::Arc;

use zarrs::array::codec::api::{
    ArrayBytes, ArrayCodecTraits, ArrayToArrayCodecTraits, Codec, CodecError, CodecMetadataOptions,
    CodecOptions, CodecTraits, PartialDecoderCapability, PartialEncoderCapability,
    RecommendedConcurrency,
};
use zarrs::array::{DataType, FillValue};
use zarrs::metadata::Configuration;
use zarrs::plugin::{PluginCreateError, ZarrVersion};

use half::f16;

use crate::numcodecs::{
    array_codec_traits, kept_configuration, register_v3, whole_elements, with_element, Element,
    Number, Scalar,
};

/// The `scale_offset` codec. Its numbers are read in the data type zarrs gives with each call
/// (array-to-array codecs learn the array's data type no other way).
#[derive(Debug, Clone)]
pub struct ScaleOffsetCodec {
    offset: serde_json::Value,
    scale: serde_json::Value,
    /// The configuration as given.
    configuration: serde_json::Map<String, serde_json::Value>,
}

zarrs::plugin::impl_extension_aliases!(ScaleOffsetCodec, v3: "scale_offset");

/// `offset` and `scale` in the elements' arithmetic.
#[derive(Debug, Clone, Copy)]
enum Params {
    Int {
        element: Element,
        offset: i128,
        scale: i128,
    },
    F16 {
        offset: f16,
        scale: f16,
    },
    F32 {
        offset: f32,
        scale: f32,
    },
    F64 {
        offset: f64,
        scale: f64,
    },
}

impl Params {
    /// Bytes per element.
    fn size(self) -> usize {
        match self {
            Self::Int { element, .. } => element.size(),
            Self::F16 { .. } => 2,
            Self::F32 { .. } => 4,
            Self::F64 { .. } => 8,
        }
    }
}

/// Register the codec with zarrs (once per process).
pub fn register() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| register_v3(ScaleOffsetCodec::NAME, ScaleOffsetCodec::from_configuration));
}

impl ScaleOffsetCodec {
    /// The codec's Zarr v3 name.
    pub const NAME: &'static str = "scale_offset";

    /// The codec of a configuration (`offset`, default 0, and `scale`, default 1).
    ///
    /// # Errors
    /// [`PluginCreateError`] naming the codec and the member for another member, or an
    /// `offset` or `scale` that is neither a number nor a string.
    pub fn from_configuration(configuration: &Configuration) -> Result<Codec, PluginCreateError> {
        let configuration = kept_configuration(Self::NAME, configuration, &["offset", "scale"])?;
        let member = |key: &str, default: i32| match configuration.get(key) {
            None => Ok(serde_json::Value::from(default)),
            Some(v @ (serde_json::Value::Number(_) | serde_json::Value::String(_))) => {
                Ok(v.clone())
            }
            Some(other) => Err(PluginCreateError::Other(format!(
                "{}: {key} must be a number or a string, not {other}",
                Self::NAME
            ))),
        };
        Ok(Codec::ArrayToArray(Arc::new(Self {
            offset: member("offset", 0)?,
            scale: member("scale", 1)?,
            configuration,
        })))
    }

    /// The codec's numbers in the arithmetic of `data_type`.
    fn params(&self, data_type: &DataType) -> Result<Params, CodecError> {
        let name = data_type.name_v3().unwrap_or_default();
        let refuse = |key: &str, value: &serde_json::Value| {
            CodecError::Other(format!(
                "{}: {key} value {value} is not representable in dtype {name}",
                Self::NAME,
            ))
        };
        let floats = || {
            let read = |key, value| float_scalar(value).ok_or_else(|| refuse(key, value));
            Ok::<_, CodecError>((read("offset", &self.offset)?, read("scale", &self.scale)?))
        };
        #[allow(clippy::cast_possible_truncation)] // numpy's float32(x): the nearest
        let params = match (name.as_ref(), Element::from_v3_name(&name)) {
            ("float16", _) => {
                let (offset, scale) = floats()?;
                Params::F16 {
                    offset: f16::from_f64(offset),
                    scale: f16::from_f64(scale),
                }
            }
            ("float32", _) => {
                let (offset, scale) = floats()?;
                Params::F32 {
                    offset: offset as f32,
                    scale: scale as f32,
                }
            }
            ("float64", _) => {
                let (offset, scale) = floats()?;
                Params::F64 { offset, scale }
            }
            (_, Some(element)) => {
                let read =
                    |key, value| int_scalar(value, element).ok_or_else(|| refuse(key, value));
                Params::Int {
                    element,
                    offset: read("offset", &self.offset)?,
                    scale: read("scale", &self.scale)?,
                }
            }
            _ => {
                return Err(CodecError::Other(format!(
                    "{}: elements of data type {name} are not supported (integer and float \
                     elements are)",
                    Self::NAME,
                )))
            }
        };
        let zero = match params {
            Params::Int { scale, .. } => scale == 0,
            Params::F16 { scale, .. } => scale == f16::ZERO,
            Params::F32 { scale, .. } => scale == 0.0,
            Params::F64 { scale, .. } => scale == 0.0,
        };
        if zero {
            return Err(CodecError::Other(format!(
                "{}: scale must be non-zero",
                Self::NAME
            )));
        }
        Ok(params)
    }

    /// `(x - offset) * scale` of each native-endian element.
    fn encode_elements(params: Params, bytes: &[u8]) -> Result<Vec<u8>, CodecError> {
        match params {
            Params::F16 { offset, scale } => Ok(map_floats(bytes, |x: f16| (x - offset) * scale)),
            Params::F32 { offset, scale } => Ok(map_floats(bytes, |x: f32| (x - offset) * scale)),
            Params::F64 { offset, scale } => Ok(map_floats(bytes, |x: f64| (x - offset) * scale)),
            Params::Int {
                element,
                offset,
                scale,
            } => map_integers(element, bytes, |x| {
                x.checked_sub(offset)
                    .and_then(|d| d.checked_mul(scale))
                    .ok_or(Overflow::Range)
            }),
        }
    }

    /// `x / scale + offset` of each native-endian element.
    fn decode_elements(params: Params, bytes: &[u8]) -> Result<Vec<u8>, CodecError> {
        match params {
            Params::F16 { offset, scale } => Ok(map_floats(bytes, |x: f16| x / scale + offset)),
            Params::F32 { offset, scale } => Ok(map_floats(bytes, |x: f32| x / scale + offset)),
            Params::F64 { offset, scale } => Ok(map_floats(bytes, |x: f64| x / scale + offset)),
            Params::Int {
                element,
                offset,
                scale,
            } => map_integers(element, bytes, |x| {
                if x % scale != 0 {
                    return Err(Overflow::Remainder(scale));
                }
                (x / scale).checked_add(offset).ok_or(Overflow::Range)
            }),
        }
    }

    /// `elements` (whole elements of `data_type`) encoded or decoded by `each`.
    fn apply<'a>(
        &self,
        bytes: ArrayBytes<'a>,
        data_type: &DataType,
        each: fn(Params, &[u8]) -> Result<Vec<u8>, CodecError>,
    ) -> Result<ArrayBytes<'a>, CodecError> {
        let params = self.params(data_type)?;
        let elements = whole_elements(Self::NAME, bytes, params.size())?;
        Ok(ArrayBytes::new_flen(Cow::Owned(each(params, &elements)?)))
    }
}

/// Why an integer result cannot be stored.
#[derive(Debug, Clone, Copy)]
enum Overflow {
    /// Out of the element type's range.
    Range,
    /// Decoding divided by this scale with a remainder.
    Remainder(i128),
}

/// A JSON scalar of a float type as zarr-python reads it (`from_json_scalar`): a number,
/// `"NaN"`, `"Infinity"`, `"-Infinity"`, `"0x"` and 4, 8 or 16 hex digits (the big-endian bits
/// of a float16, float32 or float64), or a decimal string.
pub(crate) fn float_scalar(value: &serde_json::Value) -> Option<f64> {
    match value {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => float_string(s),
        _ => None,
    }
}

/// A JSON scalar of the integer type `element` as zarr-python reads it (`from_json_scalar`):
/// an integer, a float with an integer value or a decimal integer string, in the type's range.
pub(crate) fn int_scalar(value: &serde_json::Value, element: Element) -> Option<i128> {
    let int = match value {
        serde_json::Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), ..) => i128::from(i),
            (_, Some(u), _) => i128::from(u),
            #[allow(clippy::cast_possible_truncation)] // an integer value in i128's range
            (.., Some(f)) if f.fract() == 0.0 && f.abs() < 2f64.powi(127) => f as i128,
            _ => return None,
        },
        serde_json::Value::String(s) => int_string(s)?,
        _ => return None,
    };
    let (min, max) = element.integer_range()?;
    (min..=max).contains(&int).then_some(int)
}

/// A float string as zarr-python reads one for Zarr v3.
fn float_string(s: &str) -> Option<f64> {
    match s {
        "NaN" => return Some(f64::NAN),
        "Infinity" => return Some(f64::INFINITY),
        "-Infinity" => return Some(f64::NEG_INFINITY),
        _ => {}
    }
    if let Some(hex) = s.strip_prefix("0x") {
        let bits = u64::from_str_radix(hex, 16).ok()?;
        #[allow(clippy::cast_possible_truncation)] // at most 4 / 8 hex digits
        return match hex.len() {
            4 => Some(f64::from(f16::from_bits(bits as u16))),
            8 => Some(f64::from(f32::from_bits(bits as u32))),
            16 => Some(f64::from_bits(bits)),
            _ => None,
        };
    }
    // Python's float() of a string: surrounding whitespace allowed.
    s.trim().parse().ok()
}

/// A decimal integer string as Python's `int()` reads one (surrounding whitespace, a sign,
/// single underscores between digits).
fn int_string(s: &str) -> Option<i128> {
    let s = s.trim();
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    let well_formed = !digits.is_empty()
        && !digits.starts_with('_')
        && !digits.ends_with('_')
        && !digits.contains("__")
        && digits.chars().all(|c| c.is_ascii_digit() || c == '_');
    well_formed.then(|| s.replace('_', "").parse().ok())?
}

/// Native-endian floats of type `F`, each mapped in that type.
fn map_floats<F: Float>(bytes: &[u8], map: impl Fn(F) -> F) -> Vec<u8> {
    bytes
        .chunks_exact(F::SIZE)
        .flat_map(|chunk| map(F::from_slice(chunk)).bytes())
        .collect()
}

/// The float element types' native-endian bytes.
trait Float: Copy {
    const SIZE: usize;
    type Bytes: IntoIterator<Item = u8>;
    fn from_slice(bytes: &[u8]) -> Self;
    fn bytes(self) -> Self::Bytes;
}

macro_rules! float {
    ($t:ty) => {
        impl Float for $t {
            const SIZE: usize = size_of::<$t>();
            type Bytes = [u8; size_of::<$t>()];
            fn from_slice(bytes: &[u8]) -> Self {
                let mut raw = [0u8; size_of::<$t>()];
                raw.copy_from_slice(bytes);
                <$t>::from_ne_bytes(raw)
            }
            fn bytes(self) -> Self::Bytes {
                self.to_ne_bytes()
            }
        }
    };
}

float!(f16);
float!(f32);
float!(f64);

/// Native-endian integers of `element`, each mapped exactly (in `i128`) and checked to be in
/// the type's range; the first that is not, an error worded as zarr-python words it.
fn map_integers(
    element: Element,
    bytes: &[u8],
    map: impl Fn(i128) -> Result<i128, Overflow>,
) -> Result<Vec<u8>, CodecError> {
    let (min, max) = element.integer_range().unwrap_or((0, 0));
    let dtype = element.v3_name();
    let checked = |x: Number| {
        let mapped = match x {
            Number::Int(x) => map(x),
            Number::Float(_) => Err(Overflow::Range),
        };
        match mapped {
            Ok(y) if (min..=max).contains(&y) => Ok(Number::Int(y)),
            Ok(_) | Err(Overflow::Range) => Err(CodecError::Other(format!(
                "scale_offset produced a value outside the range of dtype {dtype} [{min}, {max}]"
            ))),
            Err(Overflow::Remainder(scale)) => Err(CodecError::Other(format!(
                "scale_offset decode produced a non-zero remainder when dividing by \
                 scale={scale}; result is not exactly representable in dtype {dtype}"
            ))),
        }
    };
    with_element!(element, T => {
        const N: usize = size_of::<T>();
        let mut out = Vec::with_capacity(bytes.len());
        for chunk in bytes.chunks_exact(N) {
            let mut raw = [0u8; N];
            raw.copy_from_slice(chunk);
            let y = checked(T::from_ne_bytes(raw).number())?;
            out.extend_from_slice(&T::from_number(y).to_ne_bytes());
        }
        Ok(out)
    })
}

array_codec_traits!(ScaleOffsetCodec);

impl ArrayToArrayCodecTraits for ScaleOffsetCodec {
    fn into_dyn(self: Arc<Self>) -> Arc<dyn ArrayToArrayCodecTraits> {
        self as Arc<dyn ArrayToArrayCodecTraits>
    }

    fn encoded_data_type(&self, decoded_data_type: &DataType) -> Result<DataType, CodecError> {
        self.params(decoded_data_type)?;
        Ok(decoded_data_type.clone())
    }

    /// The fill value encoded, as zarr-python's `resolve_metadata` does (what the codecs after
    /// this one, sharding's missing inner chunks, hold).
    fn encoded_fill_value(
        &self,
        decoded_data_type: &DataType,
        decoded_fill_value: &FillValue,
    ) -> Result<FillValue, CodecError> {
        let params = self.params(decoded_data_type)?;
        let bytes = decoded_fill_value.as_ne_bytes();
        Ok(FillValue::new(Self::encode_elements(params, bytes)?))
    }

    fn encode<'a>(
        &self,
        bytes: ArrayBytes<'a>,
        _shape: &[NonZeroU64],
        data_type: &DataType,
        _fill_value: &FillValue,
        _options: &CodecOptions,
    ) -> Result<ArrayBytes<'a>, CodecError> {
        self.apply(bytes, data_type, Self::encode_elements)
    }

    fn decode<'a>(
        &self,
        bytes: ArrayBytes<'a>,
        _shape: &[NonZeroU64],
        data_type: &DataType,
        _fill_value: &FillValue,
        _options: &CodecOptions,
    ) -> Result<ArrayBytes<'a>, CodecError> {
        self.apply(bytes, data_type, Self::decode_elements)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codec(configuration: &str) -> Arc<dyn ArrayToArrayCodecTraits> {
        let configuration = serde_json::from_str(configuration).unwrap();
        match ScaleOffsetCodec::from_configuration(&configuration).unwrap() {
            Codec::ArrayToArray(codec) => codec,
            _ => panic!("scale_offset is an array-to-array codec"),
        }
    }

    fn elements<T: Scalar + Copy>(values: &[T], to: impl Fn(T) -> Vec<u8>) -> Vec<u8> {
        values.iter().flat_map(|&v| to(v)).collect()
    }

    /// Encodes `values` of `element` (as [`Number`]s) with `configuration`; the stored
    /// elements, or the codec's error.
    fn run(
        configuration: &str,
        element: Element,
        values: &[u8],
        encode: bool,
    ) -> Result<Vec<u8>, String> {
        run_as(configuration, &element.data_type(), values, encode)
    }

    /// [`run`] with elements of `data_type`.
    fn run_as(
        configuration: &str,
        data_type: &DataType,
        values: &[u8],
        encode: bool,
    ) -> Result<Vec<u8>, String> {
        let codec = codec(configuration);
        let size = data_type.fixed_size().unwrap();
        let shape = [NonZeroU64::new((values.len() / size) as u64).unwrap()];
        let fill = FillValue::new(vec![0; size]);
        let bytes = ArrayBytes::new_flen(Cow::Owned(values.to_vec()));
        let options = CodecOptions::default();
        let out = if encode {
            codec.encode(bytes, &shape, data_type, &fill, &options)
        } else {
            codec.decode(bytes, &shape, data_type, &fill, &options)
        };
        out.map(|b| b.into_fixed().unwrap().into_owned())
            .map_err(|e| e.to_string())
    }

    fn ints(values: &[i128], element: Element) -> Vec<u8> {
        crate::numcodecs::from_numbers(values.iter().map(|&v| Number::Int(v)), element)
    }

    /// Integer elements encode and decode exactly as zarr-python 3.4.2 computes them (values
    /// from its `_encode` / `_decode`), in the range of every integer type, negative scales
    /// and offsets, configuration strings and integral floats included.
    #[test]
    fn integers_as_zarr_computes_them() {
        let cases: [(&str, Element, &[i128], &[i128]); 6] = [
            (
                r#"{"offset":1,"scale":2}"#,
                Element::I8,
                &[-10, 0, 1, 5, 64],
                &[-22, -2, 0, 8, 126],
            ),
            (
                r#"{"offset":-7,"scale":3}"#,
                Element::I16,
                &[-7, 0, 100, -10000],
                &[0, 21, 321, -29979],
            ),
            (
                r#"{"offset":9223372036854775808}"#,
                Element::U64,
                &[1 << 63, (1 << 64) - 1],
                &[0, (1 << 63) - 1],
            ),
            (
                r#"{"scale":3}"#,
                Element::U64,
                &[1 << 62, 6_148_914_691_236_517_205],
                &[13_835_058_055_282_163_712, (1 << 64) - 1],
            ),
            (
                r#"{"offset":" +1_0 ","scale":-2.0}"#,
                Element::I32,
                &[10, 11, -1_000_000],
                &[0, -2, 2_000_020],
            ),
            (
                r#"{"offset":"-5","scale":2.0}"#,
                Element::I64,
                &[-(1 << 62), 0],
                &[-9_223_372_036_854_775_798, 10],
            ),
        ];
        for (configuration, element, values, stored) in cases {
            let encoded = run(configuration, element, &ints(values, element), true).unwrap();
            assert_eq!(encoded, ints(stored, element), "{configuration}");
            let decoded = run(configuration, element, &encoded, false).unwrap();
            assert_eq!(decoded, ints(values, element), "{configuration}");
        }
    }

    /// Results out of the type's range and divisions with a remainder are errors worded as
    /// zarr-python's (never wrapped or truncated; zarr-python 3.4.2 wraps int64 results, which
    /// its own range check cannot see: zuring refuses those too).
    #[test]
    fn integers_out_of_range_or_inexact_are_errors() {
        let range = |dtype: &str, min: i128, max: i128| {
            format!(
                "scale_offset produced a value outside the range of dtype {dtype} [{min}, {max}]"
            )
        };
        let cases: [(&str, Element, &[i128], bool, String); 6] = [
            (
                r#"{"offset":1,"scale":2}"#,
                Element::I8,
                &[65],
                true,
                range("int8", -128, 127),
            ),
            (
                r#"{"offset":10}"#,
                Element::U8,
                &[10, 5],
                true,
                range("uint8", 0, 255),
            ),
            (
                r#"{"scale":2}"#,
                Element::I64,
                &[1 << 62],
                true,
                range("int64", i128::from(i64::MIN), i128::from(i64::MAX)),
            ),
            (
                r#"{"offset":100}"#,
                Element::I8,
                &[0, 27, 28],
                false,
                range("int8", -128, 127),
            ),
            (
                r#"{"offset":2147483648}"#,
                Element::U32,
                &[0, 100, (1 << 31) - 1, 1 << 31],
                false,
                range("uint32", 0, (1 << 32) - 1),
            ),
            (
                r#"{"scale":-2}"#,
                Element::I16,
                &[-2, 6, 5],
                false,
                "scale_offset decode produced a non-zero remainder when dividing by scale=-2; \
                 result is not exactly representable in dtype int16"
                    .to_string(),
            ),
        ];
        for (configuration, element, values, encode, message) in cases {
            let error = run(configuration, element, &ints(values, element), encode).unwrap_err();
            assert!(error.contains(&message), "{configuration}: {error}");
        }
        // The values before the bad one are fine: the same chunk without it decodes.
        let ok = run(
            r#"{"offset":100}"#,
            Element::I8,
            &ints(&[0, 27], Element::I8),
            false,
        );
        assert_eq!(ok.unwrap(), ints(&[100, 127], Element::I8));
    }

    /// Floats in their own precision, bit for bit zarr-python 3.4.2's results (float32
    /// arithmetic with the numbers rounded to float32; hex, special and decimal strings).
    #[test]
    fn floats_as_zarr_computes_them() {
        let f32s = |v: &[f32]| elements(v, |x| x.to_ne_bytes().to_vec());
        let f64s = |v: &[f64]| elements(v, |x| x.to_ne_bytes().to_vec());
        let f32_bits = |v: &[u32]| f32s(&v.iter().map(|&b| f32::from_bits(b)).collect::<Vec<_>>());
        let f64_bits = |v: &[u64]| f64s(&v.iter().map(|&b| f64::from_bits(b)).collect::<Vec<_>>());
        let cases = [
            (
                r#"{"offset":0.1,"scale":3.3}"#,
                Element::F32,
                f32s(&[0.0, 1.5, -2.25, 1e30]),
                f32_bits(&[0xbea8_f5c3, 0x4093_d70a, 0xc0f8_28f5, 0x7226_9b80]),
                f32_bits(&[0xb200_0000, 0x3fc0_0000, 0xc010_0000, 0x7149_f2ca]),
            ),
            (
                r#"{"offset":10.0,"scale":0.1}"#,
                Element::F64,
                f64s(&[10.0, 11.0, -3.5]),
                f64_bits(&[0, 0x3fb9_9999_9999_999a, 0xbff5_9999_9999_999a]),
                f64s(&[10.0, 11.0, -3.5]),
            ),
            (
                r#"{"offset":"0x3f800000","scale":"0x4000"}"#,
                Element::F32,
                f32s(&[3.0]),
                f32s(&[4.0]),
                f32s(&[3.0]),
            ),
            (
                r#"{"offset":"1.5","scale":" 2 "}"#,
                Element::F32,
                f32s(&[4.0]),
                f32s(&[5.0]),
                f32s(&[4.0]),
            ),
            (
                r#"{"offset":0,"scale":"Infinity"}"#,
                Element::F64,
                f64s(&[1.0, -2.0]),
                f64s(&[f64::INFINITY, f64::NEG_INFINITY]),
                f64s(&[f64::NAN, f64::NAN]),
            ),
        ];
        let bits = |bytes: &[u8], element: Element| -> Vec<u64> {
            crate::numcodecs::numbers(bytes, element)
                .into_iter()
                .map(|n| match n {
                    // Every NaN alike: numpy's and Rust's NaN payloads may differ.
                    Number::Float(f) if f.is_nan() => u64::MAX,
                    Number::Float(f) => f.to_bits(),
                    Number::Int(_) => panic!("float elements"),
                })
                .collect()
        };
        for (configuration, element, values, stored, back) in cases {
            let encoded = run(configuration, element, &values, true).unwrap();
            assert_eq!(
                bits(&encoded, element),
                bits(&stored, element),
                "{configuration}"
            );
            let decoded = run(configuration, element, &encoded, false).unwrap();
            assert_eq!(
                bits(&decoded, element),
                bits(&back, element),
                "{configuration}"
            );
        }
    }

    /// float16 as numpy computes it (each step in float32, rounded to float16; overflow to
    /// infinity): zarr-python 3.4.2's results bit for bit.
    #[test]
    fn float16_as_zarr_computes_it() {
        let halves =
            |bits: &[u16]| -> Vec<u8> { bits.iter().flat_map(|b| b.to_ne_bytes()).collect() };
        let configuration = r#"{"offset":0.1,"scale":3.3}"#;
        let float16 = zarrs::array::data_type::float16();
        let values = halves(&[0x0, 0x3e00, 0xc080, 0x63d0, 0x7b53]);
        let encoded = run_as(configuration, &float16, &values, true).unwrap();
        assert_eq!(encoded, halves(&[0xb548, 0x449f, 0xc7c1, 0x6a72, 0x7c00]));
        let decoded = run_as(configuration, &float16, &encoded, false).unwrap();
        assert_eq!(decoded, halves(&[0x0, 0x3e00, 0xc080, 0x63d0, 0x7c00]));
    }

    /// Numbers that are not representable in the data type, a zero scale in any spelling,
    /// other members, and other data types are refused naming the codec and the member.
    #[test]
    fn configurations_refused() {
        let refused = |configuration: &str, element: Element, expected: &str| {
            let error = run(configuration, element, &vec![0; element.size()], true).unwrap_err();
            assert!(error.contains(expected), "{configuration}: {error}");
        };
        refused(
            r#"{"offset":1.5}"#,
            Element::I32,
            "offset value 1.5 is not representable in dtype int32",
        );
        refused(
            r#"{"scale":0.5}"#,
            Element::I32,
            "scale value 0.5 is not representable",
        );
        refused(
            r#"{"offset":"NaN"}"#,
            Element::I16,
            r#"offset value "NaN" is not representable"#,
        );
        refused(
            r#"{"offset":300}"#,
            Element::I8,
            "offset value 300 is not representable in dtype int8",
        );
        refused(r#"{"offset":"1__0"}"#, Element::I8, "offset value");
        refused(r#"{"offset":"0x3f80"}"#, Element::I32, "offset value");
        for (scale, element) in [
            ("0", Element::I32),
            (r#""0""#, Element::I32),
            ("0.0", Element::F64),
            (r#""0.0""#, Element::F64),
            (r#""0x0000000000000000""#, Element::F64),
            ("1e-50", Element::F32),
        ] {
            refused(
                &format!(r#"{{"scale":{scale}}}"#),
                element,
                "scale_offset: scale must be non-zero",
            );
        }
        let member = |configuration: &str| {
            let configuration = serde_json::from_str(configuration).unwrap();
            ScaleOffsetCodec::from_configuration(&configuration)
                .err()
                .unwrap()
                .to_string()
        };
        assert!(member(r#"{"offset":1,"factor":2}"#)
            .contains(r#"unknown configuration member "factor""#));
        assert!(member(r#"{"scale":[2]}"#).contains("scale must be a number or a string"));
        let codec = codec("{}");
        for data_type in [
            zarrs::array::data_type::complex64(),
            zarrs::array::data_type::bool(),
        ] {
            let error = codec.encoded_data_type(&data_type).unwrap_err().to_string();
            assert!(error.contains("not supported"), "{error}");
        }
        assert!(codec.encoded_data_type(&Element::U16.data_type()).is_ok());
    }

    /// The fill value is encoded as zarr-python's `resolve_metadata` encodes it, and one the
    /// codec cannot encode is an error.
    #[test]
    fn fill_value_encoded() {
        let codec = codec(r#"{"offset":5,"scale":2}"#);
        let fill = FillValue::from(10.0f64);
        let encoded = codec
            .encoded_fill_value(&Element::F64.data_type(), &fill)
            .unwrap();
        assert_eq!(encoded.as_ne_bytes(), 10.0f64.to_ne_bytes());
        let encoded = codec
            .encoded_fill_value(&Element::U8.data_type(), &FillValue::from(7u8))
            .unwrap();
        assert_eq!(encoded.as_ne_bytes(), [4]);
        assert!(codec
            .encoded_fill_value(&Element::U8.data_type(), &FillValue::from(4u8))
            .is_err());
    }
}
