//! Bearer token authentication: HS256 with a shared secret, or RS256/ES256
//! with a PEM public key or a JWKS file. `exp` is required, `nbf` honoured,
//! `iss` and `aud` checked when configured. Without any configured key the
//! service uses a development HS256 key generated into the data dir.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use argus_webhooks_actors::model::AccountId;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::config::AuthSettings;
use crate::problem::ApiError;

/// The scope that allows publishing platform events.
pub const PUBLISH_SCOPE: &str = "webhooks:publish";
const DEV_KEY_FILE: &str = "dev-jwt-secret";

/// The authenticated caller.
#[derive(Clone, Debug)]
pub struct Principal {
    pub account: AccountId,
    pub scopes: Vec<String>,
}

impl Principal {
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    /// Missing is reported by name after the decode, not as a JSON error.
    #[serde(default)]
    pub account_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<ScopeClaim>,
    /// The scope claim under the name `scp`, which some identity providers
    /// issue in place of `scope`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scp: Option<ScopeClaim>,
    /// A NumericDate, which RFC 7519 allows to be fractional. jsonwebtoken
    /// checks it; this field only has to accept it.
    pub exp: serde_json::Number,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<serde_json::Number>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
}

/// A `scope` or `scp` claim: one space-separated string or an array of
/// scope strings, since identity providers issue both shapes.
#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ScopeClaim {
    Text(String),
    List(Vec<String>),
}

impl ScopeClaim {
    fn scopes(&self) -> Vec<String> {
        match self {
            Self::Text(text) => text.split_whitespace().map(str::to_string).collect(),
            Self::List(items) => items
                .iter()
                .flat_map(|item| item.split_whitespace())
                .map(str::to_string)
                .collect(),
        }
    }
}

enum Keys {
    Single(DecodingKey, Vec<Algorithm>),
    Jwks(JwkSet),
}

/// Verifies bearer tokens.
pub struct Authenticator {
    keys: Keys,
    validation: Validation,
}

impl Authenticator {
    pub fn from_settings(
        settings: &AuthSettings,
        data_dir: &Path,
    ) -> anyhow::Result<Authenticator> {
        let keys = if !settings.jwks_file.is_empty() {
            let text = std::fs::read_to_string(&settings.jwks_file)
                .with_context(|| format!("cannot read auth.jwks_file {}", settings.jwks_file))?;
            Keys::Jwks(
                serde_json::from_str(&text).context("auth.jwks_file is not a JWKS document")?,
            )
        } else if !settings.public_key_file.is_empty() {
            let pem = std::fs::read(&settings.public_key_file).with_context(|| {
                format!(
                    "cannot read auth.public_key_file {}",
                    settings.public_key_file
                )
            })?;
            if let Ok(key) = DecodingKey::from_rsa_pem(&pem) {
                Keys::Single(key, vec![Algorithm::RS256])
            } else if let Ok(key) = DecodingKey::from_ec_pem(&pem) {
                Keys::Single(key, vec![Algorithm::ES256])
            } else {
                bail!(
                    "auth.public_key_file contains neither an RSA nor an EC public key in PEM form; check the file"
                );
            }
        } else {
            let secret = hs256_secret(settings, data_dir)?;
            Keys::Single(DecodingKey::from_secret(&secret)?, vec![Algorithm::HS256])
        };
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = match &keys {
            Keys::Single(_, algorithms) => algorithms.clone(),
            Keys::Jwks(_) => vec![Algorithm::RS256, Algorithm::ES256],
        };
        // A configured iss or aud must be present, not only match when present.
        let mut required = vec!["exp"];
        validation.leeway = settings.leeway_seconds;
        validation.validate_nbf = true;
        if settings.issuer.is_empty() {
            validation.iss = None;
        } else {
            validation.set_issuer(&[&settings.issuer]);
            required.push("iss");
        }
        if settings.audience.is_empty() {
            validation.validate_aud = false;
        } else {
            validation.set_audience(&[&settings.audience]);
            required.push("aud");
        }
        validation.set_required_spec_claims(&required);
        Ok(Authenticator { keys, validation })
    }

