//! OpenAPI v3 → Swagger 2.0 (JSON), and Swagger 2.0 JSON → gnostic's `openapi.v2.Document`
//! protobuf, the encoding kubectl 1.27/1.28 request. Only what kubectl reads is carried:
//! definitions (types, formats, descriptions, required, properties, items,
//! additionalProperties, `$ref`s and every `x-kubernetes-*` extension) and paths (operations
//! with their id, extensions and non-body parameters).

use prost::Message;
use serde_json::{Map, Value, json};

/// Merges the v3 documents into one Swagger 2.0 document.
pub fn from_v3(docs: &[Value]) -> Value {
    let mut definitions = Map::new();
    let mut paths = Map::new();
    for doc in docs {
        let params = &doc["components"]["parameters"];
        for (name, s) in doc["components"]["schemas"]
            .as_object()
            .into_iter()
            .flatten()
        {
            definitions.entry(name.clone()).or_insert_with(|| schema(s));
        }
        for (path, item) in doc["paths"].as_object().into_iter().flatten() {
            let shared: Vec<Value> = parameters(&item["parameters"], params);
            let mut out = Map::new();
            for verb in ["get", "put", "post", "delete", "patch"] {
                let Some(op) = item.get(verb) else { continue };
                let mut o = Map::new();
                if let Some(id) = op.get("operationId") {
                    o.insert("operationId".into(), id.clone());
                }
                let mut ps = shared.clone();
                ps.extend(parameters(&op["parameters"], params));
                if !ps.is_empty() {
                    o.insert("parameters".into(), Value::Array(ps));
                }
                o.insert("responses".into(), json!({"200": {"description": "OK"}}));
                extensions(op, &mut o);
                out.insert(verb.into(), Value::Object(o));
            }
            paths.insert(path.clone(), Value::Object(out));
        }
    }
    json!({
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": "unversioned"},
        "paths": paths,
        "definitions": definitions,
    })
}

fn extensions(from: &Value, to: &mut Map<String, Value>) {
    for (k, v) in from.as_object().into_iter().flatten() {
        if k.starts_with("x-") {
            to.insert(k.clone(), v.clone());
        }
    }
}

/// Non-body parameters (`$ref`s into `components.parameters` resolved): name, in, type.
fn parameters(list: &Value, components: &Value) -> Vec<Value> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| {
            let p = match p["$ref"].as_str() {
                Some(r) => components.get(r.rsplit('/').next()?)?,
                None => p,
            };
            let mut o = Map::new();
            for k in ["name", "in", "description", "required"] {
                if let Some(v) = p.get(k) {
                    o.insert(k.into(), v.clone());
                }
            }
            o.insert(
                "type".into(),
                p["schema"]["type"]
                    .as_str()
                    .map_or(json!("string"), |t| json!(t)),
            );
            if p["schema"]["uniqueItems"] == true {
                o.insert("uniqueItems".into(), json!(true));
            }
            Some(Value::Object(o))
        })
        .collect()
}

/// One schema: `allOf: [$ref]` becomes the `$ref` (Swagger 2.0 allows siblings' description),
/// `oneOf` types (IntOrString, Quantity) become `string`, as in the apiserver's own v2.
fn schema(s: &Value) -> Value {
    let mut o = Map::new();
    let reference = s["$ref"]
        .as_str()
        .or_else(|| s["allOf"].as_array()?.first()?["$ref"].as_str());
    if let Some(r) = reference {
        o.insert(
            "$ref".into(),
            json!(r.replace("#/components/schemas/", "#/definitions/")),
        );
    }
    for k in ["description", "format", "required"] {
        if let Some(v) = s.get(k) {
            o.insert(k.into(), v.clone());
        }
    }
    if let Some(t) = s.get("type") {
        o.insert("type".into(), t.clone());
    } else if s.get("oneOf").is_some() {
        o.insert("type".into(), json!("string"));
    }
    if let Some(items) = s.get("items") {
        o.insert("items".into(), schema(items));
    }
    match s.get("additionalProperties") {
        Some(Value::Bool(b)) => {
            o.insert("additionalProperties".into(), json!(b));
        }
        Some(a) => {
            o.insert("additionalProperties".into(), schema(a));
        }
        None => {}
    }
    if let Some(props) = s["properties"].as_object() {
        let props: Map<String, Value> = props.iter().map(|(k, v)| (k.clone(), schema(v))).collect();
        o.insert("properties".into(), Value::Object(props));
    }
    extensions(s, &mut o);
    Value::Object(o)
}

// The gnostic `openapi.v2` messages kubectl decodes (field numbers from OpenAPIv2.proto), only
// the fields we write.

