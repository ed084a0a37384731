//! The `cast_value` codec of the Zarr extensions (zarr-python 3.4's `CastValue`, which computes
//! it with the `cast-value-rs` package), which zarrs 0.23 lacks: an array-to-array codec
//! storing integer and float elements (int8 to uint64, float16/32/64) as another such type, the
//! way packed climate data store floats as int16 (after `scale_offset`).
//!
//! A value is converted exactly when the target type holds it; otherwise it is rounded to the
//! target's precision by the configured `rounding` (`nearest-even`, the default,
//! `nearest-away`, `towards-zero`, `towards-positive`, `towards-negative`: floats to integers,
//! and integers or floats to a float of fewer mantissa bits, subnormals included). A rounded
//! value out of the target's range is an error unless `out_of_range` is `clamp` (integers: the
//! type's least or greatest value; floats: an infinity of its sign) or `wrap` (integer targets:
//! modulo 2^bits). NaN and infinities become integers only through the `scalar_map`, whose
//! exact matches (`encode`: stored value of each array value; `decode`: the reverse) are looked
//! up first. Decoding converts back with the same rounding and range rules. Checked against
//! `cast-value-rs` 0.5.1's results (see the tests).

use std::borrow::Cow;
use std::num::NonZeroU64;
use std::sync::Arc;

use half::f16;
use zarrs::array::codec::api::{
    ArrayBytes, ArrayCodecTraits, ArrayToArrayCodecTraits, Codec, CodecError, CodecMetadataOptions,
    CodecOptions, CodecTraits, PartialDecoderCapability, PartialEncoderCapability,
    RecommendedConcurrency,
};
use zarrs::array::{data_type, DataType, FillValue};
use zarrs::metadata::Configuration;
use zarrs::plugin::{PluginCreateError, ZarrVersion};

use crate::numcodecs::{
    array_codec_traits, kept_configuration, numbers, register_v3, whole_elements, with_element,
    Element, Number,
};
use crate::scale_offset::{float_scalar, int_scalar};

/// An element type `cast_value` converts from and to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// An integer type.
    Int(Element),
    F16,
    F32,
    F64,
}

impl Kind {
    /// The type of a Zarr v3 data type name.
    fn from_name(name: &str) -> Option<Self> {
        match name {
            "float16" => Some(Self::F16),
            "float32" => Some(Self::F32),
            "float64" => Some(Self::F64),
            _ => Element::from_v3_name(name)
                .filter(|e| e.integer_range().is_some())
                .map(Self::Int),
        }
    }

    /// The type of a zarrs data type, or an error naming the codec's role for it.
    fn of(data_type: &DataType, role: &str) -> Result<Self, CodecError> {
        let name = data_type.name_v3().unwrap_or_default();
        Self::from_name(&name).ok_or_else(|| {
            CodecError::Other(format!(
                "{}: {role} data type {name} is not supported (integer and float16/32/64 \
                 elements are)",
                CastValueCodec::NAME,
            ))
        })
    }

    const fn size(self) -> usize {
        match self {
            Self::Int(element) => element.size(),
            Self::F16 => 2,
            Self::F32 => 4,
            Self::F64 => 8,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Int(element) => element.v3_name(),
            Self::F16 => "float16",
            Self::F32 => "float32",
            Self::F64 => "float64",
        }
    }

    fn data_type(self) -> DataType {
        match self {
            Self::Int(element) => element.data_type(),
            Self::F16 => data_type::float16(),
            Self::F32 => data_type::float32(),
            Self::F64 => data_type::float64(),
        }
    }

    /// A float type's precision (mantissa bits, the leading one included), least normal
    /// exponent and greatest finite value.
    fn float_format(self) -> Option<(i32, i32, f64)> {
        match self {
            Self::Int(_) => None,
            Self::F16 => Some((11, -14, 65504.0)),
            Self::F32 => Some((24, -126, f64::from(f32::MAX))),
            Self::F64 => Some((53, -1022, f64::MAX)),
        }
    }

    /// Native-endian elements of this type as numbers (floats widened exactly).
    fn read(self, bytes: &[u8]) -> Vec<Number> {
        match self {
            Self::Int(element) => numbers(bytes, element),
            Self::F16 => bytes
                .chunks_exact(2)
                .map(|b| Number::Float(f16::from_ne_bytes([b[0], b[1]]).to_f64()))
                .collect(),
            Self::F32 => numbers(bytes, Element::F32),
            Self::F64 => numbers(bytes, Element::F64),
        }
    }

