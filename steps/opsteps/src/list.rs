//! Paged listing, once for every step: pages of `limit` items chained by `continue` tokens,
//! transient errors retried through [`crate::retry`], the whole list bounded by the step's
//! deadline and ended at once by SIGTERM.
//!
//! Two outcomes that a hand-written pager gets wrong:
//! - an expired `continue` token (HTTP 410) restarts the list from the first page, telling
//!   page-by-page consumers with [`Page::Restart`], instead of failing or silently ending;
//! - HTTP 400 (a real API server's answer to an unsupported field selector, "field label not
//!   supported", or a label selector it cannot parse, "unable to parse requirement") is
//!   [`ListError::Refused`], a bad-input exit 2, never an empty list read as "nothing matched".
//!
//! ```no_run
//! # async fn f(client: kube::Client, ctx: opsteps::step::Context, deadline: tokio::time::Instant)
//! # -> Result<(), opsteps::exit::StepError> {
//! use k8s_openapi::api::core::v1::Pod;
//! use kube::api::{Api, ListParams};
//! use opsteps::list::Lister;
//!
//! let pods: Api<Pod> = Api::all(client);
//! let lp = ListParams::default().fields("spec.nodeName=node-a");
//! let on_node = Lister::new("pods on node-a")
//!     .deadline(deadline)
//!     .shutdown(&ctx.shutdown)
//!     .list_all(&pods, &lp)
//!     .await?; // ListError → StepError with the right exit code
//! # Ok(()) }
//! ```

use std::fmt::Debug;

use kube::api::{Api, ListParams, ObjectList};
use serde::de::DeserializeOwned;
use tokio::time::Instant;

use crate::exit::{ExitStatus, StepError};
use crate::retry::{RetryError, RetryPolicy};
use crate::shutdown::Shutdown;

/// Items per page unless [`Lister::page_size`] says otherwise (kubectl's chunk size).
pub const DEFAULT_PAGE_SIZE: u32 = 500;

/// Restarts after expired `continue` tokens before giving up (transient, exit 3): a list that
/// keeps expiring is slower than the server's compaction window, and retrying later may help.
pub const MAX_RESTARTS: usize = 3;

/// One step of a paged list, as [`Lister::for_each_page`] hands it over.
#[derive(Debug)]
pub enum Page<K> {
    /// The next page's items.
    Items(Vec<K>),
    /// The `continue` token expired (HTTP 410): the list starts again from the first page.
    /// Forget what the earlier pages gave, or make handling them idempotent.
    Restart,
}

/// What a completed list cost.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ListStats {
    /// List requests sent, retries and restarts included.
    pub requests: usize,
    /// Restarts after an expired `continue` token.
    pub restarts: usize,
    /// Items handed over (after the last restart).
    pub items: usize,
}

/// Why a list did not complete.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    /// The API server refused the request (HTTP 400): an unsupported field selector or a label
    /// selector it cannot parse. Bad input, exit 2.
    #[error("the API server refused to list {what} with {params}: {message}")]
    Refused {
        /// What was listed.
        what: String,
        /// The selectors sent.
        params: String,
        /// The server's message.
        message: String,
        /// The error.
        #[source]
        source: kube::Error,
    },
    /// A request failed, after retries for transient errors.
    #[error("list {what}")]
    Api {
        /// What was listed.
        what: String,
        /// The last error and why retrying stopped.
        #[source]
        source: RetryError<kube::Error>,
    },
    /// `continue` tokens kept expiring.
    #[error(
        "list {what}: the continue token expired {restarts} times; the list is slower than the server keeps its history"
    )]
    Expired {
        /// What was listed.
        what: String,
        /// Restarts made.
        restarts: usize,
    },
    /// The deadline passed before the list completed.
    #[error("list {what}: deadline reached before the list completed")]
    Deadline {
        /// What was listed.
        what: String,
    },
    /// Shutdown (SIGTERM) was requested.
    #[error("list {what}: interrupted by shutdown")]
    Interrupted {
        /// What was listed.
        what: String,
    },
}

impl ListError {
    /// The exit status this error maps to: refused → 2; interrupted, deadline, expiry and
    /// transient API errors → 3; other API errors (403, 404) → 1.
    #[must_use]
    pub fn status(&self) -> ExitStatus {
        match self {
            Self::Refused { .. } => ExitStatus::BadInput,
            Self::Expired { .. } | Self::Deadline { .. } => ExitStatus::Transient,
            Self::Interrupted { .. } => ExitStatus::interrupted(),
            Self::Api { source, .. } => match source {
                RetryError::Permanent(e) if !crate::retry::is_transient_kube(e) => {
                    ExitStatus::Failed
                }
                _ => ExitStatus::Transient,
            },
        }
    }
}

impl From<ListError> for StepError {
    fn from(e: ListError) -> Self {
        let status = e.status();
        match e {
            ListError::Refused { .. } => StepError::new(
                status,
                format!(
                    "{e}; the selector is not supported by this API server (for fields, see `kubectl get --field-selector` for the resource)"
                ),
            ),
            ListError::Api { what, source } => {
                StepError::new(status, format!("list {what}")).with_source(source.into_inner())
            }
            other => StepError::new(status, other.to_string()),
        }
    }
}

/// A paged list with retries, a deadline and shutdown. Cheap to build; one per list.
#[derive(Clone, Debug)]
pub struct Lister {
    what: String,
    page_size: u32,
    retry: RetryPolicy,
    deadline: Option<Instant>,
    shutdown: Option<Shutdown>,
}

