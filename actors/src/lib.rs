//! The delivery engine of argus-webhooks. It knows nothing about serving HTTP.
//!
//! - [`model`]: validated domain types (ids, event types, URLs, secrets, records).
//! - [`store`]: the sled store with its indexes and group-commit flush.
//! - [`counts`]: exact event counts by status and type, for listing totals.
//! - [`signing`]: Standard Webhooks signatures.
//! - [`retry`]: the retry schedule as pure functions.
//! - [`ssrf`]: which addresses deliveries may reach.
//! - [`delivery`]: the HTTP client that sends signed requests.
//! - [`supervisor`], [`router`], [`subscription`]: the actors.
//! - [`engine`]: the handle the service calls.

pub mod context;
pub mod counts;
pub mod delivery;
pub mod engine;
pub mod error;
pub mod model;
pub mod retry;
pub mod router;
pub mod signing;
pub mod ssrf;
pub mod store;
pub mod subscription;
pub mod supervisor;

pub use context::EngineSettings;
pub use delivery::DeliveryConfig;
pub use engine::{Engine, EngineConfig, HealthReport};
pub use error::{EngineError, FieldError};
pub use router::IngestOutcome;
pub use store::{EventPage, EventQuery, StoreConfig};
pub use subscription::TestResult;
