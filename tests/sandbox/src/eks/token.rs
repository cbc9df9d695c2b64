//! EKS bearer tokens (`k8s-aws-v1.` + base64url of a presigned STS GetCallerIdentity URL), checked
//! as far as possible without AWS.
//!
//! What is checked: the prefix, base64url and URL syntax, the 4 KiB limit, the regional STS host,
//! only the query parameters aws-iam-authenticator allows,
//! `Action=GetCallerIdentity`, SigV4 query parameters (`X-Amz-Algorithm`, `X-Amz-Credential`
//! scoped to `<region>/sts`, `X-Amz-Signature`), `x-k8s-aws-id` among `X-Amz-SignedHeaders`, and
//! `X-Amz-Date` less than 15 minutes old: real minutes by default, as EKS judges them, or virtual
//! ones when the scenario sets `eks.tokenClock: virtual` (see [`crate::eks::spec::TokenClock`]).
//!
//! The signature, and with it the value of `x-k8s-aws-id`, can only be checked with the key's
//! secret: the presigned URL carries the header's *name*, and its value (the cluster name) is
//! bound by the signature alone. [`signature_matches`] re-signs the request for this cluster when
//! a scenario access entry gives the secret; without one, a token made for another cluster of
//! the same region is accepted.

use std::time::{Duration, SystemTime};

use base64::Engine;
use jiff::{SignedDuration, Timestamp};

/// Token prefix.
pub const PREFIX: &str = "k8s-aws-v1.";
/// Largest token accepted (aws-iam-authenticator's limit).
pub const MAX_LEN: usize = 4096;
/// Query parameters a presigned GetCallerIdentity URL may carry (aws-iam-authenticator's list).
const ALLOWED_PARAMS: &[&str] = &[
    "action",
    "version",
    "x-amz-algorithm",
    "x-amz-credential",
    "x-amz-date",
    "x-amz-expires",
    "x-amz-security-token",
    "x-amz-signature",
    "x-amz-signedheaders",
];
/// How long after `X-Amz-Date` a token is accepted.
pub const VALIDITY: Duration = Duration::from_mins(15);

/// What a token says about its signer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenClaims {
    /// Access key id from `X-Amz-Credential`.
    pub access_key_id: String,
    /// `X-Amz-Date` (real time of signing).
    pub signed_at: Timestamp,
    /// `X-Amz-Signature`.
    pub signature: String,
    /// Age on the judging clock: (real now − signed_at) × `scale` (1 for real time).
    pub age: SignedDuration,
    /// Host of the presigned URL.
    pub host: String,
    /// Every query parameter, in order.
    pub query: Vec<(String, String)>,
}

/// Why a token was refused (logged; the client only sees 401).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenRejection {
    /// Not `k8s-aws-v1.<base64url>`.
    #[error("not an EKS token: {0}")]
    Malformed(String),
    /// Longer than 4 KiB.
    #[error("token is {0} bytes, over the 4096-byte limit")]
    TooLong(usize),
    /// Presigned for another host.
    #[error("presigned URL host {0:?} is not the STS endpoint of {1}")]
    WrongHost(String, String),
    /// Not GetCallerIdentity, or a SigV4 parameter is missing or wrong.
    #[error("presigned URL is not a SigV4 STS GetCallerIdentity request: {0}")]
    WrongRequest(String),
    /// `x-k8s-aws-id` is not a signed header.
    #[error("x-k8s-aws-id is not among the signed headers {0:?}")]
    Unbound(String),
    /// Older than 15 minutes on the judging clock.
    #[error("token signed {0} ago, over 15 minutes")]
    Expired(String),
}

fn pct_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 3 <= b.len()
            && let Ok(x) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(x);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The regional STS host (`sts.<region>.amazonaws.com`, `.com.cn` in China).
#[must_use]
pub fn sts_host(region: &str) -> String {
    if region.starts_with("cn-") {
        format!("sts.{region}.amazonaws.com.cn")
    } else {
        format!("sts.{region}.amazonaws.com")
    }
}

