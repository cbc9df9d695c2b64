//! PodDisruptionBudgets: which pods a budget selects and whether it can ever allow a
//! disruption.

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::ResourceExt;

/// Whether a PDB's selector selects `pod` (policy/v1: an empty selector selects every pod in the
/// namespace, a missing one selects none).
#[must_use]
pub fn pdb_selects(pdb: &PodDisruptionBudget, pod: &Pod) -> bool {
    if pdb.namespace() != pod.namespace() {
        return false;
    }
    let Some(sel) = pdb.spec.as_ref().and_then(|s| s.selector.as_ref()) else {
        return false;
    };
    crate::selector::label_selector_matches(sel, pod.labels())
}

/// Why a PDB can never allow a disruption, if that is so (`maxUnavailable: 0`, or a
/// `minAvailable`/desired-healthy count that equals or exceeds the pods it covers).
#[must_use]
pub fn pdb_unsatisfiable(pdb: &PodDisruptionBudget, matching_pods: usize) -> Option<String> {
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    let spec = pdb.spec.as_ref()?;
    match &spec.max_unavailable {
        Some(IntOrString::Int(0)) => return Some("maxUnavailable is 0".into()),
        Some(IntOrString::String(s))
            if s.trim_end_matches('%')
                .parse::<f64>()
                .is_ok_and(|p| p <= 0.0) =>
        {
            return Some(format!("maxUnavailable is {s}"));
        }
        _ => {}
    }
    match &spec.min_available {
        Some(IntOrString::Int(n)) if *n > 0 && (*n as usize) >= matching_pods => {
            return Some(format!(
                "minAvailable {n} needs all {matching_pods} matching pods"
            ));
        }
        Some(IntOrString::String(s))
            if s.trim_end_matches('%')
                .parse::<f64>()
                .is_ok_and(|p| p >= 100.0) =>
        {
            return Some(format!("minAvailable is {s}"));
        }
        _ => {}
    }
    let st = pdb.status.as_ref()?;
    if st.expected_pods > 0 && st.desired_healthy >= st.expected_pods {
        return Some(format!(
            "needs {} healthy of {} expected pods",
            st.desired_healthy, st.expected_pods
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::policy::v1::{PodDisruptionBudgetSpec, PodDisruptionBudgetStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    use serde_json::json;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    fn pdb(
        min: Option<IntOrString>,
        max: Option<IntOrString>,
        status: Option<(i32, i32)>,
    ) -> PodDisruptionBudget {
        PodDisruptionBudget {
            metadata: kube::api::ObjectMeta {
                name: Some("p".into()),
                namespace: Some("n".into()),
                ..Default::default()
            },
            spec: Some(PodDisruptionBudgetSpec {
                min_available: min,
                max_unavailable: max,
                selector: Some(LabelSelector::default()),
                ..Default::default()
            }),
            status: status.map(|(desired, expected)| PodDisruptionBudgetStatus {
                desired_healthy: desired,
                expected_pods: expected,
                ..Default::default()
            }),
        }
    }

    #[test]
    fn finds_unsatisfiable_budgets() {
        assert!(pdb_unsatisfiable(&pdb(None, Some(IntOrString::Int(0)), None), 3).is_some());
        assert!(
            pdb_unsatisfiable(&pdb(None, Some(IntOrString::String("0%".into())), None), 3)
                .is_some()
        );
        assert!(pdb_unsatisfiable(&pdb(Some(IntOrString::Int(3)), None, None), 3).is_some());
        assert!(
            pdb_unsatisfiable(
                &pdb(Some(IntOrString::String("100%".into())), None, None),
                3
            )
            .is_some()
        );
        assert!(
            pdb_unsatisfiable(&pdb(Some(IntOrString::Int(2)), None, Some((2, 3))), 3).is_none()
        );
        assert!(
            pdb_unsatisfiable(&pdb(None, Some(IntOrString::Int(1)), Some((2, 3))), 3).is_none()
        );
        assert!(
            pdb_unsatisfiable(
                &pdb(Some(IntOrString::String("50%".into())), None, Some((3, 3))),
                3
            )
            .is_some()
        );
    }

    #[test]
    fn pdb_selector_semantics() {
        let p = pod(json!({"metadata": {"name": "a", "namespace": "n", "labels": {"app": "web"}}}));
        let mut b = pdb(None, Some(IntOrString::Int(1)), None);
        assert!(
            pdb_selects(&b, &p),
            "empty selector selects all in namespace"
        );
        b.spec.as_mut().unwrap().selector = None;
        assert!(!pdb_selects(&b, &p), "null selector selects none");
        b.spec.as_mut().unwrap().selector = Some(LabelSelector {
            match_labels: Some([("app".to_owned(), "db".to_owned())].into()),
            ..Default::default()
        });
        assert!(!pdb_selects(&b, &p));
        b.metadata.namespace = Some("other".into());
        b.spec.as_mut().unwrap().selector = Some(LabelSelector::default());
        assert!(!pdb_selects(&b, &p), "other namespace");
    }
}
