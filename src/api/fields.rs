//! Deserializers for optional request fields. A field may be absent, but an
//! explicit `null` is rejected like any other wrong type, because the OpenAPI
//! document declares none of these fields nullable. Integer fields also take
//! a JSON number with a zero fraction, such as `6.0`, as JSON Schema does.

use serde::de::{Deserialize, Deserializer, Error};

/// Deserializes a field that is present, so `null` fails. Pair it with
/// `#[serde(default)]`, which makes an absent field `None`.
pub fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// Deserializes an integer field that is present, accepting `6.0` as 6.
pub fn present_integer<'de, D>(deserializer: D) -> Result<Option<i64>, D::Error>
where
    D: Deserializer<'de>,
{
    let number = serde_json::Number::deserialize(deserializer)?;
    if let Some(value) = number.as_i64() {
        return Ok(Some(value));
    }
    match number.as_f64() {
        // The bounds keep the cast exact; larger values fail range checks anyway.
        Some(value) if value.fract() == 0.0 && value.abs() < 9.0e15 => Ok(Some(value as i64)),
        _ => Err(D::Error::custom(format!(
            "invalid value: {number}, expected an integer"
        ))),
    }
}
