//! Kubernetes Events on the objects a step acts on, so `kubectl describe node` and the Argo UI's
//! event view show what happened. Best effort: a failed Event never fails a step. Every step
//! writes its Events here, so each is audited the same way: action `create-event`, target the
//! Event.

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
use kube::api::{Api, PostParams};
use kube::{Client, Resource, ResourceExt};

use crate::audit::{Auditor, Target};

/// Normal or Warning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    /// Normal.
    Normal,
    /// Warning.
    Warning,
}

/// The audit action of every Event a step writes.
pub const AUDIT_ACTION: &str = "create-event";

/// Posts an Event about `obj` (namespaced objects get it in their namespace, cluster-scoped ones
/// in `default`, as the node controller does), with `action` equal to `reason`. Audited like
/// every write. Callers send none in a dry run or after SIGTERM.
pub async fn record<K>(
    client: &Client,
    audit: &Auditor,
    step: &str,
    obj: &K,
    type_: EventType,
    reason: &str,
    message: &str,
) where
    K: Resource<DynamicType = ()>,
{
    record_action(client, audit, step, obj, type_, reason, reason, message).await;
}

/// [`record`] with an `action` apart from the reason (the descheduler's `Descheduled`, say).
#[allow(clippy::too_many_arguments)]
#[tracing::instrument(skip_all, fields(reason, object = %obj.name_any()))]
pub async fn record_action<K>(
    client: &Client,
    audit: &Auditor,
    step: &str,
    obj: &K,
    type_: EventType,
    reason: &str,
    action: &str,
    message: &str,
) where
    K: Resource<DynamicType = ()>,
{
    let kind = K::kind(&()).into_owned();
    let name = obj.name_any();
    let namespace = obj.namespace();
    let event_ns = namespace.clone().unwrap_or_else(|| "default".to_owned());
    let now = jiff::Timestamp::now();
    let event = Event {
        metadata: kube::api::ObjectMeta {
            name: Some(format!("{name}.{:x}", now.as_nanosecond())),
            namespace: Some(event_ns.clone()),
            ..Default::default()
        },
        involved_object: ObjectReference {
            api_version: Some(K::api_version(&()).into_owned()),
            kind: Some(kind.clone()),
            name: Some(name.clone()),
            namespace: namespace.clone(),
            uid: obj.meta().uid.clone(),
            ..Default::default()
        },
        reason: Some(reason.to_owned()),
        message: Some(message.chars().take(1024).collect()),
        type_: Some(match type_ {
            EventType::Normal => "Normal".to_owned(),
            EventType::Warning => "Warning".to_owned(),
        }),
        source: Some(EventSource {
            component: Some(step.to_owned()),
            host: None,
        }),
        reporting_component: Some(format!("opsteps/{step}")),
        reporting_instance: Some(
            std::env::var(crate::env::ARGO_POD_NAME).unwrap_or_else(|_| step.to_owned()),
        ),
        first_timestamp: Some(Time(now)),
        last_timestamp: Some(Time(now)),
        event_time: Some(MicroTime(now)),
        action: Some(action.to_owned()),
        count: Some(1),
        ..Default::default()
    };
    let api: Api<Event> = Api::namespaced(client.clone(), &event_ns);
    let event_name = event.metadata.name.clone().unwrap_or_default();
    let target = Target::namespaced("Event", &event_ns, &event_name);
    audit.sent(AUDIT_ACTION, &target, false);
    let result = match api.create(&PostParams::default(), &event).await {
        Ok(_) => Ok(201),
        Err(e) => {
            tracing::warn!(error = %e, reason, object = %name, "cannot record event");
            Err((
                match &e {
                    kube::Error::Api(s) => Some(s.code),
                    _ => None,
                },
                e.to_string(),
            ))
        }
    };
    audit.record(AUDIT_ACTION, target, false, result);
}
