//! One bounded retry policy for transient API errors: jittered exponential backoff that honours
//! the server's Retry-After and never sleeps past the step's deadline.
//!
//! kube-rs 5 also ships a retry layer (on by default, 15 retries up to 1000 s for 429/503/504).
//! [`crate::connect`] turns it off: on the eviction endpoint a 429 means "a PodDisruptionBudget
//! blocks this", which the steps must see, report and schedule themselves, and a hidden retry
//! loop of up to 1000 s would outlive any deadline.

use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use tokio::time::Instant;

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

/// Backoff settings and an optional deadline.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    /// First delay.
    pub min_delay: Duration,
    /// Largest delay between attempts (a server's Retry-After may exceed it).
    pub max_delay: Duration,
    /// Attempts in all, the first included.
    pub max_attempts: usize,
    /// No retry is scheduled to start after this instant.
    pub deadline: Option<Instant>,
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
        }
    }
}

impl RetryPolicy {
    /// The same policy, bounded by `deadline`.
    #[must_use]
    pub fn with_deadline(mut self, deadline: Instant) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// The delay before the next attempt: the backoff's proposal, raised to the server's
    /// Retry-After, or `None` when that would start after the deadline.
    fn next_delay(
        &self,
        proposed: Option<Duration>,
        retry_after: Option<Duration>,
        now: Instant,
    ) -> Option<Duration> {
        let mut delay = proposed?;
        if let Some(ra) = retry_after {
            delay = delay.max(ra);
        }
        match self.deadline {
            Some(d) if now + delay > d => None,
            _ => Some(delay),
        }
    }

    /// Runs `op` until it succeeds, fails with a non-transient error, runs out of attempts, or
    /// the next attempt would start after the deadline. `what` names the operation in logs.
    pub async fn run<T, E, F, Fut>(&self, what: &str, op: F) -> Result<T, E>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: Transient + std::fmt::Display,
    {
        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_max_times(self.max_attempts.saturating_sub(1))
            .with_jitter();
        op.retry(backoff)
            .sleep(tokio::time::sleep)
            .when(Transient::is_transient)
            .adjust(|e: &E, proposed| self.next_delay(proposed, e.retry_after(), Instant::now()))
            .notify(|e: &E, delay: Duration| {
                tracing::warn!(operation = what, error = %e, retry_in_ms = delay.as_millis() as u64, "transient error, retrying");
            })
            .await
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
