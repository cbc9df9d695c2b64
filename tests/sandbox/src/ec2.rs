//! The EC2 Query API's DescribeSubnets, served on the EKS endpoint (`POST /` with a
//! form-encoded `Action=DescribeSubnets&Version=2016-11-15` body, as aws-sdk-ec2 and the aws CLI
//! send it) and answered in EC2's XML, errors included (`<Response><Errors>...`).
//!
//! The subnets come from the scenario's `ec2.subnets`, or are three defaults (one per default
//! zone, `/19` each) in the cluster's VPC. DescribeCluster's `resourcesVpcConfig` names the same
//! VPC and subnets. A subnet's `availableIpAddressCount` is the scenario's value, else what the
//! VPC CNI would leave: the CIDR's addresses, minus AWS's 5 reserved, minus one per node in the
//! subnet's zone and one per pod (not `hostNetwork`) on those nodes.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use axum::body::Body;
use axum::response::Response;
use http::{HeaderMap, Method, StatusCode, header};
use serde::Deserialize;
use serde_json::Value;

use crate::cluster::{Cluster, Shared};
use crate::controllers::util::fnv;
use crate::resources::well_known;

/// The scenario's `ec2:` section.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Ec2Spec {
    /// The cluster's VPC (default derived from the region).
    #[serde(default)]
    pub vpc_id: Option<String>,
    /// Subnets (default: three `/19`s, one per default zone).
    #[serde(default)]
    pub subnets: Vec<SubnetSpec>,
}

/// One subnet.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SubnetSpec {
    /// `subnet-...`.
    pub subnet_id: String,
    /// VPC (default: `ec2.vpcId`).
    #[serde(default)]
    pub vpc_id: Option<String>,
    /// Zone, e.g. `us-east-1a`.
    pub availability_zone: String,
    /// IPv4 CIDR, e.g. `10.0.0.0/19`.
    pub cidr_block: String,
    /// Free IPv4 addresses (default: computed from the cluster, see the module docs).
    #[serde(default)]
    pub available_ip_address_count: Option<u64>,
    /// Tags.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Part of the EKS cluster's `resourcesVpcConfig.subnetIds` (default true).
    #[serde(default = "yes")]
    pub cluster: bool,
}

fn yes() -> bool {
    true
}

/// A DescribeSubnets request served (the log tests read).
#[derive(Clone, Debug)]
pub struct Ec2Request {
    /// `Action`.
    pub action: String,
    /// HTTP status answered.
    pub status: u16,
    /// Error code, if any.
    pub error: Option<String>,
}

/// The EC2 view: the VPC, its subnets and the requests served.
#[derive(Clone, Debug, Default)]
pub struct Ec2State {
    /// Account id (subnet owner and ARNs).
    pub account: String,
    /// Region.
    pub region: String,
    /// The cluster's VPC.
    pub vpc_id: String,
    /// Subnets, as given.
    pub subnets: Vec<SubnetSpec>,
    /// Requests served, oldest first.
    pub requests: Vec<Ec2Request>,
}

impl Ec2State {
    /// The EKS cluster's `resourcesVpcConfig` `(subnetIds, vpcId)`: the subnets marked
    /// `cluster` (the default three before [`load`] ran).
    #[must_use]
    pub fn cluster_vpc_config(&self) -> (Vec<String>, String) {
        if self.vpc_id.is_empty() {
            let ids = (1..=3)
                .map(|i| format!("subnet-0a1b2c3d4e5f6000{i}"))
                .collect();
            return (
                ids,
                format!("vpc-{:017x}", fnv(self.region.as_bytes()) >> 4),
            );
        }
        let ids = self
            .subnets
            .iter()
            .filter(|s| s.cluster)
            .map(|s| s.subnet_id.clone())
            .collect();
        (ids, self.vpc_id.clone())
    }
}

