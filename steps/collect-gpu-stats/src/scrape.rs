//! Scraping exporters: directly at `<podIP>:9400/metrics` (in-cluster, the default) or through
//! the API server's `pods/proxy` (`--via-apiserver`). Bounded concurrency, a timeout per
//! request, and one failure never fails the run: each exporter gets a result of its own.
//! `--samples N` takes N rounds `--interval` apart; SIGTERM and the deadline end the rounds.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use kube::Client;
use opsteps::shutdown::Shutdown;
use tokio::time::Instant;
use tracing::instrument;

use crate::aggregation::{self, NodeAgg};
use crate::discovery::Exporter;
use crate::parse;
use crate::sample::{ParseStats, Snapshot};

/// dcgm-exporter's port.
pub const PORT: u16 = 9400;

/// Largest body read from one exporter (an 8-GPU node with every counter is ~60 KB).
pub const MAX_BODY: usize = 16 << 20;

/// Why one scrape failed.
#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    /// The pod has no IP (direct) or no node.
    #[error("exporter pod has no IP address")]
    NoAddress,
    /// Connecting or talking HTTP failed.
    #[error("cannot reach {addr}")]
    Connect {
        /// Where.
        addr: String,
        /// The transport error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// No answer within `--scrape-timeout`.
    #[error("no answer within {seconds}s")]
    Timeout {
        /// The timeout.
        seconds: u64,
    },
    /// The exporter answered, but not 200.
    #[error("HTTP {status}")]
    Status {
        /// The status code.
        status: u16,
    },
    /// The body was not UTF-8 or too large.
    #[error("unreadable body")]
    Body {
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The API server's pods/proxy refused or failed.
    #[error("pods/proxy")]
    Proxy {
        /// The API error.
        #[source]
        source: kube::Error,
    },
}

impl ScrapeError {
    /// A short kind for the data-quality block.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NoAddress => "no-address",
            Self::Connect { .. } => "unreachable",
            Self::Timeout { .. } => "timeout",
            Self::Status { .. } => "http-status",
            Self::Body { .. } => "bad-body",
            Self::Proxy { .. } => "proxy-error",
        }
    }

    /// The message with its causes on one line.
    #[must_use]
    pub fn chain(&self) -> String {
        let mut out = self.to_string();
        let mut cur = std::error::Error::source(self);
        while let Some(e) = cur {
            out.push_str(": ");
            out.push_str(&e.to_string());
            cur = e.source();
        }
        out
    }
}

/// How scrapes are sent.
#[derive(Clone)]
pub struct Scraper {
    /// The API client, for `--via-apiserver`.
    pub proxy: Option<Client>,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Requests in flight at most.
    pub concurrency: usize,
}

/// What one exporter gave over the window.
#[derive(Clone, Debug, Default)]
pub struct ExporterResult {
    /// The node's aggregate over the successful scrapes.
    pub agg: NodeAgg,
    /// Successful scrapes.
    pub scraped: u32,
    /// Failed scrapes: (round, error kind, message).
    pub failures: Vec<(u32, &'static str, String)>,
    /// Parser counters over every scrape.
    pub parse: ParseStats,
    /// Body bytes read.
    pub bytes: u64,
}

impl Scraper {
    /// One GET of `/metrics`.
    pub async fn fetch(&self, e: &Exporter) -> Result<String, ScrapeError> {
        let fut = async {
            match &self.proxy {
                Some(client) => fetch_proxy(client, e).await,
                None => fetch_direct(e).await,
            }
        };
        tokio::time::timeout(self.timeout, fut)
            .await
            .unwrap_or(Err(ScrapeError::Timeout {
                seconds: self.timeout.as_secs(),
            }))
    }