#[derive(Clone, PartialEq, Message)]
struct Document {
    #[prost(string, tag = "1")]
    swagger: String,
    #[prost(message, optional, tag = "2")]
    info: Option<Info>,
    #[prost(message, optional, tag = "8")]
    paths: Option<Paths>,
    #[prost(message, optional, tag = "9")]
    definitions: Option<NamedSchemas>,
}

#[derive(Clone, PartialEq, Message)]
struct Info {
    #[prost(string, tag = "1")]
    title: String,
    #[prost(string, tag = "2")]
    version: String,
}

#[derive(Clone, PartialEq, Message)]
struct Paths {
    #[prost(message, repeated, tag = "2")]
    path: Vec<NamedPathItem>,
}

#[derive(Clone, PartialEq, Message)]
struct NamedPathItem {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(message, optional, tag = "2")]
    value: Option<PathItem>,
}

#[derive(Clone, PartialEq, Message)]
struct PathItem {
    #[prost(message, optional, tag = "2")]
    get: Option<Operation>,
    #[prost(message, optional, tag = "3")]
    put: Option<Operation>,
    #[prost(message, optional, tag = "4")]
    post: Option<Operation>,
    #[prost(message, optional, tag = "5")]
    delete: Option<Operation>,
    #[prost(message, optional, tag = "8")]
    patch: Option<Operation>,
}

// Field names follow the proto's.
#[allow(clippy::struct_field_names)]
#[derive(Clone, PartialEq, Message)]
struct Operation {
    #[prost(string, tag = "5")]
    operation_id: String,
    #[prost(message, repeated, tag = "8")]
    parameters: Vec<ParametersItem>,
    #[prost(message, optional, tag = "9")]
    responses: Option<Responses>,
    #[prost(message, repeated, tag = "13")]
    vendor_extension: Vec<NamedAny>,
}

/// `ParametersItem.parameter` → `Parameter.non_body_parameter` → one of the sub-schemas.
#[derive(Clone, PartialEq, Message)]
struct ParametersItem {
    #[prost(message, optional, tag = "1")]
    parameter: Option<Parameter>,
}

#[derive(Clone, PartialEq, Message)]
struct Parameter {
    #[prost(message, optional, tag = "2")]
    non_body_parameter: Option<NonBodyParameter>,
}

#[derive(Clone, PartialEq, Message)]
struct NonBodyParameter {
    #[prost(message, optional, tag = "3")]
    query: Option<SubSchema>,
    #[prost(message, optional, tag = "4")]
    path: Option<SubSchema>,
}

/// Query and path parameter sub-schemas share these field numbers.
#[derive(Clone, PartialEq, Message)]
struct SubSchema {
    #[prost(bool, tag = "1")]
    required: bool,
    #[prost(string, tag = "2")]
    r#in: String,
    #[prost(string, tag = "3")]
    description: String,
    #[prost(string, tag = "4")]
    name: String,
}

#[derive(Clone, PartialEq, Message)]
struct Responses {
    #[prost(message, repeated, tag = "1")]
    response_code: Vec<NamedResponseValue>,
}

#[derive(Clone, PartialEq, Message)]
struct NamedResponseValue {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(message, optional, tag = "2")]
    value: Option<ResponseValue>,
}

#[derive(Clone, PartialEq, Message)]
struct ResponseValue {
    #[prost(message, optional, tag = "1")]
    response: Option<Response>,
}

#[derive(Clone, PartialEq, Message)]
struct Response {
    #[prost(string, tag = "1")]
    description: String,
}

/// `Definitions` and `Properties` are both `repeated NamedSchema additional_properties = 1`.
#[derive(Clone, PartialEq, Message)]
struct NamedSchemas {
    #[prost(message, repeated, tag = "1")]
    additional_properties: Vec<NamedSchema>,
}

#[derive(Clone, PartialEq, Message)]
struct NamedSchema {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(message, optional, tag = "2")]
    value: Option<Schema>,
}

#[derive(Clone, PartialEq, Message)]
struct Schema {
    #[prost(string, tag = "1")]
    r#ref: String,
    #[prost(string, tag = "2")]
    format: String,
    #[prost(string, tag = "4")]
    description: String,
    #[prost(string, repeated, tag = "19")]
    required: Vec<String>,
    #[prost(message, optional, boxed, tag = "21")]
    additional_properties: Option<Box<AdditionalPropertiesItem>>,
    #[prost(message, optional, tag = "22")]
    r#type: Option<TypeItem>,
    #[prost(message, optional, tag = "23")]
    items: Option<ItemsItem>,
    #[prost(message, optional, tag = "25")]
    properties: Option<NamedSchemas>,
    #[prost(message, repeated, tag = "31")]
    vendor_extension: Vec<NamedAny>,
}

