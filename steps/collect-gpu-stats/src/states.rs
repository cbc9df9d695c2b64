//! A GPU's state over the window (gpu.md §8):
//! - `active`: mean utilisation at or above the idle threshold;
//! - `idle-held`: a pod holds it, no work, but at least `--held-memory-mib` of framebuffer in
//!   use (a notebook or server keeping a model loaded);
//! - `idle`: a pod holds it, no work, little memory;
//! - `unallocated`: no pod holds it and it does no work;
//! - `unknown`: no utilisation reading at all (missing families).
//!
//! A GPU doing work that no pod holds is `active` (the pod mapping may be broken; the
//! allocation cross-check says more).

use crate::aggregation::Figures;

/// The state of one GPU over the window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    /// Doing work.
    Active,
    /// Held, no work, memory in use.
    IdleHeld,
    /// Held, no work, little memory.
    Idle,
    /// Not held, no work.
    Unallocated,
    /// No utilisation reading.
    Unknown,
}

impl State {
    /// The state's name in reports.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::IdleHeld => "idle-held",
            Self::Idle => "idle",
            Self::Unallocated => "unallocated",
            Self::Unknown => "unknown",
        }
    }
}

/// Thresholds from the flags.
#[derive(Clone, Copy, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Thresholds {
    /// Below this mean utilisation (%), no work.
    pub idle_util_percent: f64,
    /// At or above this peak framebuffer use (MiB), memory is held.
    pub held_memory_mib: u64,
}

/// Classifies one GPU.
#[must_use]
pub fn classify(f: &Figures, held: bool, t: Thresholds) -> State {
    let Some(util) = f.util_percent else {
        return State::Unknown;
    };
    if util.mean >= t.idle_util_percent {
        return State::Active;
    }
    if !held {
        return State::Unallocated;
    }
    if f.fb_used_max_mib.unwrap_or(0.0) >= t.held_memory_mib as f64 {
        State::IdleHeld
    } else {
        State::Idle
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Summary;

    #[test]
    fn four_states_and_unknown() {
        let t = Thresholds {
            idle_util_percent: 5.0,
            held_memory_mib: 1024,
        };
        let f = |util: f64, fb: f64| Figures {
            util_percent: Some(Summary {
                mean: util,
                p95: util,
                max: util,
            }),
            fb_used_max_mib: Some(fb),
            ..Figures::default()
        };
        assert_eq!(classify(&f(90.0, 70000.0), true, t), State::Active);
        assert_eq!(classify(&f(12.0, 0.0), false, t), State::Active);
        assert_eq!(classify(&f(0.0, 74166.0), true, t), State::IdleHeld);
        assert_eq!(classify(&f(4.9, 1023.0), true, t), State::Idle);
        assert_eq!(classify(&f(0.0, 0.0), false, t), State::Unallocated);
        assert_eq!(classify(&Figures::default(), true, t), State::Unknown);
    }
}
