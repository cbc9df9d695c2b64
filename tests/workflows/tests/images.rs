//! The step images agree everywhere they are named: the WorkflowTemplates' `container.image`
//! (`{{inputs.parameters.registry}}/<step>:<version>`), the step list images/Dockerfile
//! documents, the justfile's `image_steps`, and the workspace's step binaries under steps/; and
//! every image tag (and the Dockerfile's default VERSION label) is the workspace version. Each
//! rule is also shown to catch a copy broken in memory.

use std::collections::BTreeSet;
use std::path::Path;

use opsteps_workflows_check::{Doc, load_dir, load_str, repo_root};
use serde_json::Value;

const REGISTRY: &str = "{{inputs.parameters.registry}}/";

/// What the checks compare, read from the repository (or broken copies of it).
struct Sources {
    /// (object, image) for every container/script image in an Argo document.
    images: Vec<(String, String)>,
    dockerfile: String,
    justfile: String,
    /// Binaries of the crates under steps/.
    binaries: BTreeSet<String>,
    version: String,
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo_root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn images(docs: &[Doc]) -> Vec<(String, String)> {
    fn walk(v: &Value, object: &str, out: &mut Vec<(String, String)>) {
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    if (k == "container" || k == "script")
                        && let Some(image) = x.get("image")
                    {
                        out.push((object.to_owned(), image.as_str().unwrap_or("").to_owned()));
                    }
                    walk(x, object, out);
                }
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, object, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    for d in docs.iter().filter(|d| d.is_argo()) {
        walk(&d.value, &d.object(), &mut out);
    }
    out
}

/// `name = "…"` in `section` of a Cargo.toml (`[package]`, `[[bin]]`), one per occurrence.
fn toml_names(text: &str, section: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut inside = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            inside = line == section;
        } else if inside && let Some(v) = line.strip_prefix("name = ") {
            out.push(v.trim_matches('"').to_owned());
        }
    }
    out
}

/// The binaries a crate directory builds: its `[[bin]]`s, or the package when it has
/// `src/main.rs`, plus `src/bin/*.rs`.
fn crate_binaries(dir: &Path) -> Vec<String> {
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap_or_default();
    let mut bins = toml_names(&manifest, "[[bin]]");
    if bins.is_empty() && dir.join("src/main.rs").exists() {
        bins.extend(toml_names(&manifest, "[package]"));
    }
    if let Ok(entries) = std::fs::read_dir(dir.join("src/bin")) {
        for e in entries.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "rs") {
                bins.extend(p.file_stem().map(|s| s.to_string_lossy().into_owned()));
            }
        }
    }
    bins
}

fn real() -> Sources {
    let root = repo_root();
    let docs = load_dir(&root.join("workflows")).expect("workflows/ loads");
    let mut binaries = BTreeSet::new();
    for e in std::fs::read_dir(root.join("steps"))
        .expect("steps/")
        .flatten()
    {
        binaries.extend(crate_binaries(&e.path()));
    }
    let manifest = read("Cargo.toml");
    let version = workspace_version(&manifest);
    Sources {
        images: images(&docs),
        dockerfile: read("images/Dockerfile"),
        justfile: read("justfile"),
        binaries,
        version,
    }
}

fn workspace_version(manifest: &str) -> String {
    let mut inside = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            inside = line == "[workspace.package]";
        } else if inside && let Some(v) = line.strip_prefix("version = ") {
            return v.trim_matches('"').to_owned();
        }
    }
    panic!("no [workspace.package] version in Cargo.toml")
}

fn words_after(text: &str, prefix: &str) -> Option<BTreeSet<String>> {
    text.lines()
        .find_map(|l| l.trim().strip_prefix(prefix))
        .map(|rest| {
            rest.trim_matches(|c: char| c == '"' || c.is_whitespace())
                .split_whitespace()
                .map(str::to_owned)
                .collect()
        })
}

/// Every disagreement, one line each.
fn problems(s: &Sources) -> Vec<String> {
    let mut out = Vec::new();
    let docker = words_after(&s.dockerfile, "# Steps:").unwrap_or_else(|| {
        out.push("images/Dockerfile has no `# Steps:` line".to_owned());
        BTreeSet::new()
    });
    let just = words_after(&s.justfile, "image_steps :=").unwrap_or_else(|| {
        out.push("justfile has no `image_steps :=` line".to_owned());
        BTreeSet::new()
    });
    if docker != s.binaries {
        out.push(format!(
            "images/Dockerfile lists {docker:?}, steps/ builds {:?}",
            s.binaries
        ));
    }
    if just != s.binaries {
        out.push(format!(
            "justfile image_steps is {just:?}, steps/ builds {:?}",
            s.binaries
        ));
    }
    let default_version = s
        .dockerfile
        .lines()
        .find_map(|l| l.trim().strip_prefix("ARG VERSION="));
    if default_version != Some(s.version.as_str()) {
        out.push(format!(
            "images/Dockerfile ARG VERSION default is {default_version:?}, the workspace version {:?}",
            s.version
        ));
    }
    let mut referenced = BTreeSet::new();
    for (object, image) in &s.images {
        // A digest may pin the tag: `<step>:<version>@sha256:<64 hex>`.
        let (reference, digest) = match image.split_once('@') {
            Some((r, d)) => (r, Some(d)),
            None => (image.as_str(), None),
        };
        if let Some(d) = digest
            && !d
                .strip_prefix("sha256:")
                .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            out.push(format!(
                "{object}: image {image:?} has digest {d:?}, not sha256:<64 hex digits>"
            ));
        }
        let Some((step, tag)) = reference
            .strip_prefix(REGISTRY)
            .and_then(|rest| rest.split_once(':'))
        else {
            out.push(format!(
                "{object}: image {image:?} is not {REGISTRY}<step>:<version>"
            ));
            continue;
        };
        if !s.binaries.contains(step) {
            out.push(format!(
                "{object}: image {image:?} names {step:?}, not a step binary"
            ));
        }
        if tag != s.version {
            out.push(format!(
                "{object}: image {image:?} has tag {tag:?}, the workspace version is {:?}",
                s.version
            ));
        }
        referenced.insert(step.to_owned());
    }
    for step in s.binaries.difference(&referenced) {
        out.push(format!("no WorkflowTemplate runs the {step} image"));
    }
    out
}

