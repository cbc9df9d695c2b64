use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

/// A private CA (as a pod would mount one) and a server configuration for `localhost` signed
/// by it.
fn private_ca() -> (CertificateDer<'static>, String, rustls::ServerConfig) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "opsteps-test-private-ca");
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::from_params(&ca_params, &ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let leaf = params.signed_by(&key, &issuer).unwrap();
    let mut server = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![CertificateDer::from(leaf.der().to_vec())],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    )
    .unwrap();
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    (CertificateDer::from(ca.der().to_vec()), ca.pem(), server)
}

/// An HTTPS server on localhost answering every request with an EKS DescribeCluster body;
/// counts the requests that got past the handshake.
async fn https_server(config: rustls::ServerConfig) -> (u16, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let served = Arc::new(AtomicUsize::new(0));
    let count = served.clone();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let count = count.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(sock).await else {
                    return;
                };
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                count.fetch_add(1, Ordering::SeqCst);
                let body = r#"{"cluster":{"name":"prod","status":"ACTIVE"}}"#;
                let resp = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(resp.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (port, served)
}

fn subjects(roots: &Roots) -> Vec<String> {
    roots
        .store()
        .roots
        .iter()
        .map(|a| String::from_utf8_lossy(a.subject.as_ref()).into_owned())
        .collect()
}

#[test]
fn web_roots_hold_the_cas_aws_and_public_endpoints_chain_to() {
    let roots = Roots::web_only();
    let (web, system) = roots.counts();
    assert_eq!(system, 0);
    assert_eq!(web, webpki_root_certs::TLS_SERVER_ROOT_CERTS.len());
    assert!(
        web > 100,
        "the Mozilla program has well over 100 roots: {web}"
    );
    assert_eq!(roots.store().len(), web, "every bundled root parses");
    let subjects = subjects(&roots);
    // AWS endpoints (STS, EKS, EC2, S3, AMP) chain to Amazon Root CA 1-4 or Starfield G2;
    // many Helm repositories to ISRG Root X1 (Let's Encrypt).
    for name in [
        "Amazon Root CA 1",
        "Amazon Root CA 2",
        "Amazon Root CA 3",
        "Amazon Root CA 4",
        "Starfield Services Root Certificate Authority - G2",
        "ISRG Root X1",
    ] {
        assert!(
            subjects.iter().any(|s| s.contains(name)),
            "{name} missing from the bundled roots"
        );
    }
}

#[test]
fn system_roots_are_added_once_and_unparsable_ones_dropped() {
    let (ca, _, _) = private_ca();
    let web = webpki_root_certs::TLS_SERVER_ROOT_CERTS.len();
    let roots = Roots::new(vec![
        webpki_root_certs::TLS_SERVER_ROOT_CERTS[0].clone(),
        ca.clone(),
        ca.clone(),
        CertificateDer::from(b"not a certificate".to_vec()),
    ]);
    assert_eq!(roots.counts(), (web, 1));
    assert_eq!(roots.certs().len(), web + 1);
    assert_eq!(roots.certs()[web], ca);
    assert_eq!(roots.store().len(), web + 1);
    // The PEM bundle round-trips to the same certificates (the AWS SDK parses it).
    use rustls_pki_types::pem::PemObject;
    let back: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&roots.pem())
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(back, roots.certs());
    assert_eq!(roots.der().len(), web + 1);
}

#[tokio::test]
async fn rustls_clients_trust_their_roots_and_nothing_else() {
    let (ca, _, server) = private_ca();
    let (port, served) = https_server(server).await;
    let handshake = |roots: Roots| async move {
        let connector = tokio_rustls::TlsConnector::from(Arc::new(roots.client_config().unwrap()));
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        connector
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .map(|_| ())
    };
    let err = handshake(Roots::web_only()).await.unwrap_err();
    assert!(
        err.to_string().contains("UnknownIssuer"),
        "a CA outside the roots is refused: {err}"
    );
    handshake(Roots::new(vec![ca])).await.unwrap();
    assert_eq!(served.load(Ordering::SeqCst), 0, "no request was sent");
}

