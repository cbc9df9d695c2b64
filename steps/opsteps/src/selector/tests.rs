use super::*;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;
use proptest::prelude::*;

fn labels(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
    kv.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn expr(key: &str, op: &str, values: Option<&[&str]>) -> LabelSelectorRequirement {
    LabelSelectorRequirement {
        key: key.into(),
        operator: op.into(),
        values: values.map(|v| v.iter().map(|s| (*s).to_owned()).collect()),
    }
}

#[test]
fn parses_and_renders_kubectl_syntax() {
    for (input, canonical) in [
        ("app=web", "app=web"),
        ("app==web, tier!=db", "app=web,tier!=db"),
        (
            "env in (prod, staging),!canary,team",
            "env in (prod,staging),!canary,team",
        ),
        ("x notin (a)", "x notin (a)"),
        ("app.kubernetes.io/name=web", "app.kubernetes.io/name=web"),
        (
            "eks.amazonaws.com/nodegroup=blue,app",
            "eks.amazonaws.com/nodegroup=blue,app",
        ),
        ("a=,b", "a=,b"),
        ("", ""),
        ("  ", ""),
    ] {
        let s: Selector = input.parse().unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(s.to_string(), canonical);
        validate(input).unwrap_or_else(|e| panic!("{input}: {e}"));
    }
}

#[test]
fn rejects_bad_syntax_saying_what_is_accepted() {
    for bad in [
        "=web",
        "app=we b",
        "app in web",
        "app in a,b",
        "app in (a",
        "app in ()",
        "a,,b",
        "app=-web",
        "-app=x",
        "Bad_Prefix/x=1",
        "Bad_Prefix.io/x=y",
        "x>3",
        "app=web)",
        "!",
        &format!("a={}", "v".repeat(64)),
    ] {
        let e = bad.parse::<Selector>().expect_err(bad);
        let msg = e.to_string();
        assert!(msg.contains("invalid label selector"), "{bad}: {msg}");
        assert!(msg.contains(&format!("{bad:?}")), "{bad}: {msg}");
        assert!(
            msg.contains("expected comma-separated requirements"),
            "{bad}: {msg}"
        );
        assert_eq!(validate(bad), Err(e));
    }
}

#[test]
fn matches_labels() {
    let s: Selector = "app=web,env in (prod),!canary".parse().unwrap();
    assert!(s.matches(&labels(&[("app", "web"), ("env", "prod")])));
    assert!(!s.matches(&labels(&[("app", "web"), ("env", "prod"), ("canary", "1")])));
    assert!(!s.matches(&labels(&[("app", "web")])));
    let s: Selector = "tier!=db,env notin (dev)".parse().unwrap();
    assert!(
        s.matches(&labels(&[])),
        "absent labels satisfy != and notin"
    );
    assert!(!s.matches(&labels(&[("tier", "db")])));
    assert!(Selector::default().matches(&labels(&[])));
}

#[test]
fn builds_from_label_selector_objects() {
    let ls = LabelSelector {
        match_labels: Some(BTreeMap::from([("app".into(), "web".into())])),
        match_expressions: Some(vec![
            expr("env", "In", Some(&["prod", "staging"])),
            expr("tier", "NotIn", Some(&["db"])),
            expr("team", "Exists", None),
            expr("canary", "DoesNotExist", None),
        ]),
    };
    let s = Selector::from_label_selector(&ls).unwrap();
    assert_eq!(
        s.to_string(),
        "app=web,env in (prod,staging),tier notin (db),team,!canary"
    );
    let ok = labels(&[("app", "web"), ("env", "prod"), ("team", "a")]);
    assert!(s.matches(&ok));
    assert!(label_selector_matches(&ls, &ok));
    assert!(!label_selector_matches(&ls, &labels(&[("app", "web")])));
    // Empty object: everything.
    assert!(label_selector_matches(
        &LabelSelector::default(),
        &labels(&[])
    ));
}

#[test]
fn invalid_label_selector_objects_are_refused_and_match_nothing() {
    for (bad, why) in [
        (expr("env", "Gt", Some(&["1"])), "operator"),
        (expr("env", "In", None), "empty"),
        (expr("env", "In", Some(&[])), "empty"),
        (expr("env", "Exists", Some(&["x"])), "takes no values"),
        (expr("Bad_Prefix/x", "Exists", None), "prefix"),
        (expr("env", "In", Some(&["bad value"])), "value"),
    ] {
        let ls = LabelSelector {
            match_labels: None,
            match_expressions: Some(vec![bad]),
        };
        let e = Selector::from_label_selector(&ls).expect_err(why);
        assert!(e.reason().contains(why), "{e}");
        assert!(!label_selector_matches(&ls, &labels(&[("env", "1")])));
    }
}

fn arb_key() -> impl Strategy<Value = String> {
    "([a-z]{1,5}(\\.[a-z]{1,5}){0,2}/)?[a-zA-Z0-9]([a-zA-Z0-9_.-]{0,8}[a-zA-Z0-9])?"
}

fn arb_value() -> impl Strategy<Value = String> {
    "([a-zA-Z0-9]([a-zA-Z0-9_.-]{0,8}[a-zA-Z0-9])?)?"
}

fn arb_requirement() -> impl Strategy<Value = Requirement> {
    let nonempty = "[a-z0-9]{1,6}";
    prop_oneof![
        (arb_key(), arb_value()).prop_map(|(k, v)| Requirement::Eq(k, v)),
        (arb_key(), arb_value()).prop_map(|(k, v)| Requirement::NotEq(k, v)),
        (arb_key(), prop::collection::vec(nonempty, 1..4)).prop_map(|(k, v)| Requirement::In(k, v)),
        (arb_key(), prop::collection::vec(nonempty, 1..4))
            .prop_map(|(k, v)| Requirement::NotIn(k, v)),
        arb_key().prop_map(Requirement::Exists),
        arb_key().prop_map(Requirement::DoesNotExist),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// What we send the API server parses back to the same selector.
    #[test]
    fn display_round_trips(reqs in prop::collection::vec(arb_requirement(), 0..5)) {
        let s = Selector(reqs);
        let back: Selector = s.to_string().parse().unwrap();
        prop_assert_eq!(back, s);
    }

    /// No input panics the parser.
    #[test]
    fn never_panics(input in "\\PC{0,40}") {
        let _ = input.parse::<Selector>();
    }
}
