//! `argus-webhooks token`: prints a signed bearer token.

use anyhow::{Context as _, bail};

use crate::auth::{issue_token, signing_secret};
use crate::cli::TokenArgs;
use crate::config::Settings;

pub fn run(args: TokenArgs) -> anyhow::Result<()> {
    let mut settings = Settings::load(args.config.as_deref())?;
    if let Some(dir) = args.data_dir {
        settings.store.data_dir = dir;
    }
    if !settings.auth.public_key_file.is_empty() || !settings.auth.jwks_file.is_empty() {
        bail!(
            "the service verifies RS256/ES256 tokens from an external issuer; this command can only sign HS256 tokens"
        );
    }
    let ttl = parse_ttl(&args.ttl).with_context(|| format!("invalid --ttl '{}'", args.ttl))?;
    let secret = signing_secret(&settings.auth, &settings.store.data_dir)?;
    println!(
        "{}",
        issue_token(&secret, &args.account, args.scope.as_deref(), ttl)?
    );
    Ok(())
}

/// Parses durations such as `90s`, `30m`, `12h` or `7d` into seconds.
pub fn parse_ttl(raw: &str) -> anyhow::Result<i64> {
    let raw = raw.trim();
    let split = raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len());
    let (number, unit) = raw.split_at(split);
    let number: i64 = number
        .parse()
        .context("expected a number followed by s, m, h or d")?;
    let factor = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => bail!("unknown unit '{unit}'; use s, m, h or d"),
    };
    if number <= 0 {
        bail!("the lifetime must be positive");
    }
    Ok(number * factor)
}

#[cfg(test)]
mod tests {
    use super::parse_ttl;

    #[test]
    fn ttl_units() {
        assert_eq!(parse_ttl("90").unwrap(), 90);
        assert_eq!(parse_ttl("30m").unwrap(), 1800);
        assert_eq!(parse_ttl("7d").unwrap(), 604_800);
        assert!(parse_ttl("5w").is_err());
        assert!(parse_ttl("0h").is_err());
    }
}
