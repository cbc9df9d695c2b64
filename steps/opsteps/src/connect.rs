//! Building a `kube::Client` for the target cluster: kubeconfig and context, in-cluster
//! ServiceAccount, or an EKS cluster by name (DescribeCluster endpoint and CA, IAM token kept
//! fresh by [`crate::eks_token::TokenSource`]), with the `--expect-cluster` guard.

use std::path::Path;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::cli::{AwsArgs, ClusterArgs};
use crate::eks_token::{BearerLayer, TokenSource};
use crate::exit::StepError;

/// How the client was configured.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// A kubeconfig file.
    Kubeconfig,
    /// The pod's ServiceAccount.
    InCluster,
    /// EKS DescribeCluster and an IAM token.
    Eks,
}

/// The names by which the connected cluster is known; `--expect-cluster` must match one.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct ClusterIdentity {
    /// API server URL.
    pub server: String,
    /// EKS cluster name, for `--eks-cluster`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eks_name: Option<String>,
    /// Kubeconfig context name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// Kubeconfig cluster entry name (often an EKS ARN).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
}

impl ClusterIdentity {
    /// Every name this cluster answers to: server URL, EKS name, context, kubeconfig cluster,
    /// and the cluster name inside an EKS ARN (`arn:aws:eks:REGION:ACCOUNT:cluster/NAME`).
    #[must_use]
    pub fn names(&self) -> Vec<String> {
        let mut names = vec![self.server.clone()];
        names.extend(self.eks_name.iter().cloned());
        names.extend(self.context.iter().cloned());
        for n in self.cluster.iter().chain(self.context.iter()) {
            names.push(n.clone());
            if let Some((_, name)) = n.rsplit_once(":cluster/") {
                names.push(name.to_owned());
            }
        }
        names.dedup();
        names
    }

    /// Refuses (bad input, nothing sent) when `expected` is not one of [`Self::names`].
    pub fn check_expected(&self, expected: Option<&str>) -> Result<(), StepError> {
        let Some(want) = expected.filter(|s| !s.is_empty()) else {
            return Ok(());
        };
        let names = self.names();
        if names
            .iter()
            .any(|n| n == want || n.trim_end_matches('/') == want.trim_end_matches('/'))
        {
            Ok(())
        } else {
            Err(StepError::bad_input(format!(
                "--expect-cluster {want:?} does not match the target cluster, known as {}; refusing to act",
                names.join(", ")
            )))
        }
    }
}