    /// Append `value` (a value of this type, as [`CastValueCodec::convert`] gives it: exact
    /// here) as a native-endian element.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // exact: in the type
    fn write(self, value: Number, out: &mut Vec<u8>) {
        let float = |v: Number| match v {
            Number::Float(f) => f,
            #[allow(clippy::cast_precision_loss)]
            Number::Int(i) => i as f64,
        };
        match (self, value) {
            (Self::Int(element), v) => {
                let i = match v {
                    Number::Int(i) => i,
                    Number::Float(f) => f as i128, // (not given: integer targets get integers)
                };
                with_element!(element, T => {
                    out.extend_from_slice(&(i as T).to_ne_bytes());
                });
            }
            (Self::F16, v) => out.extend_from_slice(&f16::from_f64(float(v)).to_ne_bytes()),
            (Self::F32, v) => out.extend_from_slice(&(float(v) as f32).to_ne_bytes()),
            (Self::F64, v) => out.extend_from_slice(&float(v).to_ne_bytes()),
        }
    }

    /// Whether every value of this type is a float64 (all but int64 and uint64).
    fn in_f64(self) -> bool {
        !matches!(self, Self::Int(Element::I64 | Element::U64))
    }

    /// Native-endian elements of this type as float64s; None for int64 and uint64.
    // Exact: types of up to 32 bits (the macro's float arms, not taken, cast f64 to itself).
    #[allow(clippy::cast_precision_loss, clippy::unnecessary_cast)]
    fn read_f64(self, bytes: &[u8]) -> Option<Vec<f64>> {
        if !self.in_f64() {
            return None;
        }
        Some(match self {
            Self::Int(element) => with_element!(element, T => {
                const N: usize = size_of::<T>();
                bytes
                    .chunks_exact(N)
                    .map(|b| T::from_ne_bytes(b.try_into().unwrap_or([0; N])) as f64)
                    .collect()
            }),
            Self::F16 => bytes
                .chunks_exact(2)
                .map(|b| f16::from_ne_bytes([b[0], b[1]]).to_f64())
                .collect(),
            Self::F32 => bytes
                .chunks_exact(4)
                .map(|b| f64::from(f32::from_ne_bytes([b[0], b[1], b[2], b[3]])))
                .collect(),
            Self::F64 => bytes
                .chunks_exact(8)
                .map(|b| f64::from_ne_bytes(b.try_into().unwrap_or([0; 8])))
                .collect(),
        })
    }

    /// Append `values` (values of this type, exact) as native-endian elements.
    // Exact: in the type (the macro's float arms, not taken, cast f64 to itself).
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::unnecessary_cast
    )]
    fn write_f64(self, values: &[f64], out: &mut Vec<u8>) {
        match self {
            Self::Int(element) => with_element!(element, T => {
                for &v in values {
                    out.extend_from_slice(&(v as T).to_ne_bytes());
                }
            }),
            Self::F16 => {
                for &v in values {
                    out.extend_from_slice(&f16::from_f64(v).to_ne_bytes());
                }
            }
            Self::F32 => {
                for &v in values {
                    out.extend_from_slice(&(v as f32).to_ne_bytes());
                }
            }
            Self::F64 => {
                for &v in values {
                    out.extend_from_slice(&v.to_ne_bytes());
                }
            }
        }
    }

    /// A JSON scalar as a value of this type (zarr-python's `from_json_scalar`): integers in
    /// range; floats as numbers or strings (`"NaN"`, `"Infinity"`, hex bits, decimals),
    /// rounded to the type.
    #[allow(clippy::cast_possible_truncation)] // the nearest float32, as numpy's float32(x)
    fn scalar(self, value: &serde_json::Value) -> Option<Number> {
        match self {
            Self::Int(element) => int_scalar(value, element).map(Number::Int),
            Self::F16 => float_scalar(value).map(|f| Number::Float(f16::from_f64(f).to_f64())),
            Self::F32 => float_scalar(value).map(|f| Number::Float(f64::from(f as f32))),
            Self::F64 => float_scalar(value).map(Number::Float),
        }
    }
}

/// How an inexact value is rounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rounding {
    NearestEven,
    NearestAway,
    TowardsZero,
    TowardsPositive,
    TowardsNegative,
}

impl Rounding {
    const NAMES: [(&'static str, Self); 5] = [
        ("nearest-even", Self::NearestEven),
        ("nearest-away", Self::NearestAway),
        ("towards-zero", Self::TowardsZero),
        ("towards-positive", Self::TowardsPositive),
        ("towards-negative", Self::TowardsNegative),
    ];

    /// `x` rounded to an integer (exact in f64).
    fn integral(self, x: f64) -> f64 {
        match self {
            Self::NearestEven => x.round_ties_even(),
            Self::NearestAway => x.round(),
            Self::TowardsZero => x.trunc(),
            Self::TowardsPositive => x.ceil(),
            Self::TowardsNegative => x.floor(),
        }
    }

    /// Whether a magnitude truncated to `kept` units, `rest` of a unit of `2 * half` left
    /// over, rounds up to `kept + 1` (`negative`: the value's sign).
    fn up(self, negative: bool, kept: u128, rest: u128, half: u128) -> bool {
        match self {
            Self::NearestEven => rest > half || (rest == half && kept & 1 == 1),
            Self::NearestAway => rest >= half,
            Self::TowardsZero => false,
            Self::TowardsPositive => rest != 0 && !negative,
            Self::TowardsNegative => rest != 0 && negative,
        }
    }
}

/// What an out-of-range value becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OutOfRange {
    Clamp,
    Wrap,
}

