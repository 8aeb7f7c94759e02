//! Configuration: defaults embedded from `default-config.toml`, overridden by
//! an optional file and then by `ARGUS_WEBHOOKS_<SECTION>__<KEY>` variables.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use argus_webhooks_actors::model::{EventType, MAX_URL_LENGTH};
use argus_webhooks_actors::ssrf::AddressPolicy;
use argus_webhooks_actors::{DeliveryConfig, EngineConfig, EngineSettings, StoreConfig};
use ipnet::IpNet;
use serde::Deserialize;

pub const DEFAULT_CONFIG: &str = include_str!("default-config.toml");

#[derive(Clone, Debug, Deserialize)]
pub struct Settings {
    pub server: ServerSettings,
    pub store: StoreSettings,
    pub auth: AuthSettings,
    pub delivery: DeliverySettings,
    pub engine: EngineSection,
    pub limits: LimitSettings,
    pub retention: RetentionSettings,
    pub health: HealthSettings,
    pub log: LogSettings,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub listen: SocketAddr,
    pub max_body_bytes: usize,
    pub max_batch_body_bytes: usize,
    pub max_batch_events: usize,
    pub shutdown_grace_seconds: f64,
    pub body_read_timeout_seconds: f64,
    pub header_read_timeout_seconds: f64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSettings {
    pub data_dir: PathBuf,
    pub cache_mib: u64,
    pub fsync: bool,
    pub fault_file: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    pub hs256_secret: String,
    pub public_key_file: String,
    pub jwks_file: String,
    pub issuer: String,
    pub audience: String,
    pub leeway_seconds: u64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliverySettings {
    pub allow_http: bool,
    pub ssrf_exempt: Vec<IpNet>,
    pub allowed_networks: Vec<IpNet>,
    pub static_dns_only: bool,
    pub connect_timeout_seconds: f64,
    pub total_timeout_seconds: f64,
    pub response_body_limit_bytes: usize,
    pub max_in_flight_per_subscription: usize,
    pub max_in_flight_total: usize,
    pub disable_after_failed_events: u32,
    pub extra_root_certificates: Vec<PathBuf>,
    pub time_scale: f64,
    pub recovery_spread_ms: u64,
    #[serde(default)]
    pub dns_overrides: HashMap<String, Vec<Vec<IpAddr>>>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineSection {
    pub queue_window: usize,
    pub idle_actor_timeout_seconds: f64,
    pub restart_budget: u32,
    pub restart_window_seconds: f64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitSettings {
    pub max_subscriptions_per_account: usize,
    pub max_event_types_per_subscription: usize,
    pub max_url_length: usize,
}

impl LimitSettings {
    fn check(&self) -> anyhow::Result<()> {
        if self.max_subscriptions_per_account == 0 {
            bail!("limits.max_subscriptions_per_account must be at least 1");
        }
        let types = EventType::ALL.len();
        if !(1..=types).contains(&self.max_event_types_per_subscription) {
            bail!(
                "limits.max_event_types_per_subscription must be from 1 to {types}; got {}",
                self.max_event_types_per_subscription
            );
        }
        if !(1..=MAX_URL_LENGTH).contains(&self.max_url_length) {
            bail!(
                "limits.max_url_length must be from 1 to {MAX_URL_LENGTH}; got {}",
                self.max_url_length
            );
        }
        Ok(())
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionSettings {
    pub days: f64,
    pub interval_seconds: f64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthSettings {
    pub degraded_queue_depth: u64,
    pub degraded_error_rate_percent: f64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub format: String,
    pub filter: String,
}

/// Settings that are strings, so their environment variables are read as
/// written.
const STRING_KEYS: &[&str] = &[
    "store.data_dir",
    "store.fault_file",
    "auth.hs256_secret",
    "auth.public_key_file",
    "auth.jwks_file",
    "auth.issuer",
    "auth.audience",
    "log.format",
    "log.filter",
];

impl Settings {
    /// Loads the embedded defaults, then `file`, then the environment.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Settings> {
        let mut builder = config::Config::builder().add_source(config::File::from_str(
            DEFAULT_CONFIG,
            config::FileFormat::Toml,
        ));
        if let Some(path) = file {
            builder = builder.add_source(
                config::File::from(path)
                    .format(config::FileFormat::Toml)
                    .required(true),
            );
        }
        builder = builder.add_source(
            config::Environment::with_prefix("ARGUS_WEBHOOKS")
                .prefix_separator("_")
                .separator("__")
                .list_separator(",")
                .with_list_parse_key("delivery.ssrf_exempt")
                .with_list_parse_key("delivery.allowed_networks")
                .with_list_parse_key("delivery.extra_root_certificates")
                .try_parsing(true),
        );
        // try_parsing turns "0123" into 123 and "1e10" into a float, which
        // changes a secret or a path. String settings take the raw value.
        for key in STRING_KEYS {
            let name = format!("ARGUS_WEBHOOKS_{}", key.replace('.', "__").to_uppercase());
            if let Ok(value) = std::env::var(&name) {
                builder = builder
                    .set_override(*key, value)
                    .context("cannot read the configuration")?;
            }
        }
        let settings: Settings = builder
            .build()
            .context("cannot read the configuration")?
            .try_deserialize()
            .context("invalid configuration")?;
        settings.check()?;
        Ok(settings)
    }

    fn check(&self) -> anyhow::Result<()> {
        if !(self.delivery.time_scale > 0.0 && self.delivery.time_scale <= 1.0) {
            bail!(
                "delivery.time_scale must be greater than 0 and at most 1; got {}",
                self.delivery.time_scale
            );
        }
        check_durations(self)?;
        if !matches!(self.log.format.as_str(), "text" | "json") {
            bail!(
                "log.format must be \"text\" or \"json\"; got {:?}",
                self.log.format
            );
        }
        if self.server.max_batch_events == 0 {
            bail!("server.max_batch_events must be at least 1");
        }
        self.limits.check()?;
        Ok(())
    }

    /// Builds the engine's configuration, reading certificate files.
    pub fn engine_config(&self) -> anyhow::Result<EngineConfig> {
        let mut roots = Vec::new();
        for path in &self.delivery.extra_root_certificates {
            roots.push(
                std::fs::read(path)
                    .with_context(|| format!("cannot read certificate file {}", path.display()))?,
            );
        }
        let fault_file =
            (!self.store.fault_file.is_empty()).then(|| PathBuf::from(&self.store.fault_file));
        Ok(EngineConfig {
            store: StoreConfig {
                dir: self.store.data_dir.clone(),
                cache_capacity: self.store.cache_mib * 1024 * 1024,
                fsync: self.store.fsync,
                fault_file,
            },
            delivery: DeliveryConfig {
                connect_timeout: secs(self.delivery.connect_timeout_seconds),
                total_timeout: secs(self.delivery.total_timeout_seconds),
                response_body_limit: self.delivery.response_body_limit_bytes,
                max_in_flight_total: self.delivery.max_in_flight_total,
                policy: AddressPolicy::new(self.delivery.ssrf_exempt.clone())
                    .with_allowed(self.delivery.allowed_networks.clone()),
                extra_root_certificates: roots,
                dns_overrides: self.delivery.dns_overrides.clone(),
                static_dns_only: self.delivery.static_dns_only,
                allow_http: self.delivery.allow_http,
            },
            settings: EngineSettings {
                time_scale: self.delivery.time_scale,
                max_in_flight_per_subscription: self.delivery.max_in_flight_per_subscription.max(1),
                queue_window: self.engine.queue_window.max(1),
                disable_after_failed_events: self.delivery.disable_after_failed_events,
                recovery_spread: Duration::from_millis(self.delivery.recovery_spread_ms),
                idle_actor_timeout: secs(self.engine.idle_actor_timeout_seconds),
                restart_budget: self.engine.restart_budget,
                restart_window: secs(self.engine.restart_window_seconds),
                max_subscriptions_per_account: self.limits.max_subscriptions_per_account,
                retention: secs(self.retention.days * 86_400.0),
                retention_interval: secs(self.retention.interval_seconds),
            },
        })
    }
}

/// Maximum duration a setting may name: 100 years, in seconds. Longer values
/// overflow date arithmetic, and `inf` or `nan` cannot become a `Duration`.
const MAX_SETTING_SECONDS: f64 = 100.0 * 365.0 * 86_400.0;

/// Checks that every duration setting is a finite number of seconds within
/// its range, so none can panic or silently become 0 later.
fn check_durations(settings: &Settings) -> anyhow::Result<()> {
    let positive = [
        (
            "delivery.connect_timeout_seconds",
            settings.delivery.connect_timeout_seconds,
        ),
        (
            "delivery.total_timeout_seconds",
            settings.delivery.total_timeout_seconds,
        ),
        (
            "server.body_read_timeout_seconds",
            settings.server.body_read_timeout_seconds,
        ),
        (
            "server.header_read_timeout_seconds",
            settings.server.header_read_timeout_seconds,
        ),
        (
            "retention.interval_seconds",
            settings.retention.interval_seconds,
        ),
    ];
    let non_negative = [
        (
            "server.shutdown_grace_seconds",
            settings.server.shutdown_grace_seconds,
        ),
        (
            "engine.idle_actor_timeout_seconds",
            settings.engine.idle_actor_timeout_seconds,
        ),
        (
            "engine.restart_window_seconds",
            settings.engine.restart_window_seconds,
        ),
    ];
    for (key, value) in positive {
        if !(value > 0.0 && value <= MAX_SETTING_SECONDS) {
            bail!(
                "{key} must be a number of seconds greater than 0 and at most {MAX_SETTING_SECONDS} (100 years); got {value}"
            );
        }
    }
    for (key, value) in non_negative {
        if !(0.0..=MAX_SETTING_SECONDS).contains(&value) {
            bail!(
                "{key} must be a number of seconds from 0 to {MAX_SETTING_SECONDS} (100 years); got {value}"
            );
        }
    }
    let days = settings.retention.days;
    if !(days >= 0.0 && days * 86_400.0 <= MAX_SETTING_SECONDS) {
        bail!("retention.days must be a number of days from 0 to 36500 (100 years); got {days}");
    }
    Ok(())
}

fn secs(value: f64) -> Duration {
    Duration::from_secs_f64(value.max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_section_key_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "[delivery]\ntotal_timeout = 30\n").unwrap();
        let error = format!("{:#}", Settings::load(Some(&path)).unwrap_err());
        assert!(error.contains("total_timeout"), "{error}");
    }

    #[test]
    fn durations_out_of_range_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        let cases = [
            ("engine", "idle_actor_timeout_seconds", "-5.0"),
            ("engine", "idle_actor_timeout_seconds", "nan"),
            ("engine", "idle_actor_timeout_seconds", "inf"),
            ("engine", "restart_window_seconds", "1e30"),
            ("server", "shutdown_grace_seconds", "inf"),
            ("server", "header_read_timeout_seconds", "0.0"),
            ("server", "body_read_timeout_seconds", "1e30"),
            ("delivery", "total_timeout_seconds", "nan"),
            ("delivery", "connect_timeout_seconds", "0.0"),
            ("retention", "interval_seconds", "0.0"),
            ("retention", "days", "1e12"),
        ];
        for (section, key, value) in cases {
            std::fs::write(&path, format!("[{section}]\n{key} = {value}\n")).unwrap();
            let error = format!("{:#}", Settings::load(Some(&path)).unwrap_err());
            assert!(
                error.contains(&format!("{section}.{key}")),
                "{key} = {value}: {error}"
            );
        }
    }

    #[test]
    fn defaults_load() {
        let settings = Settings::load(None).unwrap();
        assert_eq!(settings.server.listen.port(), 8080);
        assert_eq!(settings.delivery.max_in_flight_per_subscription, 1);
        settings.engine_config().unwrap();
    }
}