/// A client for the target cluster and what it is.
#[derive(Clone)]
pub struct Connection {
    /// The client. kube-rs's own retry layer is off: see [`crate::retry`].
    pub client: Client,
    /// How it was configured.
    pub source: Source,
    /// Its names.
    pub identity: ClusterIdentity,
    /// The token source, for EKS connections (kept alive with the connection).
    pub token: Option<TokenSource>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("source", &self.source)
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

/// Connects as the flags say. No request reaches the Kubernetes API before `--expect-cluster`
/// has been checked; for EKS the only request before it is DescribeCluster.
pub async fn connect(cluster: &ClusterArgs, aws: &AwsArgs) -> Result<Connection, StepError> {
    if cluster.in_cluster && cluster.eks_cluster.is_some() {
        return Err(StepError::bad_input(
            "--in-cluster and --eks-cluster name different clusters; give one",
        ));
    }
    let (config, source, identity, token) = if let Some(name) = &cluster.eks_cluster {
        let region = aws
            .region
            .as_deref()
            .filter(|r| !r.is_empty())
            .ok_or_else(|| StepError::bad_input("--eks-cluster needs --region (or $AWS_REGION)"))?;
        let (config, identity, token) =
            eks_config(name, region, cluster.eks_token_lifetime.into()).await?;
        (config, Source::Eks, identity, Some(token))
    } else if cluster.in_cluster {
        let config = Config::incluster().map_err(|e| {
            StepError::bad_input("--in-cluster: no ServiceAccount environment").with_source(e)
        })?;
        let identity = ClusterIdentity {
            server: config.cluster_url.to_string(),
            ..ClusterIdentity::default()
        };
        (config, Source::InCluster, identity, None)
    } else {
        let (config, identity, source) =
            kubeconfig_config(cluster.kubeconfig.as_deref(), cluster.context.as_deref()).await?;
        (config, source, identity, None)
    };
    identity.check_expected(cluster.expect_cluster.as_deref())?;
    let client = build_client(config, token.clone())?;
    tracing::info!(server = %identity.server, source = ?source, "connected");
    Ok(Connection {
        client,
        source,
        identity,
        token,
    })
}

/// A client from `config`, with kube-rs's implicit retries off, the bundled roots when the
/// cluster names no CA ([`crate::tls::fill_kube_roots`]) and, for EKS, the refreshing bearer
/// token.
pub fn build_client(mut config: Config, token: Option<TokenSource>) -> Result<Client, StepError> {
    config.default_retry = false;
    crate::tls::fill_kube_roots(&mut config, crate::tls::roots());
    let builder = kube::client::ClientBuilder::try_from(config)
        .map_err(|e| StepError::failed("cannot build the Kubernetes client").with_source(e))?;
    Ok(match token {
        Some(t) => builder.with_layer(&BearerLayer(t)).build(),
        None => builder.build(),
    })
}

async fn kubeconfig_config(
    path: Option<&Path>,
    context: Option<&str>,
) -> Result<(Config, ClusterIdentity, Source), StepError> {
    let explicit = path.is_some() || context.is_some();
    let kubeconfig = match path {
        Some(p) => Some(read_kubeconfigs(p)?),
        None => Kubeconfig::read().ok(),
    };
    let Some(kubeconfig) = kubeconfig else {
        if explicit {
            return Err(StepError::bad_input(
                "--context given but no kubeconfig found ($KUBECONFIG, ~/.kube/config)",
            ));
        }
        // Nothing configured: a step running in a pod uses its ServiceAccount.
        let config = Config::incluster().map_err(|e| {
            StepError::bad_input("no kubeconfig found and not running in a pod; give --kubeconfig, --in-cluster or --eks-cluster").with_source(e)
        })?;
        let identity = ClusterIdentity {
            server: config.cluster_url.to_string(),
            ..ClusterIdentity::default()
        };
        return Ok((config, identity, Source::InCluster));
    };
    let context_name = context
        .map(str::to_owned)
        .or_else(|| kubeconfig.current_context.clone());
    if let Some(c) = context
        && !kubeconfig.contexts.iter().any(|nc| nc.name == c)
    {
        let known: Vec<&str> = kubeconfig
            .contexts
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        return Err(StepError::bad_input(format!(
            "context {c:?} is not in the kubeconfig; known contexts: {}",
            known.join(", ")
        )));
    }
    let cluster_name = context_name.as_deref().and_then(|cn| {
        kubeconfig
            .contexts
            .iter()
            .find(|c| c.name == cn)
            .and_then(|c| c.context.as_ref())
            .map(|c| c.cluster.clone())
    });
    let options = KubeConfigOptions {
        context: context.map(str::to_owned),
        ..KubeConfigOptions::default()
    };
    let config = Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .map_err(|e| StepError::bad_input("invalid kubeconfig").with_source(e))?;
    let identity = ClusterIdentity {
        server: config.cluster_url.to_string(),
        eks_name: None,
        context: context_name,
        cluster: cluster_name,
    };
    Ok((config, identity, Source::Kubeconfig))
}

/// Reads `--kubeconfig`/`$KUBECONFIG` as kubectl does: one file, or a list joined by the
/// platform's path separator (`a:b`) that is merged. In a list, files that do not exist are
/// skipped; for each cluster, user and context name the first file that defines it wins, and
/// `current-context` comes from the first file that sets one. A list naming no existing file,
/// or a file that is not a kubeconfig, is bad input.
pub fn read_kubeconfigs(path: &Path) -> Result<Kubeconfig, StepError> {
    let read = |p: &Path| {
        Kubeconfig::read_from(p).map_err(|e| {
            StepError::bad_input(format!("cannot read kubeconfig {}", p.display())).with_source(e)
        })
    };
    if path.is_file() {
        return read(path);
    }
    let listed: Vec<std::path::PathBuf> = std::env::split_paths(path.as_os_str())
        .filter(|p| !p.as_os_str().is_empty())
        .collect();
    let present: Vec<&std::path::PathBuf> = listed.iter().filter(|p| p.exists()).collect();
    if present.is_empty() {
        return Err(StepError::bad_input(format!(
            "cannot read kubeconfig {}: no such file{}",
            path.display(),
            if listed.len() > 1 {
                " (none of the listed files exists)"
            } else {
                ""
            }
        )));
    }
    present
        .into_iter()
        .try_fold(Kubeconfig::default(), |merged, p| {
            merged.merge(read(p)?).map_err(|e| {
                StepError::bad_input(format!("cannot merge kubeconfig {}", p.display()))
                    .with_source(e)
            })
        })
}

async fn eks_config(
    name: &str,
    region: &str,
    lifetime: std::time::Duration,
) -> Result<(Config, ClusterIdentity, TokenSource), StepError> {
    crate::eks::check_api_endpoint(
        std::env::var("AWS_ENDPOINT_URL_EKS").ok().as_deref(),
        std::env::var("AWS_ENDPOINT_URL").ok().as_deref(),
    )?;
    let sdk = crate::eks::sdk_config(Some(region)).await;
    let eks = aws_sdk_eks::Client::new(&sdk);
    let described = crate::eks::describe_cluster(&eks, name).await?;
    let endpoint = described.endpoint.ok_or_else(|| {
        StepError::failed(format!(
            "EKS cluster {name} has no endpoint yet (status {:?})",
            described.status
        ))
    })?;
    let uri = crate::eks::check_cluster_endpoint(name, &endpoint)?;
    let ca = described.ca_pem.ok_or_else(|| {
        StepError::failed(format!(
            "EKS cluster {name} has no certificate authority data"
        ))
    })?;
    let mut config = Config::new(uri);
    let certs: Vec<Vec<u8>> = CertificateDer::pem_slice_iter(&ca)
        .map(|c| c.map(|c| c.as_ref().to_vec()))
        .collect::<Result<_, _>>()
        .map_err(|e| {
            StepError::failed(format!(
                "EKS cluster {name}: certificate authority data is not PEM"
            ))
            .with_source(e)
        })?;
    if certs.is_empty() {
        return Err(StepError::failed(format!(
            "EKS cluster {name}: certificate authority data holds no certificate"
        )));
    }
    config.root_cert = Some(certs);
    let provider = sdk.credentials_provider().ok_or_else(|| {
        StepError::failed("no AWS credential provider configured for the EKS token")
    })?;
    let token = TokenSource::start(name, region, provider, lifetime)
        .await
        .map_err(|e| {
            StepError::transient(format!("cannot make an EKS token for {name}")).with_source(e)
        })?;
    let identity = ClusterIdentity {
        server: endpoint,
        eks_name: Some(name.to_owned()),
        context: None,
        cluster: described.arn,
    };
    Ok((config, identity, token))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kubeconfig(dir: &Path) -> std::path::PathBuf {
        let p = dir.join("config");
        std::fs::write(
            &p,
            r"apiVersion: v1
kind: Config
current-context: blue
clusters:
- name: arn:aws:eks:eu-west-1:123456789012:cluster/prod-blue
  cluster: {server: 'http://127.0.0.1:1'}
- name: staging
  cluster: {server: 'http://127.0.0.1:2'}
contexts:
- name: blue
  context: {cluster: 'arn:aws:eks:eu-west-1:123456789012:cluster/prod-blue', user: u}
- name: stage
  context: {cluster: staging, user: u}
users:
- name: u
  user: {token: abc}
",
        )
        .unwrap();
        p
    }

    fn args(path: &Path, context: Option<&str>, expect: Option<&str>) -> ClusterArgs {
        ClusterArgs {
            kubeconfig: Some(path.to_owned()),
            context: context.map(str::to_owned),
            expect_cluster: expect.map(str::to_owned),
            ..ClusterArgs::default()
        }
    }

    #[tokio::test]
    async fn kubeconfig_context_selects_the_server() {
        let d = tempfile::tempdir().unwrap();
        let p = kubeconfig(d.path());
        let c = connect(&args(&p, Some("stage"), None), &AwsArgs::default())
            .await
            .unwrap();
        assert_eq!(c.identity.server, "http://127.0.0.1:2/");
        assert_eq!(c.identity.context.as_deref(), Some("stage"));
        assert_eq!(c.source, Source::Kubeconfig);
        let c = connect(&args(&p, None, None), &AwsArgs::default())
            .await
            .unwrap();
        assert_eq!(c.identity.server, "http://127.0.0.1:1/");
    }

    fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[tokio::test]
    async fn a_list_of_kubeconfigs_merges_as_kubectl_does() {
        let dir = tempfile::tempdir().unwrap();
        let d = &dir;
        // First file: no current-context; defines `shared` (server :1) and context `one`.
        let first = write(
            d.path(),
            "a",
            r"apiVersion: v1
kind: Config
clusters:
- {name: shared, cluster: {server: 'http://127.0.0.1:1'}}
contexts:
- {name: one, context: {cluster: shared, user: u}}
users:
- {name: u, user: {token: a}}
",
        );
        // Second: redefines `shared` (ignored: first wins), adds `two`, sets current-context.
        let second = write(
            d.path(),
            "b",
            r"apiVersion: v1
kind: Config
current-context: two
clusters:
- {name: shared, cluster: {server: 'http://127.0.0.1:9'}}
- {name: other, cluster: {server: 'http://127.0.0.1:2'}}
contexts:
- {name: one, context: {cluster: other, user: u}}
- {name: two, context: {cluster: shared, user: u}}
users:
- {name: u, user: {token: b}}
",
        );
        // Third: a different current-context, ignored because b set one first.
        let third = write(
            d.path(),
            "c",
            r"apiVersion: v1
kind: Config
current-context: one
clusters: []
contexts: []
users: []
",
        );
        let missing = d.path().join("missing");
        let list = std::env::join_paths([&missing, &first, &second, &third]).unwrap();
        let args = |context: Option<&str>| ClusterArgs {
            kubeconfig: Some(list.clone().into()),
            context: context.map(str::to_owned),
            ..ClusterArgs::default()
        };
        let conn = connect(&args(None), &AwsArgs::default()).await.unwrap();
        assert_eq!(
            conn.identity.context.as_deref(),
            Some("two"),
            "current-context of b"
        );
        assert_eq!(
            conn.identity.server, "http://127.0.0.1:1/",
            "cluster `shared` from a"
        );
        let conn = connect(&args(Some("one")), &AwsArgs::default())
            .await
            .unwrap();
        assert_eq!(
            conn.identity.server, "http://127.0.0.1:1/",
            "context `one` from a"
        );
        let e = connect(&args(Some("three")), &AwsArgs::default())
            .await
            .unwrap_err();
        assert!(e.to_string().contains("one, two"), "{e}");
        // Nothing that exists: bad input.
        let none = std::env::join_paths([&missing, &d.path().join("nope")]).unwrap();
        let e = read_kubeconfigs(Path::new(&none)).unwrap_err();
        assert_eq!(e.status(), crate::exit::ExitStatus::BadInput);
        assert!(
            e.to_string().contains("none of the listed files exists"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn expect_cluster_accepts_any_known_name_including_the_arn_suffix() {
        let d = tempfile::tempdir().unwrap();
        let p = kubeconfig(d.path());
        for ok in [
            "prod-blue",
            "blue",
            "arn:aws:eks:eu-west-1:123456789012:cluster/prod-blue",
            "http://127.0.0.1:1",
        ] {
            connect(&args(&p, None, Some(ok)), &AwsArgs::default())
                .await
                .unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
    }

    #[tokio::test]
    async fn expect_cluster_mismatch_is_bad_input_before_any_request() {
        let d = tempfile::tempdir().unwrap();
        let p = kubeconfig(d.path());
        // The servers in this kubeconfig do not exist: any request would fail with a transport
        // error, so a bad-input answer proves nothing was sent.
        let e = connect(&args(&p, None, Some("prod-green")), &AwsArgs::default())
            .await
            .unwrap_err();
        assert_eq!(e.status(), crate::exit::ExitStatus::BadInput);
        assert!(
            e.to_string().contains("prod-green") && e.to_string().contains("prod-blue"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn unknown_context_and_missing_region_are_bad_input() {
        let d = tempfile::tempdir().unwrap();
        let p = kubeconfig(d.path());
        let e = connect(&args(&p, Some("nope"), None), &AwsArgs::default())
            .await
            .unwrap_err();
        assert_eq!(e.status(), crate::exit::ExitStatus::BadInput);
        assert!(e.to_string().contains("blue, stage"), "{e}");
        let eks = ClusterArgs {
            eks_cluster: Some("prod".into()),
            ..ClusterArgs::default()
        };
        let e = connect(&eks, &AwsArgs::default()).await.unwrap_err();
        assert_eq!(e.status(), crate::exit::ExitStatus::BadInput);
        let both = ClusterArgs {
            eks_cluster: Some("prod".into()),
            in_cluster: true,
            ..ClusterArgs::default()
        };
        assert_eq!(
            connect(
                &both,
                &AwsArgs {
                    region: Some("us-east-1".into())
                }
            )
            .await
            .unwrap_err()
            .status(),
            crate::exit::ExitStatus::BadInput
        );
        let missing = args(&d.path().join("missing"), None, None);
        assert_eq!(
            connect(&missing, &AwsArgs::default())
                .await
                .unwrap_err()
                .status(),
            crate::exit::ExitStatus::BadInput
        );
    }
}

#[cfg(test)]
mod token_refresh_tests {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use aws_credential_types::Credentials;
    use aws_credential_types::provider::SharedCredentialsProvider;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::eks_token::DecodedToken;

    /// A one-route HTTP server that answers `/version` and records each Authorization header.
    async fn version_server() -> (String, Arc<Mutex<Vec<String>>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                let log = log.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 16 * 1024];
                    let mut have = 0;
                    loop {
                        let Ok(n) = sock.read(&mut buf[have..]).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        have += n;
                        let text = String::from_utf8_lossy(&buf[..have]).into_owned();
                        if let Some(end) = text.find("\r\n\r\n") {
                            let auth = text[..end]
                                .lines()
                                .find_map(|l| {
                                    l.strip_prefix("authorization: ")
                                        .or_else(|| l.strip_prefix("Authorization: "))
                                })
                                .unwrap_or("")
                                .to_owned();
                            log.lock().unwrap().push(auth);
                            let body = r#"{"major":"1","minor":"33","gitVersion":"v1.33.4","gitCommit":"x","gitTreeState":"clean","buildDate":"2026-01-01T00:00:00Z","goVersion":"go1.24","compiler":"gc","platform":"linux/amd64"}"#;
                            let resp = format!(
                                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                                body.len()
                            );
                            if sock.write_all(resp.as_bytes()).await.is_err() {
                                return;
                            }
                            buf.copy_within(end + 4..have, 0);
                            have -= end + 4;
                        }
                    }
                });
            }
        });
        (url, seen)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn long_running_client_sends_a_fresh_token_after_the_lifetime() {
        let (url, seen) = version_server().await;
        let creds = Credentials::new("AKIDEXAMPLE", "secret", None, None, "test");
        let lifetime = Duration::from_secs(3);
        let started = std::time::Instant::now();
        let source = TokenSource::start(
            "prod-a",
            "us-east-1",
            SharedCredentialsProvider::new(creds),
            lifetime,
        )
        .await
        .unwrap();
        let first = source.token();
        let client = build_client(Config::new(url.parse().unwrap()), Some(source.clone())).unwrap();
        client.apiserver_version().await.unwrap();
        let mut sent_by = vec![jiff::Timestamp::now()];
        // Wait for the refresh (due at 80%) and past the first token's whole lifetime: a static
        // token would now be expired. Polled, so a slow machine only makes the test longer.
        while source.token() == first || started.elapsed() < lifetime + Duration::from_millis(300) {
            assert!(started.elapsed() < 5 * lifetime, "never refreshed");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        client.apiserver_version().await.unwrap();
        sent_by.push(jiff::Timestamp::now());
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 2, "{seen:?}");
        let tokens: Vec<DecodedToken> = seen
            .iter()
            .map(|h| DecodedToken::parse(h.strip_prefix("Bearer ").unwrap()).unwrap())
            .collect();
        assert_ne!(seen[0], seen[1], "the second request carried a new token");
        for (t, sent) in tokens.iter().zip(&sent_by) {
            assert_eq!(t.host, "sts.us-east-1.amazonaws.com");
            // Signing times are whole seconds: allow one for the truncation.
            let age = sent.duration_since(t.signed_at().unwrap());
            let max = jiff::SignedDuration::try_from(lifetime + Duration::from_secs(1)).unwrap();
            assert!(age < max, "token age {age:?} within its lifetime when sent");
        }
        let second_age_at_use = tokens[1]
            .signed_at()
            .unwrap()
            .duration_since(tokens[0].signed_at().unwrap());
        assert!(
            second_age_at_use >= jiff::SignedDuration::from_secs(1),
            "{second_age_at_use:?}"
        );
    }
}
