//! Bearer token checks against the real binary: HS256, RS256 and ES256 with
//! PEM keys, JWKS selected by `kid`, and every way a token can be rejected.
//! Keys are generated here with rcgen; nothing is read from fixtures.

mod common;

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use common::*;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use warp::http::StatusCode;

struct KeyPair {
    private_pem: String,
    public_pem: String,
}

fn generate(algorithm: &'static rcgen::SignatureAlgorithm) -> KeyPair {
    let pair = rcgen::KeyPair::generate_for(algorithm).expect("key generation");
    KeyPair {
        private_pem: pair.serialize_pem(),
        public_pem: pair.public_key_pem(),
    }
}

fn rsa() -> KeyPair {
    generate(&rcgen::PKCS_RSA_SHA256)
}

fn ec() -> KeyPair {
    generate(&rcgen::PKCS_ECDSA_P256_SHA256)
}

fn encoding_key(key: &KeyPair, algorithm: Algorithm) -> EncodingKey {
    match algorithm {
        Algorithm::RS256 => EncodingKey::from_rsa_pem(key.private_pem.as_bytes()).unwrap(),
        Algorithm::ES256 => EncodingKey::from_ec_pem(key.private_pem.as_bytes()).unwrap(),
        other => panic!("no key type for {other:?}"),
    }
}

fn valid_claims() -> Value {
    json!({"account_id": "acme-capital", "exp": now() + 600})
}

fn sign(key: &KeyPair, algorithm: Algorithm, kid: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(algorithm);
    header.kid = kid.map(str::to_string);
    jsonwebtoken::encode(&header, claims, &encoding_key(key, algorithm)).unwrap()
}

fn sign_hs256(secret: &[u8], claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret).unwrap(),
    )
    .unwrap()
}

/// Builds a token with `alg: none` and no signature.
fn unsigned(claims: &Value) -> String {
    let header = B64URL.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = B64URL.encode(claims.to_string());
    format!("{header}.{payload}.")
}

fn write(dir: &Path, name: &str, contents: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    format!("{:?}", path.display().to_string())
}

async fn start_with_auth(settings: &[(&str, String)]) -> TestApp {
    let mut config = AppConfig::default();
    for (key, literal) in settings {
        config.set("auth", key, literal);
    }
    TestApp::start_with(config).await
}

/// Calls an authenticated route with a raw `Authorization` value.
async fn call(app: &TestApp, authorization: Option<&str>) -> (StatusCode, String, Value) {
    let mut request = app.client.get(format!("{}/v1/subscriptions", app.base));
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    let response = request.send().await.unwrap();
    let status = StatusCode::from_u16(response.status().as_u16()).unwrap();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = response.text().await.unwrap();
    let problem = serde_json::from_str(&body).unwrap_or(Value::String(body));
    (status, challenge, problem)
}