    /// Checks an `Authorization` header value and returns the caller.
    pub fn authenticate(&self, header: Option<&str>) -> Result<Principal, ApiError> {
        let header = header.ok_or(ApiError::MissingToken)?;
        // The scheme name is case-insensitive (RFC 9110, section 11.1).
        let token = header
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError::InvalidToken("the Authorization header must be 'Bearer <JWT>'".into())
            })?;

        let header = decode_header(token, self.accepted_algorithms())?;
        // One algorithm per decode: jsonwebtoken rejects a validation whose
        // algorithms belong to another key family than the key.
        let mut validation = self.validation.clone();
        validation.algorithms = vec![header.alg];
        let data = match &self.keys {
            Keys::Single(key, _) => jsonwebtoken::decode::<Claims>(token, key, &validation),
            Keys::Jwks(set) => {
                let key = jwks_key(set, &header)?;
                jsonwebtoken::decode::<Claims>(token, &key, &validation)
            }
        }
        .map_err(|e| ApiError::InvalidToken(describe(e.kind())))?;

        let account_id = data.claims.account_id.as_deref().ok_or_else(|| {
            ApiError::InvalidToken("the required claim 'account_id' is missing".into())
        })?;
        let account = AccountId::parse(account_id)
            .map_err(|m| ApiError::InvalidToken(format!("the account_id claim {m}")))?;
        let scopes = [&data.claims.scope, &data.claims.scp]
            .into_iter()
            .flatten()
            .flat_map(ScopeClaim::scopes)
            .collect();
        Ok(Principal { account, scopes })
    }

    fn accepted_algorithms(&self) -> &[Algorithm] {
        match &self.keys {
            Keys::Single(_, algorithms) => algorithms,
            Keys::Jwks(_) => &[Algorithm::RS256, Algorithm::ES256],
        }
    }
}

/// Selects the JWKS key named by the token's `kid` and checks that its key
/// type fits the token's algorithm.
fn jwks_key(set: &JwkSet, header: &Header) -> Result<DecodingKey, ApiError> {
    let kid = header.kid.as_deref().ok_or_else(|| {
        ApiError::InvalidToken("the token has no 'kid' to select a key from the JWKS".into())
    })?;
    let jwk = set.find(kid).ok_or_else(|| {
        ApiError::InvalidToken(format!(
            "no key with kid '{}' is configured",
            truncate_claim(kid)
        ))
    })?;
    let matches_key = matches!(
        (&jwk.algorithm, header.alg),
        (AlgorithmParameters::RSA(_), Algorithm::RS256)
            | (AlgorithmParameters::EllipticCurve(_), Algorithm::ES256)
    );
    if !matches_key {
        return Err(ApiError::InvalidToken(format!(
            "the token's algorithm '{:?}' does not match the key with kid '{kid}'",
            header.alg
        )));
    }
    DecodingKey::from_jwk(jwk).map_err(|e| ApiError::InvalidToken(describe(e.kind())))
}

