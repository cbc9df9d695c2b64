//! opsteps-sandbox: a stateful simulated EKS and Kubernetes control plane for tests, benchmarks
//! and the demo. Start one in-process with [`sandbox::Sandbox::start`], or run the `sandbox`
//! binary (`sandbox serve --scenario FILE`).

// Object store and shared model.
pub mod clock;
pub mod cluster;
pub mod error;
pub mod labels;
pub mod podutil;
pub mod resources;
pub mod store;

// The API layer: HTTPS server, verbs, eviction, request log, faults, invariants.
pub mod api;
pub mod api_state;
pub mod faults;
pub mod invariants;
pub mod kubeconfig;
pub mod patch;
pub mod rbac;
pub mod requestlog;
pub mod sandbox;
pub mod selectors;
pub mod server;
pub mod testing;

// AWS and GPU endpoints (sandbox part 2): EKS API, S3, dcgm-exporter.
pub mod dcgm;
pub mod ec2;
pub mod eks;
pub mod helm;
pub mod s3;

// The simulated world: scenarios and controllers on the virtual clock.
pub mod controllers;
pub mod crds;
pub mod events;
pub mod scenario;
pub mod world;
