//! Loading: the real `workflows/` stay inside the subset; anything outside it is refused with a
//! message naming the file, the template and the construct.

use crate::common;

use std::path::PathBuf;

use common::real_workflows;
use opsteps_runner::{Catalog, LoadError};

#[test]
fn every_real_workflow_loads_with_no_subset_error() {
    let cat = Catalog::load_dir(&real_workflows()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        cat.template_names(),
        [
            "addons-after-control-plane",
            "bump-addon",
            "cluster-cutover-check",
            "collect-gpu-stats",
            "drain-node",
            "drift-report",
            "evict-old-pods",
            "lifetime-eviction",
            "nodegroup-rotation",
            "pre-upgrade-check",
            "verify-cluster",
        ]
    );
    assert_eq!(
        cat.cron_names(),
        [
            "daily-health",
            "gpu-stats",
            "lifetime-eviction",
            "weekly-drift"
        ]
    );
    assert_eq!(
        cat.commands(),
        [
            "bump-addon",
            "collect-gpu-stats",
            "drain-node",
            "evict-old-pods",
            "verify-cluster"
        ]
    );
}

const BASE: &str = r"apiVersion: argoproj.io/v1alpha1
kind: WorkflowTemplate
metadata:
  name: probe
spec:
  entrypoint: main
  templates:
  - name: main
";

const CONTAINER: &str = r#"    container:
      image: "r/fake-step:1"
      command: [fake-step]
"#;

fn load(body: &str) -> Result<Catalog, LoadError> {
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().join("probe.yaml");
    std::fs::write(&path, body).unwrap();
    Catalog::load_files(&[path])
}

fn refused(snippet: &str, construct: &str) {
    let body = format!("{BASE}{snippet}");
    let err = load(&body)
        .err()
        .unwrap_or_else(|| panic!("accepted:\n{body}"));
    let msg = err.to_string();
    assert!(
        msg.contains("probe.yaml: WorkflowTemplate \"probe\""),
        "{msg}"
    );
    assert!(
        msg.contains("is outside the local runner's subset"),
        "{msg}"
    );
    assert!(msg.contains(construct), "{construct:?} not in: {msg}");
}

#[test]
fn the_baseline_probe_loads() {
    load(&format!("{BASE}{CONTAINER}")).unwrap();
}

#[test]
fn template_types_outside_the_subset_are_refused() {
    for kind in ["script", "resource", "http", "data", "containerSet"] {
        refused(
            &format!("    {kind}: {{}}\n"),
            &format!(
                "template \"main\": `{kind}` is outside the local runner's subset (supported: container, steps, dag, suspend)"
            ),
        );
    }
}

#[test]
fn constructs_outside_the_subset_are_refused_by_name() {
    let cases = [
        ("    memoize: {key: k, maxAge: 1h}\n", "`memoize`"),
        ("    podSpecPatch: '{}'\n", "`podSpecPatch`"),
        ("    daemon: true\n", "`daemon`"),
        ("    sidecars: []\n", "`sidecars`"),
        ("    initContainers: []\n", "`initContainers`"),
        ("    inputs:\n      artifacts: []\n", "`inputs.artifacts`"),
        ("    outputs:\n      artifacts: []\n", "`outputs.artifacts`"),
        (
            "    volumes:\n    - name: v\n      hostPath: {path: /}\n",
            "volume \"v\" of type `hostPath`",
        ),
        (
            "    synchronization:\n      semaphore: {configMapKeyRef: {name: s, key: k}}\n",
            "`synchronization.semaphore`",
        ),
        (
            "    retryStrategy:\n      expression: \"sprig.trim(lastRetry.message) == ''\"\n",
            "function sprig.trim() is not supported",
        ),
        (
            "    retryStrategy:\n      expression: \"steps.x.status == 'Failed'\"\n",
            "variable `steps.x.status`",
        ),
        (
            "    retryStrategy:\n      retryPolicy: Sometimes\n",
            "retryPolicy \"Sometimes\"",
        ),
        (
            "    retryStrategy:\n      affinity: {nodeAntiAffinity: {}}\n",
            "`retryStrategy.affinity`",
        ),
    ];
    for (snippet, construct) in cases {
        refused(&format!("{CONTAINER}{snippet}"), construct);
    }
}

#[test]
fn container_and_step_constructs_outside_the_subset_are_refused() {
    refused(
        &format!("{CONTAINER}      workingDir: /x\n"),
        "`container.workingDir`",
    );
    refused(
        &format!(
            "{CONTAINER}      env:\n      - name: S\n        valueFrom:\n          secretKeyRef: {{name: s, key: k}}\n"
        ),
        "`container.env.valueFrom.secretKeyRef`",
    );
    refused(
        &format!("{CONTAINER}      args: [\"{{{{=sprig.trim('x')}}}}\"]\n"),
        "an `{{=` expression at `container.args[0]`",
    );
    let steps = "    steps:\n    - - name: s\n        template: main\n";
    refused(
        &format!("{steps}    activeDeadlineSeconds: 10\n"),
        "`activeDeadlineSeconds` on a steps, dag or suspend template",
    );
    refused(
        &format!("{steps}        withSequence: {{count: \"3\"}}\n"),
        "`steps[0][s].withSequence`",
    );
    refused(
        &format!("{steps}        onExit: main\n"),
        "`steps[0][s].onExit`",
    );
    refused(
        &format!("{steps}        hooks: {{}}\n"),
        "`steps[0][s].hooks`",
    );
    refused(
        "    dag:\n      tasks:\n      - name: t\n        template: main\n        depends: \"a.AnySucceeded\"\n",
        ".AnySucceeded is not supported",
    );
}

#[test]
fn broken_references_and_other_kinds_are_refused() {
    let err = load(&format!(
        "{BASE}    steps:\n    - - name: s\n        template: missing\n"
    ))
    .err()
    .unwrap()
    .to_string();
    assert!(
        err.contains("template \"main\", step \"s\": its template does not resolve"),
        "{err}"
    );
    let err =
        load("apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata: {name: w}\nspec: {}\n")
            .err()
            .unwrap()
            .to_string();
    assert!(
        err.contains("kind Workflow is outside the local runner's subset"),
        "{err}"
    );
    let rbac = "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: sa}\n";
    assert!(
        load(rbac).unwrap().template_names().is_empty(),
        "other kinds are ignored"
    );
}
