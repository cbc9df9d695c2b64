//! ReplicaSet, Deployment, StatefulSet, DaemonSet and garbage collection on the virtual clock.

use crate::world;

use std::time::Duration;

use opsteps_sandbox::controllers;
use opsteps_sandbox::podutil;
use opsteps_sandbox::resources::well_known;
use serde_json::{Value, json};
use world::{active, cluster, delete_pod, edit, healthy, name, pod, pods, run, settle};

const NODES: &str = r"
nodeGroups:
  - name: n
    count: 4
    instanceType: m5.2xlarge
";

#[test]
fn replicaset_scales_up_and_down_preferring_unready_and_newest() {
    let mut c = cluster(&format!(
        "{NODES}\nworkloads:\n  - {{kind: ReplicaSet, name: rs, replicas: 2, ageRange: [1h, 2h]}}\n"
    ));
    assert_eq!(pods(&c, "default", "app", "rs").len(), 2);
    edit(&mut c, well_known::replicasets(), "default", "rs", |o| {
        o["spec"]["replicas"] = json!(5);
    });
    controllers::tick(&mut c);
    let ps = pods(&c, "default", "app", "rs");
    assert_eq!(ps.len(), 5);
    for p in &ps {
        let r = podutil::controller_ref(p).unwrap();
        assert_eq!(r["kind"], "ReplicaSet");
        assert_eq!(r["name"], "rs");
        assert!(name(p).starts_with("rs-"));
    }
    settle(&mut c, 6);
    let rs = c
        .store
        .get(well_known::replicasets(), "default", "rs")
        .unwrap();
    assert_eq!(rs["status"]["replicas"], 5);
    assert_eq!(rs["status"]["readyReplicas"], 5);
    assert_eq!(rs["status"]["availableReplicas"], 5);
    assert_eq!(
        rs["status"]["observedGeneration"],
        rs["metadata"]["generation"]
    );
    // Scale to 2: the three new pods go, the two old ones stay.
    let old: Vec<String> = ps
        .iter()
        .filter(|p| p["metadata"]["creationTimestamp"].as_str().unwrap() < "2026-11-26T09:30:00Z")
        .map(|p| name(p))
        .collect();
    assert_eq!(old.len(), 2);
    edit(&mut c, well_known::replicasets(), "default", "rs", |o| {
        o["spec"]["replicas"] = json!(2);
    });
    controllers::tick(&mut c);
    let ps = pods(&c, "default", "app", "rs");
    assert_eq!(active(&ps), 2);
    for p in ps.iter().filter(|p| !podutil::is_terminating(p)) {
        assert!(old.contains(&name(p)), "kept {}", name(p));
    }
    settle(&mut c, 31);
    assert_eq!(pods(&c, "default", "app", "rs").len(), 2);
    // A deleted pod is replaced with a new name and UID.
    let victim = name(&pods(&c, "default", "app", "rs")[0]);
    delete_pod(&mut c, "default", &victim);
    controllers::tick(&mut c);
    assert_eq!(active(&pods(&c, "default", "app", "rs")), 2);
}

