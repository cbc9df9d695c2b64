//! An in-process sandbox: cluster, API server, controllers, and kubeconfigs, for tests.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use opsteps_sandbox::sandbox::{Options, Sandbox};
//! let sb = Sandbox::start(Options::default().controllers(false)).await?;
//! let kubeconfig = sb.kubeconfig_path();
//! // ... run a client ...
//! sb.assert_invariants();
//! # Ok(()) }
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use serde_json::json;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::api_state::{Identity, parse_users};
use crate::clock::Clock;
use crate::cluster::{Cluster, Shared};
use crate::faults::FaultRule;
use crate::invariants::Violation;
use crate::requestlog::RequestRecord;
use crate::resources::well_known;
use crate::scenario::Scenario;
use crate::server::Server;

/// The user of [`Sandbox::kubeconfig_path`].
pub const ADMIN_USER: &str = "system:admin";

/// How to start a sandbox.
#[derive(Clone, Debug)]
pub struct Options {
    /// Scenario to load (an empty cluster with the standard namespaces otherwise).
    pub scenario: Option<Scenario>,
    /// HTTPS with a generated CA (default) or plain HTTP.
    pub tls: bool,
    /// Clock speed, overriding the scenario's.
    pub scale: Option<f64>,
    /// Run the controller loop (default true).
    pub controllers: bool,
    /// Port to bind on 127.0.0.1 (0 = any free port, the default).
    pub port: u16,
    /// Also write the request log to this file as JSON lines.
    pub request_log: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            scenario: None,
            tls: true,
            scale: None,
            controllers: true,
            port: 0,
            request_log: None,
        }
    }
}

impl Options {
    /// Loads `scenario`.
    #[must_use]
    pub fn scenario(mut self, scenario: Scenario) -> Self {
        self.scenario = Some(scenario);
        self
    }

    /// HTTPS (true) or plain HTTP.
    #[must_use]
    pub fn tls(mut self, tls: bool) -> Self {
        self.tls = tls;
        self
    }

    /// Overrides the clock speed.
    #[must_use]
    pub fn scale(mut self, scale: f64) -> Self {
        self.scale = Some(scale);
        self
    }

    /// Runs the controllers or not.
    #[must_use]
    pub fn controllers(mut self, on: bool) -> Self {
        self.controllers = on;
        self
    }

    /// Writes the request log to `path` as JSON lines (see [`crate::requestlog`]).
    #[must_use]
    pub fn request_log(mut self, path: impl Into<PathBuf>) -> Self {
        self.request_log = Some(path.into());
        self
    }

    /// Binds a fixed port.
    #[must_use]
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }
}

/// A running sandbox; stops on [`Sandbox::stop`] or drop.
pub struct Sandbox {
    shared: Shared,
    server: Server,
    shutdown: CancellationToken,
    controllers: Option<JoinHandle<()>>,
    dir: tempfile::TempDir,
    kubeconfig: PathBuf,
    admin_token: String,
    seq: std::sync::atomic::AtomicU64,
    /// dcgm-exporter endpoints of the scenario's exporter pods.
    dcgm: crate::dcgm::Exporters,
    /// The S3 endpoint, started on first use.
    s3: tokio::sync::OnceCell<crate::s3::S3Server>,
    /// The EKS API.
    eks: crate::eks::EksServer,
    /// Holds this sandbox's pod-IP range (`crate::world::reserve_pod_ip_block`).
    _pod_ip_block: Option<std::net::TcpListener>,
}

/// Namespaces every apiserver has.
const SYSTEM_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];

fn ensure_system_namespaces(c: &mut Cluster) {
    let now = c.now();
    for ns in SYSTEM_NAMESPACES {
        if c.store.get(well_known::namespaces(), "", ns).is_none() {
            let obj = json!({
                "metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}},
                "spec": {"finalizers": ["kubernetes"]},
                "status": {"phase": "Active"},
            });
            let _ = c.store.create(well_known::namespaces(), obj, &now);
        }
    }
}

/// Gives the cluster its own pod-IP range, held by the returned listener. Where only 127.0.0.1
/// can be bound (macOS without loopback aliases) nothing can listen on pod IPs anyway: a random
/// range, unreserved.
fn claim_pod_ip_range(cluster: &mut Cluster) -> Option<std::net::TcpListener> {
    match crate::world::reserve_pod_ip_block() {
        Ok((block, listener)) => {
            cluster.world.set_pod_ip_block(block);
            Some(listener)
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot reserve a pod-IP range; using a random one");
            cluster.world.set_pod_ip_block(rand::random_range(1..=249));
            None
        }
    }
}