/// Builds [`Cluster::ec2`] from the scenario (after [`crate::eks::load`], for the account).
pub fn load(cluster: &mut Cluster, scenario: &crate::scenario::Scenario) -> anyhow::Result<()> {
    let region = scenario.cluster.region.clone();
    let spec = scenario.ec2.clone().unwrap_or_default();
    let vpc_id = spec
        .vpc_id
        .clone()
        .unwrap_or_else(|| format!("vpc-{:017x}", fnv(region.as_bytes()) >> 4));
    let subnets = if spec.subnets.is_empty() {
        ["a", "b", "c"]
            .iter()
            .enumerate()
            .map(|(i, z)| SubnetSpec {
                subnet_id: format!("subnet-0a1b2c3d4e5f6000{}", i + 1),
                vpc_id: None,
                availability_zone: format!("{region}{z}"),
                cidr_block: format!("10.0.{}.0/19", i * 32),
                available_ip_address_count: None,
                tags: BTreeMap::new(),
                cluster: true,
            })
            .collect()
    } else {
        spec.subnets
    };
    for s in &subnets {
        anyhow::ensure!(
            s.subnet_id.starts_with("subnet-"),
            "ec2.subnets: subnetId {:?} must start with subnet-",
            s.subnet_id
        );
        cidr_size(&s.cidr_block)?;
    }
    cluster.ec2 = Ec2State {
        account: cluster.eks.account.clone(),
        region,
        vpc_id,
        subnets,
        requests: Vec::new(),
    };
    Ok(())
}

/// Addresses in an IPv4 CIDR.
fn cidr_size(cidr: &str) -> anyhow::Result<u64> {
    let (ip, bits) = cidr
        .split_once('/')
        .ok_or_else(|| anyhow::anyhow!("cidrBlock {cidr:?}: expected a.b.c.d/n"))?;
    anyhow::ensure!(
        ip.parse::<std::net::Ipv4Addr>().is_ok(),
        "cidrBlock {cidr:?}: bad address"
    );
    let bits: u32 = bits
        .parse()
        .ok()
        .filter(|b| (16..=28).contains(b))
        .ok_or_else(|| anyhow::anyhow!("cidrBlock {cidr:?}: prefix must be /16 to /28"))?;
    Ok(1u64 << (32 - bits))
}

/// Free addresses of `s`: given, else the CIDR minus 5 reserved, nodes in its zone and their
/// pods' IPs.
fn available(c: &Cluster, s: &SubnetSpec) -> u64 {
    if let Some(n) = s.available_ip_address_count {
        return n;
    }
    let nodes: Vec<String> = c
        .store
        .list(well_known::nodes(), None)
        .filter(|n| {
            n.pointer("/metadata/labels/topology.kubernetes.io~1zone")
                .and_then(Value::as_str)
                == Some(&s.availability_zone)
        })
        .filter_map(|n| Some(n.pointer("/metadata/name")?.as_str()?.to_owned()))
        .collect();
    let pods = c
        .store
        .list(well_known::pods(), None)
        .filter(|p| {
            p.pointer("/spec/hostNetwork").and_then(Value::as_bool) != Some(true)
                && p.pointer("/spec/nodeName")
                    .and_then(Value::as_str)
                    .is_some_and(|n| nodes.iter().any(|x| x == n))
        })
        .count();
    let used = 5 + nodes.len() as u64 + pods as u64;
    cidr_size(&s.cidr_block).unwrap_or(0).saturating_sub(used)
}

/// Whether a request to the EKS listener is an EC2 Query request (EKS has no `POST /`).
#[must_use]
pub fn is_query(method: &Method, path: &str) -> bool {
    method == Method::POST && path == "/"
}

