//! The listener: HTTPS with a CA generated at start (or plain HTTP), HTTP/1.1 and HTTP/2, with
//! the virtual clock in every response's `Date` header.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use crate::cluster::Shared;

/// A running listener.
pub struct Server {
    /// Bound address.
    pub addr: SocketAddr,
    /// PEM of the CA that signed the server certificate (HTTPS only).
    pub ca_pem: Option<String>,
    task: JoinHandle<()>,
}

impl Server {
    /// `https://127.0.0.1:PORT` or `http://...`.
    #[must_use]
    pub fn url(&self) -> String {
        let scheme = if self.ca_pem.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.addr)
    }

    /// Stops accepting and drops every open connection (watches included).
    pub fn abort(&self) {
        self.task.abort();
    }
}

/// A fresh CA and a server certificate for `127.0.0.1` and `localhost` signed by it.
fn tls_material() -> anyhow::Result<(String, rustls::ServerConfig)> {
    let ca_key = rcgen::KeyPair::generate()?;
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "opsteps-sandbox-ca");
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = rcgen::Issuer::from_params(&ca_params, &ca_key);

    let key = rcgen::KeyPair::generate()?;
    let mut params =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "kube-apiserver");
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.signed_by(&key, &issuer)?;

    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(
            vec![
                CertificateDer::from(cert.der().to_vec()),
                CertificateDer::from(ca_cert.der().to_vec()),
            ],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok((ca_cert.pem(), config))
}

/// An RFC 7231 IMF-fixdate (`Thu, 26 Nov 2026 10:00:00 GMT`), the `Date` header's format.
#[must_use]
pub fn http_date(t: jiff::Timestamp) -> String {
    t.strftime("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

/// Binds `127.0.0.1:port` (0 = any free port) and serves the API until `shutdown`.
pub async fn start(
    shared: Shared,
    tls: bool,
    port: u16,
    shutdown: CancellationToken,
) -> anyhow::Result<Server> {
    let listener = TcpListener::bind(("127.0.0.1", port))
        .await
        .with_context(|| format!("binding 127.0.0.1:{port}"))?;
    let addr = listener.local_addr()?;
    std::thread::spawn(crate::api::fields::warm);
    let (ca_pem, acceptor) = if tls {
        let (pem, config) = tls_material().context("generating the sandbox CA")?;
        (
            Some(pem),
            Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))),
        )
    } else {
        (None, None)
    };
    let task = tokio::spawn(async move {
        // Dropping the set aborts every connection task, watches included.
        let mut conns = JoinSet::new();
        loop {
            let accepted = tokio::select! {
                () = shutdown.cancelled() => break,
                a = listener.accept() => a,
                Some(_) = conns.join_next(), if !conns.is_empty() => continue,
            };
            let Ok((stream, _peer)) = accepted else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let shared = shared.clone();
            let acceptor = acceptor.clone();
            let clock = shared.lock().clock.clone();
            conns.spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let (shared, clock) = (shared.clone(), clock.clone());
                    async move {
                        let mut resp = crate::api::handle(shared, req).await?;
                        // The virtual clock, so a client can read "now" from the API server
                        // (hyper adds the real time only when the header is missing).
                        if let Ok(v) = http::HeaderValue::from_str(&http_date(clock.now())) {
                            resp.headers_mut().insert(http::header::DATE, v);
                        }
                        // As the apiserver sends on every response. Without it, kubectl's HTTP
                        // cache judges discovery by the Date, which runs ahead on the virtual
                        // clock, as fresh for ever and never sees a new CRD's group.
                        resp.headers_mut()
                            .entry(http::header::CACHE_CONTROL)
                            .or_insert(http::HeaderValue::from_static("no-cache, private"));
                        Ok::<_, crate::api::DropConnection>(resp)
                    }
                });
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                let result = match acceptor {
                    Some(acceptor) => match acceptor.accept(stream).await {
                        Ok(tls) => builder.serve_connection(TokioIo::new(tls), svc).await,
                        Err(e) => {
                            tracing::debug!(error = %e, "TLS handshake failed");
                            return;
                        }
                    },
                    None => builder.serve_connection(TokioIo::new(stream), svc).await,
                };
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended");
                }
            });
        }
    });
    Ok(Server { addr, ca_pem, task })
}
