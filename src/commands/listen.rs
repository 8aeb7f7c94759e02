//! `argus-webhooks listen`: a local receiver for integrators. It responds to the
//! verification challenge, checks every signature and prints each event.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use argus_webhooks_actors::model::SigningSecret;
use argus_webhooks_actors::signing;
use bytes::Bytes;
use warp::Filter;
use warp::http::{HeaderMap, StatusCode};

use crate::cli::ListenArgs;

struct Receiver {
    secret: SigningSecret,
    tolerance: i64,
}

pub async fn run(args: ListenArgs) -> anyhow::Result<()> {
    let secret = match &args.secret {
        Some(raw) => SigningSecret::parse(raw).map_err(|m| anyhow::anyhow!("--secret {m}"))?,
        None => {
            let secret = SigningSecret::generate();
            println!("secret: {}", secret.expose());
            println!("pass it as \"secret\" when you create the subscription");
            secret
        }
    };
    let receiver = Arc::new(Receiver {
        secret,
        tolerance: args.tolerance,
    });
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], args.port)))
        .await
        .with_context(|| format!("cannot listen on 127.0.0.1:{}", args.port))?;
    println!("listening on http://{}", listener.local_addr()?);
    let route = warp::post()
        .and(warp::header::headers_cloned())
        .and(warp::body::content_length_limit(4 * 1024 * 1024))
        .and(warp::body::bytes())
        .map(move |headers: HeaderMap, body: Bytes| receiver.receive(&headers, &body));
    warp::serve(route)
        .incoming(listener)
        .graceful(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .run()
        .await;
    Ok(())
}

impl Receiver {
    fn receive(&self, headers: &HeaderMap, body: &[u8]) -> warp::reply::WithStatus<String> {
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string()
        };
        let msg_id = header("webhook-id");
        let timestamp: i64 = header("webhook-timestamp").parse().unwrap_or(0);
        let signature = header("webhook-signature");
        let skew = (chrono::Utc::now().timestamp() - timestamp).abs();
        if skew > self.tolerance {
            println!("REJECTED {msg_id}: webhook-timestamp is {skew} s away from now");
            return warp::reply::with_status(
                "timestamp outside tolerance".into(),
                StatusCode::UNAUTHORIZED,
            );
        }
        if !signing::verify(&self.secret, &msg_id, timestamp, body, &signature) {
            println!("REJECTED {msg_id}: the signature does not match the secret");
            return warp::reply::with_status("invalid signature".into(), StatusCode::UNAUTHORIZED);
        }
        let json: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
        if json["type"] == "webhook.verification" {
            let challenge = json["challenge"].as_str().unwrap_or("").to_string();
            println!("verification request answered (webhook-id {msg_id})");
            return warp::reply::with_status(
                serde_json::json!({ "challenge": challenge }).to_string(),
                StatusCode::OK,
            );
        }
        println!(
            "{} {} {} resource {} (webhook-id {msg_id}, signature valid)",
            json["timestamp"].as_str().unwrap_or("-"),
            json["eventType"].as_str().unwrap_or("-"),
            json["eventId"].as_str().unwrap_or("-"),
            json["resourceId"].as_str().unwrap_or("-"),
        );
        warp::reply::with_status(String::new(), StatusCode::OK)
    }
}
