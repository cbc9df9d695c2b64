//! The virtual clock: time in the simulated cluster runs `scale` times faster than real time,
//! and tests may also jump it forward. Every timestamp the sandbox writes comes from here.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};

/// A scaled clock shared by the API server and the controllers.
#[derive(Debug)]
pub struct Clock {
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    real_start: Instant,
    virtual_start: Timestamp,
    scale: f64,
    jumped: SignedDuration,
}

impl Clock {
    /// A clock that starts at `start` and runs `scale` virtual seconds per real second.
    #[must_use]
    pub fn new(start: Timestamp, scale: f64) -> Self {
        Self {
            inner: Mutex::new(Inner {
                real_start: Instant::now(),
                virtual_start: start,
                scale,
                jumped: SignedDuration::ZERO,
            }),
        }
    }

    /// Virtual now.
    #[must_use]
    pub fn now(&self) -> Timestamp {
        let i = self.inner.lock().expect("clock lock");
        let real = i.real_start.elapsed().as_secs_f64() * i.scale;
        i.virtual_start + SignedDuration::from_secs_f64(real) + i.jumped
    }

    /// Virtual now as RFC 3339 with whole seconds, as Kubernetes writes `metav1.Time`.
    #[must_use]
    pub fn now_rfc3339(&self) -> String {
        rfc3339(self.now())
    }

    /// Jumps the clock forward by `by` of virtual time.
    pub fn advance(&self, by: Duration) {
        let mut i = self.inner.lock().expect("clock lock");
        i.jumped += SignedDuration::try_from(by).unwrap_or(SignedDuration::MAX);
    }

    /// Virtual seconds per real second.
    #[must_use]
    pub fn scale(&self) -> f64 {
        self.inner.lock().expect("clock lock").scale
    }

    /// Changes the speed from now on, without a jump in virtual time.
    pub fn set_scale(&self, scale: f64) {
        let now = self.now();
        let mut i = self.inner.lock().expect("clock lock");
        i.real_start = Instant::now();
        i.virtual_start = now;
        i.jumped = SignedDuration::ZERO;
        i.scale = scale;
    }

    /// Real time that `virtual_duration` takes at the current scale.
    #[must_use]
    pub fn real(&self, virtual_duration: Duration) -> Duration {
        virtual_duration.div_f64(self.scale().max(f64::MIN_POSITIVE))
    }
}

/// `2026-11-26T10:00:00Z`.
#[must_use]
pub fn rfc3339(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Parses a Kubernetes timestamp.
#[must_use]
pub fn parse(s: &str) -> Option<Timestamp> {
    s.parse().ok()
}
