//! One bounded retry policy for transient API errors: jittered exponential backoff that honours
//! the server's Retry-After and never sleeps past the step's deadline.
//!
//! kube-rs 5 also ships a retry layer (on by default, 15 retries up to 1000 s for 429/503/504).
//! [`crate::connect`] turns it off: on the eviction endpoint a 429 means "a PodDisruptionBudget
//! blocks this", which the steps must see, report and schedule themselves, and a hidden retry
//! loop of up to 1000 s would outlive any deadline.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use tokio::time::Instant;

use crate::exit::{ExitStatus, StepError};
use crate::shutdown::Shutdown;

/// Whether an error is worth retrying, and how long the server asked us to wait.
pub trait Transient {
    /// Retrying may succeed (throttling, 5xx, connection failures).
    fn is_transient(&self) -> bool;
    /// The server's requested delay (`Retry-After`, `details.retryAfterSeconds`).
    fn retry_after(&self) -> Option<Duration> {
        None
    }
}

/// Whether a kube-rs error is transient: 429, 5xx except 501, and transport failures.
#[must_use]
pub fn is_transient_kube(err: &kube::Error) -> bool {
    match err {
        kube::Error::Api(s) => s.code == 429 || (s.code >= 500 && s.code != 501),
        kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::ReadEvents(_) => true,
        _ => false,
    }
}

impl Transient for kube::Error {
    fn is_transient(&self) -> bool {
        is_transient_kube(self)
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            kube::Error::Api(s) => s
                .details
                .as_ref()
                .map(|d| d.retry_after_seconds)
                .filter(|&s| s > 0)
                .map(|s| Duration::from_secs(u64::from(s))),
            _ => None,
        }
    }
}

/// Backoff settings, and when to stop: attempts, a deadline, a shutdown request.
///
/// Two ways to use it:
/// - [`RetryPolicy::retry`] (or [`RetryPolicy::run`]): "retry this async operation while its
///   error is transient, under the policy, deadline and shutdown";
/// - [`RetryPolicy::backoff`]: the delays alone, for loops that retry on something other than
///   an error (a PDB refusal, a condition not met yet): `backoff.wait(retry_after).await`
///   sleeps, or says why it should not ([`Stop`]).
///
/// ```no_run
/// # async fn f(api: kube::Api<k8s_openapi::api::core::v1::Node>, shutdown: opsteps::shutdown::Shutdown,
/// #            deadline: tokio::time::Instant) -> Result<(), opsteps::exit::StepError> {
/// use opsteps::retry::RetryPolicy;
/// let policy = RetryPolicy::default().with_deadline(deadline).with_shutdown(&shutdown);
/// let node = policy
///     .retry("get node a", || api.get("a"))
///     .await
///     .map_err(|e| e.into_step_error("get node a"))?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// First delay.
    pub min_delay: Duration,
    /// Largest delay between attempts (a server's Retry-After may exceed it).
    pub max_delay: Duration,
    /// Attempts in all, the first included (`usize::MAX`: until the deadline).
    pub max_attempts: usize,
    /// No retry is scheduled to start after this instant.
    pub deadline: Option<Instant>,
    /// A requested shutdown ends every wait at once, and no further attempt starts.
    pub shutdown: Option<Shutdown>,
}

impl Default for RetryPolicy {
    /// 200 ms doubling to 10 s, 6 attempts: about 30 s of retrying, well inside any step's
    /// timeout, enough to ride out an apiserver restart or a throttling burst.
    fn default() -> Self {
        Self {
            min_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
            max_attempts: 6,
            deadline: None,
            shutdown: None,
        }
    }
}

/// Why a [`Backoff`] schedules no further attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Stop {
    /// Every attempt the policy allows was made.
    #[error("no attempts left")]
    Exhausted,
    /// The next attempt would start after the deadline.
    #[error("the deadline would pass before the next attempt")]
    Deadline,
    /// Shutdown (SIGTERM) was requested.
    #[error("interrupted by a shutdown request")]
    Interrupted,
}

/// How a retried operation ended without success; each variant carries the last error.
#[derive(Debug, thiserror::Error)]
pub enum RetryError<E: std::error::Error + 'static> {
    /// The error is not transient: retrying cannot help.
    #[error(transparent)]
    Permanent(E),
    /// Transient, but the policy's attempts are used up.
    #[error("{source} (gave up after {attempts} attempts)")]
    Exhausted {
        /// The last error.
        #[source]
        source: E,
        /// Attempts made.
        attempts: usize,
    },
    /// Transient, but the next attempt would start after the deadline.
    #[error("{0} (deadline reached)")]
    Deadline(#[source] E),
    /// Shutdown was requested while waiting to retry.
    #[error("{0} (interrupted by shutdown)")]
    Interrupted(#[source] E),
}

impl<E: std::error::Error + 'static> RetryError<E> {
    /// The last error.
    pub fn into_inner(self) -> E {
        match self {
            Self::Permanent(e)
            | Self::Exhausted { source: e, .. }
            | Self::Deadline(e)
            | Self::Interrupted(e) => e,
        }
    }

    /// The last error, borrowed.
    pub fn last(&self) -> &E {
        match self {
            Self::Permanent(e)
            | Self::Exhausted { source: e, .. }
            | Self::Deadline(e)
            | Self::Interrupted(e) => e,
        }
    }

    /// Whether it ended because shutdown was requested.
    pub fn is_interrupted(&self) -> bool {
        matches!(self, Self::Interrupted(_))
    }
}

