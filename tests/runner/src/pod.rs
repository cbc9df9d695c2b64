//! Container templates as local processes: the image's command mapped to a binary, emptyDir
//! mounts mapped into the node directory, the environment a pod would get, output parameters
//! read from files, stdout as `outputs.result`, the termination log as the failure message,
//! and `activeDeadlineSeconds` as SIGTERM then SIGKILL.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::engine::{Run, Target};
use crate::model::{Container, parse_duration};
use crate::scope::{Outcome, Scope};
use crate::workflow::{Event, Phase};

/// Kubernetes' default terminationGracePeriodSeconds, scaled like the deadlines.
const GRACE: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(100);
pub(crate) const POD_DEADLINE_MESSAGE: &str =
    "Pod was active on the node longer than the specified deadline";

/// Replaces each mount path (as a whole path component prefix) with its node directory.
fn rewrite(text: &str, mounts: &[(String, PathBuf)]) -> String {
    let mut out = text.to_owned();
    for (mount, host) in mounts {
        let mut result = String::new();
        let mut rest = out.as_str();
        while let Some(i) = rest.find(mount.as_str()) {
            let after = &rest[i + mount.len()..];
            let boundary = after.is_empty()
                || after.starts_with('/')
                || !after
                    .starts_with(|c: char| c.is_alphanumeric() || c == '-' || c == '_' || c == '.');
            result.push_str(&rest[..i]);
            if boundary {
                result.push_str(&host.to_string_lossy());
            } else {
                result.push_str(mount);
            }
            rest = after;
        }
        result.push_str(rest);
        out = result;
    }
    out
}

fn strip_newline(mut s: String) -> String {
    if s.ends_with('\n') {
        s.pop();
    }
    s
}

/// Argo's executor keeps only the last 256 kB of stdout as `outputs.result`.
fn last_256k(s: String) -> String {
    const MAX: usize = 256 * 1024;
    if s.len() <= MAX {
        return s;
    }
    let mut start = s.len() - MAX;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    s[start..].to_owned()
}

fn error(message: String) -> Outcome {
    Outcome::new(Phase::Error, Some(message))
}

/// Sends `signal` to the step's process group (each step leads its own, so a Ctrl-C at the
/// terminal reaches only the runner, and a step's own children are stopped with it), through
/// kill(1): the workspace forbids unsafe code and has no signal crate.
async fn signal_group(pid: u32, signal: &str) {
    // `kill -- -0` would signal the runner's own group.
    if pid == 0 {
        return;
    }
    let _ = tokio::process::Command::new("kill")
        .args([format!("-{signal}"), "--".into(), format!("-{pid}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await;
}

/// A running step process. Dropped before the process ended (the `run` future was dropped),
/// it still stops the step the way a pod is stopped: SIGTERM now, SIGKILL after the grace
/// period (from a task on the runtime; without one, kill_on_drop's SIGKILL).
struct ChildGuard {
    /// Taken by `drop` only.
    child: Option<tokio::process::Child>,
    pid: u32,
    grace: Duration,
}

impl ChildGuard {
    fn child(&mut self) -> &mut tokio::process::Child {
        self.child.as_mut().expect("taken only on drop")
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if self.pid == 0 || !matches!(child.try_wait(), Ok(None)) {
            return;
        }
        let _ = std::process::Command::new("kill")
            .args(["-TERM".to_owned(), "--".into(), format!("-{}", self.pid)])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let (pid, grace) = (self.pid, self.grace);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if tokio::time::timeout(grace, child.wait()).await.is_err() {
                    signal_group(pid, "KILL").await;
                    let _ = child.wait().await;
                }
            });
        }
    }
}

struct Prepared {
    binary: PathBuf,
    argv: Vec<String>,
    env: Vec<(String, String)>,
    mounts: Vec<(String, PathBuf)>,
    command: String,
}

