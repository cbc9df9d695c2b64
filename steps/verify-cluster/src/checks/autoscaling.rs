//! HorizontalPodAutoscalers: unable to scale or read metrics, pinned at maxReplicas.

use super::{Ctx, obj};
use crate::finding::Findings;

fn id(h: &k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler) -> String {
    format!(
        "{}/{}",
        h.metadata.namespace.as_deref().unwrap_or_default(),
        h.metadata.name.as_deref().unwrap_or_default()
    )
}

/// `hpa.unable`: AbleToScale or ScalingActive False.
pub fn unable(cx: &Ctx<'_>, f: &mut Findings) {
    for h in cx.inv.hpas() {
        for c in h
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .into_iter()
            .flatten()
        {
            if matches!(c.type_.as_str(), "AbleToScale" | "ScalingActive") && c.status == "False" {
                f.add(
                    format!(
                        "HPA {} {} is False ({}): {}",
                        id(h),
                        c.type_,
                        c.reason.as_deref().unwrap_or_default(),
                        c.message.as_deref().unwrap_or_default()
                    ),
                    vec![obj("HorizontalPodAutoscaler", &h.metadata)],
                );
            }
        }
    }
}

/// `hpa.at-max`.
pub fn at_max(cx: &Ctx<'_>, f: &mut Findings) {
    for h in cx.inv.hpas() {
        let (Some(spec), Some(st)) = (&h.spec, &h.status) else {
            continue;
        };
        let limited = st.conditions.iter().flatten().any(|c| {
            c.type_ == "ScalingLimited"
                && c.status == "True"
                && c.reason.as_deref() == Some("TooManyReplicas")
        });
        if st.current_replicas.unwrap_or(0) >= spec.max_replicas || limited {
            f.add(
                format!(
                    "HPA {} is at maxReplicas {} (current {}, desired {})",
                    id(h),
                    spec.max_replicas,
                    st.current_replicas.unwrap_or(0),
                    st.desired_replicas
                ),
                vec![obj("HorizontalPodAutoscaler", &h.metadata)],
            );
        }
    }
}