/// What the apiserver and controllers add to a loaded cluster: the scenario's CRDs served, the
/// `default` ServiceAccounts and the `kubernetes` Service.
fn install_defaults(cluster: &mut Cluster) {
    crate::crds::install_all(cluster);
    let namespaces: Vec<String> = cluster
        .store
        .list(well_known::namespaces(), None)
        .map(|n| crate::podutil::ns_name(n).1.to_owned())
        .collect();
    for ns in namespaces {
        crate::controllers::namespace::ensure_defaults(cluster, &ns);
    }
}

impl Sandbox {
    /// Builds the cluster, starts the server (and controllers), writes the admin kubeconfig.
    pub async fn start(options: Options) -> anyhow::Result<Self> {
        let scenario = options.scenario.clone().unwrap_or_default();
        let start = scenario.clock.start.unwrap_or_else(jiff::Timestamp::now);
        let scale = options.scale.unwrap_or(scenario.clock.scale);
        let clock = Arc::new(Clock::new(start, scale));
        let mut cluster = Cluster::new(clock);
        let pod_ip_block = claim_pod_ip_range(&mut cluster);
        ensure_system_namespaces(&mut cluster);
        crate::scenario::load(&mut cluster, &scenario).context("loading the scenario")?;
        install_defaults(&mut cluster);
        let gpu = crate::dcgm::GpuConfig::from_value(scenario.gpu.as_ref())?;
        crate::eks::load(&mut cluster, &scenario).context("loading the scenario's eks section")?;
        crate::ec2::load(&mut cluster, &scenario).context("loading the scenario's ec2 section")?;
        cluster.eks.track_rollouts = options.controllers;
        for raw in &scenario.faults {
            cluster
                .api
                .faults
                .add(FaultRule::from_value(raw).with_context(|| format!("scenario fault {raw}"))?);
        }
        cluster.api.rbac = scenario.rbac;
        if let Some(path) = &options.request_log {
            cluster
                .api
                .log
                .write_to(path)
                .with_context(|| format!("creating the request log {}", path.display()))?;
        }
        for (token, identity) in parse_users(&scenario.users)? {
            match token {
                Some(t) => {
                    cluster.api.tokens.insert(t, identity);
                }
                None => {
                    cluster.api.issue_token(identity);
                }
            }
        }
        let admin_token = cluster.api.issue_token(Identity {
            user: ADMIN_USER.into(),
            groups: vec!["system:masters".into(), "system:authenticated".into()],
            dry_run: false,
        });
        if !options.tls {
            cluster.api.anonymous = cluster.api.tokens.get(&admin_token).cloned();
        }
        let shared = Shared::new(cluster);
        let shutdown = CancellationToken::new();
        let server =
            crate::server::start(shared.clone(), options.tls, options.port, shutdown.clone())
                .await?;
        let controllers = options
            .controllers
            .then(|| crate::controllers::spawn(shared.clone(), shutdown.clone()));
        let dcgm = crate::dcgm::spawn(shared.clone(), gpu, shutdown.clone());
        let eks = crate::eks::start(
            shared.clone(),
            &server.url(),
            server.ca_pem.as_deref(),
            shutdown.clone(),
        )
        .await?;
        let dir = tempfile::Builder::new()
            .prefix("opsteps-sandbox-")
            .tempdir()?;
        let kubeconfig = dir.path().join("kubeconfig");
        let text = crate::kubeconfig::render(
            &server.url(),
            server.ca_pem.as_deref(),
            &admin_token,
            ADMIN_USER,
        );
        std::fs::write(&kubeconfig, text)?;
        tracing::info!(url = %server.url(), kubeconfig = %kubeconfig.display(), "sandbox started");
        Ok(Self {
            shared,
            server,
            shutdown,
            controllers,
            dir,
            kubeconfig,
            admin_token,
            seq: 0.into(),
            dcgm,
            s3: tokio::sync::OnceCell::new(),
            eks,
            _pod_ip_block: pod_ip_block,
        })
    }

    /// The API server URL.
    #[must_use]
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// The CA certificate (PEM) for HTTPS sandboxes.
    #[must_use]
    pub fn ca_pem(&self) -> Option<&str> {
        self.server.ca_pem.as_deref()
    }

    /// The admin bearer token.
    #[must_use]
    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    /// The admin kubeconfig (user `system:admin`).
    #[must_use]
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// A new bearer token for `user` (flagged dry-run or not).
    #[must_use]
    pub fn token_for(&self, user: &str, dry_run: bool) -> String {
        self.shared.lock().api.issue_token(Identity {
            user: user.into(),
            groups: vec!["system:authenticated".into()],
            dry_run,
        })
    }