    /// `rounds` rounds over `exporters`, `interval` apart, until the deadline or SIGTERM (the
    /// bool is true when interrupted). Results are in the order of `exporters`.
    #[instrument(skip_all, fields(exporters = exporters.len(), rounds))]
    pub async fn collect(
        &self,
        exporters: &[Exporter],
        rounds: u32,
        interval: Duration,
        deadline: Instant,
        shutdown: &Shutdown,
        on_round: impl Fn(u32),
    ) -> (Vec<ExporterResult>, bool) {
        let mut results = vec![ExporterResult::default(); exporters.len()];
        let start = Instant::now();
        for round in 0..rounds {
            if round > 0 {
                let next = start + interval * round;
                tokio::select! {
                    () = tokio::time::sleep_until(next.min(deadline)) => {}
                    () = shutdown.requested() => return (results, true),
                }
            }
            if shutdown.is_requested() || Instant::now() >= deadline {
                return (results, shutdown.is_requested());
            }
            let at = start.elapsed().as_secs_f64();
            let mut bodies = futures::stream::iter(exporters.iter().enumerate())
                .map(|(i, e)| async move { (i, self.fetch(e).await) })
                .buffer_unordered(self.concurrency.max(1));
            loop {
                let next = tokio::select! {
                    n = bodies.next() => n,
                    () = shutdown.requested() => return (results, true),
                    () = tokio::time::sleep_until(deadline) => return (results, false),
                };
                let Some((i, body)) = next else { break };
                let e = &exporters[i];
                let r = &mut results[i];
                match body {
                    Ok(text) => {
                        r.bytes += text.len() as u64;
                        let (samples, stats) = parse::parse(&text);
                        drop(text);
                        r.parse.add(stats);
                        r.scraped += 1;
                        let snap = Snapshot {
                            at_seconds: at,
                            samples,
                        };
                        let node = e.node.as_deref().unwrap_or("");
                        aggregation::add(&mut r.agg, node, &snap, Some((&e.namespace, &e.name)));
                    }
                    Err(err) => {
                        tracing::warn!(exporter = %format!("{}/{}", e.namespace, e.name),
                            node = e.node.as_deref().unwrap_or(""), round, error = %err.chain(), "scrape failed");
                        r.failures.push((round, err.kind(), err.chain()));
                    }
                }
            }
            on_round(round + 1);
        }
        (results, false)
    }
}

async fn fetch_direct(e: &Exporter) -> Result<String, ScrapeError> {
    let ip: IpAddr =
        e.ip.as_deref()
            .and_then(|ip| ip.parse().ok())
            .ok_or(ScrapeError::NoAddress)?;
    let addr = SocketAddr::new(ip, PORT);
    let connect = |source: Box<dyn std::error::Error + Send + Sync>| ScrapeError::Connect {
        addr: addr.to_string(),
        source,
    };
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| connect(e.into()))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| connect(e.into()))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let req = http::Request::get("/metrics")
        .header(http::header::HOST, addr.to_string())
        .header(http::header::ACCEPT, "text/plain")
        .body(Empty::<Bytes>::new())
        .map_err(|e| connect(e.into()))?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| connect(e.into()))?;
    if resp.status() != http::StatusCode::OK {
        return Err(ScrapeError::Status {
            status: resp.status().as_u16(),
        });
    }
    let body = Limited::new(resp.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|source| ScrapeError::Body { source })?
        .to_bytes();
    String::from_utf8(body.to_vec()).map_err(|e| ScrapeError::Body { source: e.into() })
}

async fn fetch_proxy(client: &Client, e: &Exporter) -> Result<String, ScrapeError> {
    if e.node.is_none() {
        return Err(ScrapeError::NoAddress);
    }
    let req = http::Request::get(format!(
        "/api/v1/namespaces/{}/pods/{}:{PORT}/proxy/metrics",
        e.namespace, e.name
    ))
    .body(Vec::new())
    .map_err(|err| ScrapeError::Connect {
        addr: e.name.clone(),
        source: err.into(),
    })?;
    client
        .request_text(req)
        .await
        .map_err(|source| ScrapeError::Proxy { source })
}