/// The `cast_value` codec.
#[derive(Debug, Clone)]
pub struct CastValueCodec {
    /// The stored (encoded) element type.
    target: Kind,
    rounding: Rounding,
    out_of_range: Option<OutOfRange>,
    /// `scalar_map.encode` and `.decode` as given: pairs of JSON scalars, read in the array's
    /// types with each call.
    encode_map: Vec<(serde_json::Value, serde_json::Value)>,
    decode_map: Vec<(serde_json::Value, serde_json::Value)>,
    /// The configuration as given.
    configuration: serde_json::Map<String, serde_json::Value>,
}

zarrs::plugin::impl_extension_aliases!(CastValueCodec, v3: "cast_value");

/// Register the codec with zarrs (once per process).
pub fn register() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| register_v3(CastValueCodec::NAME, CastValueCodec::from_configuration));
}

impl CastValueCodec {
    /// The codec's Zarr v3 name.
    pub const NAME: &'static str = "cast_value";

    /// The codec of a configuration: `data_type` (required), `rounding`, `out_of_range`,
    /// `scalar_map` (`encode` / `decode`: lists of pairs).
    ///
    /// # Errors
    /// [`PluginCreateError`] naming the member that is missing, unknown or invalid; a target
    /// type other than an integer or float16/32/64 is "not supported".
    pub fn from_configuration(configuration: &Configuration) -> Result<Codec, PluginCreateError> {
        let configuration = kept_configuration(
            Self::NAME,
            configuration,
            &["data_type", "rounding", "out_of_range", "scalar_map"],
        )?;
        let invalid = |what: String| PluginCreateError::Other(format!("{}: {what}", Self::NAME));
        let name = match configuration.get("data_type") {
            Some(serde_json::Value::String(name)) => name.clone(),
            Some(serde_json::Value::Object(named)) if named.len() == 1 => named
                .get("name")
                .and_then(serde_json::Value::as_str)
                .ok_or_else(|| invalid(format!("data_type {named:?} has no name")))?
                .to_owned(),
            Some(other) => return Err(invalid(format!("data_type {other} is not a type name"))),
            None => return Err(invalid("the configuration has no data_type".into())),
        };
        let target = Kind::from_name(&name).ok_or_else(|| {
            invalid(format!(
                "target data type {name} is not supported (integer and float16/32/64 \
                 elements are)"
            ))
        })?;
        let rounding = match configuration.get("rounding") {
            None => Rounding::NearestEven,
            Some(value) => Rounding::NAMES
                .into_iter()
                .find_map(|(n, r)| (value.as_str() == Some(n)).then_some(r))
                .ok_or_else(|| invalid(format!("unknown rounding {value}")))?,
        };
        let out_of_range = match configuration.get("out_of_range") {
            None | Some(serde_json::Value::Null) => None,
            Some(value) => match value.as_str() {
                Some("clamp") => Some(OutOfRange::Clamp),
                Some("wrap") if matches!(target, Kind::Int(_)) => Some(OutOfRange::Wrap),
                Some("wrap") => {
                    return Err(invalid(format!(
                        "out_of_range 'wrap' is only valid for integer target types, not {name}"
                    )))
                }
                _ => return Err(invalid(format!("unknown out_of_range {value}"))),
            },
        };
        let (mut encode_map, mut decode_map) = (Vec::new(), Vec::new());
        match configuration.get("scalar_map") {
            None | Some(serde_json::Value::Null) => {}
            Some(serde_json::Value::Object(maps)) => {
                for (direction, entries) in maps {
                    let map = match direction.as_str() {
                        "encode" => &mut encode_map,
                        "decode" => &mut decode_map,
                        _ => {
                            return Err(invalid(format!("unknown scalar_map member {direction:?}")))
                        }
                    };
                    *map = pairs(entries).ok_or_else(|| {
                        invalid(format!(
                            "scalar_map.{direction} {entries} is not a list of pairs"
                        ))
                    })?;
                }
            }
            Some(other) => return Err(invalid(format!("scalar_map {other} is not an object"))),
        }
        Ok(Codec::ArrayToArray(Arc::new(Self {
            target,
            rounding,
            out_of_range,
            encode_map,
            decode_map,
            configuration,
        })))
    }

