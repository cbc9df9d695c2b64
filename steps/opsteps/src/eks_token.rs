//! EKS bearer tokens: `k8s-aws-v1.` + base64url (no padding) of a presigned STS
//! `GetCallerIdentity` URL whose signed headers include `x-k8s-aws-id: <cluster>`, as
//! aws-iam-authenticator and `aws eks get-token` make them. The API server accepts one for 15
//! minutes after its `X-Amz-Date`; kube-rs never refreshes a static token, so [`TokenSource`]
//! signs a new one in the background before the old one expires.

use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::http_request::{
    SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use base64::Engine;

/// Prefix of every EKS token.
pub const TOKEN_PREFIX: &str = "k8s-aws-v1.";
/// The header that binds a token to one cluster.
pub const CLUSTER_ID_HEADER: &str = "x-k8s-aws-id";
/// `X-Amz-Expires` of the presigned URL, as aws-iam-authenticator sets it (the server applies
/// its own 15-minute window regardless).
const PRESIGN_EXPIRES: Duration = Duration::from_mins(1);

/// Making a token failed.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The credential chain gave no credentials.
    #[error("no AWS credentials for the EKS token")]
    Credentials(#[source] aws_credential_types::provider::error::CredentialsError),
    /// SigV4 signing failed.
    #[error("cannot sign the STS GetCallerIdentity request")]
    Sign(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// The regional STS host the token is presigned for.
#[must_use]
pub fn sts_host(region: &str) -> String {
    if region.starts_with("cn-") {
        format!("sts.{region}.amazonaws.com.cn")
    } else {
        format!("sts.{region}.amazonaws.com")
    }
}

/// Signs a token for `cluster` in `region` with `credentials` at `time`.
pub fn presign(
    cluster: &str,
    region: &str,
    credentials: Credentials,
    time: SystemTime,
) -> Result<String, TokenError> {
    let identity = credentials.into();
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(PRESIGN_EXPIRES);
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("sts")
        .time(time)
        .settings(settings)
        .build()
        .map_err(|e| TokenError::Sign(e.into()))?
        .into();
    let url = format!(
        "https://{}/?Action=GetCallerIdentity&Version=2011-06-15",
        sts_host(region)
    );
    let headers = [(CLUSTER_ID_HEADER, cluster)];
    let request = SignableRequest::new("GET", &url, headers.into_iter(), SignableBody::Bytes(&[]))
        .map_err(|e| TokenError::Sign(e.into()))?;
    let (instructions, _signature) = sign(request, &params)
        .map_err(|e| TokenError::Sign(e.into()))?
        .into_parts();
    let mut req = http::Request::builder()
        .method("GET")
        .uri(&url)
        .body(())
        .map_err(|e| TokenError::Sign(e.into()))?;
    instructions.apply_to_request_http1x(&mut req);
    Ok(format!(
        "{TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(req.uri().to_string())
    ))
}

/// A current token for one cluster, re-signed in the background after 80% of `lifetime`.
/// `Debug` shows the token's prefix only: the token is a live credential.
#[derive(Clone)]
pub struct TokenSource {
    current: Arc<RwLock<String>>,
    _refresher: Arc<AbortOnDrop>,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSource")
            .field("token", &format_args!("{TOKEN_PREFIX}<redacted>"))
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl TokenSource {
    /// Signs a first token now, then keeps it fresh until the source (and every client using it)
    /// is dropped. Needs a tokio runtime.
    pub async fn start(
        cluster: &str,
        region: &str,
        provider: SharedCredentialsProvider,
        lifetime: Duration,
    ) -> Result<Self, TokenError> {
        let creds = provider
            .provide_credentials()
            .await
            .map_err(TokenError::Credentials)?;
        let first = presign(cluster, region, creds, SystemTime::now())?;
        let current = Arc::new(RwLock::new(first));
        // Never a busy loop, whatever an in-process caller passes (the flag allows 1m to 15m).
        let refresh_every = (lifetime / 5 * 4).max(Duration::from_millis(100));
        let (cluster, region, slot) = (cluster.to_owned(), region.to_owned(), current.clone());
        let task = tokio::spawn(async move {
            let mut wait = refresh_every;
            loop {
                tokio::time::sleep(wait).await;
                let signed = match provider.provide_credentials().await {
                    Ok(c) => presign(&cluster, &region, c, SystemTime::now()),
                    Err(e) => Err(TokenError::Credentials(e)),
                };
                match signed {
                    Ok(t) => {
                        *slot
                            .write()
                            .unwrap_or_else(std::sync::PoisonError::into_inner) = t;
                        tracing::debug!(cluster = %cluster, "EKS token refreshed");
                        wait = refresh_every;
                    }
                    Err(e) => {
                        // Keep the old token (still valid for the remaining 20%) and try again soon.
                        tracing::warn!(cluster = %cluster, error = %e, "cannot refresh EKS token; retrying");
                        wait = (refresh_every / 8).max(Duration::from_millis(100));
                    }
                }
            }
        });
        Ok(Self {
            current,
            _refresher: Arc::new(AbortOnDrop(task)),
        })
    }

    /// The token to send now.
    #[must_use]
    pub fn token(&self) -> String {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// A tower layer that sets `Authorization: Bearer <token>` from a [`TokenSource`] on every
/// request, so long-running steps always send a fresh token.
#[derive(Clone, Debug)]
pub struct BearerLayer(pub TokenSource);

impl<S> tower::Layer<S> for BearerLayer {
    type Service = BearerService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        BearerService {
            inner,
            source: self.0.clone(),
        }
    }
}

/// See [`BearerLayer`].
#[derive(Clone, Debug)]
pub struct BearerService<S> {
    inner: S,
    source: TokenSource,
}

impl<S, B> tower::Service<http::Request<B>> for BearerService<S>
where
    S: tower::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        if let Ok(v) = http::HeaderValue::from_str(&format!("Bearer {}", self.source.token())) {
            let mut v = v;
            v.set_sensitive(true);
            req.headers_mut().insert(http::header::AUTHORIZATION, v);
        }
        self.inner.call(req)
    }
}

/// A decoded token, for tests and for `--expect-cluster` diagnostics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedToken {
    /// Host of the presigned URL.
    pub host: String,
    /// Query parameters, in order.
    pub query: Vec<(String, String)>,
}

impl DecodedToken {
    /// Decodes `k8s-aws-v1.<base64url>`; `None` if it is not one.
    #[must_use]
    pub fn parse(token: &str) -> Option<Self> {
        let b64 = token.strip_prefix(TOKEN_PREFIX)?;
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(b64)
            .ok()?;
        let url: http::Uri = String::from_utf8(raw).ok()?.parse().ok()?;
        let host = url.host()?.to_owned();
        let query = url
            .query()
            .unwrap_or("")
            .split('&')
            .filter(|kv| !kv.is_empty())
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                (pct_decode(k), pct_decode(v))
            })
            .collect();
        Some(Self { host, query })
    }

    /// The value of query parameter `key`.
    #[must_use]
    pub fn param(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// `X-Amz-Date` as a timestamp.
    #[must_use]
    pub fn signed_at(&self) -> Option<jiff::Timestamp> {
        let d = self.param("X-Amz-Date")?;
        jiff::civil::DateTime::strptime("%Y%m%dT%H%M%SZ", d)
            .ok()?
            .to_zoned(jiff::tz::TimeZone::UTC)
            .ok()
            .map(|z| z.timestamp())
    }
}

fn pct_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds() -> Credentials {
        Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            None,
            None,
            "test",
        )
    }

    #[test]
    fn token_is_a_presigned_sts_url_bound_to_the_cluster() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        let token = presign("prod-a", "eu-west-1", creds(), t0).unwrap();
        assert!(token.starts_with(TOKEN_PREFIX));
        assert!(!token.contains('='), "base64url without padding");
        let d = DecodedToken::parse(&token).unwrap();
        assert_eq!(d.host, "sts.eu-west-1.amazonaws.com");
        assert_eq!(d.param("Action"), Some("GetCallerIdentity"));
        assert_eq!(d.param("Version"), Some("2011-06-15"));
        assert_eq!(d.param("X-Amz-Algorithm"), Some("AWS4-HMAC-SHA256"));
        assert_eq!(d.param("X-Amz-Expires"), Some("60"));
        let signed: Vec<&str> = d.param("X-Amz-SignedHeaders").unwrap().split(';').collect();
        assert!(
            signed.contains(&"host") && signed.contains(&"x-k8s-aws-id"),
            "{signed:?}"
        );
        let cred = d.param("X-Amz-Credential").unwrap();
        assert!(cred.starts_with("AKIDEXAMPLE/"), "{cred}");
        assert!(cred.ends_with("/eu-west-1/sts/aws4_request"), "{cred}");
        let sig = d.param("X-Amz-Signature").unwrap();
        assert_eq!(sig.len(), 64);
        assert!(sig.chars().all(|c| c.is_ascii_hexdigit()));
        let at = d.signed_at().unwrap();
        assert_eq!(at.as_second(), 1_795_000_000);
        assert!(
            token.len() < 4096,
            "aws-iam-authenticator rejects tokens over 4 KiB"
        );
    }

    #[test]
    fn signature_depends_on_cluster_and_time() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        let a = presign("prod-a", "us-east-1", creds(), t0).unwrap();
        let a2 = presign("prod-a", "us-east-1", creds(), t0).unwrap();
        let b = presign("prod-b", "us-east-1", creds(), t0).unwrap();
        let c = presign("prod-a", "us-east-1", creds(), t0 + Duration::from_secs(1)).unwrap();
        assert_eq!(a, a2, "deterministic for the same inputs");
        let sig = |t: &str| {
            DecodedToken::parse(t)
                .unwrap()
                .param("X-Amz-Signature")
                .unwrap()
                .to_owned()
        };
        assert_ne!(sig(&a), sig(&b));
        assert_ne!(sig(&a), sig(&c));
    }

    #[test]
    fn session_tokens_are_carried() {
        let c = Credentials::new(
            "ASIAEXAMPLE",
            "secret",
            Some("sessiontoken".into()),
            None,
            "test",
        );
        let t = presign("x", "us-west-2", c, SystemTime::now()).unwrap();
        let d = DecodedToken::parse(&t).unwrap();
        assert_eq!(d.param("X-Amz-Security-Token"), Some("sessiontoken"));
    }

    #[test]
    fn china_regions_use_their_sts_domain() {
        assert_eq!(sts_host("cn-north-1"), "sts.cn-north-1.amazonaws.com.cn");
    }

    #[tokio::test]
    async fn debug_never_shows_the_token() {
        let src = TokenSource::start(
            "prod-a",
            "us-east-1",
            SharedCredentialsProvider::new(creds()),
            Duration::from_mins(15),
        )
        .await
        .unwrap();
        let token = src.token();
        let secret = token.strip_prefix(TOKEN_PREFIX).unwrap();
        for shown in [
            format!("{src:?}"),
            format!("{src:#?}"),
            format!("{:?}", BearerLayer(src.clone())),
            format!("{:?}", tower::Layer::layer(&BearerLayer(src.clone()), ())),
        ] {
            assert!(!shown.contains(secret), "token leaked: {shown}");
            assert!(
                !shown.contains(&secret[..16]),
                "token prefix leaked: {shown}"
            );
            assert!(shown.contains("<redacted>"), "{shown}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn source_refreshes_before_the_lifetime_ends() {
        let provider = SharedCredentialsProvider::new(creds());
        let lifetime = Duration::from_secs(5);
        let started = std::time::Instant::now();
        let src = TokenSource::start("prod-a", "us-east-1", provider, lifetime)
            .await
            .unwrap();
        let first = src.token();
        let first_at = DecodedToken::parse(&first).unwrap().signed_at().unwrap();
        // Refresh is due at 80% (4 s): watch for it rather than sleeping a fixed time, so a
        // slow machine is not a failure, but it must come inside the lifetime.
        let second = loop {
            let t = src.token();
            if t != first {
                break t;
            }
            assert!(started.elapsed() < 3 * lifetime, "never refreshed");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let seen = started.elapsed();
        assert!(
            seen < lifetime,
            "refreshed inside its lifetime, at {seen:?}"
        );
        let second_at = DecodedToken::parse(&second).unwrap().signed_at().unwrap();
        assert!(second_at >= first_at);
        // Signing times are whole seconds.
        let age = jiff::Timestamp::now().duration_since(second_at);
        assert!(
            age < jiff::SignedDuration::from_secs(2),
            "fresh token, age {age:?}"
        );
    }
}
