//! Standard Webhooks signatures: HMAC-SHA256 over `"{id}.{timestamp}.{body}"`,
//! sent as `v1,<base64>` in the `webhook-signature` header.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::model::SigningSecret;

type HmacSha256 = Hmac<Sha256>;

/// Returns the base64 signature of one message.
pub fn sign(secret: &SigningSecret, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    BASE64.encode(
        message_mac(secret, msg_id, timestamp, body)
            .finalize()
            .into_bytes(),
    )
}

/// Feeds `"{id}.{timestamp}.{body}"` into an HMAC keyed with the secret.
fn message_mac(secret: &SigningSecret, msg_id: &str, timestamp: i64, body: &[u8]) -> HmacSha256 {
    let mut mac =
        HmacSha256::new_from_slice(secret.key()).expect("HMAC accepts keys of any length");
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// Returns the `webhook-signature` header value: one `v1,` signature per
/// secret, separated by spaces.
pub fn signature_header(
    secrets: &[SigningSecret],
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    secrets
        .iter()
        .map(|secret| format!("v1,{}", sign(secret, msg_id, timestamp, body)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Checks a `webhook-signature` header against a secret in constant time.
/// Timestamp tolerance is the caller's decision.
pub fn verify(
    secret: &SigningSecret,
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
    header: &str,
) -> bool {
    header.split(' ').any(|part| {
        let Some(encoded) = part.strip_prefix("v1,") else {
            return false;
        };
        let Ok(expected) = BASE64.decode(encoded) else {
            return false;
        };
        message_mac(secret, msg_id, timestamp, body)
            .verify_slice(&expected)
            .is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Known answer from the Standard Webhooks specification's example.
    #[test]
    fn known_answer() {
        let secret = SigningSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let signature = sign(
            &secret,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(signature, "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn verify_accepts_any_listed_signature() {
        let old = SigningSecret::generate();
        let new = SigningSecret::generate();
        let header = signature_header(&[new.clone(), old.clone()], "id", 5, b"{}");
        assert!(verify(&old, "id", 5, b"{}", &header));
        assert!(verify(&new, "id", 5, b"{}", &header));
        assert!(!verify(&SigningSecret::generate(), "id", 5, b"{}", &header));
        assert!(!verify(&new, "id", 6, b"{}", &header));
    }
}
