//! One TLS trust store for every HTTPS client the steps make: the AWS SDK (EKS, EC2, S3, STS and
//! the credential providers), kube-rs when the cluster gives no CA of its own, collect-gpu-stats'
//! Prometheus/AMP client and verify-cluster's Helm index fetch.
//!
//! The images are `FROM scratch`: there is no `/etc/ssl`, so the system store, which the AWS SDK
//! and rustls-native-certs read by default, would be empty. The Mozilla roots
//! (`webpki-root-certs`) are therefore compiled in. System roots are added when present: where
//! `SSL_CERT_FILE`/`SSL_CERT_DIR` name a bundle (a private CA mounted into the pod, a proxy's
//! CA) or the binary runs outside the image, they are trusted as well, which is what the SDK did
//! before; on scratch they add nothing.

use std::collections::HashSet;
use std::sync::{Arc, LazyLock};

use aws_sdk_eks::config::SharedHttpClient;
use aws_smithy_http_client::tls::rustls_provider::CryptoMode;
use aws_smithy_http_client::tls::{Provider, TlsContext, TrustStore};
use base64::Engine as _;
use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;

/// TLS set-up failed (the crypto provider refused the protocol versions).
#[derive(Debug, thiserror::Error)]
#[error("TLS client set-up failed")]
pub struct TlsError {
    #[source]
    source: rustls::Error,
}

/// The trusted roots: the bundled web roots, then the system's that are not among them.
#[derive(Clone, Debug)]
pub struct Roots {
    certs: Vec<CertificateDer<'static>>,
    web: usize,
    system: usize,
}

/// The roots of this process, loaded once (the system store is read at first use).
#[must_use]
pub fn roots() -> &'static Roots {
    static ROOTS: LazyLock<Roots> = LazyLock::new(|| {
        let system = rustls_native_certs::load_native_certs();
        if !system.errors.is_empty() {
            // On scratch, or with SSL_CERT_FILE naming nothing, this is expected: the web roots
            // still apply.
            tracing::debug!(errors = ?system.errors, "system trust store unreadable; using the bundled web roots");
        }
        let roots = Roots::new(system.certs);
        tracing::debug!(web = roots.web, system = roots.system, "TLS roots loaded");
        roots
    });
    &ROOTS
}

impl Roots {
    /// The web roots plus those of `system` that rustls accepts and the web roots lack.
    /// Unparsable system certificates are dropped here: the AWS SDK panics on one.
    #[must_use]
    pub fn new(system: Vec<CertificateDer<'static>>) -> Self {
        let mut certs: Vec<CertificateDer<'static>> =
            webpki_root_certs::TLS_SERVER_ROOT_CERTS.to_vec();
        let web = certs.len();
        let mut seen: HashSet<Vec<u8>> = certs.iter().map(|c| c.to_vec()).collect();
        for cert in system {
            let parses = RootCertStore::empty().add(cert.clone()).is_ok();
            if parses && seen.insert(cert.to_vec()) {
                certs.push(cert);
            }
        }
        let system = certs.len() - web;
        Self { certs, web, system }
    }

    /// The bundled web roots only, as on scratch with no bundle mounted.
    #[must_use]
    pub fn web_only() -> Self {
        Self::new(Vec::new())
    }

    /// Every trusted certificate, web roots first.
    #[must_use]
    pub fn certs(&self) -> &[CertificateDer<'static>] {
        &self.certs
    }

    /// How many came from the bundle and how many from the system store.
    #[must_use]
    pub fn counts(&self) -> (usize, usize) {
        (self.web, self.system)
    }

    /// A rustls root store of all of them.
    #[must_use]
    pub fn store(&self) -> RootCertStore {
        let mut store = RootCertStore::empty();
        // Every certificate was checked in `new`, so none is dropped here.
        store.add_parsable_certificates(self.certs.iter().cloned());
        store
    }

    /// DER bytes, as kube's `Config::root_cert` takes them.
    #[must_use]
    pub fn der(&self) -> Vec<Vec<u8>> {
        self.certs.iter().map(|c| c.to_vec()).collect()
    }

    /// One PEM bundle, as the AWS SDK's trust store takes it.
    #[must_use]
    pub fn pem(&self) -> Vec<u8> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut out = String::with_capacity(self.certs.len() * 2048);
        for cert in &self.certs {
            out.push_str("-----BEGIN CERTIFICATE-----\n");
            let text = b64.encode(cert);
            for line in text.as_bytes().chunks(64) {
                out.push_str(std::str::from_utf8(line).unwrap_or_default());
                out.push('\n');
            }
            out.push_str("-----END CERTIFICATE-----\n");
        }
        out.into_bytes()
    }

    /// A rustls client configuration (aws-lc, TLS 1.2 and 1.3, no client certificate) trusting
    /// these roots, for hyper-rustls connectors.
    pub fn client_config(&self) -> Result<rustls::ClientConfig, TlsError> {
        Ok(rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|source| TlsError { source })?
        .with_root_certificates(self.store())
        .with_no_client_auth())
    }

    /// The AWS SDK's HTTPS client with these roots in place of the system store. Otherwise as
    /// the SDK's default client: rustls with aws-lc, and the proxy from `HTTPS_PROXY`/`NO_PROXY`.
    #[must_use]
    pub fn aws_http_client(&self) -> SharedHttpClient {
        let context = TlsContext::builder()
            .with_trust_store(
                TrustStore::empty()
                    .with_native_roots(false)
                    .with_pem_certificate(self.pem()),
            )
            .build()
            .expect("a trust store with no server names always builds");
        aws_smithy_http_client::Builder::new().build_with_connector_fn(
            move |settings, components| {
                let mut builder = aws_smithy_http_client::Connector::builder()
                    .tls_provider(Provider::Rustls(CryptoMode::AwsLc))
                    .tls_context(context.clone());
                builder.set_connector_settings(settings.cloned());
                if let Some(c) = components {
                    builder.set_sleep_impl(c.sleep_impl());
                }
                builder
                    .set_proxy_config(Some(aws_smithy_http_client::proxy::ProxyConfig::from_env()));
                builder.build()
            },
        )
    }
}

/// Gives a kube config the process roots when the cluster names no CA of its own (a kubeconfig
/// without `certificate-authority`, for an API server behind a public CA). A cluster CA from
/// the kubeconfig, the ServiceAccount or DescribeCluster is left alone: adding web roots beside
/// it would let any publicly trusted certificate stand in for the API server.
pub fn fill_kube_roots(config: &mut kube::Config, roots: &Roots) {
    if config.root_cert.is_none() && config.root_cert_file.is_none() && !config.accept_invalid_certs
    {
        config.root_cert = Some(roots.der());
    }
}

#[cfg(test)]
#[path = "tls/tests.rs"]
mod tests;
