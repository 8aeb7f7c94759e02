//! Reading and parsing request bodies: size limits, content type, and JSON
//! errors that name the field.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use serde_json::error::Category;
use warp::http::HeaderMap;

use super::BodyStream;
use crate::problem::ApiError;

/// Maximum bytes of a rejected request's body that are read and dropped, so
/// the client can finish sending it and read the response.
const DISCARD_LIMIT: usize = 8 * 1024 * 1024;

/// Pause in a rejected request's body after which the service stops
/// reading it and sends the response.
const DISCARD_IDLE: Duration = Duration::from_millis(250);

/// Reads the body, failing with 413 as soon as it exceeds `limit` bytes and
/// with 408 when it has not fully arrived after `deadline`, so a stalled
/// client cannot hold a request, and with it shutdown, open for ever.
pub async fn read_limited(
    body: &mut BodyStream,
    limit: usize,
    deadline: Duration,
) -> Result<Bytes, ApiError> {
    tokio::time::timeout(deadline, read_all(body, limit))
        .await
        .map_err(|_| ApiError::RequestTimeout(deadline))?
}

async fn read_all(body: &mut BodyStream, limit: usize) -> Result<Bytes, ApiError> {
    let mut buffer = BytesMut::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::MalformedBody(format!("the body could not be read: {e}"), None)
        })?;
        if buffer.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge(limit));
        }
        buffer.extend_from_slice(&chunk);
    }
    Ok(buffer.freeze())
}

/// Reads and drops the rest of a rejected request's body, up to
/// [`DISCARD_LIMIT`] bytes and for at most `deadline`. If the server closed
/// the connection while the body was still arriving, the client's next write
/// would fail with a broken pipe, and it would never read the 413 or 401.
/// A client that sends nothing for [`DISCARD_IDLE`] is not sending, so it
/// gets the response then, without waiting for the deadline.
pub async fn discard(body: &mut BodyStream, deadline: Duration) {
    let drain = async {
        let mut dropped = 0;
        while let Ok(Some(Ok(chunk))) = tokio::time::timeout(DISCARD_IDLE, body.next()).await {
            dropped += chunk.len();
            if dropped > DISCARD_LIMIT {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(deadline, drain).await;
}

/// Requires `Content-Type: application/json` (parameters and `+json` types allowed).
pub fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if content_type == "application/json"
        || (content_type.starts_with("application/") && content_type.ends_with("+json"))
    {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType)
    }
}

/// Parses a JSON object into `T`. serde reads a struct from an array by
/// position too, so anything but an object is rejected first.
pub fn parse_json_object<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    require_object(bytes)?;
    parse_json(bytes)
}

/// Parses a JSON array of `items` into `T`, naming the kind of document
/// when it is not an array.
pub fn parse_json_array<T: DeserializeOwned>(bytes: &[u8], items: &str) -> Result<T, ApiError> {
    match json_kind(bytes) {
        None | Some("an array") => parse_json(bytes),
        Some(kind) => Err(ApiError::MalformedBody(
            format!("expected a JSON array of {items}; got {kind}"),
            None,
        )),
    }
}

/// Rejects a JSON document that is not an object, naming what it is.
fn require_object(bytes: &[u8]) -> Result<(), ApiError> {
    match json_kind(bytes) {
        None | Some("an object") => Ok(()),
        Some(kind) => Err(ApiError::MalformedBody(
            format!("expected a JSON object; got {kind}"),
            None,
        )),
    }
}

/// Names the kind of JSON value a document starts with; `None` when it is
/// empty.
fn json_kind(bytes: &[u8]) -> Option<&'static str> {
    let kind = match bytes.iter().find(|b| !b.is_ascii_whitespace())? {
        b'{' => "an object",
        b'[' => "an array",
        b'"' => "a string",
        b't' | b'f' => "a boolean",
        b'n' => "null",
        _ => "a number or invalid JSON",
    };
    Some(kind)
}

/// Parses JSON into `T`; a failure names the JSON path of the offending field.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(ApiError::MalformedBody(
            "the body is empty; send a JSON document".into(),
            None,
        ));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let result: Result<T, _> = serde_path_to_error::deserialize(&mut deserializer);
    let value = match result {
        Ok(value) => value,
        Err(error) => {
            let path = error.path().to_string();
            let error = error.into_inner();
            // A syntax error or a cut-off body is about the text, not the
            // field the parser was in when the text broke off.
            if matches!(error.classify(), Category::Syntax | Category::Eof) {
                return Err(ApiError::MalformedBody(
                    format!("the body is not valid JSON: {error}"),
                    None,
                ));
            }
            return Err(ApiError::MalformedBody(error.to_string(), named_path(path)));
        }
    };
    deserializer.end().map_err(|e| {
        ApiError::MalformedBody(
            format!("unexpected data after the JSON document: {e}"),
            None,
        )
    })?;
    Ok(value)
}

/// Returns the JSON path of a parse error when it names a field: not the
/// document itself (`.`) and not an unknown place (`?`, at a syntax error).
fn named_path(path: String) -> Option<String> {
    (!matches!(path.as_str(), "." | "?" | "")).then_some(path)
}

/// Parses a query string into (name, value) pairs.
pub fn query_pairs(query: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect()
}