/// A rolling update honours maxSurge/maxUnavailable at every tick and completes.
fn rolling(
    max_surge: &Value,
    max_unavailable: &Value,
    replicas: i64,
    surge_n: usize,
    unavail_n: usize,
) {
    let mut c = cluster(&format!(
        "{NODES}\nworkloads:\n  - {{kind: Deployment, name: web, replicas: {replicas}, strategy: {{type: RollingUpdate, rollingUpdate: {{maxSurge: {max_surge}, maxUnavailable: {max_unavailable}}}}}, requests: {{cpu: 100m}}}}\n"
    ));
    let d = c
        .store
        .get(well_known::deployments(), "default", "web")
        .unwrap();
    assert_eq!(
        d["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "1"
    );
    assert_eq!(
        d["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Progressing")
            .unwrap()["reason"],
        "NewReplicaSetAvailable"
    );
    let old_uids: Vec<String> = pods(&c, "default", "app", "web")
        .iter()
        .map(|p| p["metadata"]["uid"].as_str().unwrap().to_owned())
        .collect();
    // kubectl rollout restart.
    edit(&mut c, well_known::deployments(), "default", "web", |o| {
        o["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"] =
            json!("2026-11-26T10:00:00Z");
    });
    let n = replicas as usize;
    let mut max_active = 0;
    let mut min_healthy = usize::MAX;
    let mut done_at = None;
    run(&mut c, Duration::from_secs(1), 300, |c| {
        let ps = pods(c, "default", "app", "web");
        max_active = max_active.max(active(&ps));
        min_healthy = min_healthy.min(healthy(&ps));
        assert!(
            active(&ps) <= n + surge_n,
            "{} active > {n} + {surge_n}",
            active(&ps)
        );
        assert!(
            healthy(&ps) >= n - unavail_n,
            "{} healthy < {n} - {unavail_n}",
            healthy(&ps)
        );
        let d = c
            .store
            .get(well_known::deployments(), "default", "web")
            .unwrap();
        let complete = d["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["type"] == "Progressing" && c["reason"] == "NewReplicaSetAvailable");
        if complete
            && d["status"]["observedGeneration"] == d["metadata"]["generation"]
            && done_at.is_none()
        {
            done_at = Some(());
        }
    });
    assert!(done_at.is_some(), "rollout completed");
    let ps = pods(&c, "default", "app", "web");
    assert_eq!(ps.len(), n);
    assert!(
        ps.iter()
            .all(|p| !old_uids.contains(&p["metadata"]["uid"].as_str().unwrap().to_owned()))
    );
    let d = c
        .store
        .get(well_known::deployments(), "default", "web")
        .unwrap();
    assert_eq!(
        d["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "2"
    );
    assert_eq!(d["status"]["updatedReplicas"], replicas);
    assert_eq!(d["status"]["availableReplicas"], replicas);
    assert_eq!(d["status"]["replicas"], replicas);
    let rss: Vec<_> = c
        .store
        .list(well_known::replicasets(), Some("default"))
        .cloned()
        .collect();
    assert_eq!(rss.len(), 2, "old ReplicaSet kept for history");
    let old_rs = rss
        .iter()
        .find(|r| r["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1")
        .unwrap();
    assert_eq!(old_rs["spec"]["replicas"], 0);
    // Both bounds were actually exercised.
    assert!(max_active > n || surge_n == 0, "surged");
    assert!(min_healthy < n || unavail_n == 0, "used unavailability");
}

#[test]
fn deployment_rolling_update_surge_only() {
    rolling(&json!(1), &json!(0), 4, 1, 0);
}

#[test]
fn deployment_rolling_update_unavailable_only() {
    rolling(&json!(0), &json!(1), 4, 0, 1);
}

#[test]
fn deployment_rolling_update_percentages() {
    // 25% of 10: surge rounds up to 3, unavailable rounds down to 2.
    rolling(&json!("25%"), &json!("25%"), 10, 3, 2);
}

#[test]
fn deployment_recreate_and_scale() {
    let mut c = cluster(&format!(
        "{NODES}\nworkloads:\n  - {{kind: Deployment, name: job, replicas: 3, strategy: {{type: Recreate}}}}\n"
    ));
    edit(&mut c, well_known::deployments(), "default", "job", |o| {
        o["spec"]["template"]["spec"]["containers"][0]["image"] = json!("v2");
    });
    let mut overlap = false;
    run(&mut c, Duration::from_secs(1), 120, |c| {
        let ps = pods(c, "default", "app", "job");
        let images: std::collections::BTreeSet<&str> = ps
            .iter()
            .map(|p| p["spec"]["containers"][0]["image"].as_str().unwrap())
            .collect();
        overlap |= images.len() > 1;
    });
    assert!(!overlap, "Recreate never runs old and new pods together");
    let ps = pods(&c, "default", "app", "job");
    assert_eq!(ps.len(), 3);
    assert!(
        ps.iter()
            .all(|p| p["spec"]["containers"][0]["image"] == "v2" && podutil::is_ready(p))
    );
    // Scaling a settled deployment.
    edit(&mut c, well_known::deployments(), "default", "job", |o| {
        o["spec"]["replicas"] = json!(5);
    });
    settle(&mut c, 10);
    let d = c
        .store
        .get(well_known::deployments(), "default", "job")
        .unwrap();
    assert_eq!(d["status"]["availableReplicas"], 5);
    assert_eq!(
        d["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "2"
    );
}

#[test]
fn statefulset_ordered_creation_and_same_name_recreation() {
    let mut c = cluster(&format!(
        "{NODES}\nworkloads:\n  - {{kind: StatefulSet, name: db, replicas: 3, terminationGracePeriodSeconds: 10}}\n"
    ));
    let names: Vec<String> = pods(&c, "default", "app", "db")
        .iter()
        .map(|p| name(p))
        .collect();
    assert_eq!(names, ["db-0", "db-1", "db-2"]);
    let sts = c
        .store
        .get(well_known::statefulsets(), "default", "db")
        .unwrap();
    assert_eq!(sts["status"]["readyReplicas"], 3);
    assert_eq!(
        sts["status"]["currentRevision"],
        sts["status"]["updateRevision"]
    );
    // Deleted: recreated with the same name and a new UID once the old one is gone.
    let uid = pod(&c, "default", "db-1").unwrap()["metadata"]["uid"].clone();
    delete_pod(&mut c, "default", "db-1");
    settle(&mut c, 9);
    assert_eq!(
        pod(&c, "default", "db-1").unwrap()["metadata"]["uid"],
        uid,
        "old pod still terminating"
    );
    settle(&mut c, 1);
    let p = pod(&c, "default", "db-1").unwrap();
    assert_ne!(p["metadata"]["uid"], uid);
    assert_eq!(
        p["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"],
        "db-1"
    );
    // Scale up: OrderedReady creates db-3 only once it is Ready... then db-4.
    settle(&mut c, 10);
    edit(&mut c, well_known::statefulsets(), "default", "db", |o| {
        o["spec"]["replicas"] = json!(5);
    });
    controllers::tick(&mut c);
    assert!(pod(&c, "default", "db-3").is_some());
    assert!(
        pod(&c, "default", "db-4").is_none(),
        "waits for db-3 to be Ready"
    );
    let mut order = Vec::new();
    run(&mut c, Duration::from_secs(1), 30, |c| {
        for n in ["db-3", "db-4"] {
            if pod(c, "default", n).is_some() && !order.contains(&n) {
                order.push(n);
            }
        }
        if let (Some(_), Some(p3)) = (pod(c, "default", "db-4"), pod(c, "default", "db-3")) {
            assert!(podutil::is_ready(&p3) || podutil::is_terminating(&p3));
        }
    });
    assert_eq!(order, ["db-3", "db-4"]);
    // Rolling update from the highest ordinal.
    edit(&mut c, well_known::statefulsets(), "default", "db", |o| {
        o["spec"]["template"]["spec"]["containers"][0]["image"] = json!("db:2");
    });
    let mut deleted_order: Vec<String> = Vec::new();
    run(&mut c, Duration::from_secs(1), 200, |c| {
        for p in pods(c, "default", "app", "db") {
            if podutil::is_terminating(&p) && !deleted_order.contains(&name(&p)) {
                deleted_order.push(name(&p));
            }
        }
    });
    assert_eq!(deleted_order, ["db-4", "db-3", "db-2", "db-1", "db-0"]);
    let sts = c
        .store
        .get(well_known::statefulsets(), "default", "db")
        .unwrap();
    assert_eq!(sts["status"]["updatedReplicas"], 5);
    assert_eq!(
        sts["status"]["currentRevision"],
        sts["status"]["updateRevision"]
    );
    // Scale down from the top.
    edit(&mut c, well_known::statefulsets(), "default", "db", |o| {
        o["spec"]["replicas"] = json!(3);
    });
    settle(&mut c, 60);
    let names: Vec<String> = pods(&c, "default", "app", "db")
        .iter()
        .map(|p| name(p))
        .collect();
    assert_eq!(names, ["db-0", "db-1", "db-2"]);
}

#[test]
fn daemonset_one_pod_per_eligible_node_tolerating_cordon() {
    let mut c = cluster(&format!(
        "{NODES}\n  - {{name: gpu, count: 2, instanceType: g5.xlarge, taints: [{{key: nvidia.com/gpu, effect: NoSchedule}}]}}\nworkloads:\n  - {{kind: DaemonSet, name: agent, namespace: kube-system}}\n  - {{kind: DaemonSet, name: dcgm, namespace: kube-system, nodeSelector: {{nvidia.com/gpu.present: 'true'}}, tolerations: [{{operator: Exists}}]}}\n"
    ));
    let agent = pods(&c, "kube-system", "app", "agent");
    assert_eq!(
        agent.len(),
        4,
        "untolerated GPU taint keeps the agent off GPU nodes"
    );
    let dcgm = pods(&c, "kube-system", "app", "dcgm");
    assert_eq!(dcgm.len(), 2);
    assert!(
        dcgm.iter()
            .all(|p| podutil::node_name(p).unwrap().starts_with("gpu-"))
    );
    let tol = agent[0]["spec"]["tolerations"].as_array().unwrap();
    assert!(
        tol.iter()
            .any(|t| t["key"] == "node.kubernetes.io/unschedulable")
    );
    // Cordon: daemon pods stay; a deleted one comes back on the cordoned node.
    edit(&mut c, well_known::nodes(), "", "n-0", |o| {
        o["spec"]["unschedulable"] = json!(true);
    });
    controllers::tick(&mut c);
    let on_n0 = pods(&c, "kube-system", "app", "agent")
        .into_iter()
        .find(|p| podutil::node_name(p) == Some("n-0"))
        .unwrap();
    delete_pod(&mut c, "kube-system", &name(&on_n0));
    settle(&mut c, 40);
    let again: Vec<_> = pods(&c, "kube-system", "app", "agent")
        .into_iter()
        .filter(|p| podutil::node_name(p) == Some("n-0"))
        .collect();
    assert_eq!(again.len(), 1);
    assert!(podutil::is_ready(&again[0]));
    assert_ne!(again[0]["metadata"]["uid"], on_n0["metadata"]["uid"]);
    let ds = c
        .store
        .get(well_known::daemonsets(), "kube-system", "agent")
        .unwrap();
    assert_eq!(ds["status"]["desiredNumberScheduled"], 4);
    assert_eq!(ds["status"]["numberReady"], 4);
    assert_eq!(ds["status"]["updatedNumberScheduled"], 4);
    // A new node gets a pod.
    let mut node = (*c.store.get(well_known::nodes(), "", "n-1").unwrap()).clone();
    node["metadata"]["name"] = json!("n-new");
    node["metadata"]["labels"]["kubernetes.io/hostname"] = json!("n-new");
    node["status"]["addresses"] = json!([]);
    let now = c.now();
    c.store.create(well_known::nodes(), node, &now).unwrap();
    settle(&mut c, 6);
    assert_eq!(pods(&c, "kube-system", "app", "agent").len(), 5);
    // Deleting the node removes its pod (pod GC).
    c.store.remove(well_known::nodes(), "", "n-new");
    settle(&mut c, 1);
    assert_eq!(pods(&c, "kube-system", "app", "agent").len(), 4);
}

#[test]
fn garbage_collector_deletes_dependents() {
    let mut c = cluster(&format!(
        "{NODES}\nworkloads:\n  - {{kind: Deployment, name: web, replicas: 3}}\n"
    ));
    assert_eq!(c.store.count(well_known::replicasets()), 1);
    c.store.remove(well_known::deployments(), "default", "web");
    controllers::tick(&mut c);
    assert_eq!(c.store.count(well_known::replicasets()), 0);
    let ps = pods(&c, "default", "app", "web");
    assert!(ps.iter().all(|p| podutil::is_terminating(p)));
    settle(&mut c, 31);
    assert!(pods(&c, "default", "app", "web").is_empty());
}

#[test]
fn namespace_deletion_empties_and_removes_it() {
    let mut c = cluster(&format!(
        "{NODES}\nworkloads:\n  - {{kind: Deployment, name: web, namespace: shop, replicas: 2, pdb: {{minAvailable: 1}}}}\n"
    ));
    // As the API's DELETE does: an unchecked write of the deletionTimestamp.
    let mut ns = (*c.store.get(well_known::namespaces(), "", "shop").unwrap()).clone();
    ns["metadata"]["deletionTimestamp"] = json!(c.now());
    c.store.put(well_known::namespaces(), ns);
    controllers::tick(&mut c);
    assert_eq!(
        c.store.get(well_known::namespaces(), "", "shop").unwrap()["status"]["phase"],
        "Terminating"
    );
    settle(&mut c, 40);
    assert!(c.store.get(well_known::namespaces(), "", "shop").is_none());
    assert_eq!(c.store.list(well_known::pods(), Some("shop")).count(), 0);
}

#[test]
fn deployment_rollback_reuses_the_old_replicaset_and_scales_to_zero() {
    let mut c = cluster(&format!(
        "{NODES}\nworkloads:\n  - {{kind: Deployment, name: web, replicas: 3}}\n"
    ));
    let v1 = c
        .store
        .get(well_known::deployments(), "default", "web")
        .unwrap()["spec"]["template"]
        .clone();
    edit(&mut c, well_known::deployments(), "default", "web", |o| {
        o["spec"]["template"]["spec"]["containers"][0]["image"] = json!("web:2");
    });
    settle(&mut c, 60);
    assert_eq!(c.store.count(well_known::replicasets()), 2);
    // `kubectl rollout undo`: the template goes back to revision 1's.
    edit(&mut c, well_known::deployments(), "default", "web", |o| {
        o["spec"]["template"] = v1.clone();
    });
    settle(&mut c, 60);
    assert_eq!(
        c.store.count(well_known::replicasets()),
        2,
        "no third ReplicaSet"
    );
    let d = c
        .store
        .get(well_known::deployments(), "default", "web")
        .unwrap();
    assert_eq!(
        d["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "3"
    );
    let ps = pods(&c, "default", "app", "web");
    assert_eq!(ps.len(), 3);
    assert!(
        ps.iter()
            .all(|p| p["spec"]["containers"][0]["image"] == v1["spec"]["containers"][0]["image"])
    );
    // Scale to zero.
    edit(&mut c, well_known::deployments(), "default", "web", |o| {
        o["spec"]["replicas"] = json!(0);
    });
    settle(&mut c, 40);
    assert!(pods(&c, "default", "app", "web").is_empty());
    let d = c
        .store
        .get(well_known::deployments(), "default", "web")
        .unwrap();
    assert_eq!(d["status"]["replicas"], 0);
    assert_eq!(
        d["status"]["observedGeneration"],
        d["metadata"]["generation"]
    );
}

#[test]
fn deployment_progress_deadline() {
    let mut c = cluster(&format!(
        "{NODES}\nworkloads:\n  - {{kind: Deployment, name: slow, replicas: 2, readyDelay: 10m, strategy: {{type: RollingUpdate, rollingUpdate: {{maxSurge: 1, maxUnavailable: 0}}}}}}\n"
    ));
    edit(&mut c, well_known::deployments(), "default", "slow", |o| {
        o["spec"]["progressDeadlineSeconds"] = json!(60);
        o["spec"]["template"]["spec"]["containers"][0]["image"] = json!("slow:2");
    });
    let progressing = |c: &opsteps_sandbox::cluster::Cluster| {
        let d = c
            .store
            .get(well_known::deployments(), "default", "slow")
            .unwrap();
        let p = d["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Progressing")
            .unwrap()
            .clone();
        (
            p["status"].as_str().unwrap().to_owned(),
            p["reason"].as_str().unwrap().to_owned(),
        )
    };
    settle(&mut c, 30);
    assert_eq!(progressing(&c), ("True".into(), "ReplicaSetUpdated".into()));
    settle(&mut c, 40);
    assert_eq!(
        progressing(&c),
        ("False".into(), "ProgressDeadlineExceeded".into())
    );
    // The rollout still goes on, and completes once the new pods are Ready.
    settle(&mut c, 1300);
    assert_eq!(
        progressing(&c),
        ("True".into(), "NewReplicaSetAvailable".into())
    );
}

#[test]
fn garbage_collector_orphan_and_foreground_deletion() {
    let mut c = cluster(&format!(
        "{NODES}\nworkloads:\n  - {{kind: Deployment, name: keep, replicas: 2}}\n  - {{kind: Deployment, name: fg, replicas: 2}}\n"
    ));
    // What the API's DELETE with propagationPolicy Orphan / Foreground leaves behind.
    for (name, finalizer) in [("keep", "orphan"), ("fg", "foregroundDeletion")] {
        let mut d = (*c
            .store
            .get(well_known::deployments(), "default", name)
            .unwrap())
        .clone();
        d["metadata"]["deletionTimestamp"] = json!(c.now());
        d["metadata"]["finalizers"] = json!([finalizer]);
        c.store.put(well_known::deployments(), d);
    }
    controllers::tick(&mut c);
    assert!(
        c.store
            .get(well_known::deployments(), "default", "keep")
            .is_none()
    );
    let rs: Vec<_> = c
        .store
        .list(well_known::replicasets(), Some("default"))
        .filter(|r| r["metadata"]["labels"]["app"] == "keep")
        .cloned()
        .collect();
    assert_eq!(rs.len(), 1, "orphaned ReplicaSet kept");
    assert!(podutil::controller_ref(&rs[0]).is_none());
    assert_eq!(active(&pods(&c, "default", "app", "keep")), 2);
    // Foreground: the Deployment waits, marked, while its ReplicaSet (itself deleted in the
    // foreground) waits for its terminating pods.
    let fg = c
        .store
        .get(well_known::deployments(), "default", "fg")
        .expect("owner kept while dependents exist");
    assert_eq!(fg["metadata"]["finalizers"], json!(["foregroundDeletion"]));
    let rs: Vec<_> = c
        .store
        .list(well_known::replicasets(), Some("default"))
        .filter(|r| r["metadata"]["labels"]["app"] == "fg")
        .cloned()
        .collect();
    assert_eq!(rs.len(), 1);
    assert_eq!(
        rs[0]["metadata"]["finalizers"],
        json!(["foregroundDeletion"])
    );
    assert!(
        pods(&c, "default", "app", "fg")
            .iter()
            .all(|p| podutil::is_terminating(p))
    );
    settle(&mut c, 31);
    assert!(pods(&c, "default", "app", "fg").is_empty());
    assert!(
        c.store
            .list(well_known::replicasets(), Some("default"))
            .all(|r| r["metadata"]["labels"]["app"] != "fg")
    );
    assert!(
        c.store
            .get(well_known::deployments(), "default", "fg")
            .is_none()
    );
    assert_eq!(active(&pods(&c, "default", "app", "keep")), 2);
}
