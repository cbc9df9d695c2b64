//! Request bodies by Content-Type: JSON, YAML (`application/yaml`) and Kubernetes protobuf
//! (`application/vnd.kubernetes.protobuf`, the `k8s\0` + runtime.Unknown envelope kubectl 1.32+
//! sends) decode to the same stored object; anything else is 415 and writes nothing.

use crate::common;

use common::{expect, send_as};
use http::Method;
use opsteps_sandbox::store::res;
use serde_json::{Value, json};

/// Protobuf wire helpers: enough to build the envelope and a ConfigMap by hand, independently
/// of the decoder under test.
fn field(tag: u32, bytes: &[u8]) -> Vec<u8> {
    let mut out = vec![u8::try_from(tag << 3 | 2).unwrap()];
    let mut len = bytes.len();
    loop {
        let b = u8::try_from(len & 0x7f).unwrap();
        len >>= 7;
        if len == 0 {
            out.push(b);
            break;
        }
        out.push(b | 0x80);
    }
    out.extend_from_slice(bytes);
    out
}

/// A ConfigMap as Go writes it: every non-pointer ObjectMeta string, empty ones too.
fn configmap_protobuf(name: &str) -> Vec<u8> {
    let mut meta = field(1, name.as_bytes());
    for tag in [2, 3, 4, 5, 6] {
        meta.extend(field(tag, b""));
    }
    meta.extend(field(8, b"")); // creationTimestamp: zero Time
    let mut labels = field(1, b"app");
    labels.extend(field(2, b"web"));
    meta.extend(field(11, &labels));
    let mut entry = field(1, b"a");
    entry.extend(field(2, b"1"));
    let mut cm = field(1, &meta);
    cm.extend(field(2, &entry));
    let mut type_meta = field(1, b"v1");
    type_meta.extend(field(2, b"ConfigMap"));
    let mut unknown = field(1, &type_meta);
    unknown.extend(field(2, &cm));
    unknown.extend(field(3, b""));
    unknown.extend(field(4, b""));
    let mut body = b"k8s\0".to_vec();
    body.extend(unknown);
    body
}

fn stored(sb: &opsteps_sandbox::sandbox::Sandbox, name: &str) -> Option<Value> {
    sb.with(|c| {
        c.store
            .get(res("", "configmaps"), "default", name)
            .map(|v| (*v).clone())
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn yaml_and_protobuf_bodies_store_what_json_stores() {
    let sb = common::sandbox().await;
    let path = "/api/v1/namespaces/default/configmaps";
    let post = |ct: &'static str, body: Vec<u8>| {
        let sb = &sb;
        async move {
            send_as(
                sb,
                Some(sb.admin_token()),
                Method::POST,
                path,
                Some((ct, body)),
            )
            .await
        }
    };
    let json_body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "from-json", "labels": {"app": "web"}}, "data": {"a": "1"}});
    expect(
        &post("application/json", json_body.to_string().into_bytes()).await,
        201,
    );
    let yaml = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-yaml\n  labels: {app: web}\ndata:\n  a: \"1\"\n";
    expect(&post("application/yaml", yaml.into()).await, 201);
    let r = post(
        "application/vnd.kubernetes.protobuf",
        configmap_protobuf("from-protobuf"),
    )
    .await;
    let created = expect(&r, 201);
    assert_eq!(created["metadata"]["name"], "from-protobuf");

    let strip = |mut v: Value| {
        for k in [
            "name",
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "managedFields",
        ] {
            v["metadata"].as_object_mut().unwrap().remove(k);
        }
        v
    };
    let want = strip(stored(&sb, "from-json").unwrap());
    assert_eq!(strip(stored(&sb, "from-yaml").unwrap()), want);
    assert_eq!(strip(stored(&sb, "from-protobuf").unwrap()), want);
    assert!(
        stored(&sb, "from-protobuf").unwrap()["metadata"]
            .get("generateName")
            .is_none(),
        "Go's empty strings are not stored"
    );

    // Bad bodies: 400 for undecodable, 415 for unknown media types and protobuf kinds the
    // sandbox does not decode; nothing written.
    let rv = sb.with(|c| c.store.resource_version());
    let r = post("application/yaml", b"data: [unclosed\n".to_vec()).await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = post(
        "application/vnd.kubernetes.protobuf",
        b"{\"kind\":\"ConfigMap\"}".to_vec(),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.body["message"]
            .as_str()
            .unwrap()
            .contains("k8s\\0 prefix"),
        "{}",
        r.body
    );
    let r = post("text/plain", b"a=1".to_vec()).await;
    assert_eq!(
        (r.status, &r.body["reason"]),
        (415, &json!("UnsupportedMediaType"))
    );
    let mut node = b"k8s\0".to_vec();
    let mut type_meta = field(1, b"v1");
    type_meta.extend(field(2, b"Node"));
    node.extend(field(1, &type_meta));
    let r = post("application/vnd.kubernetes.protobuf", node).await;
    assert_eq!(r.status, 415, "{}", r.body);
    assert!(
        r.body["message"].as_str().unwrap().contains("v1/Node"),
        "{}",
        r.body
    );
    assert_eq!(sb.with(|c| c.store.resource_version()), rv);
}
