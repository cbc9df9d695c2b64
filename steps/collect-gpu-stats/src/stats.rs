//! Small statistics over a window: mean, p95 (nearest rank), max; counter increase.

/// Mean, p95 and max of a series of readings.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct Summary {
    /// Arithmetic mean.
    pub mean: f64,
    /// 95th percentile, nearest rank.
    pub p95: f64,
    /// Maximum.
    pub max: f64,
}

/// Rounds to 3 decimals, so reports stay readable and stable.
#[must_use]
pub fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// The summary of `values` (None when empty). NaN readings are ignored.
#[must_use]
pub fn summary(values: &[f64]) -> Option<Summary> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let rank = ((0.95 * n as f64).ceil() as usize).clamp(1, n);
    Some(Summary {
        mean: round3(v.iter().sum::<f64>() / n as f64),
        p95: round3(v[rank - 1]),
        max: round3(v[n - 1]),
    })
}

/// Increase of a counter over consecutive readings, reset-aware: a drop means the counter
/// restarted from zero (driver reload), so the reading after it counts in full.
#[must_use]
pub fn increase(values: &[f64]) -> f64 {
    values
        .windows(2)
        .map(|w| if w[1] >= w[0] { w[1] - w[0] } else { w[1] })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn summaries_and_increases() {
        let s = summary(&[0.0, 10.0, 20.0, 30.0, 100.0]).unwrap();
        assert_eq!((s.mean, s.p95, s.max), (32.0, 100.0, 100.0));
        assert!(summary(&[]).is_none());
        assert!(summary(&[f64::NAN]).is_none());
        assert!((increase(&[10.0, 15.0, 3.0, 8.0]) - 13.0).abs() < 1e-9);
        assert!(increase(&[5.0]).abs() < 1e-9);
    }

    proptest! {
        #[test]
        fn mean_p95_max_are_ordered(v in proptest::collection::vec(0.0f64..1e6, 1..50)) {
            let s = summary(&v).unwrap();
            prop_assert!(s.mean <= s.max + 1e-3 && s.p95 <= s.max + 1e-3);
            prop_assert!(increase(&v) >= 0.0);
        }
    }
}
