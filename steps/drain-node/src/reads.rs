//! Reads before the first cordon (node selection, the plan) share one deadline and end at once
//! on SIGTERM: paged lists through [`opsteps::list`], single GETs retried through
//! [`opsteps::retry`].

use std::time::Duration;

use opsteps::list::Lister;
use opsteps::retry::RetryPolicy;
use opsteps::shutdown::Shutdown;
use tokio::time::Instant;

/// How long selecting and planning may take in all.
pub const PLAN_TIMEOUT: Duration = Duration::from_mins(10);

/// The deadline and shutdown of the reads before the first cordon.
#[derive(Clone, Debug)]
pub struct Reads {
    deadline: Instant,
    shutdown: Shutdown,
}

impl Reads {
    /// Reads that must finish within [`PLAN_TIMEOUT`] from now.
    #[must_use]
    pub fn new(shutdown: &Shutdown) -> Self {
        Self {
            deadline: Instant::now() + PLAN_TIMEOUT,
            shutdown: shutdown.clone(),
        }
    }

    /// A paged list bounded by the deadline and SIGTERM.
    #[must_use]
    pub fn lister(&self, what: impl Into<String>) -> Lister {
        Lister::new(what)
            .deadline(self.deadline)
            .shutdown(&self.shutdown)
    }

    /// The retry policy of single requests, bounded the same way.
    #[must_use]
    pub fn retry(&self) -> RetryPolicy {
        RetryPolicy::default()
            .with_deadline(self.deadline)
            .with_shutdown(&self.shutdown)
    }
}
