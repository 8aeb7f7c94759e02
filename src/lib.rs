//! The argus-webhooks service: CLI, configuration, authentication, the warp
//! HTTP API and metrics wiring. The delivery engine lives in the
//! `argus-webhooks-actors` crate; this crate contains no sled code.
//!
//! - [`cli`]: command-line arguments and subcommands.
//! - [`config`]: layered configuration (embedded defaults, file, environment).
//! - [`auth`]: bearer JWT verification and development tokens.
//! - [`api`]: the route table and handlers.
//! - [`problem`]: the API error type and RFC 9457 responses.
//! - [`server`]: serving the API and graceful shutdown.
//! - [`telemetry`]: logging and the Prometheus recorder.
//! - [`commands`]: the `token`, `publish` and `listen` subcommands.

pub mod api;
pub mod auth;
pub mod cli;
pub mod commands;
pub mod config;
pub mod problem;
pub mod server;
pub mod telemetry;
