//! Command-line interface of the `argus-webhooks` binary.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use crate::commands;
use crate::config::Settings;
use crate::server;
use crate::telemetry;

#[derive(Parser, Debug)]
#[command(
    name = "argus-webhooks",
    version,
    about = "Delivers ARGUS Enterprise platform events to integrators as signed HTTP callbacks."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the service on the embedded sled store.
    Serve(ServeArgs),
    /// Print a bearer token signed with the configured or the local development key.
    Token(TokenArgs),
    /// Send platform events from a JSON or JSON Lines file to the ingest endpoint.
    Publish(PublishArgs),
    /// Run a local receiver that responds to verification, checks signatures and prints events.
    Listen(ListenArgs),
}

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// TOML configuration file; overrides the embedded defaults (see `docs/configuration.md`).
    #[arg(long, env = "ARGUS_WEBHOOKS_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080]; port 0 picks a free port.
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Data directory for the sled store and the development key [default: ./data].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Development mode: allow http:// endpoints and exempt 127.0.0.0/8 and ::1 from the SSRF guard.
    #[arg(long)]
    pub dev: bool,
    /// Log format: text or json [default: text].
    #[arg(long)]
    pub log_format: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct TokenArgs {
    /// Account id the token is scoped to (the `account_id` claim).
    #[arg(long)]
    pub account: String,
    /// Space-separated scopes, e.g. "webhooks:publish".
    #[arg(long)]
    pub scope: Option<String>,
    /// Lifetime, e.g. 30m, 12h or 7d.
    #[arg(long, default_value = "24h")]
    pub ttl: String,
    /// Data directory whose development key signs the token [default: ./data].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// TOML configuration file, for a configured HS256 secret.
    #[arg(long, env = "ARGUS_WEBHOOKS_CONFIG")]
    pub config: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct PublishArgs {
    /// Base URL of the service.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Bearer token with the webhooks:publish scope; by default one is signed with the local development key.
    #[arg(long, env = "ARGUS_WEBHOOKS_TOKEN")]
    pub token: Option<String>,
    /// Data directory whose development key signs the default token [default: ./data].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Events per batch request (1 to 500).
    #[arg(long, default_value_t = 100)]
    pub batch_size: usize,
    /// JSON (an object or an array) or JSON Lines file of platform events.
    pub file: PathBuf,
}

#[derive(clap::Args, Debug)]
pub struct ListenArgs {
    /// Port on 127.0.0.1 to listen on; 0 picks a free port.
    #[arg(long, default_value_t = 9000)]
    pub port: u16,
    /// Signing secret (whsec_…); generated and printed when omitted.
    #[arg(long)]
    pub secret: Option<String>,
    /// Seconds of clock skew allowed on webhook-timestamp.
    #[arg(long, default_value_t = 300)]
    pub tolerance: i64,
}

/// Runs the chosen subcommand.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::Token(args) => commands::token::run(args),
        Command::Publish(args) => commands::publish::run(args).await,
        Command::Listen(args) => commands::listen::run(args).await,
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let mut settings = Settings::load(args.config.as_deref())?;
    if let Some(listen) = args.listen {
        settings.server.listen = listen;
    }
    if let Some(dir) = args.data_dir {
        settings.store.data_dir = dir;
    }
    if let Some(format) = args.log_format {
        settings.log.format = format;
    }
    telemetry::init_logging(&settings.log.format, &settings.log.filter);
    if args.dev {
        settings.delivery.allow_http = true;
        for net in ["127.0.0.0/8", "::1/128"] {
            settings
                .delivery
                .ssrf_exempt
                .push(net.parse().expect("a valid CIDR"));
        }
        tracing::warn!(
            "development mode: http:// endpoints are allowed and 127.0.0.0/8 and ::1 are exempt from the SSRF guard; do not use --dev in production"
        );
    }
    let listener = tokio::net::TcpListener::bind(settings.server.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.server.listen))?;
    let shutdown = server::shutdown_signal()?;
    server::run(settings, listener, shutdown).await
}