fn prepare(
    run: &Run,
    id: &str,
    dir: &Path,
    target: Target<'_>,
    c: &Container,
    scope: &Scope,
) -> Result<Prepared, String> {
    let sub = |t: &str| run.subst(scope, t);
    let image = sub(&c.image)?;
    let command: Vec<String> = c.command.iter().map(|a| sub(a)).collect::<Result<_, _>>()?;
    let Some(cmd) = command.first().cloned() else {
        return Err(
            "container has no command: the local runner maps command[0] to a binary".into(),
        );
    };
    let repo = image.rsplit_once(':').map_or(image.as_str(), |(r, _)| r);
    if repo.rsplit('/').next() != Some(cmd.as_str()) || !image.contains(':') {
        return Err(format!(
            "image {image:?} is not <registry>/{cmd}:<tag> (the local runner maps command[0] {cmd:?} to a binary)"
        ));
    }
    let binary = run
        .runner
        .config
        .binaries
        .get(&cmd)
        .cloned()
        .ok_or_else(|| {
            let known: Vec<&String> = run.runner.config.binaries.keys().collect();
            format!("no local binary is mapped for command {cmd:?} (mapped: {known:?})")
        })?;
    let volumes: Vec<&str> = target
        .tmpl
        .volumes
        .iter()
        .chain(&target.spec.spec.volumes)
        .map(|v| v.name.as_str())
        .collect();
    let mut mounts = Vec::new();
    for m in &c.volume_mounts {
        if !volumes.contains(&m.name.as_str()) {
            return Err(format!("volumeMount {:?} names no emptyDir volume", m.name));
        }
        let host = dir.join(&m.name);
        std::fs::create_dir_all(&host).map_err(|e| format!("creating {}: {e}", host.display()))?;
        mounts.push((m.mount_path.trim_end_matches('/').to_owned(), host));
    }
    mounts.sort_by_key(|(m, _)| std::cmp::Reverse(m.len()));
    let mut argv: Vec<String> = command[1..].to_vec();
    for a in &c.args {
        argv.push(rewrite(&sub(a)?, &mounts));
    }
    let pod_name = scope.pod_name.clone().unwrap_or_default();
    let dirs = |f: &str| dir.join(f).to_string_lossy().into_owned();
    let mut env = vec![
        (
            "PATH".to_owned(),
            std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into()),
        ),
        ("HOME".to_owned(), dir.to_string_lossy().into_owned()),
        ("ARGO_WORKFLOW_NAME".to_owned(), run.name.clone()),
        ("ARGO_WORKFLOW_UID".to_owned(), run.uid.clone()),
        ("ARGO_NODE_ID".to_owned(), id.to_owned()),
        ("ARGO_POD_NAME".to_owned(), pod_name.clone()),
        ("ARGO_PROGRESS_FILE".to_owned(), dirs("progress")),
        (
            "OPSTEPS_TERMINATION_LOG".to_owned(),
            dirs("termination-log"),
        ),
    ];
    for e in &c.env {
        let value = match (&e.value, &e.value_from) {
            (Some(v), _) => rewrite(&sub(v)?, &mounts),
            (None, Some(f)) if f.field_ref.field_path == "metadata.namespace" => {
                run.namespace.clone()
            }
            (None, Some(_)) => pod_name.clone(),
            (None, None) => String::new(),
        };
        env.push((e.name.clone(), value));
    }
    env.extend(run.runner.config.env.iter().cloned());
    if let Some(extra) = run.runner.config.step_env.get(&cmd) {
        env.extend(extra.iter().cloned());
    }
    Ok(Prepared {
        binary,
        argv,
        env,
        mounts,
        command: cmd,
    })
}

