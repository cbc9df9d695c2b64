//! Fault injection: rules that make matching requests fail, slow down, lose their connection,
//! or have their watch stream closed mid-way. Rules come from a scenario's `faults` list or are
//! added at run time with `Sandbox::add_fault`.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Deserializer, Serialize};

/// One fault rule.
///
/// YAML shape (every matcher is optional; an absent matcher matches everything):
///
/// ```yaml
/// faults:
///   - verbs: [list, watch]        # or `verb: evict`; get list watch create update patch
///                                 # delete deletecollection evict, or "*"
///     resource: pods              # plural; `deployments` or `deployments.apps` both match
///     namespace: default
///     name: web-0
///     user: opsteps-drain         # the authenticated user name
///     action:                     # exactly one of:
///       status: {code: 429, retryAfter: 5, message: "slow down"}   # 500, 503, 429, ...
///       # latency: {ms: 250}      # delay, then serve normally
///       # drop                    # close the connection without a response
///       # watchClose: {afterEvents: 3}      # end a watch stream after N events
///       # watchClose: {afterSeconds: 2.5}   # ... or after a real-time duration
///     times: 3                    # fire for the first 3 matches only, or
///     every: 2                    # fire on every 2nd match (2nd, 4th, ...), or
///     probability: 0.25           # fire with this probability (seeded, deterministic)
///     seed: 42                    # RNG seed for `probability` (default 0)
/// ```
///
/// With none of `times`/`every`/`probability` the rule fires on every match.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultRule {
    /// Verbs matched; empty or `*` matches all.
    #[serde(default, alias = "verb", deserialize_with = "one_or_many")]
    pub verbs: Vec<String>,
    /// Resource plural (optionally `plural.group`).
    #[serde(default)]
    pub resource: Option<String>,
    /// Namespace.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Object name.
    #[serde(default)]
    pub name: Option<String>,
    /// Authenticated user name.
    #[serde(default)]
    pub user: Option<String>,
    /// What happens when the rule fires.
    pub action: FaultAction,
    /// Fire for the first N matches only.
    #[serde(default)]
    pub times: Option<u64>,
    /// Fire on every Nth match.
    #[serde(default)]
    pub every: Option<u64>,
    /// Fire with this probability.
    #[serde(default)]
    pub probability: Option<f64>,
    /// Seed of the RNG used by `probability`.
    #[serde(default)]
    pub seed: Option<u64>,
}

/// The effect of a fired fault.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum FaultAction {
    /// Answer with this HTTP status and a `Status` body.
    Status {
        /// HTTP status code.
        code: u16,
        /// Seconds for `Retry-After` and `details.retryAfterSeconds`.
        #[serde(default, rename = "retryAfter")]
        retry_after: Option<u64>,
        /// Status message (a default per code otherwise).
        #[serde(default)]
        message: Option<String>,
    },
    /// Delay the request by `ms` real milliseconds, then serve it.
    Latency {
        /// Milliseconds.
        ms: u64,
    },
    /// Close the connection without answering.
    Drop,
    /// End a watch stream early (no effect on other verbs).
    WatchClose {
        /// After this many events were sent.
        #[serde(default, rename = "afterEvents")]
        after_events: Option<u64>,
        /// After this many real seconds.
        #[serde(default, rename = "afterSeconds")]
        after_seconds: Option<f64>,
    },
}

fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

impl FaultRule {
    /// A rule matching `verb` on `resource` that fires `action` every time.
    #[must_use]
    pub fn new(verb: &str, resource: &str, action: FaultAction) -> Self {
        Self {
            verbs: vec![verb.to_owned()],
            resource: Some(resource.to_owned()),
            namespace: None,
            name: None,
            user: None,
            action,
            times: None,
            every: None,
            probability: None,
            seed: None,
        }
    }

    /// Parses one raw scenario entry.
    pub fn from_value(v: &serde_json::Value) -> anyhow::Result<Self> {
        Ok(serde_json::from_value(v.clone())?)
    }

    /// Only the first `n` matches fire.
    #[must_use]
    pub fn times(mut self, n: u64) -> Self {
        self.times = Some(n);
        self
    }

    /// Limits the rule to one namespace/name.
    #[must_use]
    pub fn on(mut self, namespace: Option<&str>, name: Option<&str>) -> Self {
        self.namespace = namespace.map(str::to_owned);
        self.name = name.map(str::to_owned);
        self
    }

    /// Limits the rule to one user.
    #[must_use]
    pub fn for_user(mut self, user: &str) -> Self {
        self.user = Some(user.to_owned());
        self
    }

