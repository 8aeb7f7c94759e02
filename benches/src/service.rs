//! The service under test: the release binary started with a temporary data
//! dir and a benchmark config, and the public API calls the scenarios use.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

/// The HS256 secret every benchmark service is configured with.
const JWT_SECRET: &str = "benchmark-secret-0123456789abcdef0123456789";
pub const ACCOUNT: &str = "bench";
/// Maximum wait for the `listening on` line after a start.
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// Config settings as `(section, key, TOML literal)`, applied over the benchmark defaults.
pub type Settings = Vec<(&'static str, &'static str, String)>;

pub struct Service {
    pub base: String,
    pub client: reqwest::Client,
    binary: PathBuf,
    config_path: PathBuf,
    log_path: PathBuf,
    child: Option<Child>,
    admin_token: String,
    publisher_token: String,
    _dir: tempfile::TempDir,
}

impl Service {
    /// Writes the config and starts the binary; returns once it listens.
    pub fn start(binary: &Path, settings: &Settings) -> anyhow::Result<Service> {
        let dir = tempfile::Builder::new().prefix("argus-bench-").tempdir()?;
        let config_path = dir.path().join("config.toml");
        std::fs::write(
            &config_path,
            render_config(&dir.path().join("data"), settings),
        )?;
        let mut service = Service {
            base: String::new(),
            client: reqwest::Client::builder()
                .no_proxy()
                .pool_max_idle_per_host(256)
                .timeout(Duration::from_secs(60))
                .build()?,
            binary: binary.to_path_buf(),
            log_path: dir.path().join("service.log"),
            config_path,
            child: None,
            admin_token: token(json!({"account_id": ACCOUNT})),
            publisher_token: token(json!({"account_id": "platform", "scope": "webhooks:publish"})),
            _dir: dir,
        };
        service.launch()?;
        Ok(service)
    }

    /// Starts the process and waits for its first stdout line, `listening on http://ADDR`.
    /// Returns the time from spawn to that line.
    pub fn launch(&mut self) -> anyhow::Result<Duration> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)?;
        let started = Instant::now();
        let mut child = Command::new(&self.binary)
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(&self.config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .with_context(|| format!("failed to start {}", self.binary.display()))?;
        let stdout = child.stdout.take().context("the child has no stdout")?;
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = sender.send(line);
            }
            for _ in lines {}
        });
        self.child = Some(child);
        let line = receiver.recv_timeout(START_TIMEOUT).map_err(|_| {
            anyhow::anyhow!(
                "the service did not report its address within {START_TIMEOUT:?}; log:\n{}",
                self.log_tail()
            )
        })?;
        let elapsed = started.elapsed();
        let address = line
            .trim()
            .strip_prefix("listening on http://")
            .with_context(|| format!("unexpected first stdout line: {line}"))?;
        self.base = format!("http://{address}");
        Ok(elapsed)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the process with SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub fn terminate(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM)?;
            child.wait()?;
        }
        Ok(())
    }

    /// Resident memory of the process in KiB (`VmRSS` of /proc/PID/status).
    pub fn rss_kib(&self) -> anyhow::Result<u64> {
        let pid = self.pid().context("the service is not running")?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .context("no VmRSS line in /proc/PID/status")
    }

    /// CPU time of the process so far, user and system, in seconds
    /// (fields 14 and 15 of /proc/PID/stat).
    pub fn cpu_seconds(&self) -> anyhow::Result<f64> {
        let pid = self.pid().context("the service is not running")?;
        process_cpu_seconds(&format!("/proc/{pid}/stat"))
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Sends a request with the account token and returns status and JSON body.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.admin_token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await?;
        let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok((status, value))
    }

    /// Creates a subscription of the benchmark account to `event_type` at `url` and returns its id.
    pub async fn create_subscription(&self, url: &str, event_type: &str) -> anyhow::Result<String> {
        self.create_subscription_with(&self.admin_token, url, event_type)
            .await
    }

    /// Creates a subscription of `account`, with a token made for it, and returns its id.
    pub async fn create_subscription_of(
        &self,
        account: &str,
        url: &str,
        event_type: &str,
    ) -> anyhow::Result<String> {
        let token = token(json!({ "account_id": account }));
        self.create_subscription_with(&token, url, event_type).await
    }

    async fn create_subscription_with(
        &self,
        token: &str,
        url: &str,
        event_type: &str,
    ) -> anyhow::Result<String> {
        let body = json!({"url": url, "eventTypes": [event_type]});
        let response = self
            .client
            .post(format!("{}/v1/subscriptions", self.base))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await?;
        let status = response.status().as_u16();
        let value: Value = serde_json::from_slice(&response.bytes().await?).unwrap_or(Value::Null);
        if status != 201 {
            bail!("creating a subscription failed with {status}: {value}");
        }
        Ok(value["id"].as_str().unwrap_or_default().to_string())
    }

    pub async fn pause(&self, id: &str) -> anyhow::Result<()> {
        self.expect_ok(&format!("/v1/subscriptions/{id}/pause"))
            .await
    }

    pub async fn resume(&self, id: &str) -> anyhow::Result<()> {
        self.expect_ok(&format!("/v1/subscriptions/{id}/resume"))
            .await
    }

    async fn expect_ok(&self, path: &str) -> anyhow::Result<()> {
        let (status, value) = self.call(reqwest::Method::POST, path, None).await?;
        if status != 200 {
            bail!("POST {path} failed with {status}: {value}");
        }
        Ok(())
    }

    /// Publishes one platform event (a serialized body); fails unless 202 or 200.
    pub async fn ingest(&self, body: String) -> anyhow::Result<()> {
        let response = self
            .client
            .post(format!("{}/v1/platform/events", self.base))
            .bearer_auth(&self.publisher_token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await?;
        let status = response.status().as_u16();
        let text = response.bytes().await?;
        if status != 202 && status != 200 {
            bail!(
                "ingest failed with {status}: {}",
                String::from_utf8_lossy(&text)
            );
        }
        Ok(())
    }

    /// Publishes a batch (a serialized JSON array); fails unless every item was accepted.
    pub async fn ingest_batch(&self, body: String, count: usize) -> anyhow::Result<()> {
        let response = self
            .client
            .post(format!("{}/v1/platform/events/batch", self.base))
            .bearer_auth(&self.publisher_token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await?;
        let status = response.status().as_u16();
        let value: Value = serde_json::from_slice(&response.bytes().await?).unwrap_or(Value::Null);
        if status != 200 || value["accepted"].as_u64() != Some(count as u64) {
            bail!(
                "batch ingest failed with {status}: accepted {}, rejected {}",
                value["accepted"],
                value["rejected"]
            );
        }
        Ok(())
    }

    /// Reads one sample of a metric without labels from `/metrics`.
    pub async fn metric(&self, name: &str) -> anyhow::Result<Option<f64>> {
        let text = self
            .client
            .get(format!("{}/metrics", self.base))
            .send()
            .await?
            .text()
            .await?;
        Ok(text.lines().find_map(|line| {
            let rest = line.strip_prefix(name)?;
            rest.strip_prefix(' ')?.trim().parse().ok()
        }))
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.kill();
    }
}

fn token(mut claims: Value) -> String {
    claims["exp"] = json!(chrono::Utc::now().timestamp() + 24 * 3600);
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes())
            .expect("an HMAC key accepts any bytes"),
    )
    .expect("HS256 signing with a fixed secret succeeds")
}