async fn describe(roots: &Roots, port: u16) -> Result<String, String> {
    let config = aws_sdk_eks::Config::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_credential_types::Credentials::new(
            "AKIDEXAMPLE",
            "secret",
            None,
            None,
            "test",
        ))
        .endpoint_url(format!("https://localhost:{port}"))
        .http_client(roots.aws_http_client())
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .build();
    aws_sdk_eks::Client::from_conf(config)
        .describe_cluster()
        .name("prod")
        .send()
        .await
        .map(|o| o.cluster.and_then(|c| c.name).unwrap_or_default())
        .map_err(|e| format!("{:?}", aws_smithy_types_error_chain(&e)))
}

fn aws_smithy_types_error_chain(e: &dyn std::error::Error) -> Vec<String> {
    let mut out = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push(s.to_string());
        cur = s.source();
    }
    out
}

#[tokio::test]
async fn the_aws_client_uses_the_given_roots_not_the_system_store() {
    let (ca, _, server) = private_ca();
    let (port, served) = https_server(server).await;
    let err = describe(&Roots::web_only(), port).await.unwrap_err();
    assert!(
        err.contains("UnknownIssuer") || err.contains("invalid peer certificate"),
        "{err}"
    );
    assert_eq!(served.load(Ordering::SeqCst), 0);
    assert_eq!(describe(&Roots::new(vec![ca]), port).await.unwrap(), "prod");
    assert_eq!(served.load(Ordering::SeqCst), 1);
}

#[test]
fn kube_gets_the_roots_only_when_the_cluster_names_no_ca() {
    let roots = Roots::web_only();
    let url: http::Uri = "https://api.example.com".parse().unwrap();
    let mut bare = kube::Config::new(url.clone());
    fill_kube_roots(&mut bare, &roots);
    assert_eq!(
        bare.root_cert.as_ref().map(Vec::len),
        Some(roots.certs().len())
    );

    let mut with_ca = kube::Config::new(url.clone());
    with_ca.root_cert = Some(vec![b"cluster ca".to_vec()]);
    fill_kube_roots(&mut with_ca, &roots);
    assert_eq!(with_ca.root_cert, Some(vec![b"cluster ca".to_vec()]));

    let mut in_cluster = kube::Config::new(url.clone());
    in_cluster.root_cert_file = Some("/var/run/secrets/ca.crt".into());
    fill_kube_roots(&mut in_cluster, &roots);
    assert!(in_cluster.root_cert.is_none());

    let mut insecure = kube::Config::new(url);
    insecure.accept_invalid_certs = true;
    fill_kube_roots(&mut insecure, &roots);
    assert!(insecure.root_cert.is_none());
}

/// Runs itself in a child process with `SSL_CERT_FILE`/`SSL_CERT_DIR` set (`roots()` is loaded
/// once per process, and the environment cannot be changed safely in a threaded test binary):
/// naming nothing, as on scratch, the process roots are the web roots alone; naming a private
/// CA's PEM, that CA is added.
#[test]
fn process_roots_are_the_web_roots_plus_ssl_cert_file() {
    const CHILD: &str = "OPSTEPS_TLS_TEST_CHILD";
    let web = webpki_root_certs::TLS_SERVER_ROOT_CERTS.len();
    if let Some(mode) = std::env::var_os(CHILD) {
        let (_, system) = roots().counts();
        assert_eq!(roots().counts().0, web);
        match mode.to_str() {
            Some("none") => {
                assert!(rustls_native_certs::load_native_certs().certs.is_empty());
                assert_eq!(system, 0);
            }
            Some("file") => assert_eq!(system, 1),
            other => panic!("unknown mode {other:?}"),
        }
        // The SDK client builds without panicking on an empty system store.
        let _client = roots().aws_http_client();
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_, pem, _) = private_ca();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, pem).unwrap();
    for (mode, file) in [
        ("none", dir.path().join("missing.pem")),
        ("file", ca_file.clone()),
    ] {
        let out = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "tls::tests::process_roots_are_the_web_roots_plus_ssl_cert_file",
                "--nocapture",
            ])
            .env(CHILD, mode)
            .env("SSL_CERT_FILE", &file)
            .env("SSL_CERT_DIR", dir.path().join("no-such-dir"))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "{mode}: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