    /// A kubeconfig with a fresh token for `user`; with `dry_run`, every mutating request it
    /// makes without `dryRun=All` is refused and recorded as a violation.
    #[must_use]
    pub fn kubeconfig_for(&self, user: &str, dry_run: bool) -> PathBuf {
        let token = self.token_for(user, dry_run);
        let n = self.seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let safe: String = user
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let path = self.dir.path().join(format!("kubeconfig-{safe}-{n}"));
        let text = crate::kubeconfig::render(&self.url(), self.ca_pem(), &token, user);
        std::fs::write(&path, text).expect("writing a kubeconfig into the sandbox's temp dir");
        path
    }

    /// The shared cluster (lock briefly; never across an await).
    #[must_use]
    pub fn shared(&self) -> Shared {
        self.shared.clone()
    }

    /// Runs `f` on the locked cluster (keep it short: the server and controllers wait).
    pub fn with<R>(&self, f: impl FnOnce(&mut Cluster) -> R) -> R {
        f(&mut self.shared.lock())
    }

    /// Every request so far.
    #[must_use]
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.lock().api.log.all()
    }

    /// Mutating requests that were not `dryRun=All` (including refused ones).
    #[must_use]
    pub fn mutations(&self) -> Vec<RequestRecord> {
        self.requests()
            .into_iter()
            .filter(RequestRecord::is_effective_mutation)
            .collect()
    }

    /// Invariant violations so far.
    #[must_use]
    pub fn invariants(&self) -> Vec<Violation> {
        self.shared.lock().api.violations.clone()
    }

    /// Panics with the list of violations, if any.
    pub fn assert_invariants(&self) {
        let v = self.invariants();
        assert!(
            v.is_empty(),
            "sandbox invariants violated:\n{}",
            v.iter()
                .map(|v| format!("- {}", v.message))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }

    /// Adds a fault rule.
    pub fn add_fault(&self, rule: FaultRule) {
        self.shared.lock().api.faults.add(rule);
    }

    /// Removes all fault rules.
    pub fn clear_faults(&self) {
        self.shared.lock().api.faults.clear();
    }

    /// The dcgm-exporter endpoints: one listener on `<podIP>:9400` per Running exporter pod.
    #[must_use]
    pub fn dcgm(&self) -> &crate::dcgm::Exporters {
        &self.dcgm
    }

    /// The S3 endpoint (s3s-fs in a temporary directory), started on first use.
    pub async fn s3(&self) -> anyhow::Result<&crate::s3::S3Server> {
        self.s3.get_or_try_init(crate::s3::start_temp).await
    }

    /// Starts the S3 endpoint on `dir` (unless it already runs) and returns its URL.
    pub async fn s3_at(&self, dir: &Path) -> anyhow::Result<String> {
        let s3 = self.s3.get_or_try_init(|| crate::s3::start(dir)).await?;
        Ok(s3.url())
    }

    /// The S3 endpoint's URL (for `AWS_ENDPOINT_URL_S3`), starting it on first use.
    pub async fn s3_url(&self) -> anyhow::Result<String> {
        Ok(self.s3().await?.url())
    }

    /// Creates `bucket` on the S3 endpoint (idempotent); returns the endpoint's URL.
    pub async fn s3_bucket(&self, bucket: &str) -> anyhow::Result<String> {
        let s3 = self.s3().await?;
        s3.create_bucket(bucket)?;
        Ok(s3.url())
    }

    /// The EKS API's URL (plain HTTP), for `AWS_ENDPOINT_URL_EKS` or aws-sdk-eks's
    /// `endpoint_url`.
    #[must_use]
    pub fn eks_url(&self) -> String {
        self.eks.url()
    }

    /// The invariant report (see [`crate::invariants::report`]).
    #[must_use]
    pub fn invariant_report(&self) -> serde_json::Value {
        crate::invariants::report(&self.shared.lock())
    }

    /// The EKS cluster's region.
    #[must_use]
    pub fn region(&self) -> String {
        self.shared.lock().eks.region.clone()
    }

    /// Stops the server and controllers (idempotent).
    pub fn stop(&self) {
        self.shutdown.cancel();
        self.eks.abort();
        self.dcgm.stop();
        if let Some(s3) = self.s3.get() {
            s3.stop();
        }
        self.server.abort();
        if let Some(c) = &self.controllers {
            c.abort();
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.stop();
    }
}