    /// A scalar map read with its keys in type `from` and its values in type `to`.
    fn scalar_map(
        map: &[(serde_json::Value, serde_json::Value)],
        direction: &str,
        from: Kind,
        to: Kind,
    ) -> Result<Vec<(Number, Number)>, CodecError> {
        let read = |value, kind: Kind, role| {
            kind.scalar(value).ok_or_else(|| {
                CodecError::Other(format!(
                    "{}: scalar_map {direction} {role} {value} is not representable in dtype {}",
                    Self::NAME,
                    kind.name(),
                ))
            })
        };
        map.iter()
            .map(|(key, value)| Ok((read(key, from, "key")?, read(value, to, "value")?)))
            .collect()
    }

    /// `value` of any type converted to `to` (after the scalar map's exact matches).
    fn convert(&self, value: Number, to: Kind, map: &[(Number, Number)]) -> Result<Number, String> {
        if let Some(&(_, mapped)) = map.iter().find(|(key, _)| matches(*key, value)) {
            return Ok(mapped);
        }
        match to {
            Kind::Int(element) => self.to_integer(value, element),
            _ => self.to_float(value, to),
        }
    }

    /// `value` as an integer of `element`: floats rounded, then the range applied.
    fn to_integer(&self, value: Number, element: Element) -> Result<Number, String> {
        let (min, max) = element.integer_range().unwrap_or((0, 0));
        // The rounded value; None: beyond i128 (|x| >= 2^127, a multiple of 2^75).
        let (rounded, negative) = match value {
            Number::Int(i) => (Some(i), i < 0),
            Number::Float(f) if !f.is_finite() => {
                return Err(format!(
                    "Cannot cast {f} to integer type without scalar_map ({})",
                    Self::NAME
                ))
            }
            Number::Float(f) => {
                let r = self.rounding.integral(f);
                #[allow(clippy::cast_possible_truncation)] // integral and in range
                let int = (r.abs() < 2f64.powi(127)).then_some(r as i128);
                (int, r < 0.0)
            }
        };
        match (rounded, self.out_of_range) {
            (Some(i), _) if (min..=max).contains(&i) => Ok(Number::Int(i)),
            (_, Some(OutOfRange::Clamp)) => Ok(Number::Int(if negative { min } else { max })),
            (_, Some(OutOfRange::Wrap)) => {
                // Modulo 2^bits (a value past i128 is a multiple of 2^75: 0).
                let modulus = max - min + 1;
                let wrapped = rounded.unwrap_or(0).rem_euclid(modulus);
                Ok(Number::Int(if wrapped > max {
                    wrapped - modulus
                } else {
                    wrapped
                }))
            }
            (_, None) => Err(format!(
                "Value {} out of range [{min}, {max}] of dtype {}. Set out_of_range='clamp' or \
                 out_of_range='wrap' to handle this ({})",
                show(value),
                element.v3_name(),
                Self::NAME,
            )),
        }
    }

    /// `value` as a float of type `to`: rounded to its precision, then its range applied.
    fn to_float(&self, value: Number, to: Kind) -> Result<Number, String> {
        let (precision, min_exponent, max) = to.float_format().unwrap_or((53, -1022, f64::MAX));
        let rounded = match value {
            Number::Float(f) if !f.is_finite() || f == 0.0 || to == Kind::F64 => f,
            Number::Int(0) => 0.0,
            _ => {
                let (negative, mantissa, exponent) = exact(value);
                let magnitude = self.round(negative, mantissa, exponent, precision, min_exponent);
                if negative {
                    -magnitude
                } else {
                    magnitude
                }
            }
        };
        let infinite = matches!(value, Number::Float(f) if f.is_infinite());
        if rounded.abs() <= max || rounded.is_nan() || infinite {
            return Ok(Number::Float(rounded));
        }
        match self.out_of_range {
            Some(OutOfRange::Clamp) => Ok(Number::Float(f64::INFINITY.copysign(rounded))),
            _ => Err(format!(
                "Value {} out of range [-{max}, {max}] of dtype {}. Set out_of_range='clamp' \
                 to map it to ±Infinity ({})",
                show(value),
                to.name(),
                Self::NAME,
            )),
        }
    }