#[derive(Clone, PartialEq, Message)]
struct AdditionalPropertiesItem {
    #[prost(message, optional, tag = "1")]
    schema: Option<Schema>,
    #[prost(bool, optional, tag = "2")]
    boolean: Option<bool>,
}

#[derive(Clone, PartialEq, Message)]
struct TypeItem {
    #[prost(string, repeated, tag = "1")]
    value: Vec<String>,
}

#[derive(Clone, PartialEq, Message)]
struct ItemsItem {
    #[prost(message, repeated, tag = "1")]
    schema: Vec<Schema>,
}

/// A vendor extension; gnostic carries its value as YAML, and JSON is YAML.
#[derive(Clone, PartialEq, Message)]
struct NamedAny {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(message, optional, tag = "2")]
    value: Option<Any>,
}

#[derive(Clone, PartialEq, Message)]
struct Any {
    #[prost(string, tag = "2")]
    yaml: String,
}

fn s(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

fn vendor(v: &Value) -> Vec<NamedAny> {
    v.as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| k.starts_with("x-"))
        .map(|(k, v)| NamedAny {
            name: k.clone(),
            value: Some(Any {
                yaml: v.to_string(),
            }),
        })
        .collect()
}

fn encode_schema(v: &Value) -> Schema {
    Schema {
        r#ref: s(&v["$ref"]),
        format: s(&v["format"]),
        description: s(&v["description"]),
        required: v["required"]
            .as_array()
            .into_iter()
            .flatten()
            .map(s)
            .collect(),
        additional_properties: match &v["additionalProperties"] {
            Value::Null => None,
            Value::Bool(b) => Some(Box::new(AdditionalPropertiesItem {
                schema: None,
                boolean: Some(*b),
            })),
            a => Some(Box::new(AdditionalPropertiesItem {
                schema: Some(encode_schema(a)),
                boolean: None,
            })),
        },
        r#type: v["type"].as_str().map(|t| TypeItem {
            value: vec![t.to_owned()],
        }),
        items: v.get("items").map(|i| ItemsItem {
            schema: vec![encode_schema(i)],
        }),
        properties: v["properties"].as_object().map(|p| NamedSchemas {
            additional_properties: named(p),
        }),
        vendor_extension: vendor(v),
    }
}

fn named(m: &Map<String, Value>) -> Vec<NamedSchema> {
    m.iter()
        .map(|(k, v)| NamedSchema {
            name: k.clone(),
            value: Some(encode_schema(v)),
        })
        .collect()
}

fn encode_operation(op: &Value) -> Option<Operation> {
    let op = op.as_object()?;
    let parameters = op
        .get("parameters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|p| {
            let sub = SubSchema {
                required: p["required"] == true,
                r#in: s(&p["in"]),
                description: s(&p["description"]),
                name: s(&p["name"]),
            };
            let path = p["in"] == "path";
            ParametersItem {
                parameter: Some(Parameter {
                    non_body_parameter: Some(NonBodyParameter {
                        query: (!path).then(|| sub.clone()),
                        path: path.then_some(sub),
                    }),
                }),
            }
        })
        .collect();
    Some(Operation {
        operation_id: s(&op.get("operationId").cloned().unwrap_or_default()),
        parameters,
        responses: Some(Responses {
            response_code: vec![NamedResponseValue {
                name: "200".into(),
                value: Some(ResponseValue {
                    response: Some(Response {
                        description: "OK".into(),
                    }),
                }),
            }],
        }),
        vendor_extension: vendor(&Value::Object(op.clone())),
    })
}

/// The Swagger 2.0 JSON document as gnostic protobuf.
pub fn encode(doc: &Value) -> Vec<u8> {
    let paths = doc["paths"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, item)| NamedPathItem {
            name: name.clone(),
            value: Some(PathItem {
                get: encode_operation(&item["get"]),
                put: encode_operation(&item["put"]),
                post: encode_operation(&item["post"]),
                delete: encode_operation(&item["delete"]),
                patch: encode_operation(&item["patch"]),
            }),
        })
        .collect();
    Document {
        swagger: s(&doc["swagger"]),
        info: Some(Info {
            title: s(&doc["info"]["title"]),
            version: s(&doc["info"]["version"]),
        }),
        paths: Some(Paths { path: paths }),
        definitions: doc["definitions"].as_object().map(|d| NamedSchemas {
            additional_properties: named(d),
        }),
    }
    .encode_to_vec()
}
