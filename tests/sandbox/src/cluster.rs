//! The whole simulated cluster behind one lock: objects, clock, and the state owned by the API
//! layer (`api_state`) and by the simulated world (`world`: controllers, scenario data).

use std::sync::{Arc, Mutex, MutexGuard};

use crate::clock::Clock;
use crate::store::Store;

/// Everything the API handlers and controllers share.
pub struct Cluster {
    /// All API objects.
    pub store: Store,
    /// The virtual clock.
    pub clock: Arc<Clock>,
    /// State of the API layer: request log, faults, invariant records, auth, RBAC.
    pub api: crate::api_state::ApiState,
    /// State of the simulated world: controller settings and scenario-driven behaviour.
    pub world: crate::world::World,
    /// The EKS API's state: node groups, add-ons, updates, insights (see [`crate::eks`]).
    pub eks: crate::eks::EksState,
    /// The EC2 API's state: the VPC's subnets (see [`crate::ec2`]).
    pub ec2: crate::ec2::Ec2State,
    /// What the API server's `/metrics` remembers (see [`crate::api::metrics`]).
    pub metrics: crate::api::metrics::MetricsState,
}

impl Cluster {
    /// An empty cluster on `clock`.
    #[must_use]
    pub fn new(clock: Arc<Clock>) -> Self {
        Self {
            store: Store::default(),
            clock,
            api: crate::api_state::ApiState::default(),
            world: crate::world::World::default(),
            eks: crate::eks::EksState::default(),
            ec2: crate::ec2::Ec2State::default(),
            metrics: crate::api::metrics::MetricsState::default(),
        }
    }

    /// Virtual now, RFC 3339.
    #[must_use]
    pub fn now(&self) -> String {
        self.clock.now_rfc3339()
    }
}

/// A cluster shared between the server's tasks and the controller loop.
#[derive(Clone)]
pub struct Shared(Arc<Mutex<Cluster>>);

impl Shared {
    /// Wraps a cluster.
    #[must_use]
    pub fn new(cluster: Cluster) -> Self {
        Self(Arc::new(Mutex::new(cluster)))
    }

    /// Locks the cluster. Held only for short, non-async sections.
    pub fn lock(&self) -> MutexGuard<'_, Cluster> {
        // A panic while holding the lock is a sandbox bug; keep serving so the test reports it.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