    /// The magnitude `mantissa * 2^exponent` (non-zero) rounded to `precision` bits at its own
    /// exponent (at least `min_exponent`, where subnormals begin), however large: the caller
    /// compares it with the type's greatest value.
    fn round(
        &self,
        negative: bool,
        mantissa: u128,
        exponent: i32,
        precision: i32,
        min_exponent: i32,
    ) -> f64 {
        let bits = i32::try_from(128 - mantissa.leading_zeros()).unwrap_or(128);
        let top = exponent + bits - 1;
        let quantum = top.max(min_exponent) - (precision - 1);
        if quantum <= exponent {
            // Exact: fewer bits than the precision.
            #[allow(clippy::cast_precision_loss)] // mantissa < 2^precision <= 2^53
            return mantissa as f64 * pow2(exponent);
        }
        let drop = u32::try_from(quantum - exponent).unwrap_or(u32::MAX);
        let (kept, rest, half) = if drop >= 128 {
            (0, mantissa, 1 << 127)
        } else {
            (
                mantissa >> drop,
                mantissa & ((1 << drop) - 1),
                1 << (drop - 1),
            )
        };
        let kept = kept + u128::from(self.rounding.up(negative, kept, rest, half));
        #[allow(clippy::cast_precision_loss)] // kept <= 2^precision <= 2^53
        {
            kept as f64 * pow2(quantum)
        }
    }

    /// Elements of `from` (native-endian) converted to `to` with `map`.
    fn apply<'a>(
        &self,
        bytes: ArrayBytes<'a>,
        from: Kind,
        to: Kind,
        map: &[(Number, Number)],
    ) -> Result<ArrayBytes<'a>, CodecError> {
        let elements = whole_elements(Self::NAME, bytes, from.size())?;
        let mut out = Vec::with_capacity(elements.len() / from.size() * to.size());
        if let (Some(mut values), true) = (from.read_f64(&elements), to.in_f64()) {
            let map64: Vec<(f64, f64)> = map.iter().map(|&(k, v)| (as_f64(k), as_f64(v))).collect();
            let (min, max) = match to {
                Kind::Int(element) => element.integer_range().unwrap_or((0, 0)),
                _ => (0, 0),
            };
            let bounds = (as_f64(Number::Int(min)), as_f64(Number::Int(max)));
            // One loop per target type (convert_f64 inlined into each, its `to` a constant),
            // converting in place.
            macro_rules! convert_all {
                ($to:expr) => {
                    for value in &mut values {
                        *value = self.convert_f64(*value, from, $to, bounds, map, &map64)?;
                    }
                };
            }
            match to {
                Kind::F64 => convert_all!(Kind::F64),
                Kind::F32 => convert_all!(Kind::F32),
                Kind::F16 => convert_all!(Kind::F16),
                Kind::Int(element) => convert_all!(Kind::Int(element)),
            }
            to.write_f64(&values, &mut out);
        } else {
            for value in from.read(&elements) {
                let converted = self.convert(value, to, map).map_err(CodecError::Other)?;
                to.write(converted, &mut out);
            }
        }
        Ok(ArrayBytes::new_flen(Cow::Owned(out)))
    }

    /// [`CastValueCodec::convert`] of `value`, an element of `from`, where both types hold
    /// only float64 values (no int64 / uint64): the common conversions computed in float64
    /// (exact results, integers in range, float32 rounded to nearest), the rest by `convert`.
    /// `bounds`: an integer target's least and greatest value; `map64`: `map` in float64.
    #[inline(always)]
    fn convert_f64(
        &self,
        value: f64,
        from: Kind,
        to: Kind,
        bounds: (f64, f64),
        map: &[(Number, Number)],
        map64: &[(f64, f64)],
    ) -> Result<f64, CodecError> {
        let same = |&&(key, _): &&(f64, f64)| key == value || (key.is_nan() && value.is_nan());
        if let Some(&(_, mapped)) = map64.iter().find(same) {
            return Ok(mapped);
        }
        #[allow(clippy::cast_possible_truncation)] // float32's nearest, as IEEE rounds it
        let fast = match to {
            Kind::Int(_) => {
                let (min, max) = bounds;
                let rounded = self.rounding.integral(value);
                // (NaN compares false: left to `convert`, which refuses it.)
                (rounded >= min && rounded <= max).then_some(rounded)
            }
            Kind::F64 => Some(value),
            Kind::F32 => {
                let nearest = f64::from(value as f32);
                let exact = nearest == value || value.is_nan();
                let rounded = self.rounding == Rounding::NearestEven && nearest.is_finite();
                (exact || rounded).then_some(nearest)
            }
            Kind::F16 => {
                let nearest = f16::from_f64(value).to_f64();
                (nearest == value || value.is_nan()).then_some(nearest)
            }
        };
        #[allow(clippy::cast_possible_truncation)] // an integral value of an integer type
        let number = match from {
            Kind::Int(_) => Number::Int(value as i128),
            _ => Number::Float(value),
        };
        match fast {
            Some(converted) => Ok(converted),
            None => self
                .convert(number, to, map)
                .map(as_f64)
                .map_err(CodecError::Other),
        }
    }
}

/// A value of a type other than int64 / uint64 as a float64 (exact).
#[allow(clippy::cast_precision_loss)]
fn as_f64(value: Number) -> f64 {
    match value {
        Number::Int(i) => i as f64,
        Number::Float(f) => f,
    }
}

