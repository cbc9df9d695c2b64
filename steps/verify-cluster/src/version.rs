//! Kubernetes minor versions (`1.33`) as EKS, kubelets and image tags spell them.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

/// A Kubernetes `major.minor`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Minor {
    /// Major version (1).
    pub major: u32,
    /// Minor version.
    pub minor: u32,
}

impl Minor {
    /// `major.minor`.
    #[must_use]
    pub fn new(major: u32, minor: u32) -> Self {
        Self { major, minor }
    }

    /// The next minor.
    #[must_use]
    pub fn next(self) -> Self {
        Self::new(self.major, self.minor + 1)
    }

    /// How many minors `self` is behind `other` (negative when ahead); majors other than equal
    /// count as far apart.
    #[must_use]
    pub fn behind(self, other: Self) -> i64 {
        if self.major != other.major {
            return if self.major < other.major { 100 } else { -100 };
        }
        i64::from(other.minor) - i64::from(self.minor)
    }

    /// Reads the first `X.Y` of a version string: `1.33`, `v1.33.2-eks-abc`, `v1.33.0-eksbuild.1`.
    #[must_use]
    pub fn parse_loose(s: &str) -> Option<Self> {
        let s = s.trim().trim_start_matches('v');
        let mut parts = s.split(|c: char| !c.is_ascii_digit());
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        Some(Self::new(major, minor))
    }
}

impl fmt::Display for Minor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl Serialize for Minor {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Parses `--target-kubernetes`/`--expect-kubernetes`: exactly `MAJOR.MINOR`.
impl FromStr for Minor {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad =
            || format!("{s:?} is not a Kubernetes minor version; expected MAJOR.MINOR, e.g. 1.34");
        let (a, b) = s
            .trim()
            .trim_start_matches('v')
            .split_once('.')
            .ok_or_else(bad)?;
        let major = a.parse().map_err(|_| bad())?;
        let minor = b.parse().map_err(|_| bad())?;
        if major != 1 {
            return Err(format!(
                "{s:?}: only Kubernetes 1.x exists; expected e.g. 1.34"
            ));
        }
        Ok(Self::new(major, minor))
    }
}

/// How many minors a kubelet may be behind the API server: 3 since Kubernetes 1.28, 2 for
/// kubelets older than 1.25 (the version skew policy).
#[must_use]
pub fn kubelet_max_behind(kubelet: Minor) -> i64 {
    if kubelet < Minor::new(1, 25) { 2 } else { 3 }
}

/// A full `major.minor.patch` for comparing chart versions (pre-release suffixes ignored).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Semver(pub u64, pub u64, pub u64);

impl Semver {
    /// `1.2.3`, `v1.2`, `1.2.3-rc.1` (the suffix is dropped); `None` when not numeric.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        let core = s.trim().trim_start_matches('v');
        let core = core.split(['-', '+']).next()?;
        let mut it = core.split('.');
        let a = it.next()?.parse().ok()?;
        let b = it.next().map_or(Some(0), |x| x.parse().ok())?;
        let c = it.next().map_or(Some(0), |x| x.parse().ok())?;
        Some(Self(a, b, c))
    }

    /// Whether the version has a pre-release suffix (`-rc.1`), which dashboards do not offer.
    #[must_use]
    pub fn is_prerelease(s: &str) -> bool {
        s.trim()
            .trim_start_matches('v')
            .split('+')
            .next()
            .is_some_and(|c| c.contains('-'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_spellings_in_use() {
        assert_eq!(
            Minor::parse_loose("v1.33.2-eks-473151a"),
            Some(Minor::new(1, 33))
        );
        assert_eq!(Minor::parse_loose("1.34"), Some(Minor::new(1, 34)));
        assert_eq!(
            Minor::parse_loose("v1.31.0-eksbuild.3"),
            Some(Minor::new(1, 31))
        );
        assert_eq!(Minor::parse_loose("latest"), None);
        assert_eq!("1.34".parse::<Minor>(), Ok(Minor::new(1, 34)));
        assert!("1".parse::<Minor>().is_err());
        assert!("2.1".parse::<Minor>().is_err());
        assert!("1.x".parse::<Minor>().is_err());
        assert_eq!(Minor::new(1, 30).behind(Minor::new(1, 33)), 3);
        assert_eq!(kubelet_max_behind(Minor::new(1, 24)), 2);
        assert_eq!(kubelet_max_behind(Minor::new(1, 30)), 3);
    }

    #[test]
    fn semver_orders_numerically() {
        assert!(Semver::parse("1.10.0").unwrap() > Semver::parse("1.9.3").unwrap());
        assert_eq!(Semver::parse("v2.1"), Some(Semver(2, 1, 0)));
        assert!(Semver::is_prerelease("1.2.3-rc.1"));
        assert!(!Semver::is_prerelease("1.2.3+build"));
    }
}