/// Checks `token` for `cluster` in `region` now (`cluster` is bound by the signature only: see
/// [`signature_matches`]). The age is (real now − `X-Amz-Date`) × `scale`: pass 1 to judge in
/// real time, the clock's scale to judge in virtual time.
pub fn authenticate_eks_token(
    token: &str,
    cluster: &str,
    region: &str,
    scale: f64,
) -> Result<TokenClaims, TokenRejection> {
    if token.len() > MAX_LEN {
        return Err(TokenRejection::TooLong(token.len()));
    }
    let b64 = token
        .strip_prefix(PREFIX)
        .ok_or_else(|| TokenRejection::Malformed("missing the k8s-aws-v1. prefix".into()))?;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(b64.trim_end_matches('='))
        .map_err(|e| TokenRejection::Malformed(format!("not base64url: {e}")))?;
    let url = String::from_utf8(raw)
        .map_err(|_| TokenRejection::Malformed("presigned URL is not UTF-8".into()))?;
    let uri: http::Uri = url
        .parse()
        .map_err(|e| TokenRejection::Malformed(format!("presigned URL: {e}")))?;
    if uri.scheme_str() != Some("https") {
        return Err(TokenRejection::WrongRequest("scheme is not https".into()));
    }
    let host = uri.host().unwrap_or("");
    let want_host = sts_host(region);
    if host != want_host || uri.port().is_some() || !matches!(uri.path(), "" | "/") {
        return Err(TokenRejection::WrongHost(
            format!("{host}{}", uri.path()),
            want_host,
        ));
    }
    let query: Vec<(String, String)> = uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (pct_decode(k), pct_decode(v))
        })
        .collect();
    let param = |key: &str| {
        query
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    };
    let wrong = |m: &str| Err(TokenRejection::WrongRequest(m.to_owned()));
    if let Some((k, _)) = query
        .iter()
        .find(|(k, _)| !ALLOWED_PARAMS.contains(&k.to_ascii_lowercase().as_str()))
    {
        return Err(TokenRejection::WrongRequest(format!(
            "query parameter {k:?} is not allowed"
        )));
    }
    if param("Action") != Some("GetCallerIdentity") {
        return wrong("Action is not GetCallerIdentity");
    }
    if param("X-Amz-Algorithm") != Some("AWS4-HMAC-SHA256") {
        return wrong("X-Amz-Algorithm is not AWS4-HMAC-SHA256");
    }
    let credential = param("X-Amz-Credential").unwrap_or("");
    let parts: Vec<&str> = credential.split('/').collect();
    if parts.len() != 5 || parts[0].is_empty() || parts[2] != region || parts[3] != "sts" {
        return Err(TokenRejection::WrongRequest(format!(
            "X-Amz-Credential {credential:?} is not <key>/<date>/{region}/sts/aws4_request"
        )));
    }
    let signature = param("X-Amz-Signature").unwrap_or("");
    if signature.len() != 64 || !signature.chars().all(|c| c.is_ascii_hexdigit()) {
        return wrong("X-Amz-Signature is not 64 hex digits");
    }
    let signed = param("X-Amz-SignedHeaders").unwrap_or("");
    if !signed.split(';').any(|h| h == "x-k8s-aws-id") {
        return Err(TokenRejection::Unbound(signed.to_owned()));
    }
    let date = param("X-Amz-Date").unwrap_or("");
    let signed_at = jiff::civil::DateTime::strptime("%Y%m%dT%H%M%SZ", date)
        .ok()
        .and_then(|d| d.to_zoned(jiff::tz::TimeZone::UTC).ok())
        .map(|z| z.timestamp())
        .ok_or_else(|| TokenRejection::WrongRequest(format!("X-Amz-Date {date:?}")))?;
    let real_now = Timestamp::try_from(SystemTime::now()).unwrap_or(Timestamp::UNIX_EPOCH);
    let real_age = real_now.duration_since(signed_at);
    let age = SignedDuration::from_secs_f64(real_age.as_secs_f64() * scale);
    let limit = SignedDuration::try_from(VALIDITY).unwrap_or(SignedDuration::MAX);
    if age > limit {
        return Err(TokenRejection::Expired(format!("{age:#}")));
    }
    let _ = cluster;
    Ok(TokenClaims {
        access_key_id: parts[0].to_owned(),
        signed_at,
        signature: signature.to_owned(),
        age,
        host: host.to_owned(),
        query,
    })
}