/// Renders the benchmark config: http allowed, only 127.0.0.1 exempt from the
/// SSRF guard, the fixed HS256 secret, warnings-only logs, then `settings`.
fn render_config(data_dir: &Path, settings: &Settings) -> String {
    let mut sections: Vec<(&str, Vec<(&str, String)>)> = Vec::new();
    let defaults: Settings = vec![
        (
            "store",
            "data_dir",
            format!("{:?}", data_dir.display().to_string()),
        ),
        ("auth", "hs256_secret", format!("{JWT_SECRET:?}")),
        ("delivery", "allow_http", "true".into()),
        ("delivery", "ssrf_exempt", r#"["127.0.0.1/32"]"#.into()),
        ("server", "shutdown_grace_seconds", "2".into()),
        ("log", "filter", "\"warn\"".into()),
    ];
    for (section, key, value) in defaults.into_iter().chain(settings.iter().cloned()) {
        let index = match sections.iter().position(|(name, _)| *name == section) {
            Some(index) => index,
            None => {
                sections.push((section, Vec::new()));
                sections.len() - 1
            }
        };
        let pairs = &mut sections[index].1;
        pairs.retain(|(existing, _)| *existing != key);
        pairs.push((key, value));
    }
    let mut text = String::new();
    for (section, pairs) in sections {
        text.push_str(&format!("[{section}]\n"));
        for (key, value) in pairs {
            text.push_str(&format!("{key} = {value}\n"));
        }
    }
    text
}

/// Returns the clock ticks per second of the CPU times in /proc
/// (`getconf CLK_TCK`).
fn clock_ticks() -> anyhow::Result<f64> {
    let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)?
        .context("the system sets no CLK_TCK")?;
    Ok(ticks as f64)
}

/// User and system CPU time, in seconds, of the process whose /proc stat
/// file is `path`.
pub fn process_cpu_seconds(path: &str) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(path)?;
    // The command name in parentheses may contain spaces, so fields are
    // counted from the parenthesis that closes it.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .context("no command name in the stat file")?
        .1
        .split_whitespace()
        .collect();
    // utime and stime are fields 14 and 15, the 12th and 13th after the name.
    let ticks = |i: usize| -> anyhow::Result<f64> {
        Ok(fields.get(i).context("short stat file")?.parse::<f64>()?)
    };
    Ok((ticks(11)? + ticks(12)?) / clock_ticks()?)
}

/// Busy and total CPU time of the whole machine, in clock ticks summed
/// over its cores, from the first line of /proc/stat. Idle and I/O wait
/// count as not busy.
pub fn machine_cpu_ticks() -> anyhow::Result<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let line = stat.lines().next().context("empty /proc/stat")?;
    let values: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    let total: u64 = values.iter().sum();
    let idle = values.get(3).copied().unwrap_or(0) + values.get(4).copied().unwrap_or(0);
    Ok((total - idle, total))
}