/// Whether `value` is the scalar map's `key` (NaN matches NaN; -0.0 matches 0.0).
fn matches(key: Number, value: Number) -> bool {
    match (key, value) {
        (Number::Int(k), Number::Int(v)) => k == v,
        (Number::Float(k), Number::Float(v)) => k == v || (k.is_nan() && v.is_nan()),
        _ => false,
    }
}

/// The pairs of a JSON list of two-item lists.
fn pairs(entries: &serde_json::Value) -> Option<Vec<(serde_json::Value, serde_json::Value)>> {
    entries
        .as_array()?
        .iter()
        .map(|pair| match pair.as_array()?.as_slice() {
            [key, value] => Some((key.clone(), value.clone())),
            _ => None,
        })
        .collect()
}

/// A value as cast-value-rs shows it in errors.
fn show(value: Number) -> String {
    match value {
        Number::Int(i) => i.to_string(),
        Number::Float(f) => f.to_string(),
    }
}

/// A finite non-zero value as sign, integer mantissa and binary exponent.
fn exact(value: Number) -> (bool, u128, i32) {
    match value {
        Number::Int(i) => (i < 0, i.unsigned_abs(), 0),
        Number::Float(f) => {
            let bits = f.to_bits();
            let biased = i32::try_from((bits >> 52) & 0x7ff).unwrap_or(0);
            let fraction = u128::from(bits & ((1 << 52) - 1));
            if biased == 0 {
                (f < 0.0, fraction, -1074)
            } else {
                (f < 0.0, fraction | (1 << 52), biased - 1075)
            }
        }
    }
}

/// 2^`exponent`, for exponents from -1074 (the least subnormal) to 1023.
fn pow2(exponent: i32) -> f64 {
    if exponent >= -1022 {
        f64::from_bits(u64::try_from(exponent + 1023).unwrap_or(0) << 52)
    } else {
        f64::from_bits(1 << u32::try_from(exponent + 1074).unwrap_or(0))
    }
}

array_codec_traits!(CastValueCodec);

impl ArrayToArrayCodecTraits for CastValueCodec {
    fn into_dyn(self: Arc<Self>) -> Arc<dyn ArrayToArrayCodecTraits> {
        self as Arc<dyn ArrayToArrayCodecTraits>
    }

    /// The target type; checks the array's type and the scalar map's entries.
    fn encoded_data_type(&self, decoded_data_type: &DataType) -> Result<DataType, CodecError> {
        let source = Kind::of(decoded_data_type, "source")?;
        Self::scalar_map(&self.encode_map, "encode", source, self.target)?;
        Self::scalar_map(&self.decode_map, "decode", self.target, source)?;
        Ok(self.target.data_type())
    }