/// An EC2 error: status, code, message.
struct Ec2Error(u16, &'static str, String);

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

fn xml_response(status: u16, body: String) -> Response {
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header(header::CONTENT_TYPE, "text/xml;charset=UTF-8")
        .body(Body::from(body))
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

/// Serves one EC2 Query request.
pub fn handle(shared: &Shared, headers: &HeaderMap, body: &[u8]) -> Response {
    let params: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
    let action = params
        .iter()
        .find(|(k, _)| k == "Action")
        .map_or_else(String::new, |(_, v)| v.clone());
    let mut c = shared.lock();
    let request_id = c.eks.next_id();
    let result = check_auth(headers).and_then(|()| match action.as_str() {
        "DescribeSubnets" => describe_subnets(&c, &params, &request_id),
        "" => Err(Ec2Error(
            400,
            "MissingAction",
            "The request must contain the parameter Action".into(),
        )),
        other => Err(Ec2Error(
            400,
            "InvalidAction",
            format!("The action {other} is not valid for this web service."),
        )),
    });
    let (status, error, resp) = match result {
        Ok(xml) => (200, None, xml_response(200, xml)),
        Err(Ec2Error(status, code, message)) => {
            let xml = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{code}</Code><Message>{}</Message></Error></Errors><RequestID>{request_id}</RequestID></Response>",
                xml_escape(&message)
            );
            (status, Some(code.to_owned()), xml_response(status, xml))
        }
    };
    tracing::debug!(action = %action, status, error = ?error, "EC2 request");
    c.ec2.requests.push(Ec2Request {
        action,
        status,
        error,
    });
    resp
}

/// A SigV4 `Authorization` header scoped to `ec2` (the signature is not checked, as on EKS).
fn check_auth(headers: &HeaderMap) -> Result<(), Ec2Error> {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let scope_ok = auth.starts_with("AWS4-HMAC-SHA256 ")
        && auth.contains("SignedHeaders=")
        && auth.contains("Signature=")
        && auth
            .split("Credential=")
            .nth(1)
            .and_then(|c| c.split([',', ' ']).next())
            .is_some_and(|c| c.split('/').nth(3) == Some("ec2"));
    if scope_ok {
        Ok(())
    } else {
        Err(Ec2Error(
            401,
            "AuthFailure",
            "AWS was not able to validate the provided access credentials".into(),
        ))
    }
}

/// `Prefix.N` values in order of N.
fn numbered(params: &[(String, String)], prefix: &str) -> Vec<String> {
    let mut v: Vec<(u32, String)> = params
        .iter()
        .filter_map(|(k, val)| Some((k.strip_prefix(prefix)?.parse().ok()?, val.clone())))
        .collect();
    v.sort();
    v.into_iter().map(|(_, x)| x).collect()
}

/// `Filter.N.Name` with its `Filter.N.Value.M`s.
fn filters(params: &[(String, String)]) -> Vec<(String, Vec<String>)> {
    let mut names: Vec<(u32, String)> = params
        .iter()
        .filter_map(|(k, v)| {
            let n = k.strip_prefix("Filter.")?.strip_suffix(".Name")?;
            Some((n.parse().ok()?, v.clone()))
        })
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|(n, name)| (name, numbered(params, &format!("Filter.{n}.Value."))))
        .collect()
}

fn describe_subnets(
    c: &Cluster,
    params: &[(String, String)],
    request_id: &str,
) -> Result<String, Ec2Error> {
    let e = &c.ec2;
    let ids = numbered(params, "SubnetId.");
    check_ids(e, &ids)?;
    let filters = filters(params);
    check_filters(&filters)?;
    let max = max_results(params, &ids)?;
    let start: usize = params
        .iter()
        .find(|(k, _)| k == "NextToken")
        .map_or(0, |(_, v)| v.parse().unwrap_or(usize::MAX));
    let selected: Vec<&SubnetSpec> = e
        .subnets
        .iter()
        .filter(|s| ids.is_empty() || ids.contains(&s.subnet_id))
        .filter(|s| {
            let vpc = s.vpc_id.as_deref().unwrap_or(&e.vpc_id);
            filters.iter().all(|(name, values)| {
                let have = match name.as_str() {
                    "subnet-id" => Some(s.subnet_id.as_str()),
                    "vpc-id" => Some(vpc),
                    "availability-zone" => Some(s.availability_zone.as_str()),
                    "cidr-block" => Some(s.cidr_block.as_str()),
                    "state" => Some("available"),
                    tag => s
                        .tags
                        .get(tag.trim_start_matches("tag:"))
                        .map(String::as_str),
                };
                have.is_some_and(|h| values.iter().any(|v| v == h))
            })
        })
        .collect();
    let end = max.map_or(selected.len(), |m| {
        start.saturating_add(m).min(selected.len())
    });
    let page = selected.get(start.min(selected.len())..end).unwrap_or(&[]);
    let mut xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<DescribeSubnetsResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\">\n    <requestId>{request_id}</requestId>\n    <subnetSet>\n"
    );
    for s in page {
        xml.push_str(&subnet_xml(c, s));
    }
    xml.push_str("    </subnetSet>\n");
    if end < selected.len() {
        let _ = writeln!(xml, "    <nextToken>{end}</nextToken>");
    }
    xml.push_str("</DescribeSubnetsResponse>");
    Ok(xml)
}