/// Decodes the token header and checks its `alg` before any key is used, so
/// `alg: none` and algorithm confusion fail with a message naming the algorithm.
fn decode_header(token: &str, accepted: &[Algorithm]) -> Result<Header, ApiError> {
    let names = || {
        accepted
            .iter()
            .map(|a| format!("{a:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let header = match jsonwebtoken::decode_header(token) {
        Ok(header) => header,
        Err(error) => {
            // jsonwebtoken cannot parse a header whose alg it does not know,
            // such as "none", so read the alg from the raw JSON to name it.
            return Err(ApiError::InvalidToken(match raw_alg(token) {
                Some(alg) => format!(
                    "the token's algorithm '{}' is not accepted by this service (accepted: {})",
                    truncate_claim(&alg),
                    names()
                ),
                None => describe(error.kind()),
            }));
        }
    };
    if !accepted.contains(&header.alg) {
        return Err(ApiError::InvalidToken(format!(
            "the token's algorithm '{:?}' is not accepted by this service (accepted: {})",
            header.alg,
            names()
        )));
    }
    Ok(header)
}

fn raw_alg(token: &str) -> Option<String> {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let encoded = token.split('.').next()?;
    let bytes = URL_SAFE_NO_PAD.decode(encoded.trim_end_matches('=')).ok()?;
    let header: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    header.get("alg")?.as_str().map(str::to_string)
}

fn truncate_claim(value: &str) -> String {
    value.chars().take(16).collect()
}

fn describe(kind: &ErrorKind) -> String {
    match kind {
        ErrorKind::ExpiredSignature => "the token has expired".into(),
        ErrorKind::ImmatureSignature => "the token is not valid yet (nbf is in the future)".into(),
        ErrorKind::InvalidSignature => "the signature does not match the configured key".into(),
        ErrorKind::InvalidAlgorithm
        | ErrorKind::InvalidAlgorithmName
        | ErrorKind::UnsupportedAlgorithm => {
            "the token's algorithm is not accepted by this service".into()
        }
        ErrorKind::InvalidIssuer => "the iss claim does not match the configured issuer".into(),
        ErrorKind::InvalidAudience => "the aud claim does not match the configured audience".into(),
        ErrorKind::MissingRequiredClaim(claim) => {
            format!("the required claim '{claim}' is missing")
        }
        ErrorKind::InvalidClaimFormat(claim) => format!("the claim '{claim}' has the wrong format"),
        ErrorKind::Json(_) => {
            "the token's claims are invalid (account_id must be a string, exp and iat numbers, scope a string or an array of strings)".into()
        }
        _ => "the token is malformed: expected a JWT of three base64url parts".into(),
    }
}

/// Returns the HS256 secret: the configured one, or the development key in
/// the data dir, created on first use.
pub fn hs256_secret(settings: &AuthSettings, data_dir: &Path) -> anyhow::Result<Vec<u8>> {
    if !settings.hs256_secret.is_empty() {
        return Ok(settings.hs256_secret.as_bytes().to_vec());
    }
    let path = dev_key_path(data_dir);
    if let Ok(text) = std::fs::read_to_string(&path) {
        return BASE64
            .decode(text.trim())
            .with_context(|| format!("the development key {} is not base64", path.display()));
    }
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    let key: [u8; 32] = rand::random();
    write_private(&path, BASE64.encode(key).as_bytes())?;
    tracing::info!(path = %path.display(), "generated a development JWT key");
    Ok(key.to_vec())
}

/// Returns the HS256 secret for a command that signs tokens. When it has to
/// create the development key, it prints a note on stderr: a service on
/// another data dir has another key and rejects the tokens with 401.
pub fn signing_secret(settings: &AuthSettings, data_dir: &Path) -> anyhow::Result<Vec<u8>> {
    let path = dev_key_path(data_dir);
    let creates_key = settings.hs256_secret.is_empty() && !path.exists();
    let secret = hs256_secret(settings, data_dir)?;
    if creates_key {
        eprintln!(
            "note: created a new development key at {}. Only a service started on the data dir {} accepts the tokens signed with it; pass --data-dir to use a running service's key.",
            path.display(),
            data_dir.display()
        );
    }
    Ok(secret)
}

fn dev_key_path(data_dir: &Path) -> PathBuf {
    data_dir.join(DEV_KEY_FILE)
}

fn write_private(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(contents)?;
    Ok(())
}

/// Signs a token for `account` with the HS256 secret.
pub fn issue_token(
    secret: &[u8],
    account: &str,
    scope: Option<&str>,
    ttl_seconds: i64,
) -> anyhow::Result<String> {
    AccountId::parse(account).map_err(|m| anyhow::anyhow!("--account {m}"))?;
    let now = chrono::Utc::now().timestamp();
    let claims = Claims {
        account_id: Some(account.to_string()),
        scope: scope.map(|scope| ScopeClaim::Text(scope.to_string())),
        scp: None,
        exp: (now + ttl_seconds).into(),
        iat: Some(now.into()),
        sub: None,
    };
    Ok(jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret)?,
    )?)
}