impl RetryError<kube::Error> {
    /// A step error for `context`: interrupted → transient (exit 3, as SIGTERM always is); a
    /// deadline or exhausted attempts on a transient error → transient; otherwise classified by
    /// [`StepError::kube`].
    #[must_use]
    pub fn into_step_error(self, context: impl Into<String>) -> StepError {
        let context = context.into();
        match self {
            Self::Interrupted(e) => {
                StepError::new(ExitStatus::interrupted(), format!("{context}: interrupted"))
                    .with_source(e)
            }
            Self::Deadline(e) => {
                StepError::transient(format!("{context}: deadline reached")).with_source(e)
            }
            Self::Permanent(e) | Self::Exhausted { source: e, .. } => StepError::kube(context, e),
        }
    }
}

/// The delays of one retried operation: jittered, exponential, bounded by the policy's
/// attempts, deadline and shutdown. Made by [`RetryPolicy::backoff`].
#[derive(Debug)]
pub struct Backoff {
    delays: backon::ExponentialBackoff,
    deadline: Option<Instant>,
    shutdown: Option<Shutdown>,
    waits: usize,
}

impl Backoff {
    /// The delay before the next attempt: the backoff's proposal raised to the server's
    /// `retry_after`; or why there is none. Does not sleep.
    pub fn next_delay(&mut self, retry_after: Option<Duration>) -> Result<Duration, Stop> {
        if self.shutdown.as_ref().is_some_and(Shutdown::is_requested) {
            return Err(Stop::Interrupted);
        }
        let mut delay = self.delays.next().ok_or(Stop::Exhausted)?;
        if let Some(ra) = retry_after {
            delay = delay.max(ra);
        }
        if let Some(d) = self.deadline
            && Instant::now().checked_add(delay).is_none_or(|at| at > d)
        {
            return Err(Stop::Deadline);
        }
        self.waits += 1;
        Ok(delay)
    }

    /// Sleeps for [`Self::next_delay`]; a shutdown request ends the sleep with
    /// [`Stop::Interrupted`]. Returns the delay slept.
    pub async fn wait(&mut self, retry_after: Option<Duration>) -> Result<Duration, Stop> {
        let delay = self.next_delay(retry_after)?;
        if sleep_unless_shutdown(delay, self.shutdown.as_ref()).await {
            Ok(delay)
        } else {
            Err(Stop::Interrupted)
        }
    }

    /// Waits done so far.
    #[must_use]
    pub fn waits(&self) -> usize {
        self.waits
    }
}

/// Sleeps for `delay`; `false` when shutdown was requested first.
async fn sleep_unless_shutdown(delay: Duration, shutdown: Option<&Shutdown>) -> bool {
    let Some(s) = shutdown else {
        tokio::time::sleep(delay).await;
        return true;
    };
    tokio::select! {
        () = tokio::time::sleep(delay) => true,
        () = s.requested() => false,
    }
}

impl RetryPolicy {
    /// A policy for polling a condition until the deadline: `min` doubling to `max`, no
    /// attempt limit. Give it a deadline or a shutdown, or it polls forever.
    #[must_use]
    pub fn poll(min: Duration, max: Duration) -> Self {
        Self {
            min_delay: min,
            max_delay: max,
            max_attempts: usize::MAX,
            ..Self::default()
        }
    }

    /// The same policy, bounded by `deadline`.
    #[must_use]
    pub fn with_deadline(mut self, deadline: Instant) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// The same policy, ended by `shutdown`: waits end at once and no attempt starts after it.
    #[must_use]
    pub fn with_shutdown(mut self, shutdown: &Shutdown) -> Self {
        self.shutdown = Some(shutdown.clone());
        self
    }

    /// The delays for one operation (see [`Backoff`]).
    #[must_use]
    pub fn backoff(&self) -> Backoff {
        let builder = ExponentialBuilder::default()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_jitter();
        let builder = if self.max_attempts == usize::MAX {
            builder.without_max_times()
        } else {
            builder.with_max_times(self.max_attempts.saturating_sub(1))
        };
        Backoff {
            delays: builder.build(),
            deadline: self.deadline,
            shutdown: self.shutdown.clone(),
            waits: 0,
        }
    }

