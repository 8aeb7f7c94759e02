//! `argus-webhooks publish`: sends platform events from a file to the batch
//! ingest endpoint and prints a summary.

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;

use crate::auth::{PUBLISH_SCOPE, issue_token, signing_secret};
use crate::cli::PublishArgs;
use crate::config::Settings;

/// Reads a JSON object, a JSON array or JSON Lines.
pub fn read_events(text: &str) -> anyhow::Result<Vec<Value>> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('[') {
        return serde_json::from_str(trimmed)
            .context("the file starts with '[' but is not a JSON array");
    }
    if let Ok(Value::Object(object)) = serde_json::from_str::<Value>(trimmed) {
        return Ok(vec![Value::Object(object)]);
    }
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(number, line)| {
            serde_json::from_str(line).with_context(|| format!("line {} is not JSON", number + 1))
        })
        .collect()
}

pub async fn run(args: PublishArgs) -> anyhow::Result<()> {
    if !(1..=500).contains(&args.batch_size) {
        bail!("--batch-size must be from 1 to 500");
    }
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let events = read_events(&text)?;
    let token = match args.token {
        Some(token) => token,
        None => local_token(args.data_dir)?,
    };
    let endpoint = format!(
        "{}/v1/platform/events/batch",
        args.url.trim_end_matches('/')
    );
    let client = reqwest::Client::builder().no_proxy().build()?;

    let progress = ProgressBar::new(events.len() as u64);
    progress.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} events ({per_sec}, {eta} left)")
            .expect("the template is valid"),
    );
    let (mut accepted, mut duplicates, mut rejected, mut deliveries) = (0u64, 0u64, 0u64, 0u64);
    let mut problems = Vec::new();
    for (chunk_index, chunk) in events.chunks(args.batch_size).enumerate() {
        let response = client
            .post(&endpoint)
            .bearer_auth(&token)
            .json(&chunk)
            .send()
            .await
            .with_context(|| format!("cannot reach {endpoint}"))?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            progress.abandon();
            bail!(
                "the service responded with {status}: {}",
                body.get("detail").and_then(Value::as_str).unwrap_or("")
            );
        }
        for item in body["results"].as_array().into_iter().flatten() {
            match item["status"].as_u64() {
                Some(202) => {
                    accepted += 1;
                    deliveries += item["deliveries"].as_u64().unwrap_or(0);
                }
                Some(200) => duplicates += 1,
                _ => {
                    rejected += 1;
                    let line = chunk_index * args.batch_size
                        + item["index"].as_u64().unwrap_or(0) as usize
                        + 1;
                    let detail = item["problem"]["detail"]
                        .as_str()
                        .unwrap_or("rejected")
                        .to_string();
                    problems.push(format!("event {line}: {detail}"));
                }
            }
        }
        progress.inc(chunk.len() as u64);
    }
    progress.finish();
    println!(
        "{} events: {accepted} accepted ({deliveries} deliveries queued), {duplicates} duplicates, {rejected} rejected",
        events.len()
    );
    for problem in problems.iter().take(20) {
        println!("  {problem}");
    }
    if rejected > 0 {
        bail!("{rejected} events were rejected");
    }
    Ok(())
}

fn local_token(data_dir: Option<PathBuf>) -> anyhow::Result<String> {
    let mut settings = Settings::load(None)?;
    if let Some(dir) = data_dir {
        settings.store.data_dir = dir;
    }
    let secret = signing_secret(&settings.auth, &settings.store.data_dir)?;
    issue_token(&secret, "platform", Some(PUBLISH_SCOPE), 3600)
}

#[cfg(test)]
mod tests {
    use super::read_events;

    #[test]
    fn reads_every_format() {
        assert_eq!(read_events(r#"{"a":1}"#).unwrap().len(), 1);
        assert_eq!(read_events(r#"[{"a":1},{"a":2}]"#).unwrap().len(), 2);
        assert_eq!(read_events("{\"a\":1}\n\n{\"a\":2}\n").unwrap().len(), 2);
        assert!(read_events("{\"a\":1}\nnot json\n").is_err());
    }
}