    fn encode<'a>(
        &self,
        bytes: ArrayBytes<'a>,
        _shape: &[NonZeroU64],
        data_type: &DataType,
        _fill_value: &FillValue,
        _options: &CodecOptions,
    ) -> Result<ArrayBytes<'a>, CodecError> {
        let source = Kind::of(data_type, "source")?;
        let map = Self::scalar_map(&self.encode_map, "encode", source, self.target)?;
        self.apply(bytes, source, self.target, &map)
    }

    fn decode<'a>(
        &self,
        bytes: ArrayBytes<'a>,
        _shape: &[NonZeroU64],
        data_type: &DataType,
        _fill_value: &FillValue,
        _options: &CodecOptions,
    ) -> Result<ArrayBytes<'a>, CodecError> {
        let source = Kind::of(data_type, "source")?;
        let map = Self::scalar_map(&self.decode_map, "decode", self.target, source)?;
        self.apply(bytes, self.target, source, &map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codec(configuration: serde_json::Value) -> Result<Arc<dyn ArrayToArrayCodecTraits>, String> {
        let configuration = serde_json::from_value(configuration).unwrap();
        match CastValueCodec::from_configuration(&configuration) {
            Ok(Codec::ArrayToArray(codec)) => Ok(codec),
            Ok(_) => panic!("cast_value is an array-to-array codec"),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Big-endian hex of elements of `kind` as native-endian bytes.
    fn from_hex(hex: &str, kind: Kind) -> Vec<u8> {
        let mut bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        assert_eq!(bytes.len(), kind.size(), "{hex} as {}", kind.name());
        if cfg!(target_endian = "little") {
            bytes.reverse();
        }
        bytes
    }

    /// Encodes (or decodes) `values` (native-endian) of `from` with `codec`, whose other type
    /// is `to`.
    fn run(
        codec: &Arc<dyn ArrayToArrayCodecTraits>,
        from: Kind,
        values: &[u8],
        encode: bool,
        array_type: Kind,
    ) -> Result<Vec<u8>, String> {
        let shape = [NonZeroU64::new((values.len() / from.size()) as u64).unwrap()];
        let data_type = array_type.data_type();
        let fill = FillValue::new(vec![0; array_type.size()]);
        let bytes = ArrayBytes::new_flen(Cow::Owned(values.to_vec()));
        let options = CodecOptions::default();
        let out = if encode {
            codec.encode(bytes, &shape, &data_type, &fill, &options)
        } else {
            codec.decode(bytes, &shape, &data_type, &fill, &options)
        };
        out.map(|b| b.into_fixed().unwrap().into_owned())
            .map_err(|e| e.to_string())
    }

    /// Every value of fixtures/cast_value.json (edge values of each type: ties, the types'
    /// limits, values just past float16's and float32's greatest, subnormals, NaN and
    /// infinities, integers past float precision) converts, in every pair of the 11 types and
    /// every rounding and out-of-range mode (1,650 cases), to what cast-value-rs 0.5.1 stores,
    /// bit for bit, or fails where it fails.
    #[test]
    fn agrees_with_cast_value_rs() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../fixtures/cast_value.json"
        );
        let fixture: serde_json::Value =
            serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        let cases = fixture["cases"].as_array().unwrap();
        assert_eq!(cases.len(), 1650);
        let (mut checked, mut errors) = (0, 0);
        for case in cases {
            let [source, target, rounding, out_of_range, expected] =
                case.as_array().unwrap().as_slice()
            else {
                panic!("case {case}")
            };
            let (from, to) = (
                Kind::from_name(source.as_str().unwrap()).unwrap(),
                Kind::from_name(target.as_str().unwrap()).unwrap(),
            );
            let mut configuration = serde_json::json!({"data_type": target, "rounding": rounding});
            if !out_of_range.is_null() {
                configuration["out_of_range"] = out_of_range.clone();
            }
            let codec = codec(configuration).unwrap();
            let values = fixture["values"][source.as_str().unwrap()]
                .as_str()
                .unwrap();
            for (value, want) in values.split(' ').zip(expected.as_str().unwrap().split(' ')) {
                let got = run(&codec, from, &from_hex(value, from), true, from);
                let what = format!("{source} {value} -> {target} {rounding} {out_of_range}");
                checked += 1;
                if want == "E" {
                    errors += 1;
                    assert!(got.is_err(), "{what}: {got:?}, cast-value-rs fails");
                    continue;
                }
                let got = got.unwrap_or_else(|e| panic!("{what}: {e}"));
                let want = from_hex(want, to);
                let nan = |bytes: &[u8]| match to.read(bytes)[0] {
                    Number::Float(f) => f.is_nan(),
                    Number::Int(_) => false,
                };
                assert!(
                    got == want || (nan(&got) && nan(&want)),
                    "{what}: {got:?} != {want:?}"
                );
            }
        }
        // Both outcomes are exercised: errors (out of range, NaN to integers) and conversions.
        assert_eq!((checked, errors), (43_800, 5_416));
    }

    fn floats(values: &[f64]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_ne_bytes()).collect()
    }

    /// The scalar map's exact matches come first, both ways (NaN matches NaN; -0.0 matches
    /// 0.0), then rounding and `out_of_range`; as cast-value-rs maps them.
    #[test]
    fn scalar_map_before_rounding_and_range() {
        let codec = codec(serde_json::json!({
            "data_type": "uint8",
            "out_of_range": "clamp",
            "scalar_map": {"encode": [["NaN", 0], ["Infinity", 254], [0.0, 9]], "decode": [[0, "NaN"]]},
        }))
        .unwrap();
        let stored = run(
            &codec,
            Kind::F64,
            &floats(&[f64::NAN, f64::INFINITY, -0.0, 1.4, 2.5, 300.0, -7.0]),
            true,
            Kind::F64,
        )
        .unwrap();
        assert_eq!(stored, [0, 254, 9, 1, 2, 255, 0]);
        let read = run(
            &codec,
            Kind::Int(Element::U8),
            &[0, 1, 255],
            false,
            Kind::F64,
        )
        .unwrap();
        let read: Vec<f64> = Kind::F64
            .read(&read)
            .into_iter()
            .map(|n| match n {
                Number::Float(f) => f,
                Number::Int(_) => unreachable!(),
            })
            .collect();
        assert!(read[0].is_nan());
        assert_eq!(read[1..], [1.0, 255.0]);
        // Without the map: NaN has no integer, whatever out_of_range says.
        let plain = codec_of("uint8", "clamp");
        let err = run(
            &plain,
            Kind::F64,
            &floats(&[1.0, f64::NAN]),
            true,
            Kind::F64,
        )
        .unwrap_err();
        assert!(
            err.contains("Cannot cast NaN to integer type without scalar_map"),
            "{err}"
        );
    }

    fn codec_of(target: &str, out_of_range: &str) -> Arc<dyn ArrayToArrayCodecTraits> {
        codec(serde_json::json!({"data_type": target, "out_of_range": out_of_range})).unwrap()
    }

    /// Decoding converts stored values back with the same rules: int32 stored for float32
    /// rounds to float32's 24 bits as configured.
    #[test]
    fn decode_rounds_as_configured() {
        let stored: Vec<u8> = [16_777_217i32, -16_777_219, 5]
            .iter()
            .flat_map(|v| v.to_ne_bytes())
            .collect();
        for (rounding, want) in [
            ("towards-zero", [16_777_216.0f32, -16_777_218.0, 5.0]),
            ("towards-positive", [16_777_218.0, -16_777_218.0, 5.0]),
            ("nearest-even", [16_777_216.0, -16_777_220.0, 5.0]),
        ] {
            let codec =
                codec(serde_json::json!({"data_type": "int32", "rounding": rounding})).unwrap();
            let read = run(&codec, Kind::Int(Element::I32), &stored, false, Kind::F32).unwrap();
            let want: Vec<u8> = want.iter().flat_map(|v| v.to_ne_bytes()).collect();
            assert_eq!(read, want, "{rounding}");
        }
    }

    /// Values out of range are errors naming the value, the range and the type, worded as
    /// cast-value-rs words them (zarr-python's error).
    #[test]
    fn out_of_range_errors_name_the_value_and_range() {
        let uint8 = codec(serde_json::json!({"data_type": "uint8"})).unwrap();
        let err = run(&uint8, Kind::F64, &floats(&[255.4, 255.5]), true, Kind::F64).unwrap_err();
        assert!(
            err.contains("Value 255.5 out of range [0, 255] of dtype uint8"),
            "{err}"
        );
        let clamped = codec_of("float16", "clamp");
        let stored = run(
            &clamped,
            Kind::F64,
            &floats(&[65519.0, -70000.0]),
            true,
            Kind::F64,
        );
        assert_eq!(
            stored.unwrap(),
            [f16::from_f64(65504.0), f16::NEG_INFINITY]
                .iter()
                .flat_map(|v| v.to_ne_bytes())
                .collect::<Vec<_>>()
        );
        let float16 = codec(serde_json::json!({"data_type": "float16"})).unwrap();
        let err = run(&float16, Kind::F64, &floats(&[70000.0]), true, Kind::F64).unwrap_err();
        assert!(
            err.contains("Value 70000 out of range [-65504, 65504] of dtype float16"),
            "{err}"
        );
    }

    /// Configurations and types the codec refuses, each naming what is wrong; types other than
    /// integers and float16/32/64 "not supported" (zuring leaves those arrays to zarr-python).
    #[test]
    fn refuses_what_it_cannot_do() {
        for (configuration, words) in [
            (serde_json::json!({}), "no data_type"),
            (
                serde_json::json!({"data_type": "bool"}),
                "target data type bool is not supported",
            ),
            (
                serde_json::json!({"data_type": "bfloat16"}),
                "bfloat16 is not supported",
            ),
            (
                serde_json::json!({"data_type": "float32", "out_of_range": "wrap"}),
                "only valid for integer",
            ),
            (
                serde_json::json!({"data_type": "int8", "rounding": "up"}),
                "unknown rounding",
            ),
            (
                serde_json::json!({"data_type": "int8", "out_of_range": "saturate"}),
                "unknown out_of_range",
            ),
            (
                serde_json::json!({"data_type": "int8", "scale": 1}),
                "unknown configuration member",
            ),
            (
                serde_json::json!({"data_type": "int8", "scalar_map": {"encode": [[1]]}}),
                "not a list of pairs",
            ),
            (
                serde_json::json!({"data_type": "int8", "scalar_map": {"both": []}}),
                "unknown scalar_map member",
            ),
        ] {
            let err = codec(configuration.clone()).err().unwrap_or_default();
            assert!(err.contains(words), "{configuration}: {err}");
        }
        let mapped = codec(serde_json::json!({
            "data_type": "int8",
            "scalar_map": {"encode": [[1.5, 1000]]},
        }))
        .unwrap();
        let err = mapped
            .encoded_data_type(&data_type::float32())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("scalar_map encode value 1000 is not representable in dtype int8"),
            "{err}"
        );
        let err = mapped
            .encoded_data_type(&data_type::bool())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("source data type bool is not supported"),
            "{err}"
        );
        let plain = codec(serde_json::json!({"data_type": "int8"})).unwrap();
        assert_eq!(
            plain
                .encoded_data_type(&data_type::float64())
                .unwrap()
                .name_v3()
                .as_deref(),
            Some("int8")
        );
    }
}