/// Asserts a 401 with `error="invalid_token"` whose detail contains `reason`
/// and which does not echo the token.
async fn assert_rejected(app: &TestApp, token: &str, reason: &str) {
    let (status, challenge, problem) = call(app, Some(&format!("Bearer {token}"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{reason}: {problem}");
    assert!(challenge.starts_with("Bearer"), "{reason}: {challenge}");
    assert!(
        challenge.contains(r#"error="invalid_token""#),
        "{reason}: {challenge}"
    );
    let detail = problem["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains(reason),
        "expected '{reason}' in the detail: {problem}"
    );
    assert_eq!(problem["status"], 401);
    let text = problem.to_string();
    for part in token.split('.').filter(|p| p.len() > 8) {
        assert!(!text.contains(part), "the problem echoes the token: {text}");
    }
}

async fn assert_accepted(app: &TestApp, token: &str) {
    let (status, _, body) = call(app, Some(&format!("Bearer {token}"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn rs256_public_key_checks() {
    let dir = tempfile::tempdir().unwrap();
    let key = rsa();
    let other = rsa();
    let app = start_with_auth(&[(
        "public_key_file",
        write(dir.path(), "rsa.pem", &key.public_pem),
    )])
    .await;

    assert_accepted(&app, &sign(&key, Algorithm::RS256, None, &valid_claims())).await;
    assert_rejected(
        &app,
        &sign(&other, Algorithm::RS256, None, &valid_claims()),
        "signature",
    )
    .await;
    assert_rejected(
        &app,
        &sign(&ec(), Algorithm::ES256, None, &valid_claims()),
        "algorithm",
    )
    .await;
    assert_rejected(&app, &unsigned(&valid_claims()), "algorithm").await;
    // Algorithm confusion: an HS256 token keyed with the RSA public key bytes.
    let confused = sign_hs256(key.public_pem.as_bytes(), &valid_claims());
    assert_rejected(&app, &confused, "algorithm").await;
    let expired = json!({"account_id": "acme-capital", "exp": now() - 3600});
    assert_rejected(
        &app,
        &sign(&key, Algorithm::RS256, None, &expired),
        "expired",
    )
    .await;
    let not_yet = json!({"account_id": "acme-capital", "exp": now() + 7200, "nbf": now() + 3600});
    assert_rejected(&app, &sign(&key, Algorithm::RS256, None, &not_yet), "nbf").await;
    let no_exp = json!({"account_id": "acme-capital"});
    assert_rejected(&app, &sign(&key, Algorithm::RS256, None, &no_exp), "exp").await;
    let bad_account = json!({"account_id": "", "exp": now() + 600});
    assert_rejected(
        &app,
        &sign(&key, Algorithm::RS256, None, &bad_account),
        "account_id",
    )
    .await;
}

#[tokio::test]
async fn leeway_accepts_small_skew() {
    let dir = tempfile::tempdir().unwrap();
    let key = rsa();
    let app = start_with_auth(&[
        (
            "public_key_file",
            write(dir.path(), "rsa.pem", &key.public_pem),
        ),
        ("leeway_seconds", "60".into()),
    ])
    .await;
    let just_expired = json!({"account_id": "acme-capital", "exp": now() - 10});
    assert_accepted(&app, &sign(&key, Algorithm::RS256, None, &just_expired)).await;
    let long_expired = json!({"account_id": "acme-capital", "exp": now() - 120});
    assert_rejected(
        &app,
        &sign(&key, Algorithm::RS256, None, &long_expired),
        "expired",
    )
    .await;
}

#[tokio::test]
async fn es256_public_key_checks() {
    let dir = tempfile::tempdir().unwrap();
    let key = ec();
    let app = start_with_auth(&[(
        "public_key_file",
        write(dir.path(), "ec.pem", &key.public_pem),
    )])
    .await;
    assert_accepted(&app, &sign(&key, Algorithm::ES256, None, &valid_claims())).await;
    assert_rejected(
        &app,
        &sign(&ec(), Algorithm::ES256, None, &valid_claims()),
        "signature",
    )
    .await;
    assert_rejected(
        &app,
        &sign(&rsa(), Algorithm::RS256, None, &valid_claims()),
        "algorithm",
    )
    .await;
    let confused = sign_hs256(key.public_pem.as_bytes(), &valid_claims());
    assert_rejected(&app, &confused, "algorithm").await;
}

#[tokio::test]
async fn jwks_selects_key_by_kid() {
    let dir = tempfile::tempdir().unwrap();
    let rsa_key = rsa();
    let ec_key = ec();
    let mut rsa_jwk =
        Jwk::from_encoding_key(&encoding_key(&rsa_key, Algorithm::RS256), Algorithm::RS256)
            .unwrap();
    rsa_jwk.common.key_id = Some("rsa-1".into());
    let mut ec_jwk =
        Jwk::from_encoding_key(&encoding_key(&ec_key, Algorithm::ES256), Algorithm::ES256).unwrap();
    ec_jwk.common.key_id = Some("ec-1".into());
    let set = JwkSet {
        keys: vec![rsa_jwk, ec_jwk],
    };
    let app = start_with_auth(&[(
        "jwks_file",
        write(
            dir.path(),
            "jwks.json",
            &serde_json::to_string(&set).unwrap(),
        ),
    )])
    .await;

    let claims = valid_claims();
    assert_accepted(
        &app,
        &sign(&rsa_key, Algorithm::RS256, Some("rsa-1"), &claims),
    )
    .await;
    assert_accepted(
        &app,
        &sign(&ec_key, Algorithm::ES256, Some("ec-1"), &claims),
    )
    .await;
    assert_rejected(
        &app,
        &sign(&rsa_key, Algorithm::RS256, Some("rsa-9"), &claims),
        "kid",
    )
    .await;
    assert_rejected(
        &app,
        &sign(&rsa_key, Algorithm::RS256, None, &claims),
        "kid",
    )
    .await;
    // The right kid with another key's signature.
    assert_rejected(
        &app,
        &sign(&rsa(), Algorithm::RS256, Some("rsa-1"), &claims),
        "signature",
    )
    .await;
    // The EC key's kid on an RS256 token.
    assert_rejected(
        &app,
        &sign(&rsa_key, Algorithm::RS256, Some("ec-1"), &claims),
        "algorithm",
    )
    .await;
    assert_rejected(&app, &unsigned(&claims), "algorithm").await;
    let confused = sign_hs256(rsa_key.public_pem.as_bytes(), &claims);
    assert_rejected(&app, &confused, "algorithm").await;
}

#[tokio::test]
async fn issuer_and_audience_checked_when_configured() {
    let app = start_with_auth(&[
        ("issuer", "\"https://id.argus.example\"".into()),
        ("audience", "\"argus-webhooks\"".into()),
    ])
    .await;
    let secret = TEST_JWT_SECRET.as_bytes();
    let good = json!({"account_id": "acme-capital", "exp": now() + 600,
        "iss": "https://id.argus.example", "aud": "argus-webhooks"});
    assert_accepted(&app, &sign_hs256(secret, &good)).await;
    let mut wrong_iss = good.clone();
    wrong_iss["iss"] = json!("https://elsewhere.example");
    assert_rejected(&app, &sign_hs256(secret, &wrong_iss), "iss").await;
    let mut wrong_aud = good.clone();
    wrong_aud["aud"] = json!("another-service");
    assert_rejected(&app, &sign_hs256(secret, &wrong_aud), "aud").await;
    let mut no_iss = good.clone();
    no_iss.as_object_mut().unwrap().remove("iss");
    assert_rejected(&app, &sign_hs256(secret, &no_iss), "iss").await;
    let mut no_aud = good.clone();
    no_aud.as_object_mut().unwrap().remove("aud");
    assert_rejected(&app, &sign_hs256(secret, &no_aud), "aud").await;
}

#[tokio::test]
async fn hs256_rejections() {
    let app = TestApp::start().await;
    assert_accepted(&app, &app.token("acme-capital")).await;
    assert_rejected(
        &app,
        &sign_hs256(b"another-secret-0123456789abcdef", &valid_claims()),
        "signature",
    )
    .await;
    assert_rejected(&app, &unsigned(&valid_claims()), "algorithm").await;
    assert_rejected(
        &app,
        &sign(&rsa(), Algorithm::RS256, None, &valid_claims()),
        "algorithm",
    )
    .await;
    let expired = json!({"account_id": "acme-capital", "exp": now() - 3600});
    assert_rejected(
        &app,
        &sign_hs256(TEST_JWT_SECRET.as_bytes(), &expired),
        "expired",
    )
    .await;
    assert_rejected(&app, "not-a-jwt", "malformed").await;
    assert_rejected(&app, "a.b.c", "malformed").await;
}

#[tokio::test]
async fn missing_or_malformed_header() {
    let app = TestApp::start().await;
    let token = app.token("acme-capital");
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let (status, _, body) = call(&app, Some(&format!("{scheme} {token}"))).await;
        assert_eq!(status, StatusCode::OK, "{scheme}: {body}");
    }

    let (status, challenge, problem) = call(&app, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(challenge.starts_with("Bearer"), "{challenge}");
    assert!(!challenge.contains("error="), "{challenge}");
    assert_eq!(problem["status"], 401);

    for header in [
        format!("Basic {token}"),
        format!("Token {token}"),
        "Bearer".to_string(),
        "Bearer    ".to_string(),
        token.clone(),
    ] {
        let (status, challenge, problem) = call(&app, Some(&header)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{header}: {problem}");
        assert!(
            challenge.contains(r#"error="invalid_token""#),
            "{header}: {challenge}"
        );
        let detail = problem["detail"].as_str().unwrap_or_default();
        assert!(detail.contains("Bearer"), "{header}: {problem}");
        assert!(
            !problem.to_string().contains(&token[token.len() - 20..]),
            "{problem}"
        );
    }
}

#[tokio::test]
async fn public_routes_need_no_token() {
    let app = TestApp::start().await;
    for path in ["/v1/health", "/v1/openapi.json", "/metrics"] {
        let response = app
            .client
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200, "{path}");
    }
}
