//! Every integration-test file is compiled and run. Each crate links its tests into one binary
//! (`autotests = false`, one `[[test]]` at `tests/main.rs` naming the files with `mod`), so a file
//! added under `tests/` without its `mod` line would never build or run; this test catches it.
//! Mains marked `test = false` (no test binary of their own) must hold no unit tests either.
//! Each rule is also shown to catch a copy broken in memory.

use std::collections::BTreeSet;

use opsteps_workflows_check::repo_root;

/// One crate's test layout, as read from disk (or a broken copy of it).
#[derive(Clone)]
struct Crate {
    name: String,
    cargo_toml: String,
    /// `tests/main.rs`, when there is one.
    main_rs: Option<String>,
    /// Modules under `tests/`: `x` for `tests/x.rs` (not main.rs) and for `tests/x/mod.rs`.
    modules: BTreeSet<String>,
}

fn crates() -> Vec<Crate> {
    let root = repo_root();
    let mut out = Vec::new();
    for group in ["steps", "tests"] {
        let mut dirs: Vec<_> = std::fs::read_dir(root.join(group))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.join("Cargo.toml").is_file())
            .collect();
        dirs.sort();
        for dir in dirs {
            let tests = dir.join("tests");
            let mut modules = BTreeSet::new();
            if tests.is_dir() {
                for e in std::fs::read_dir(&tests).unwrap() {
                    let p = e.unwrap().path();
                    let stem = p.file_stem().unwrap().to_string_lossy().into_owned();
                    let file = p.extension().is_some_and(|x| x == "rs") && stem != "main";
                    if file || p.join("mod.rs").is_file() {
                        modules.insert(stem);
                    }
                }
            }
            out.push(Crate {
                name: format!("{group}/{}", dir.file_name().unwrap().to_string_lossy()),
                cargo_toml: std::fs::read_to_string(dir.join("Cargo.toml")).unwrap(),
                main_rs: std::fs::read_to_string(tests.join("main.rs")).ok(),
                modules,
            });
        }
    }
    out
}

/// `mod x;` lines at the start of a line in `tests/main.rs`.
fn declared(main_rs: &str) -> BTreeSet<String> {
    main_rs
        .lines()
        .filter_map(|l| l.strip_prefix("mod ")?.strip_suffix(';'))
        .map(str::to_owned)
        .collect()
}

fn problems(c: &Crate) -> Vec<String> {
    let mut out = Vec::new();
    let Some(main_rs) = &c.main_rs else {
        if !c.modules.is_empty() {
            out.push(format!(
                "{}: tests/ has {:?} but no tests/main.rs",
                c.name, c.modules
            ));
        }
        return out;
    };
    if !has_line(&c.cargo_toml, "autotests = false") {
        out.push(format!(
            "{}: Cargo.toml lacks `autotests = false` (each tests/*.rs would also link alone)",
            c.name
        ));
    }
    if !has_line(&c.cargo_toml, "path = \"tests/main.rs\"") {
        out.push(format!(
            "{}: Cargo.toml has no [[test]] with path = \"tests/main.rs\"",
            c.name
        ));
    }
    let mods = declared(main_rs);
    for m in c.modules.difference(&mods) {
        out.push(format!(
            "{}: tests/{m} is not named in tests/main.rs (`mod {m};`): it never runs",
            c.name
        ));
    }
    for m in mods.difference(&c.modules) {
        out.push(format!(
            "{}: tests/main.rs names `mod {m};` with no file",
            c.name
        ));
    }
    out
}

/// Sources of each `[[bin]]` marked `test = false` (its file and the `mod x;` files beside it)
/// that hold a unit test: with `test = false` it would never run.
fn untested_bins_with_tests(dir: &std::path::Path, cargo_toml: &str) -> Vec<String> {
    let mut out = Vec::new();
    for block in cargo_toml.split("[[bin]]").skip(1) {
        let body = block.split("\n[").next().unwrap_or("");
        if !has_line(body, "test = false") {
            continue;
        }
        let Some(path) = body
            .lines()
            .find_map(|l| l.trim().strip_prefix("path = \"")?.strip_suffix('"'))
        else {
            out.push(format!(
                "{}: a [[bin]] with test = false has no path",
                dir.display()
            ));
            continue;
        };
        // A source that cannot be read is a problem too: an empty default would pass unseen.
        let main = dir.join(path);
        let Ok(text) = std::fs::read_to_string(&main) else {
            out.push(format!(
                "{}: cannot read this [[bin]]'s source",
                main.display()
            ));
            continue;
        };
        let mut files = vec![(main.clone(), text.clone())];
        for m in declared(&text) {
            let file = main.with_file_name(format!("{m}.rs"));
            let dir_mod = main.with_file_name(&m).join("mod.rs");
            match std::fs::read_to_string(&file).or_else(|_| std::fs::read_to_string(&dir_mod)) {
                Ok(t) => files.push((file, t)),
                Err(_) => out.push(format!(
                    "{}: `mod {m};` has no {m}.rs or {m}/mod.rs beside it",
                    main.display()
                )),
            }
        }
        for (f, t) in files {
            if t.contains("#[test]") || t.contains("#[cfg(test)]") || t.contains("tokio::test") {
                out.push(format!(
                    "{} has unit tests but its [[bin]] says test = false",
                    f.display()
                ));
            }
        }
    }
    out
}