/// Runs the container as a process and reads its outputs.
#[allow(clippy::too_many_lines)]
pub(crate) async fn run_pod(
    run: &Run,
    id: &str,
    path: &str,
    target: Target<'_>,
    c: &Container,
    mut scope: Scope,
) -> Outcome {
    let pod_name = format!(
        "{}-{}-{}",
        run.name,
        target.tmpl.name,
        crate::engine::fnv32a(path)
    );
    scope.pod_name = Some(pod_name.clone());
    let dir = run.runner.config.work_dir.join(&run.name).join(id);
    run.update(id, |n| {
        n.dir = Some(dir.clone());
        n.pod_name = Some(pod_name.clone());
    });
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(e) = std::fs::create_dir_all(&dir) {
        return error(format!(
            "creating the node directory {}: {e}",
            dir.display()
        ));
    }
    let p = match prepare(run, id, &dir, target, c, &scope) {
        Ok(p) => p,
        Err(e) => return error(e),
    };
    let _permit = match &run.pods {
        Some(s) => s.acquire().await.ok(),
        None => None,
    };
    // Stopped while waiting for spec.parallelism: the pod is never created.
    let halted = *run.cancel_rx().borrow();
    if let Some(h) = halted {
        return Outcome::new(Phase::Failed, Some(h.message().to_owned()));
    }
    let open = |f: &str| std::fs::File::create(dir.join(f));
    let (Ok(stdout), Ok(stderr)) = (open("stdout"), open("stderr")) else {
        return error(format!(
            "cannot create stdout/stderr files in {}",
            dir.display()
        ));
    };
    let mut cmd = tokio::process::Command::new(&p.binary);
    cmd.args(&p.argv)
        .env_clear()
        .envs(p.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .process_group(0)
        .kill_on_drop(true);
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return error(format!(
                "failed to start {} for {:?}: {e}",
                p.binary.display(),
                p.command
            ));
        }
    };
    let pid = child.id().unwrap_or_default();
    let scale = run.runner.config.deadline_scale;
    let grace = GRACE.mul_f64(scale).max(Duration::from_millis(100));
    let mut child = ChildGuard {
        child: Some(child),
        pid,
        grace,
    };
    run.emit(&Event::ProcessStarted {
        workflow: run.name.clone(),
        id: id.to_owned(),
        display_name: display_of(run, id),
        pid,
        dir: dir.clone(),
        command: p.command.clone(),
    });
    let deadline = target
        .tmpl
        .active_deadline_seconds
        .as_ref()
        .and_then(|d| parse_duration(&d.text()))
        .map(|d| d.mul_f64(scale));
    let started = tokio::time::Instant::now();
    let mut cancel = run.cancel_rx();
    let mut last_progress = String::new();
    let mut killed: Option<&'static str> = None;
    let mut term_sent: Option<tokio::time::Instant> = None;
    let status = loop {
        poll_progress(run, id, &dir, &mut last_progress);
        if killed.is_none() {
            if deadline.is_some_and(|d| started.elapsed() >= d) {
                killed = Some(POD_DEADLINE_MESSAGE);
            } else if let Some(h) = *cancel.borrow_and_update() {
                killed = Some(h.pod_message());
            }
            if killed.is_some() {
                signal_group(pid, "TERM").await;
                term_sent = Some(tokio::time::Instant::now());
            }
        }
        if term_sent.is_some_and(|t| t.elapsed() >= grace) {
            signal_group(pid, "KILL").await;
            let _ = child.child().start_kill();
            term_sent = None;
        }
        tokio::select! {
            s = child.child().wait() => break s,
            () = tokio::time::sleep(POLL) => {}
        }
    };
    poll_progress(run, id, &dir, &mut last_progress);
    let status = match status {
        Ok(s) => s,
        Err(e) => return error(format!("waiting for {}: {e}", p.command)),
    };
    let exit_code = status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
    // Bytes as Argo keeps them; invalid UTF-8 becomes U+FFFD rather than losing the value.
    let read = |f: &str| {
        std::fs::read(dir.join(f))
            .ok()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
    };
    let mut out = Outcome::new(
        if exit_code == 0 && killed.is_none() {
            Phase::Succeeded
        } else {
            Phase::Failed
        },
        None,
    );
    out.exit_code = Some(exit_code);
    out.result = read("stdout").map(|s| last_256k(strip_newline(s)));
    if out.phase == Phase::Failed {
        let log = read("termination-log")
            .map(|l| l.trim().to_owned())
            .filter(|l| !l.is_empty());
        out.message = Some(match (killed, log) {
            (Some(k), _) => k.to_owned(),
            (None, Some(l)) => l,
            (None, None) => format!("Error (exit code {exit_code})"),
        });
    }
    for param in &target.tmpl.outputs.parameters {
        let Some(vf) = &param.value_from else {
            continue;
        };
        let Some(path) = &vf.path else { continue };
        let file = rewrite(
            &run.subst(&scope, path).unwrap_or_else(|_| path.clone()),
            &p.mounts,
        );
        if !Path::new(&file).starts_with(&dir) {
            // Only emptyDir mounts exist locally; reading the host's own path would be wrong.
            out.phase = Phase::Error;
            out.message = Some(format!(
                "output parameter {:?}: {path} is not under an emptyDir volumeMount",
                param.name
            ));
            continue;
        }
        let value = match std::fs::read(&file) {
            Ok(v) => strip_newline(String::from_utf8_lossy(&v).into_owned()),
            Err(e) => match &vf.default {
                Some(d) => d.text(),
                None if out.phase == Phase::Succeeded => {
                    let why = if e.kind() == std::io::ErrorKind::NotFound {
                        "does not exist".to_owned()
                    } else {
                        format!("cannot be read ({e})")
                    };
                    out.phase = Phase::Error;
                    out.message = Some(format!(
                        "failed to read output parameter {:?}: {path} {why} and it has no default",
                        param.name
                    ));
                    continue;
                }
                None => continue,
            },
        };
        run.export(param, &value);
        out.outputs.insert(param.name.clone(), value);
    }
    if out.phase == Phase::Error {
        out.outputs.clear();
    }
    out
}

fn display_of(run: &Run, id: &str) -> String {
    run.display_name(id)
}

fn poll_progress(run: &Run, id: &str, dir: &Path, last: &mut String) {
    let Ok(text) = std::fs::read_to_string(dir.join("progress")) else {
        return;
    };
    let text = text.trim().to_owned();
    if text.is_empty() || text == *last {
        return;
    }
    last.clone_from(&text);
    run.update(id, |n| n.progress = Some(text.clone()));
    run.emit(&Event::Progress {
        workflow: run.name.clone(),
        id: id.to_owned(),
        display_name: display_of(run, id),
        progress: text,
    });
}

#[cfg(test)]
mod tests {
    use super::rewrite;
    use std::path::PathBuf;

    #[test]
    fn mount_paths_are_rewritten_only_as_path_prefixes() {
        let m = vec![("/tmp/outputs".to_owned(), PathBuf::from("/w/n1/outputs"))];
        assert_eq!(
            rewrite("--output-dir=/tmp/outputs", &m),
            "--output-dir=/w/n1/outputs"
        );
        assert_eq!(
            rewrite("/tmp/outputs/report.json", &m),
            "/w/n1/outputs/report.json"
        );
        assert_eq!(rewrite("/tmp/outputsx", &m), "/tmp/outputsx");
    }
}
