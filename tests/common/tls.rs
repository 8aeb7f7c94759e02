//! HTTPS for integration tests: a test certificate authority made with rcgen,
//! and an HTTPS receiver on loopback built from tokio-rustls and hyper (warp
//! 0.4 has no TLS server). Include it next to `common` with
//! `#[path = "common/tls.rs"] mod tls;`.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;

use crate::common::{Received, Reply};

/// A certificate authority that exists only for one test.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A leaf certificate and its key, ready for a rustls server.
pub struct ServerIdentity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        TestCa { issuer }
    }

    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// Writes the CA certificate as PEM into `dir` and returns the path.
    pub fn write_pem(&self, dir: &Path) -> PathBuf {
        let path = dir.join(format!("test-ca-{}.pem", uuid::Uuid::new_v4().simple()));
        std::fs::write(&path, self.pem()).unwrap();
        path
    }

    /// Issues a server certificate for 127.0.0.1, ::1 and localhost.
    pub fn issue_server(&self) -> ServerIdentity {
        let names = vec![
            "127.0.0.1".to_string(),
            "::1".to_string(),
            "localhost".to_string(),
        ];
        let params = CertificateParams::new(names).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        ServerIdentity {
            chain: vec![cert.der().clone()],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        }
    }
}

#[derive(Default)]
struct TlsState {
    requests: Vec<Received>,
    verifications: Vec<Received>,
    script: VecDeque<Reply>,
    /// TCP connections held without a TLS handshake while `stall` is set.
    stalled: Vec<tokio::net::TcpStream>,
}

/// An HTTPS receiver on 127.0.0.1. It responds to verification challenges
/// itself and closes that connection afterwards, so every delivery opens a
/// new connection with its own handshake. Deliveries get the scripted
/// replies, then 200.
#[derive(Clone)]
pub struct TlsReceiver {
    pub url: String,
    pub addr: SocketAddr,
    state: Arc<Mutex<TlsState>>,
    stall: Arc<AtomicBool>,
    handshakes_failed: Arc<AtomicUsize>,
    acceptor: Arc<Mutex<tokio_rustls::TlsAcceptor>>,
}

fn acceptor_for(identity: ServerIdentity) -> tokio_rustls::TlsAcceptor {
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(identity.chain, identity.key)
        .expect("a valid server certificate");
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

impl TlsReceiver {
    pub async fn start(identity: ServerIdentity) -> TlsReceiver {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("the TLS receiver binds");
        let addr = listener.local_addr().unwrap();
        let receiver = TlsReceiver {
            url: format!("https://{addr}/hooks"),
            addr,
            state: Arc::new(Mutex::new(TlsState::default())),
            stall: Arc::new(AtomicBool::new(false)),
            handshakes_failed: Arc::new(AtomicUsize::new(0)),
            acceptor: Arc::new(Mutex::new(acceptor_for(identity))),
        };
        let shared = receiver.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                if shared.stall.load(Ordering::SeqCst) {
                    shared.state.lock().unwrap().stalled.push(stream);
                    continue;
                }
                let acceptor = shared.acceptor.lock().unwrap().clone();
                let shared = shared.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(stream).await else {
                        shared.handshakes_failed.fetch_add(1, Ordering::SeqCst);
                        return;
                    };
                    let service = service_fn(move |request| {
                        let shared = shared.clone();
                        async move { Ok::<_, Infallible>(shared.answer(request).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        receiver
    }

    /// Queues replies for the next deliveries, in order.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.state.lock().unwrap().script.extend(replies);
    }

    /// Presents `identity` in the handshakes of new connections.
    pub fn set_identity(&self, identity: ServerIdentity) {
        *self.acceptor.lock().unwrap() = acceptor_for(identity);
    }

    /// From now on, accepts TCP connections but never starts the TLS handshake.
    pub fn stall_handshakes(&self) {
        self.stall.store(true, Ordering::SeqCst);
    }

    pub fn stalled_connections(&self) -> usize {
        self.state.lock().unwrap().stalled.len()
    }

    /// Handshakes that failed, such as those a client ended because it does
    /// not trust the certificate.
    pub fn handshakes_failed(&self) -> usize {
        self.handshakes_failed.load(Ordering::SeqCst)
    }

    pub fn requests(&self) -> Vec<Received> {
        self.state.lock().unwrap().requests.clone()
    }

    pub fn verifications(&self) -> Vec<Received> {
        self.state.lock().unwrap().verifications.clone()
    }

    async fn answer(
        &self,
        request: hyper::Request<hyper::body::Incoming>,
    ) -> hyper::Response<Full<Bytes>> {
        let path = request.uri().path().to_string();
        let headers = request
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        let body = request
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let received = Received {
            path,
            headers,
            body: body.clone(),
            at: Instant::now(),
        };
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        if json["type"] == "webhook.verification" {
            self.state.lock().unwrap().verifications.push(received);
            let challenge = json["challenge"].as_str().unwrap_or("").to_string();
            let answer = serde_json::json!({ "challenge": challenge }).to_string();
            return hyper::Response::builder()
                .status(200)
                .header("content-type", "application/json")
                .header("connection", "close")
                .body(Full::new(Bytes::from(answer)))
                .unwrap();
        }
        let reply = {
            let mut state = self.state.lock().unwrap();
            state.requests.push(received);
            state.script.pop_front().unwrap_or_else(Reply::ok)
        };
        if !reply.delay.is_zero() {
            tokio::time::sleep(reply.delay).await;
        }
        let mut response = hyper::Response::builder().status(reply.status);
        for (name, value) in &reply.headers {
            response = response.header(name.as_str(), value.as_str());
        }
        response.body(Full::new(Bytes::from(reply.body))).unwrap()
    }
}
