//! Acceptance: workflows/ passes every check, and each rule catches a deliberately broken copy
//! of a real manifest (made here from the real file, never stored).

use std::path::PathBuf;
use std::sync::OnceLock;

use opsteps_workflows_check::{Checker, Config, Doc, Finding, Rule, load_dir, load_str, repo_root};

fn checker() -> &'static Checker {
    static C: OnceLock<Checker> = OnceLock::new();
    C.get_or_init(|| Checker::new(&Config::from_env()).expect("schemas in $OPSTEPS_SHARED_DIR"))
}

fn workflows() -> PathBuf {
    repo_root().join("workflows")
}

fn all_docs() -> Vec<Doc> {
    load_dir(&workflows()).expect("workflows/ loads")
}

fn show(f: &[Finding]) -> String {
    f.iter()
        .map(|f| format!("  {f}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Findings for the documents of `file` (relative to workflows/), with the rest as context.
fn check_file(file: &str, text: &str) -> Vec<Finding> {
    let path = workflows().join(file);
    let docs = load_str(&path, text).expect("broken copy still parses as YAML");
    checker().check(&docs, &all_docs())
}

fn read(file: &str) -> String {
    std::fs::read_to_string(workflows().join(file)).expect("file exists")
}

/// Replaces the first occurrence of `from`, failing if the real file does not contain it (so
/// the broken copy really differs from the original).
fn break_once(text: &str, from: &str, to: &str) -> String {
    assert!(
        text.contains(from),
        "the real file no longer contains {from:?}"
    );
    text.replacen(from, to, 1)
}

fn assert_caught(findings: &[Finding], rule: Rule, needles: &[&str]) {
    assert!(
        findings
            .iter()
            .any(|f| f.rule == rule && needles.iter().all(|n| f.message.contains(n))),
        "expected a [{rule}] finding containing {needles:?}, got:\n{}",
        show(findings)
    );
}

fn assert_clean(docs: &[Doc]) {
    assert!(!docs.is_empty(), "no documents");
    let findings = checker().check(docs, &all_docs());
    assert!(
        findings.is_empty(),
        "{} findings:\n{}",
        findings.len(),
        show(&findings)
    );
}

fn only(name: &str) -> Vec<Doc> {
    all_docs()
        .into_iter()
        .filter(|d| d.file.file_stem().is_some_and(|s| s == name))
        .collect()
}

#[test]
fn drain_node_template_and_rbac_pass() {
    assert_clean(&only("drain-node"));
}

#[test]
fn evict_old_pods_template_and_rbac_pass() {
    assert_clean(&only("evict-old-pods"));
}

const DRAIN: &str = "templates/drain-node.yaml";

#[test]
fn typo_in_a_key_is_caught_by_both_schemas() {
    let broken = break_once(&read(DRAIN), "  container:\n", "  contianer:\n");
    let f = check_file(DRAIN, &broken);
    assert_caught(&f, Rule::Schema, &["Argo 4.1.2", "contianer"]);
    assert_caught(&f, Rule::Schema, &["Argo 3.7.18", "contianer"]);
}

#[test]
fn integer_int_or_string_is_accepted() {
    let text = break_once(&read(DRAIN), "limit: \"3\"", "limit: 3");
    let f = check_file(DRAIN, &text);
    assert!(f.is_empty(), "{}", show(&f));
}

#[test]
fn missing_description_is_caught() {
    let broken = break_once(
        &read(DRAIN),
        "      description: \"Nodes drained at the same time within this step.\"\n",
        "",
    );
    assert_caught(
        &check_file(DRAIN, &broken),
        Rule::Description,
        &["parallel-nodes"],
    );
}

#[test]
fn enum_without_its_default_is_caught() {
    let broken = break_once(&read(DRAIN), "value: \"30m\"", "value: \"45m\"");
    assert_caught(&check_file(DRAIN, &broken), Rule::Enum, &["timeout", "45m"]);
}

#[test]
fn unknown_flag_is_caught_naming_template_flag_and_binary() {
    let broken = break_once(
        &read(DRAIN),
        "- \"--wait-for-replacements\"",
        "- \"--wait-for-replacement\"",
    );
    assert_caught(
        &check_file(DRAIN, &broken),
        Rule::Flag,
        &[
            "template \"drain-node\"",
            "--wait-for-replacement,",
            "drain-node does not accept",
        ],
    );
}

#[test]
fn flag_value_outside_the_binarys_possible_values_is_caught() {
    // Every occurrence: the template's own input enum is the one its flag takes.
    let broken = read(DRAIN).replace("- \"client\"\n", "- \"clinet\"\n");
    assert_caught(
        &check_file(DRAIN, &broken),
        Rule::Flag,
        &["--dry-run", "clinet"],
    );
}

#[test]
fn retry_on_every_error_is_caught() {
    let broken = break_once(
        &read(DRAIN),
        "      expression: \"asInt(lastRetry.exitCode) == 3\"\n",
        "",
    );
    assert_caught(
        &check_file(DRAIN, &broken),
        Rule::Retry,
        &["retries on every error"],
    );
    let broken = break_once(
        &read(DRAIN),
        "asInt(lastRetry.exitCode) == 3",
        "asInt(lastRetry.exitCode) != 0",
    );
    assert_caught(&check_file(DRAIN, &broken), Rule::Retry, &["only exit 3"]);
}

#[test]
fn deadline_below_the_steps_timeout_is_caught() {
    let broken = break_once(
        &read(DRAIN),
        "activeDeadlineSeconds: \"5400\"",
        "activeDeadlineSeconds: \"3600\"",
    );
    assert_caught(&check_file(DRAIN, &broken), Rule::Deadline, &["3600", "1h"]);
}

#[test]
fn unresolved_tag_is_caught() {
    let broken = break_once(
        &read(DRAIN),
        "{{inputs.parameters.max-nodes}}",
        "{{inputs.parameters.max-node}}",
    );
    assert_caught(
        &check_file(DRAIN, &broken),
        Rule::Tag,
        &["inputs.parameters.max-node", "no input parameter"],
    );
}

#[test]
fn insecure_pod_is_caught() {
    let broken = break_once(
        &read(DRAIN),
        "readOnlyRootFilesystem: true",
        "readOnlyRootFilesystem: false",
    );
    assert_caught(
        &check_file(DRAIN, &broken),
        Rule::Security,
        &["readOnlyRootFilesystem"],
    );
}

const DRAIN_RBAC: &str = "rbac/drain-node.yaml";

#[test]
fn cluster_role_rule_the_step_does_not_use_is_caught() {
    let broken = break_once(
        &read(DRAIN_RBAC),
        "  - \"get\"\n  - \"list\"\n  - \"patch\"\n",
        "  - \"get\"\n  - \"list\"\n  - \"patch\"\n  - \"delete\"\n",
    );
    assert_caught(
        &check_file(DRAIN_RBAC, &broken),
        Rule::Rbac,
        &[
            "grants delete nodes (core)",
            "drain-node does not use",
            "README.md",
        ],
    );
}

#[test]
fn missing_executor_permission_is_caught() {
    let broken = break_once(
        &read(DRAIN_RBAC),
        "  - \"create\"\n  - \"patch\"\n",
        "  - \"create\"\n",
    );
    assert_caught(
        &check_file(DRAIN_RBAC, &broken),
        Rule::Rbac,
        &["needs patch workflowtaskresults (argoproj.io)"],
    );
}

const EVICT: &str = "templates/evict-old-pods.yaml";
const EVICT_RBAC: &str = "rbac/evict-old-pods.yaml";
const PRIORITY_RULE: &str = "- apiGroups:\n  - \"scheduling.k8s.io\"\n  resources:\n  - \"priorityclasses\"\n  verbs:\n  - \"get\"\n";

#[test]
fn a_flag_only_rule_no_template_needs_is_caught() {
    // evict-old-pods reads PriorityClasses only for --priority-threshold-class, which its
    // templates do not pass: granting it anyway is more than the step needs.
    let rbac = read(EVICT_RBAC);
    assert!(!rbac.contains("priorityclasses"), "the real role grants it");
    let broken = break_once(&rbac, "rules:\n", &format!("rules:\n{PRIORITY_RULE}"));
    assert_caught(
        &check_file(EVICT_RBAC, &broken),
        Rule::Rbac,
        &[
            "grants get priorityclasses (scheduling.k8s.io)",
            "only with --priority-threshold-class",
            "no WorkflowTemplate of evict-old-pods passes",
        ],
    );
}

#[test]
fn a_flag_only_rule_a_template_needs_must_be_granted() {
    // Once a template passes the flag, the role must grant what it needs.
    let template = break_once(
        &read(EVICT),
        "      - \"--log-format=json\"\n",
        "      - \"--log-format=json\"\n      - \"--priority-threshold-class=system-cluster-critical\"\n",
    );
    let mut docs = load_str(&workflows().join(EVICT), &template).expect("parses");
    docs.extend(load_str(&workflows().join(EVICT_RBAC), &read(EVICT_RBAC)).expect("parses"));
    assert_caught(
        &checker().check(&docs, &all_docs()),
        Rule::Rbac,
        &[
            "evict-old-pods needs get priorityclasses (scheduling.k8s.io)",
            "no role grants it",
        ],
    );
    // Granting it clears the finding.
    let rbac = break_once(
        &read(EVICT_RBAC),
        "rules:\n",
        &format!("rules:\n{PRIORITY_RULE}"),
    );
    let mut docs = load_str(&workflows().join(EVICT), &template).expect("parses");
    docs.extend(load_str(&workflows().join(EVICT_RBAC), &rbac).expect("parses"));
    let findings = checker().check(&docs, &all_docs());
    assert!(
        !findings.iter().any(|f| f.rule == Rule::Rbac),
        "{}",
        show(&findings)
    );
}

#[test]
fn pipelines_and_cron_pass() {
    let docs: Vec<Doc> = all_docs()
        .into_iter()
        .filter(|d| {
            d.file
                .parent()
                .is_some_and(|p| p.ends_with("pipelines") || p.ends_with("cron"))
        })
        .collect();
    assert_clean(&docs);
}

/// The acceptance gate: every manifest in `workflows/` passes.
#[test]
fn every_manifest_in_workflows_passes() {
    assert_clean(&all_docs());
}

const CRON: &str = "cron/daily-health.yaml";

#[test]
fn removed_singular_schedule_is_caught() {
    let broken = break_once(
        &read(CRON),
        "  schedules:\n  - \"0 7 * * *\"\n",
        "  schedule: \"0 7 * * *\"\n",
    );
    let f = check_file(CRON, &broken);
    assert_caught(&f, Rule::Schema, &["Argo 4.1.2", "schedule"]);
}

#[test]
fn removed_singular_mutex_is_caught() {
    let p = "pipelines/nodegroup-rotation.yaml";
    let broken = break_once(
        &read(p),
        "    mutexes:\n    - name:",
        "    mutex:\n      name:",
    );
    assert_caught(
        &check_file(p, &broken),
        Rule::Schema,
        &["Argo 4.1.2", "mutex"],
    );
}

#[test]
fn cron_argument_outside_the_enum_is_caught() {
    let broken = break_once(&read(CRON), "value: \"health\"", "value: \"helth\"");
    assert_caught(
        &check_file(CRON, &broken),
        Rule::Enum,
        &["profile", "helth"],
    );
}

#[test]
fn template_ref_to_a_missing_template_is_caught() {
    let p = "pipelines/nodegroup-rotation.yaml";
    let broken = break_once(
        &read(p),
        "template: \"verify-nodegroup-ready\"",
        "template: \"verify-nodegroup-redy\"",
    );
    assert_caught(
        &check_file(p, &broken),
        Rule::TemplateRef,
        &["verify-nodegroup-redy"],
    );
}

#[test]
fn step_output_that_does_not_exist_is_caught() {
    let p = "pipelines/nodegroup-rotation.yaml";
    let broken = break_once(
        &read(p),
        "outputs.parameters.drained-nodes",
        "outputs.parameters.drained",
    );
    assert_caught(
        &check_file(p, &broken),
        Rule::Tag,
        &[
            "steps.plan.outputs.parameters.drained",
            "no output parameter",
        ],
    );
}

#[test]
fn missing_cluster_guard_and_unpinned_image_are_caught() {
    let broken = read(DRAIN).replace(
        "      - \"--expect-cluster={{inputs.parameters.cluster}}\"\n",
        "",
    );
    assert_caught(
        &check_file(DRAIN, &broken),
        Rule::Flag,
        &["does not pass --expect-cluster"],
    );
    let broken = break_once(&read(DRAIN), "/drain-node:0.1.0\"", "/drain-node:latest\"");
    assert_caught(
        &check_file(DRAIN, &broken),
        Rule::Security,
        &["drain-node:latest", "workspace version"],
    );
}

/// `just validate-workflows FILE` is this binary: exit 0 on a good file, 1 with the findings on
/// stderr for a broken one.
#[test]
fn cli_checks_any_file() {
    let bin = env!("CARGO_BIN_EXE_validate-workflows");
    let good = std::process::Command::new(bin)
        .arg(workflows().join(DRAIN))
        .output()
        .unwrap();
    assert!(
        good.status.success(),
        "{}",
        String::from_utf8_lossy(&good.stderr)
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("drain-node.yaml");
    std::fs::write(
        &path,
        break_once(&read(DRAIN), "  container:\n", "  contianer:\n"),
    )
    .unwrap();
    let bad = std::process::Command::new(bin).arg(&path).output().unwrap();
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("[schema]") && stderr.contains("contianer"),
        "{stderr}"
    );
}

#[test]
fn with_param_over_an_output_without_a_json_default_is_caught() {
    // The fan-out of the rotation reads the plan's drained-nodes; without its "[]" default a
    // plan that wrote nothing would hand withParam an empty, non-JSON string.
    let t = break_once(&read(DRAIN), "default: \"[]\"", "default: \"\"");
    let f = check_with_changed_context("pipelines/nodegroup-rotation.yaml", DRAIN, &t);
    assert_caught(&f, Rule::Tag, &["withParam", "drained-nodes", "JSON array"]);
}

#[test]
fn output_file_without_a_default_is_caught() {
    let broken = break_once(&read(DRAIN), "          default: \"[]\"\n", "");
    assert_caught(
        &check_file(DRAIN, &broken),
        Rule::Output,
        &["drained-nodes", "without a default"],
    );
}

/// Replaces `file` in the context with `text`, then checks `target` against that context.
fn check_with_changed_context(target: &str, file: &str, text: &str) -> Vec<Finding> {
    let mut context = all_docs();
    context.retain(|d| !d.file.ends_with(file));
    context.extend(load_str(&workflows().join(file), text).unwrap());
    let docs = load_str(&workflows().join(target), &read(target)).unwrap();
    checker().check(&docs, &context)
}

#[test]
fn referenced_template_using_a_workflow_parameter_the_caller_lacks_is_caught() {
    // Fine inside drain-node's own WorkflowTemplate (it declares lease-duration), wrong when the
    // rotation calls it: there workflow.parameters are the rotation's.
    let t = read(DRAIN).replace(
        "{{inputs.parameters.lease-duration}}",
        "{{workflow.parameters.lease-duration}}",
    );
    let f = check_with_changed_context("pipelines/nodegroup-rotation.yaml", DRAIN, &t);
    assert_caught(
        &f,
        Rule::Tag,
        &["workflow.parameters.lease-duration", "does not declare"],
    );
}

#[test]
fn approval_that_resumes_by_itself_is_caught() {
    let p = "pipelines/nodegroup-rotation.yaml";
    let broken = break_once(
        &read(p),
        "    suspend: {}\n",
        "    suspend:\n      duration: \"1h\"\n",
    );
    assert_caught(
        &check_file(p, &broken),
        Rule::Enum,
        &["approve", "resume by itself"],
    );
}