    /// Runs `op` until it succeeds or fails with a non-transient error, the attempts run out,
    /// the next attempt would start after the deadline, or shutdown is requested (the wait ends
    /// at once). `what` names the operation in logs. The error says which of these happened.
    pub async fn retry<T, E, F, Fut>(&self, what: &str, mut op: F) -> Result<T, RetryError<E>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: Transient + std::error::Error + 'static,
    {
        let mut backoff = self.backoff();
        loop {
            let e = match op().await {
                Ok(v) => return Ok(v),
                Err(e) if !e.is_transient() => return Err(RetryError::Permanent(e)),
                Err(e) => e,
            };
            let delay = match backoff.next_delay(e.retry_after()) {
                Ok(d) => d,
                Err(stop) => return Err(Self::stopped(e, stop, backoff.waits() + 1)),
            };
            tracing::warn!(operation = what, error = %e, retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX), "transient error, retrying");
            if !sleep_unless_shutdown(delay, self.shutdown.as_ref()).await {
                return Err(RetryError::Interrupted(e));
            }
        }
    }

    fn stopped<E: std::error::Error + 'static>(e: E, stop: Stop, attempts: usize) -> RetryError<E> {
        match stop {
            Stop::Exhausted => RetryError::Exhausted {
                source: e,
                attempts,
            },
            Stop::Deadline => RetryError::Deadline(e),
            Stop::Interrupted => RetryError::Interrupted(e),
        }
    }

    /// [`Self::retry`], returning the last error whatever the reason it stopped.
    pub async fn run<T, E, F, Fut>(&self, what: &str, op: F) -> Result<T, E>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: Transient + std::error::Error + 'static,
    {
        self.retry(what, op).await.map_err(RetryError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Debug)]
    struct E {
        transient: bool,
        after: Option<Duration>,
    }
    impl std::fmt::Display for E {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "e")
        }
    }
    impl std::error::Error for E {}
    impl Transient for E {
        fn is_transient(&self) -> bool {
            self.transient
        }
        fn retry_after(&self) -> Option<Duration> {
            self.after
        }
    }

    fn fast() -> RetryPolicy {
        RetryPolicy {
            min_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(50),
            max_attempts: 5,
            deadline: None,
            shutdown: None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retries_transient_errors_until_success() {
        let calls = AtomicUsize::new(0);
        let r: Result<u32, E> = fast()
            .run("t", || async {
                if calls.fetch_add(1, Ordering::SeqCst) < 2 {
                    Err(E {
                        transient: true,
                        after: None,
                    })
                } else {
                    Ok(7)
                }
            })
            .await;
        assert_eq!(r.unwrap(), 7);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn does_not_retry_permanent_errors() {
        let calls = AtomicUsize::new(0);
        let r: Result<(), E> = fast()
            .run("t", || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(E {
                    transient: false,
                    after: None,
                })
            })
            .await;
        assert!(r.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_after_max_attempts() {
        let calls = AtomicUsize::new(0);
        let r: Result<(), E> = fast()
            .run("t", || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(E {
                    transient: true,
                    after: None,
                })
            })
            .await;
        assert!(r.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 5);
    }

    #[tokio::test(start_paused = true)]
    async fn honours_retry_after_even_above_max_delay() {
        let calls = AtomicUsize::new(0);
        let start = Instant::now();
        let r: Result<(), E> = fast()
            .run("t", || async {
                if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                    Err(E {
                        transient: true,
                        after: Some(Duration::from_secs(7)),
                    })
                } else {
                    Ok(())
                }
            })
            .await;
        r.unwrap();
        let waited = start.elapsed();
        assert!(waited >= Duration::from_secs(7), "waited {waited:?}");
        assert!(waited < Duration::from_secs(8), "waited {waited:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn never_sleeps_past_the_deadline() {
        let calls = AtomicUsize::new(0);
        let start = Instant::now();
        let policy = fast().with_deadline(start + Duration::from_secs(5));
        let r: Result<(), E> = policy
            .run("t", || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(E {
                    transient: true,
                    after: Some(Duration::from_secs(10)),
                })
            })
            .await;
        assert!(r.is_err());
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "a 10 s Retry-After does not fit in a 5 s deadline"
        );
        assert!(start.elapsed() < Duration::from_secs(1));
    }

    fn transient() -> E {
        E {
            transient: true,
            after: None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_ends_a_retry_sleep_at_once() {
        let shutdown = Shutdown::new();
        let calls = AtomicUsize::new(0);
        let policy = RetryPolicy {
            min_delay: Duration::from_mins(1),
            max_delay: Duration::from_mins(1),
            ..fast()
        }
        .with_shutdown(&shutdown);
        let start = Instant::now();
        let trigger = {
            let s = shutdown.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(1)).await;
                s.trigger();
            })
        };
        let r: Result<(), RetryError<E>> = policy
            .retry("t", || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(transient())
            })
            .await;
        trigger.await.unwrap();
        assert!(matches!(r, Err(RetryError::Interrupted(_))), "{r:?}");
        assert_eq!(calls.load(Ordering::SeqCst), 1, "no attempt after SIGTERM");
        let waited = start.elapsed();
        assert!(
            waited < Duration::from_secs(2),
            "waited {waited:?} of a 60 s backoff"
        );
        // Once requested, nothing more starts: not even a first wait.
        let r: Result<(), E> = policy.run("t", || async { Err(transient()) }).await;
        assert!(r.is_err());
        assert!(start.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn retry_says_why_it_stopped() {
        let r: Result<(), RetryError<E>> = fast().retry("t", || async { Err(transient()) }).await;
        assert!(
            matches!(r, Err(RetryError::Exhausted { attempts: 5, .. })),
            "{r:?}"
        );
        let r: Result<(), RetryError<E>> = fast()
            .retry("t", || async {
                Err(E {
                    transient: false,
                    after: None,
                })
            })
            .await;
        assert!(matches!(r, Err(RetryError::Permanent(_))), "{r:?}");
        let policy = fast().with_deadline(Instant::now() + Duration::from_millis(1));
        let r: Result<(), RetryError<E>> = policy
            .retry("t", || async {
                Err(E {
                    transient: true,
                    after: Some(Duration::from_secs(1)),
                })
            })
            .await;
        assert!(matches!(r, Err(RetryError::Deadline(_))), "{r:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn backoff_waits_grow_and_stop_at_deadline_or_shutdown() {
        let start = Instant::now();
        let shutdown = Shutdown::new();
        let mut b = RetryPolicy::poll(Duration::from_millis(100), Duration::from_secs(1))
            .with_deadline(start + Duration::from_secs(5))
            .with_shutdown(&shutdown)
            .backoff();
        let mut slept = Vec::new();
        let stop = loop {
            match b.wait(None).await {
                Ok(d) => slept.push(d),
                Err(stop) => break stop,
            }
        };
        assert_eq!(stop, Stop::Deadline);
        assert!(slept.len() >= 4, "{slept:?}");
        assert!(
            slept.iter().all(|d| *d <= Duration::from_secs(2)),
            "{slept:?}"
        );
        assert!(start.elapsed() <= Duration::from_secs(5));
        // Retry-After raises a delay.
        let mut b = RetryPolicy::poll(Duration::from_millis(100), Duration::from_secs(1)).backoff();
        assert_eq!(
            b.next_delay(Some(Duration::from_secs(30))),
            Ok(Duration::from_secs(30))
        );
        // Shutdown ends a wait in progress.
        let mut b = RetryPolicy::poll(Duration::from_mins(1), Duration::from_mins(1))
            .with_shutdown(&shutdown)
            .backoff();
        let s = shutdown.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            s.trigger();
        });
        let at = Instant::now();
        assert_eq!(b.wait(None).await, Err(Stop::Interrupted));
        assert!(at.elapsed() < Duration::from_secs(1));
        assert_eq!(b.next_delay(None), Err(Stop::Interrupted));
    }

    #[test]
    fn interrupted_kube_retries_exit_3() {
        let e = kube::Error::Api(
            kube::core::Status::failure("down", "ServiceUnavailable")
                .with_code(503)
                .boxed(),
        );
        let se = RetryError::Interrupted(e).into_step_error("list pods");
        assert_eq!(se.status(), ExitStatus::Transient);
        assert!(
            se.chain().starts_with("list pods: interrupted"),
            "{}",
            se.chain()
        );
    }

    #[test]
    fn kube_errors_expose_retry_after() {
        // As the apiserver sends it: Status with details.retryAfterSeconds.
        let status: kube::core::Status = serde_json::from_value(serde_json::json!({
            "status": "Failure", "code": 429, "reason": "TooManyRequests", "message": "Cannot evict pod",
            "details": {"retryAfterSeconds": 10, "causes": [{"reason": "DisruptionBudget"}]}
        }))
        .unwrap();
        let e = kube::Error::Api(status.boxed());
        assert!(e.is_transient());
        assert_eq!(Transient::retry_after(&e), Some(Duration::from_secs(10)));
        let e = kube::Error::Api(
            kube::core::Status::failure("nope", "Forbidden")
                .with_code(403)
                .boxed(),
        );
        assert!(!e.is_transient());
        assert_eq!(Transient::retry_after(&e), None);
    }
}