/// Malformed ids, then ids that do not exist, as EC2 refuses them.
fn check_ids(e: &Ec2State, ids: &[String]) -> Result<(), Ec2Error> {
    if let Some(bad) = ids.iter().find(|i| !i.starts_with("subnet-")) {
        return Err(Ec2Error(
            400,
            "InvalidSubnetID.Malformed",
            format!("Invalid id: \"{bad}\""),
        ));
    }
    let missing: Vec<&str> = ids
        .iter()
        .filter(|i| !e.subnets.iter().any(|s| &s.subnet_id == *i))
        .map(String::as_str)
        .collect();
    match missing.as_slice() {
        [] => {}
        [one] => {
            return Err(Ec2Error(
                400,
                "InvalidSubnetID.NotFound",
                format!("The subnet ID '{one}' does not exist"),
            ));
        }
        many => {
            return Err(Ec2Error(
                400,
                "InvalidSubnetID.NotFound",
                format!("The subnet IDs '{}' do not exist", many.join(", ")),
            ));
        }
    }
    Ok(())
}

/// Filters DescribeSubnets knows.
fn check_filters(filters: &[(String, Vec<String>)]) -> Result<(), Ec2Error> {
    for (name, _) in filters {
        let known = matches!(
            name.as_str(),
            "subnet-id" | "vpc-id" | "availability-zone" | "cidr-block" | "state"
        ) || name.starts_with("tag:");
        if !known {
            return Err(Ec2Error(
                400,
                "InvalidParameterValue",
                format!("The filter '{name}' is invalid"),
            ));
        }
    }
    Ok(())
}

/// `MaxResults` (5 to 1000, not with `SubnetId`s).
fn max_results(params: &[(String, String)], ids: &[String]) -> Result<Option<usize>, Ec2Error> {
    let max = params
        .iter()
        .find(|(k, _)| k == "MaxResults")
        .map(|(_, v)| v.parse::<usize>())
        .transpose()
        .map_err(|_| {
            Ec2Error(
                400,
                "InvalidParameterValue",
                "MaxResults must be an integer".into(),
            )
        })?;
    if let Some(m) = max {
        if !ids.is_empty() {
            return Err(Ec2Error(
                400,
                "InvalidParameterCombination",
                "The parameter SubnetIds cannot be used with the parameter MaxResults".into(),
            ));
        }
        if !(5..=1000).contains(&m) {
            return Err(Ec2Error(
                400,
                "InvalidParameterValue",
                format!(
                    "Value ( {m} ) for parameter maxResults is invalid. Expecting a value between 5 and 1000."
                ),
            ));
        }
    }
    Ok(max)
}

fn subnet_xml(c: &Cluster, s: &SubnetSpec) -> String {
    let e = &c.ec2;
    let vpc = s.vpc_id.as_deref().unwrap_or(&e.vpc_id);
    let zone_id = format!(
        "{}-az{}",
        e.region
            .split('-')
            .map(|p| p.chars().next().unwrap_or('x'))
            .collect::<String>(),
        s.availability_zone
            .chars()
            .last()
            .map_or(1, |l| u32::from(l).saturating_sub(u32::from('a')) + 1)
    );
    let mut tags = String::new();
    for (k, v) in &s.tags {
        let _ = write!(
            tags,
            "<item><key>{}</key><value>{}</value></item>",
            xml_escape(k),
            xml_escape(v)
        );
    }
    let x = xml_escape;
    format!(
        "        <item>\n            <subnetId>{id}</subnetId>\n            <subnetArn>arn:aws:ec2:{region}:{account}:subnet/{id}</subnetArn>\n            <state>available</state>\n            <ownerId>{account}</ownerId>\n            <vpcId>{vpc}</vpcId>\n            <cidrBlock>{cidr}</cidrBlock>\n            <ipv6CidrBlockAssociationSet/>\n            <availableIpAddressCount>{free}</availableIpAddressCount>\n            <availabilityZone>{az}</availabilityZone>\n            <availabilityZoneId>{zone_id}</availabilityZoneId>\n            <defaultForAz>false</defaultForAz>\n            <mapPublicIpOnLaunch>false</mapPublicIpOnLaunch>\n            <assignIpv6AddressOnCreation>false</assignIpv6AddressOnCreation>\n            <tagSet>{tags}</tagSet>\n        </item>\n",
        id = x(&s.subnet_id),
        region = x(&e.region),
        account = x(&e.account),
        vpc = x(vpc),
        cidr = x(&s.cidr_block),
        free = available(c, s),
        az = x(&s.availability_zone),
    )
}
