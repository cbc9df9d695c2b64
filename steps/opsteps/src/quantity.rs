//! Kubernetes resource quantities (`100m`, `1.5`, `512Mi`, `2G`, `1e3`) as numbers, for capacity
//! checks: CPU in millicores, everything else in base units.

/// A quantity as a float of base units (cores, bytes, count). `None` if it does not parse.
#[must_use]
pub fn parse(q: &str) -> Option<f64> {
    let q = q.trim();
    if q.is_empty() {
        return None;
    }
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(q.len());
    let (num, suffix) = q.split_at(split);
    // A decimal exponent (`1e3`, `2E-2`) is a suffix in the grammar.
    if let Some(exp) = suffix.strip_prefix(['e', 'E']).filter(|e| {
        !e.is_empty()
            && e.trim_start_matches(['+', '-'])
                .chars()
                .all(|c| c.is_ascii_digit())
    }) {
        let base: f64 = num.parse().ok()?;
        let e: i32 = exp.parse().ok()?;
        return Some(base * 10f64.powi(e));
    }
    let n: f64 = num.parse().ok()?;
    let mult = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        _ => return None,
    };
    Some(n * mult)
}

/// CPU in millicores.
#[must_use]
pub fn millicores(q: &str) -> Option<i64> {
    parse(q).map(|v| (v * 1000.0).round() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kubernetes_quantities() {
        assert_eq!(millicores("100m"), Some(100));
        assert_eq!(millicores("1.5"), Some(1500));
        assert_eq!(millicores("2"), Some(2000));
        assert_eq!(parse("512Mi"), Some(512.0 * 1024.0 * 1024.0));
        assert_eq!(parse("1Gi"), Some(1024f64.powi(3)));
        assert_eq!(parse("2G"), Some(2e9));
        assert_eq!(parse("1e3"), Some(1000.0));
        assert_eq!(parse("110"), Some(110.0));
        assert_eq!(parse(""), None);
        assert_eq!(parse("12Q"), None);
        assert_eq!(parse("abc"), None);
    }
}
