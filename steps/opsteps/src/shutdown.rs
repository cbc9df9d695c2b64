//! SIGTERM handling. Argo's stop and terminate send SIGTERM to the main container and kill it
//! after the pod's grace period, so a step stops starting new mutations at once, lets in-flight
//! ones finish or abandons them safely, writes its outputs and exits 3 (safe to retry).

use tokio_util::sync::CancellationToken;

/// A shutdown request shared by every task of a step.
#[derive(Clone, Debug, Default)]
pub struct Shutdown(CancellationToken);

impl Shutdown {
    /// A handle that no signal has triggered yet.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Triggers this handle on SIGTERM or SIGINT (needs a running tokio runtime).
    pub fn listen_for_signals(&self) {
        let token = self.0.clone();
        tokio::spawn(async move {
            let signal = wait_for_signal().await;
            tracing::warn!(
                signal,
                "shutdown requested: no new mutations; writing outputs"
            );
            token.cancel();
        });
    }

    /// Requests shutdown (tests; the signal listener).
    pub fn trigger(&self) {
        self.0.cancel();
    }

    /// Whether shutdown was requested. Check before starting each mutation.
    #[must_use]
    pub fn is_requested(&self) -> bool {
        self.0.is_cancelled()
    }

    /// Completes when shutdown is requested; use in `select!` around waits.
    pub async fn requested(&self) {
        self.0.cancelled().await;
    }
}

#[cfg(unix)]
async fn wait_for_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without handlers the default action (terminate) applies; nothing to wait for.
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() -> &'static str {
    let _ = tokio::signal::ctrl_c().await;
    "SIGINT"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn trigger_wakes_waiters() {
        let s = Shutdown::new();
        assert!(!s.is_requested());
        let waiter = tokio::spawn({
            let s = s.clone();
            async move { s.requested().await }
        });
        s.trigger();
        waiter.await.unwrap();
        assert!(s.is_requested());
    }
}