/// A Cargo.toml fact, matched by whole trimmed line (the manifests are written that way).
fn has_line(text: &str, line: &str) -> bool {
    text.lines().any(|l| l.trim() == line)
}

#[test]
fn every_test_file_is_in_its_crates_test_binary() {
    let all = crates();
    let with_tests = all.iter().filter(|c| c.main_rs.is_some()).count();
    assert!(
        with_tests >= 11,
        "expected the 11 crates with integration tests, found {with_tests}"
    );
    let found: Vec<String> = all.iter().flat_map(problems).collect();
    assert!(found.is_empty(), "{found:#?}");
}

#[test]
fn mains_without_a_test_binary_have_no_unit_tests() {
    let root = repo_root();
    let mut marked = 0;
    let mut found = Vec::new();
    for c in crates() {
        let dir = root.join(&c.name);
        marked += c.cargo_toml.matches("test = false").count();
        found.extend(untested_bins_with_tests(&dir, &c.cargo_toml));
    }
    assert!(
        marked >= 9,
        "expected the 9 mains marked test = false, found {marked}"
    );
    assert!(found.is_empty(), "{found:#?}");

    // A broken copy: the sandbox's main has unit tests; marking it test = false is caught.
    let sandbox = root.join("tests/sandbox");
    let toml = std::fs::read_to_string(sandbox.join("Cargo.toml")).unwrap();
    let broken = toml.replacen(
        "path = \"src/main.rs\"\n",
        "path = \"src/main.rs\"\ntest = false\n",
        1,
    );
    assert_ne!(broken, toml, "the sandbox's [[bin]] path line moved");
    let caught = untested_bins_with_tests(&sandbox, &broken);
    assert!(
        caught
            .iter()
            .any(|p| p.contains("src/main.rs has unit tests")),
        "{caught:?}"
    );
    // And a path that does not exist is reported, not read as an empty file.
    let moved = broken.replacen("src/main.rs", "src/moved.rs", 1);
    let caught = untested_bins_with_tests(&sandbox, &moved);
    assert!(
        caught.iter().any(|p| p.contains("cannot read")),
        "{caught:?}"
    );
}

#[test]
fn broken_layouts_are_caught() {
    let all = crates();
    let drain = all
        .iter()
        .find(|c| c.name == "steps/drain-node")
        .expect("steps/drain-node");
    let copy = |f: &dyn Fn(&mut Crate)| {
        let mut c = drain.clone();
        f(&mut c);
        problems(&c)
    };
    assert!(copy(&|_| {}).is_empty());
    let caught = |what: &str, f: &dyn Fn(&mut Crate), needle: &str| {
        let found = copy(f);
        assert!(
            found.iter().any(|p| p.contains(needle)),
            "{what}: {needle:?} not in {found:?}"
        );
    };
    caught(
        "a file main.rs does not name",
        &|c| {
            c.modules.insert("new_file".into());
        },
        "tests/new_file is not named",
    );
    caught(
        "a mod line dropped",
        &|c| c.main_rs = c.main_rs.as_ref().map(|m| m.replace("mod safety;\n", "")),
        "tests/safety is not named",
    );
    caught(
        "a file deleted, its mod line kept",
        &|c| {
            c.modules.remove("safety");
        },
        "`mod safety;` with no file",
    );
    caught(
        "autotests back on",
        &|c| c.cargo_toml = c.cargo_toml.replace("autotests = false", ""),
        "autotests = false",
    );
    caught(
        "no tests/main.rs",
        &|c| c.main_rs = None,
        "no tests/main.rs",
    );
}
