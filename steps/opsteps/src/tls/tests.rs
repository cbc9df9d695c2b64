use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

/// A private CA, as a pod would mount one.
struct Ca {
    cert: CertificateDer<'static>,
    pem: String,
    key_pem: String,
}

fn ca_params() -> rcgen::CertificateParams {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "opsteps-test-private-ca");
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    params
}

fn private_ca() -> Ca {
    let key = rcgen::KeyPair::generate().unwrap();
    let params = ca_params();
    let cert = params.self_signed(&key).unwrap();
    Ca {
        cert: CertificateDer::from(cert.der().to_vec()),
        pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

/// A server configuration for `localhost` with a certificate signed by `ca`.
fn server_for(ca: &Ca) -> rustls::ServerConfig {
    // The same name and key as the CA certificate, so the leaf chains to it.
    let ca_key = rcgen::KeyPair::from_pem(&ca.key_pem).unwrap();
    let ca_params = ca_params();
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
    server
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
    let ca = private_ca().cert;
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
    let back: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&roots.pem())
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(back, roots.certs());
    assert_eq!(roots.der().len(), web + 1);
}

#[tokio::test]
async fn rustls_clients_trust_their_roots_and_nothing_else() {
    let ca = private_ca();
    let (port, served) = https_server(server_for(&ca)).await;
    let ca = ca.cert;
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
    let ca = private_ca();
    let (port, served) = https_server(server_for(&ca)).await;
    let ca = ca.cert;
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
/// CA's PEM, that CA is added. In both, `aws::sdk_config`'s client trusts exactly these.
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
        // The SDK configuration every step loads trusts these roots: a server with a private
        // CA is refused (not a panic on an empty system store, as the SDK's default client
        // does in debug builds) unless SSL_CERT_FILE names that CA.
        let dir = std::path::PathBuf::from(std::env::var_os("OPSTEPS_TLS_TEST_CA_DIR").unwrap());
        let ca = Ca {
            cert: CertificateDer::from(Vec::new()),
            pem: std::fs::read_to_string(dir.join("ca.pem")).unwrap(),
            key_pem: std::fs::read_to_string(dir.join("ca.key")).unwrap(),
        };
        let server = server_for(&ca);
        let rt = tokio::runtime::Runtime::new().unwrap();
        let result = rt.block_on(async {
            let (port, _) = https_server(server).await;
            let sdk = crate::aws::sdk_config(Some("us-east-1")).await;
            let conf = aws_sdk_eks::config::Builder::from(&sdk)
                .endpoint_url(format!("https://localhost:{port}"))
                .retry_config(aws_config::retry::RetryConfig::disabled())
                .build();
            aws_sdk_eks::Client::from_conf(conf)
                .describe_cluster()
                .name("prod")
                .send()
                .await
                .map_err(|e| format!("{:?}", aws_smithy_types_error_chain(&e)))
        });
        match mode.to_str() {
            Some("none") => {
                let err = result.unwrap_err();
                assert!(
                    err.contains("UnknownIssuer") || err.contains("invalid peer certificate"),
                    "{err}"
                );
            }
            _ => assert!(result.is_ok(), "{result:?}"),
        }
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ca = private_ca();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca.pem).unwrap();
    std::fs::write(dir.path().join("ca.key"), &ca.key_pem).unwrap();
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
            .env("OPSTEPS_TLS_TEST_CA_DIR", dir.path())
            .env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
            .env("AWS_SECRET_ACCESS_KEY", "secret")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_CONFIG_FILE", dir.path().join("no-aws-config"))
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                dir.path().join("no-aws-credentials"),
            )
            .env_remove("AWS_PROFILE")
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