#[test]
fn images_templates_dockerfile_justfile_and_binaries_agree() {
    let s = real();
    assert_eq!(
        s.binaries.len(),
        5,
        "the five steps build binaries: {:?}",
        s.binaries
    );
    assert!(!s.images.is_empty());
    let p = problems(&s);
    assert!(p.is_empty(), "{}", p.join("\n"));
}

/// Each rule catches one deliberate break of the real sources.
#[test]
fn each_disagreement_is_caught() {
    let expect = |name: &str, s: &Sources, needle: &str| {
        let p = problems(s);
        assert!(
            p.iter().any(|x| x.contains(needle)),
            "{name}: expected a problem containing {needle:?}, got {p:#?}"
        );
    };

    // A template pulling a step that does not exist, and one with the wrong tag.
    let mut s = real();
    let (_, first) = s.images[0].clone();
    let step = first
        .strip_prefix(REGISTRY)
        .and_then(|r| r.split_once(':'))
        .unwrap()
        .0
        .to_owned();
    s.images[0].1 = first.replace(&format!("/{step}:"), "/drain-nodes:");
    expect("renamed image", &s, "not a step binary");

    let mut s = real();
    s.images[0].1 = first.replace(&format!(":{}", s.version), ":0.0.9");
    expect("wrong tag", &s, "has tag \"0.0.9\"");

    let mut s = real();
    s.images[0].1 = first.replace(REGISTRY, "docker.io/opsteps/");
    expect(
        "hard-coded registry",
        &s,
        "is not {{inputs.parameters.registry}}",
    );

    // A digest pin is accepted; a malformed one is not.
    let mut s = real();
    s.images[0].1 = format!("{first}@sha256:{}", "ab".repeat(32));
    let p = problems(&s);
    assert!(p.is_empty(), "a pinned digest is fine: {p:?}");
    s.images[0].1 = format!("{first}@sha256:abc");
    expect("bad digest", &s, "not sha256:<64 hex digits>");

    // A step whose image no template runs (the templates of one step dropped).
    let mut s = real();
    s.images.retain(|(_, i)| !i.contains(&format!("/{step}:")));
    expect(
        "unused image",
        &s,
        &format!("no WorkflowTemplate runs the {step} image"),
    );

    // A broken template file, parsed from text, is caught the same way.
    let root = repo_root();
    let file = root.join("workflows/templates/verify-cluster.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    let needle = "/verify-cluster:";
    assert!(text.contains(needle));
    let docs = load_str(&file, &text.replacen(needle, "/verify-clusters:", 1)).unwrap();
    let mut s = real();
    s.images = images(&docs);
    expect(
        "broken YAML copy",
        &s,
        "\"verify-clusters\", not a step binary",
    );

    // The Dockerfile's step list missing a step, or its version drifting.
    let mut s = real();
    s.dockerfile = s.dockerfile.replace(" verify-cluster\n", "\n");
    expect("Dockerfile list", &s, "images/Dockerfile lists");
    let mut s = real();
    s.dockerfile = s
        .dockerfile
        .replace(&format!("ARG VERSION={}", s.version), "ARG VERSION=9.9.9");
    expect("Dockerfile version", &s, "ARG VERSION default");
    let mut s = real();
    s.dockerfile = s.dockerfile.replace("# Steps:", "# Images:");
    expect("Dockerfile list line", &s, "no `# Steps:` line");

    // The justfile's list with an extra step.
    let mut s = real();
    s.justfile = s
        .justfile
        .replace("image_steps := \"", "image_steps := \"prom-text ");
    expect("justfile list", &s, "justfile image_steps");

    // A new step binary that has no image.
    let mut s = real();
    s.binaries.insert("rotate-certs".to_owned());
    expect("new binary", &s, "steps/ builds");

    // The workspace version moving on without the templates.
    let mut s = real();
    s.version = "0.2.0".to_owned();
    expect("version bump", &s, "the workspace version is \"0.2.0\"");
}

#[test]
fn crate_binaries_reads_bins_packages_and_src_bin() {
    let d = tempfile::tempdir().unwrap();
    let c = d.path().join("a");
    std::fs::create_dir_all(c.join("src/bin")).unwrap();
    std::fs::write(
        c.join("Cargo.toml"),
        "[package]\nname = \"a\"\n\n[[bin]]\nname = \"alpha\"\npath = \"x.rs\"\n",
    )
    .unwrap();
    std::fs::write(c.join("src/bin/beta.rs"), "fn main() {}").unwrap();
    let mut got = crate_binaries(&c);
    got.sort();
    assert_eq!(got, ["alpha", "beta"]);
    let lib = d.path().join("lib");
    std::fs::create_dir_all(lib.join("src")).unwrap();
    std::fs::write(lib.join("Cargo.toml"), "[package]\nname = \"lib\"\n").unwrap();
    std::fs::write(lib.join("src/lib.rs"), "").unwrap();
    assert!(
        crate_binaries(&lib).is_empty(),
        "a library builds no binary"
    );
    std::fs::write(lib.join("src/main.rs"), "fn main() {}").unwrap();
    assert_eq!(crate_binaries(&lib), ["lib"]);
}