/// Whether `claims`' signature is the SigV4 signature of the same presigned GetCallerIdentity
/// request with header `x-k8s-aws-id: <cluster>`, made with `secret`: proves both the key and
/// the cluster the token was made for.
#[must_use]
pub fn signature_matches(claims: &TokenClaims, cluster: &str, region: &str, secret: &str) -> bool {
    use aws_sigv4::http_request::{
        SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign,
    };
    let param = |key: &str| {
        claims
            .query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    let expires = param("X-Amz-Expires")
        .and_then(|e| e.parse().ok())
        .map_or(Duration::from_mins(1), Duration::from_secs);
    let session = param("X-Amz-Security-Token").map(str::to_owned);
    let creds = aws_credential_types::Credentials::new(
        &claims.access_key_id,
        secret,
        session,
        None,
        "sandbox-scenario",
    );
    let identity = creds.into();
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(expires);
    let Ok(params) = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("sts")
        .time(SystemTime::from(claims.signed_at))
        .settings(settings)
        .build()
    else {
        return false;
    };
    let mut url = form_urlencoded::Serializer::new(format!("https://{}/?", claims.host));
    for (k, v) in claims
        .query
        .iter()
        .filter(|(k, _)| !k.starts_with("X-Amz-"))
    {
        url.append_pair(k, v);
    }
    let url = url.finish();
    let headers = [("x-k8s-aws-id", cluster)];
    let Ok(request) =
        SignableRequest::new("GET", &url, headers.into_iter(), SignableBody::Bytes(&[]))
    else {
        return false;
    };
    sign(request, &params.into()).is_ok_and(|out| out.into_parts().1 == claims.signature)
}

/// Base64url of `url` with the token prefix, for tests of malformed tokens.
#[must_use]
pub fn encode(url: &str) -> String {
    format!(
        "{PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(url)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(host: &str, action: &str, signed: &str, date: &str) -> String {
        format!(
            "https://{host}/?Action={action}&Version=2011-06-15&X-Amz-Algorithm=AWS4-HMAC-SHA256\
             &X-Amz-Credential=AKIDEXAMPLE%2F20261126%2Fus-east-1%2Fsts%2Faws4_request\
             &X-Amz-Date={date}&X-Amz-Expires=60&X-Amz-SignedHeaders={signed}\
             &X-Amz-Signature={}",
            "a".repeat(64)
        )
    }

    fn now_date() -> String {
        Timestamp::now().strftime("%Y%m%dT%H%M%SZ").to_string()
    }

    #[test]
    fn accepts_a_fresh_bound_token_and_names_the_key() {
        let t = encode(&url(
            "sts.us-east-1.amazonaws.com",
            "GetCallerIdentity",
            "host%3Bx-k8s-aws-id",
            &now_date(),
        ));
        let c = authenticate_eks_token(&t, "c", "us-east-1", 1.0).unwrap();
        assert_eq!(c.access_key_id, "AKIDEXAMPLE");
    }

    #[test]
    fn refuses_what_it_can_check() {
        let check = |t: &str| authenticate_eks_token(t, "c", "us-east-1", 1.0).unwrap_err();
        let d = now_date();
        assert!(matches!(check("Bearer-ish"), TokenRejection::Malformed(_)));
        assert!(matches!(
            check("k8s-aws-v1.!!!"),
            TokenRejection::Malformed(_)
        ));
        assert!(matches!(
            check(&encode(&url(
                "sts.eu-west-1.amazonaws.com",
                "GetCallerIdentity",
                "host%3Bx-k8s-aws-id",
                &d
            ))),
            TokenRejection::WrongHost(..)
        ));
        assert!(matches!(
            check(&encode(&url(
                "sts.us-east-1.amazonaws.com",
                "AssumeRole",
                "host%3Bx-k8s-aws-id",
                &d
            ))),
            TokenRejection::WrongRequest(_)
        ));
        assert!(matches!(
            check(&encode(&url(
                "sts.us-east-1.amazonaws.com",
                "GetCallerIdentity",
                "host",
                &d
            ))),
            TokenRejection::Unbound(_)
        ));
        assert!(matches!(
            check(&encode(&url(
                "sts.us-east-1.amazonaws.com",
                "GetCallerIdentity",
                "host%3Bx-k8s-aws-id",
                "20200101T000000Z"
            ))),
            TokenRejection::Expired(_)
        ));
        let extra = format!(
            "{}&X-Amz-Extra=1",
            url(
                "sts.us-east-1.amazonaws.com",
                "GetCallerIdentity",
                "host%3Bx-k8s-aws-id",
                &d
            )
        );
        assert!(matches!(
            check(&encode(&extra)),
            TokenRejection::WrongRequest(_)
        ));
        assert!(matches!(
            check(&format!("{PREFIX}{}", "A".repeat(5000))),
            TokenRejection::TooLong(_)
        ));
    }

    #[test]
    fn age_scales_with_the_judging_clock() {
        // Signed 20 real seconds ago: fine in real time, 20 virtual minutes at scale 60.
        let then = (Timestamp::now() - SignedDuration::from_secs(20))
            .strftime("%Y%m%dT%H%M%SZ")
            .to_string();
        let t = encode(&url(
            "sts.us-east-1.amazonaws.com",
            "GetCallerIdentity",
            "host%3Bx-k8s-aws-id",
            &then,
        ));
        assert!(authenticate_eks_token(&t, "c", "us-east-1", 1.0).is_ok());
        assert!(matches!(
            authenticate_eks_token(&t, "c", "us-east-1", 60.0),
            Err(TokenRejection::Expired(_))
        ));
    }
}
