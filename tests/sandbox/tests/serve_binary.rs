//! The `sandbox serve` binary checked from outside, as a new user would: the environment line on
//! stdout, the request log as JSON lines, the invariant report (served and written on SIGTERM),
//! and the S3 and EKS endpoints, with real clients.

// Each test reads as one session against the binary, top to bottom.
#![allow(clippy::too_many_lines)]

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// A running `sandbox serve` and the files it writes.
struct Served {
    child: Child,
    env: HashMap<String, String>,
    line: String,
    dir: tempfile::TempDir,
}

impl Served {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let scenario = dir.path().join("scenario.yaml");
        std::fs::write(
            &scenario,
            "users:\n  - {name: dry-runner, token: dry-token, dryRun: true}\n",
        )
        .unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_sandbox"))
            .arg("serve")
            .arg("--scenario")
            .arg(&scenario)
            .arg("--kubeconfig-out")
            .arg(dir.path().join("kubeconfig"))
            .arg("--request-log")
            .arg(dir.path().join("requests.jsonl"))
            .arg("--invariants-out")
            .arg(dir.path().join("invariants.json"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("sandbox serve starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let line = line.trim().to_owned();
        let env = line
            .split(' ')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        Self {
            child,
            env,
            line,
            dir,
        }
    }

    fn env(&self, k: &str) -> &str {
        self.env
            .get(k)
            .unwrap_or_else(|| panic!("{k} missing from {:?}", self.line))
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// SIGTERM, then the exit status (deadline-based wait).
    fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(killed.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "sandbox serve ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn kube_client(kubeconfig: &Path, token: Option<&str>) -> kube::Client {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig).unwrap();
    let mut config =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .unwrap();
    if let Some(t) = token {
        config.auth_info.token = Some(t.to_owned().into());
    }
    kube::Client::try_from(config).unwrap()
}

fn log_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_is_checkable_from_outside() {
    let mut served = Served::start();
    for k in [
        "AWS_ENDPOINT_URL_EKS",
        "AWS_ENDPOINT_URL_S3",
        "AWS_REGION",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
    ] {
        assert!(!served.env(k).is_empty(), "{k}: {}", served.line);
    }
    let kubeconfig = PathBuf::from(served.env("KUBECONFIG"));
    assert!(
        kubeconfig.is_absolute() && kubeconfig.is_file(),
        "{}",
        served.line
    );

    // The API: a real write by the admin, a refused one by the dry-run user.
    let admin = kube_client(&kubeconfig, None).await;
    let cms: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
        kube::Api::namespaced(admin.clone(), "default");
    let cm = serde_json::from_value(json!({"metadata": {"name": "audit-me"}})).unwrap();
    cms.create(&kube::api::PostParams::default(), &cm)
        .await
        .unwrap();
    let dry = kube_client(&kubeconfig, Some("dry-token")).await;
    let dry_cms: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
        kube::Api::namespaced(dry, "default");
    let cm = serde_json::from_value(json!({"metadata": {"name": "not-me"}})).unwrap();
    let err = dry_cms
        .create(&kube::api::PostParams::default(), &cm)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 400),
        "{err}"
    );

    // The invariant report on request.
    let req = http::Request::get("/sandbox/invariants")
        .body(Vec::new())
        .unwrap();
    let report: Value = admin.request(req).await.unwrap();
    assert_eq!(report["ok"], false, "{report}");
    assert_eq!(
        report["violations"][0]["kind"], "DryRunMutation",
        "{report}"
    );
    assert_eq!(report["violations"][0]["user"], "dry-runner", "{report}");

    // S3 and EKS at the advertised endpoints with the advertised credentials.
    let creds = aws_sdk_s3::config::Credentials::new(
        served.env("AWS_ACCESS_KEY_ID"),
        served.env("AWS_SECRET_ACCESS_KEY"),
        None,
        None,
        "serve-line",
    );
    let region = aws_sdk_s3::config::Region::new(served.env("AWS_REGION").to_owned());
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::new()
            .behavior_version_latest()
            .endpoint_url(served.env("AWS_ENDPOINT_URL_S3"))
            .region(region.clone())
            .credentials_provider(creds.clone())
            .force_path_style(true)
            .build(),
    );
    s3.create_bucket().bucket("reports").send().await.unwrap();
    s3.put_object()
        .bucket("reports")
        .key("a.json")
        .body(b"{}".to_vec().into())
        .send()
        .await
        .unwrap();
    let listed = s3.list_objects_v2().bucket("reports").send().await.unwrap();
    assert_eq!(listed.contents().len(), 1);
    let eks = aws_sdk_eks::Client::from_conf(
        aws_sdk_eks::config::Builder::new()
            .behavior_version_latest()
            .endpoint_url(served.env("AWS_ENDPOINT_URL_EKS"))
            .region(aws_sdk_eks::config::Region::new(
                served.env("AWS_REGION").to_owned(),
            ))
            .credentials_provider(creds)
            .build(),
    );
    let clusters = eks.list_clusters().send().await.unwrap();
    assert_eq!(clusters.clusters().len(), 1, "{clusters:?}");

    // The request log, as JSON lines, while serving.
    let lines = log_lines(&served.path("requests.jsonl"));
    let create = lines
        .iter()
        .find(|l| l["verb"] == "create" && l["name"] == "" && l["status"] == 201)
        .unwrap_or_else(|| panic!("no create in {lines:?}"));
    for (k, v) in [
        ("resource", json!("configmaps")),
        ("namespace", json!("default")),
        ("user", json!("system:admin")),
        ("mutating", json!(true)),
        ("dryRun", json!(false)),
        ("subresource", json!("")),
    ] {
        assert_eq!(create[k], v, "{k}: {create}");
    }
    assert!(
        create["time"]
            .as_str()
            .is_some_and(|t| t.parse::<jiff::Timestamp>().is_ok())
    );
    assert!(
        lines
            .iter()
            .any(|l| l["user"] == "dry-runner" && l["status"] == 400 && l["mutating"] == true),
        "{lines:?}"
    );

    // SIGTERM: a clean exit and the report on disk.
    let status = served.terminate();
    assert!(status.success(), "{status}");
    let written: Value =
        serde_json::from_slice(&std::fs::read(served.path("invariants.json")).unwrap()).unwrap();
    assert_eq!(written["ok"], false);
    assert_eq!(
        written["violations"].as_array().unwrap().len(),
        1,
        "{written}"
    );
    assert!(
        written["effectiveMutations"].as_u64().unwrap() >= 2,
        "{written}"
    );
}

/// A shell evaluates the line, then kubectl (every version), the aws CLI and curl use only the
/// environment.
#[test]
#[ignore = "needs kubectl and aws cli"]
fn the_start_line_is_a_shell_environment() {
    let mut served = Served::start();
    let versions = opsteps_sandbox::testing::kubectl_versions();
    assert!(!versions.is_empty(), "no kubectl on PATH");
    for bin in &versions {
        let script = format!(
            r#"eval "export $LINE" && unset AWS_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL \
            && export AWS_CONFIG_FILE=/nonexistent AWS_SHARED_CREDENTIALS_FILE=/nonexistent \
            && {kubectl} get ns default -o name && {kubectl} get --raw /sandbox/invariants"#,
            kubectl = bin.display()
        );
        let out = Command::new("sh")
            .args(["-c", &script])
            .env("LINE", &served.line)
            .env_remove("KUBECONFIG")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}: {stdout}{}",
            bin.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let (first, report) = stdout.split_once('\n').unwrap();
        assert_eq!(first, "namespace/default");
        let report: Value = serde_json::from_str(report).unwrap();
        assert_eq!(report["ok"], true, "{report}");
    }
    let script = r#"eval "export $LINE" && unset AWS_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL \
        && export AWS_CONFIG_FILE=/nonexistent AWS_SHARED_CREDENTIALS_FILE=/nonexistent \
        && aws s3 mb s3://from-cli >/dev/null && echo hi | aws s3 cp - s3://from-cli/hi.txt \
        && aws s3 ls s3://from-cli/ && aws eks list-clusters --output json"#;
    let out = Command::new("sh")
        .args(["-c", script])
        .env("LINE", &served.line)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("hi.txt"), "{stdout}");
    let json_start = stdout.find('{').unwrap();
    let clusters: Value = serde_json::from_str(&stdout[json_start..]).unwrap();
    assert_eq!(clusters["clusters"].as_array().unwrap().len(), 1);
    // kubectl's requests are in the log with its user agent.
    let lines = log_lines(&served.path("requests.jsonl"));
    assert!(
        lines.iter().any(|l| l["path"] == "/sandbox/invariants"
            && l["userAgent"].as_str().unwrap().starts_with("kubectl")),
        "{lines:?}"
    );
    assert!(served.terminate().success());
    let written: Value =
        serde_json::from_slice(&std::fs::read(served.path("invariants.json")).unwrap()).unwrap();
    assert_eq!(written["ok"], true);
}
