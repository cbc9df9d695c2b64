//! The integration tests, one module per file, linked into one test binary: one link of
//! the dependency graph per crate instead of one per file (link time, and the disk
//! of a clean CI build). One file: `cargo test -p opsteps-sandbox --test integration <file>::`.

mod common;
mod world;

mod api_bodies;
mod api_core;
mod api_eviction;
mod api_faults;
mod api_groups;
mod api_kube;
mod api_validation;
mod api_watch;
mod auth_review;
mod aws_cli;
mod controllers_events;
mod controllers_pdb;
mod controllers_pods;
mod controllers_workloads;
mod dcgm_endpoints;
mod dcgm_faults;
mod dcgm_format;
mod ec2_api;
mod eks_api;
mod eks_connect;
mod eks_insights;
mod eks_token;
mod eks_updates;
mod health_states;
mod helm_releases;
mod hpa_status;
mod kubectl_basic;
mod kubectl_create;
mod kubectl_workloads;
mod metrics;
mod nodegroup_drain;
mod rbac;
mod s3_roundtrip;
mod scenarios;
mod schemas;
mod serve_binary;
mod watch_resume;
