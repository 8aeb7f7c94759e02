//! Operational routes: health, the OpenAPI document and Prometheus metrics.

use std::sync::OnceLock;

use chrono::Utc;
use warp::http::{HeaderValue, StatusCode};
use warp::reply::Response;

use super::dto::{HealthView, iso8601_duration, timestamp};
use super::{AppState, json};
use crate::problem::ApiError;

/// The project's OpenAPI document, embedded at build time.
pub const OPENAPI_YAML: &str = include_str!("../../openapi/openapi.yaml");

pub async fn health(state: &AppState) -> Result<Response, ApiError> {
    let report = state.engine.health();
    let thresholds = &state.settings.health;
    let status = if !report.store_healthy || !report.engine_running {
        "Unhealthy"
    } else if report.queue_depth > thresholds.degraded_queue_depth
        || report.recent_error_rate > thresholds.degraded_error_rate_percent
    {
        "Degraded"
    } else {
        "Healthy"
    };
    let view = HealthView {
        status,
        queue_depth: report.queue_depth,
        recent_error_rate: (report.recent_error_rate * 100.0).round() / 100.0,
        uptime: iso8601_duration(report.uptime),
        last_checked: timestamp(&Utc::now()),
    };
    Ok(json(StatusCode::OK, &view))
}

/// Serves the OpenAPI document as JSON, converted once.
pub fn openapi() -> Result<Response, ApiError> {
    static DOCUMENT: OnceLock<Result<Vec<u8>, String>> = OnceLock::new();
    let document = DOCUMENT.get_or_init(|| {
        let value: serde_json::Value =
            serde_yaml::from_str(OPENAPI_YAML).map_err(|e| e.to_string())?;
        serde_json::to_vec(&value).map_err(|e| e.to_string())
    });
    match document {
        Ok(bytes) => {
            let mut response = Response::new(bytes.clone().into());
            response
                .headers_mut()
                .insert("content-type", HeaderValue::from_static("application/json"));
            Ok(response)
        }
        Err(error) => Err(ApiError::Internal(format!(
            "the embedded OpenAPI document is invalid: {error}"
        ))),
    }
}

pub fn metrics(state: &AppState) -> Result<Response, ApiError> {
    state.engine.update_gauges();
    let mut response = Response::new(state.metrics.render().into());
    response.headers_mut().insert(
        "content-type",
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(response)
}