impl Lister {
    /// A lister; `what` names the list in logs and errors ("pods on node-a").
    #[must_use]
    pub fn new(what: impl Into<String>) -> Self {
        Self {
            what: what.into(),
            page_size: DEFAULT_PAGE_SIZE,
            retry: RetryPolicy::default(),
            deadline: None,
            shutdown: None,
        }
    }

    /// Items per page (at least 1).
    #[must_use]
    pub fn page_size(mut self, n: u32) -> Self {
        self.page_size = n.max(1);
        self
    }

    /// The retry policy for each request (its own deadline and shutdown are replaced by the
    /// lister's when set).
    #[must_use]
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// Ends the list, including a request in flight, at `deadline`.
    #[must_use]
    pub fn deadline(mut self, deadline: Instant) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Ends the list, including a request in flight or a retry wait, on shutdown.
    #[must_use]
    pub fn shutdown(mut self, shutdown: &Shutdown) -> Self {
        self.shutdown = Some(shutdown.clone());
        self
    }

    /// Every object `params` selects, across pages (a restart discards earlier pages).
    pub async fn list_all<K>(&self, api: &Api<K>, params: &ListParams) -> Result<Vec<K>, ListError>
    where
        K: kube::Resource + Clone + DeserializeOwned + Debug,
    {
        let mut out = Vec::new();
        self.for_each_page(api, params, |page| match page {
            Page::Items(items) => out.extend(items),
            Page::Restart => out.clear(),
        })
        .await?;
        Ok(out)
    }

    /// Hands each page to `each` as it arrives, so a large list need not be held at once.
    #[tracing::instrument(skip_all, fields(list = %self.what), err)]
    pub async fn for_each_page<K, F>(
        &self,
        api: &Api<K>,
        params: &ListParams,
        mut each: F,
    ) -> Result<ListStats, ListError>
    where
        K: kube::Resource + Clone + DeserializeOwned + Debug,
        F: FnMut(Page<K>),
    {
        let mut policy = self.retry.clone();
        if let Some(d) = self.deadline {
            policy = policy.with_deadline(d);
        }
        if let Some(s) = &self.shutdown {
            policy = policy.with_shutdown(s);
        }
        let first = params.clone().limit(self.page_size);
        let mut lp = first.clone();
        let mut stats = ListStats::default();
        loop {
            let page = self.page(api, &lp, &policy, &mut stats.requests).await;
            let page = match page {
                Ok(p) => p,
                Err(ListError::Api {
                    source: RetryError::Permanent(kube::Error::Api(s)),
                    ..
                }) if s.code == 410 && lp.continue_token.is_some() => {
                    if stats.restarts == MAX_RESTARTS {
                        return Err(ListError::Expired {
                            what: self.what.clone(),
                            restarts: stats.restarts,
                        });
                    }
                    stats.restarts += 1;
                    stats.items = 0;
                    tracing::warn!(list = %self.what, restarts = stats.restarts, "continue token expired; listing again from the start");
                    each(Page::Restart);
                    lp = first.clone();
                    continue;
                }
                Err(e) => return Err(e),
            };
            let next = page.metadata.continue_.clone().filter(|c| !c.is_empty());
            stats.items += page.items.len();
            each(Page::Items(page.items));
            match next {
                Some(c) => lp = lp.continue_token(&c),
                None => return Ok(stats),
            }
        }
    }

    /// One page: retried, raced against the deadline and shutdown.
    async fn page<K>(
        &self,
        api: &Api<K>,
        lp: &ListParams,
        policy: &RetryPolicy,
        requests: &mut usize,
    ) -> Result<ObjectList<K>, ListError>
    where
        K: kube::Resource + Clone + DeserializeOwned + Debug,
    {
        let what = self.what.clone();
        let request = policy.retry(&self.what, || {
            *requests += 1;
            api.list(lp)
        });
        let deadline = async {
            match self.deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        let shutdown = async {
            match &self.shutdown {
                Some(s) => s.requested().await,
                None => std::future::pending().await,
            }
        };
        let result = tokio::select! {
            biased;
            () = shutdown => return Err(ListError::Interrupted { what }),
            () = deadline => return Err(ListError::Deadline { what }),
            r = request => r,
        };
        result.map_err(|e| match e {
            RetryError::Permanent(kube::Error::Api(s)) if s.code == 400 => ListError::Refused {
                what,
                params: describe(lp),
                message: s.message.clone(),
                source: kube::Error::Api(s),
            },
            RetryError::Interrupted(_) => ListError::Interrupted { what },
            RetryError::Deadline(_) => ListError::Deadline { what },
            source => ListError::Api { what, source },
        })
    }
}

/// The selectors of a list request, for messages.
fn describe(lp: &ListParams) -> String {
    match (&lp.label_selector, &lp.field_selector) {
        (Some(l), Some(f)) => format!("label selector {l:?} and field selector {f:?}"),
        (Some(l), None) => format!("label selector {l:?}"),
        (None, Some(f)) => format!("field selector {f:?}"),
        (None, None) => "no selector".into(),
    }
}

/// Every object `params` selects: [`Lister`] with the default page size and retry policy,
/// bounded by `deadline` and `shutdown`.
pub async fn list_all<K>(
    api: &Api<K>,
    params: &ListParams,
    deadline: Instant,
    shutdown: &Shutdown,
) -> Result<Vec<K>, ListError>
where
    K: kube::Resource + Clone + DeserializeOwned + Debug,
    K::DynamicType: Default,
{
    let what = K::plural(&K::DynamicType::default()).into_owned();
    Lister::new(what)
        .deadline(deadline)
        .shutdown(shutdown)
        .list_all(api, params)
        .await
}