    fn matches(&self, r: &FaultRequest<'_>) -> bool {
        let verb_ok = self.verbs.is_empty() || self.verbs.iter().any(|v| v == "*" || v == r.verb);
        let res_ok = self.resource.as_deref().is_none_or(|want| {
            want == "*" || want == r.resource || r.resource.split('.').next() == Some(want)
        });
        verb_ok
            && res_ok
            && self.namespace.as_deref().is_none_or(|n| n == r.namespace)
            && self.name.as_deref().is_none_or(|n| n == r.name)
            && self.user.as_deref().is_none_or(|u| u == r.user)
    }
}

/// What a fault rule is matched against.
#[derive(Clone, Copy, Debug)]
pub struct FaultRequest<'a> {
    /// Verb (`get`, ..., `evict`).
    pub verb: &'a str,
    /// Resource as `plural` or `plural.group`.
    pub resource: &'a str,
    /// Namespace or "".
    pub namespace: &'a str,
    /// Name or "".
    pub name: &'a str,
    /// User name.
    pub user: &'a str,
}

struct Armed {
    rule: FaultRule,
    matched: u64,
    fired: u64,
    rng: StdRng,
}

/// The active fault rules with their counters.
#[derive(Default)]
pub struct Faults {
    rules: Vec<Armed>,
}

impl Faults {
    /// Adds a rule.
    pub fn add(&mut self, rule: FaultRule) {
        let rng = StdRng::seed_from_u64(rule.seed.unwrap_or(0));
        self.rules.push(Armed {
            rule,
            matched: 0,
            fired: 0,
            rng,
        });
    }

    /// Removes all rules.
    pub fn clear(&mut self) {
        self.rules.clear();
    }

    /// How many times each rule fired, in insertion order.
    #[must_use]
    pub fn fired_counts(&self) -> Vec<u64> {
        self.rules.iter().map(|a| a.fired).collect()
    }

    /// The actions of every rule that fires for this request (counters advance).
    pub fn check(&mut self, req: &FaultRequest<'_>) -> Vec<FaultAction> {
        let mut out = Vec::new();
        for a in &mut self.rules {
            if !a.rule.matches(req) {
                continue;
            }
            a.matched += 1;
            let fire = if let Some(n) = a.rule.times {
                a.matched <= n
            } else if let Some(n) = a.rule.every {
                n > 0 && a.matched % n == 0
            } else if let Some(p) = a.rule.probability {
                a.rng.random::<f64>() < p
            } else {
                true
            };
            if fire {
                a.fired += 1;
                out.push(a.rule.action.clone());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(verb: &str) -> FaultRequest<'_> {
        FaultRequest {
            verb,
            resource: "pods",
            namespace: "default",
            name: "a",
            user: "u",
        }
    }

    #[test]
    fn parses_yaml_shape() {
        let rules: Vec<FaultRule> = serde_saphyr::from_str(
            "- verbs: [list, watch]\n  resource: pods\n  action: {status: {code: 429, retryAfter: 5}}\n  times: 2\n\
             - verb: evict\n  action: drop\n  every: 3\n\
             - verb: watch\n  action: {watchClose: {afterEvents: 3}}\n  probability: 0.5\n  seed: 7\n",
        )
        .unwrap();
        assert_eq!(rules.len(), 3);
        assert_eq!(
            rules[0].action,
            FaultAction::Status {
                code: 429,
                retry_after: Some(5),
                message: None
            }
        );
        assert_eq!(rules[1].verbs, vec!["evict"]);
        assert_eq!(rules[1].action, FaultAction::Drop);
        assert_eq!(
            rules[2].action,
            FaultAction::WatchClose {
                after_events: Some(3),
                after_seconds: None
            }
        );
    }

    #[test]
    fn times_every_probability() {
        let mut f = Faults::default();
        f.add(FaultRule::new("get", "pods", FaultAction::Drop).times(2));
        let fired: Vec<bool> = (0..4).map(|_| !f.check(&req("get")).is_empty()).collect();
        assert_eq!(fired, [true, true, false, false]);
        assert!(f.check(&req("list")).is_empty());

        let mut f = Faults::default();
        let mut r = FaultRule::new("*", "pods", FaultAction::Drop);
        r.every = Some(3);
        f.add(r);
        let fired: Vec<bool> = (0..6).map(|_| !f.check(&req("get")).is_empty()).collect();
        assert_eq!(fired, [false, false, true, false, false, true]);

        let run = || {
            let mut f = Faults::default();
            let mut r = FaultRule::new("get", "pods", FaultAction::Drop);
            r.probability = Some(0.5);
            r.seed = Some(9);
            f.add(r);
            (0..64)
                .map(|_| !f.check(&req("get")).is_empty())
                .collect::<Vec<_>>()
        };
        let a = run();
        assert_eq!(a, run(), "seeded probability is deterministic");
        let n = a.iter().filter(|x| **x).count();
        assert!((16..48).contains(&n), "about half fire: {n}");
    }
}
