//! An S3 endpoint for tests and the demo: [`s3s`] with its file-system backend [`s3s_fs`],
//! served on its own loopback port and backed by a directory (a temporary one by default). No
//! S3 protocol code of ours: requests are SigV4-checked against [`ACCESS_KEY`]/[`SECRET_KEY`]
//! and served by `s3s-fs`; buckets are top-level directories. Two additions in front of it:
//! every request is logged ([`S3Server::requests`], so tests can prove that nothing was
//! uploaded), and an object PUT into a bucket that does not exist gets S3's 404
//! `NoSuchBucket` (s3s-fs would create the directory).
//!
//! Clients use path-style addressing (`force_path_style(true)`), region [`REGION`] and the
//! static credentials.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let s3 = opsteps_sandbox::s3::start_temp().await?;
//! s3.create_bucket("reports")?;
//! let url = s3.url(); // http://127.0.0.1:PORT, for AWS_ENDPOINT_URL_S3
//! # Ok(()) }
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use tokio::task::JoinHandle;

/// Access key the endpoint accepts.
pub const ACCESS_KEY: &str = "AKIASANDBOXS3EXAMPLE";
/// Secret key the endpoint accepts.
pub const SECRET_KEY: &str = "sandbox/s3/secret/key/for/tests/only0000";
/// Region clients should sign for (any region is accepted for path-style requests).
pub const REGION: &str = "us-east-1";

/// One request the endpoint received (the S3 side of the sandbox's request log).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Request {
    /// HTTP method.
    pub method: String,
    /// Path (`/bucket/key` with path-style addressing).
    pub path: String,
}

impl S3Request {
    /// Whether the request can change stored data (PUT, POST, DELETE).
    #[must_use]
    pub fn is_mutation(&self) -> bool {
        matches!(self.method.as_str(), "PUT" | "POST" | "DELETE")
    }
}

/// A running S3 endpoint; stops on drop.
pub struct S3Server {
    addr: SocketAddr,
    root: PathBuf,
    task: JoinHandle<()>,
    log: Arc<Mutex<Vec<S3Request>>>,
    /// Owns the temporary directory of [`start_temp`] (removed on drop).
    temp: Option<tempfile::TempDir>,
}

/// Serves S3 from `dir` (created if missing) on a free loopback port.
pub async fn start(dir: &Path) -> anyhow::Result<S3Server> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let fs = s3s_fs::FileSystem::new(dir)
        .map_err(|e| anyhow::anyhow!("s3s-fs on {}: {e:?}", dir.display()))?;
    let service = {
        let mut b = s3s::service::S3ServiceBuilder::new(fs);
        b.set_auth(s3s::auth::SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
        b.build()
    };
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .context("binding the S3 endpoint")?;
    let addr = listener.local_addr()?;
    let root = dir.to_owned();
    let log: Arc<Mutex<Vec<S3Request>>> = Arc::default();
    let record = Arc::clone(&log);
    let task = tokio::spawn(async move {
        let http = ConnBuilder::new(TokioExecutor::new());
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                continue;
            };
            let (service, record, root) = (service.clone(), Arc::clone(&record), root.clone());
            let logged =
                hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let path = req.uri().path().to_owned();
                    record
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .push(S3Request {
                            method: req.method().to_string(),
                            path: path.clone(),
                        });
                    let missing = no_such_bucket(&root, req.method(), &path);
                    let service = service.clone();
                    async move {
                        match missing {
                            Some(resp) => Ok(resp),
                            None => hyper::service::Service::call(&service, req).await,
                        }
                    }
                });
            let conn = http
                .serve_connection(TokioIo::new(socket), logged)
                .into_owned();
            tokio::spawn(async move {
                let _ = conn.await;
            });
        }
    });
    tracing::info!(url = %format!("http://{addr}"), root = %dir.display(), "S3 endpoint started");
    Ok(S3Server {
        addr,
        root: dir.to_owned(),
        task,
        log,
        temp: None,
    })
}

/// Serves S3 from a fresh temporary directory, removed on drop.
pub async fn start_temp() -> anyhow::Result<S3Server> {
    let temp = tempfile::Builder::new()
        .prefix("opsteps-sandbox-s3-")
        .tempdir()?;
    let mut server = start(temp.path()).await?;
    server.temp = Some(temp);
    Ok(server)
}

impl S3Server {
    /// `http://127.0.0.1:PORT`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The listening address.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The directory behind the endpoint (one subdirectory per bucket).
    #[must_use]
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Creates bucket `name` (idempotent), as tests' fixtures need before a step writes to it.
    pub fn create_bucket(&self, name: &str) -> anyhow::Result<()> {
        anyhow::ensure!(valid_bucket_name(name), "invalid bucket name {name:?}");
        let dir = self.root.join(name);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating bucket {name}"))
    }

    /// Every request received so far, in order.
    #[must_use]
    pub fn requests(&self) -> Vec<S3Request> {
        self.log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Stops serving (idempotent).
    pub fn stop(&self) {
        self.task.abort();
    }
}

/// S3's answer to an object PUT into a bucket that does not exist (s3s-fs would create the
/// directory and accept it): 404 `NoSuchBucket`.
fn no_such_bucket(
    root: &Path,
    method: &http::Method,
    path: &str,
) -> Option<http::Response<s3s::Body>> {
    let rest = path.strip_prefix('/')?;
    let (bucket, key) = rest.split_once('/')?;
    if method != http::Method::PUT || key.is_empty() || root.join(bucket).is_dir() {
        return None;
    }
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message><BucketName>{bucket}</BucketName></Error>"
    );
    http::Response::builder()
        .status(http::StatusCode::NOT_FOUND)
        .header(http::header::CONTENT_TYPE, "application/xml")
        .body(s3s::Body::from(body))
        .ok()
}

/// S3's bucket naming rules (3-63 characters: lower-case letters, digits, `.` and `-`, starting
/// and ending with a letter or digit), which the endpoint enforces too.
fn valid_bucket_name(name: &str) -> bool {
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    (3..=63).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
        && edge(name.chars().next())
        && edge(name.chars().last())
        && !name.contains("..")
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
    }
}
