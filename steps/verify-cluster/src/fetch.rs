//! `--helm-index NAME=URL`: one GET of a chart repository's `index.yaml` over HTTP(S), following
//! a few redirects (GitHub Pages and object stores use them), bounded in time and size.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty, Limited};

/// Largest index read (the biggest public repositories' indexes are tens of MiB).
const MAX_BYTES: usize = 256 * 1024 * 1024;
/// Redirects followed before giving up.
const MAX_REDIRECTS: usize = 5;

/// The body of `url` as text; the error says what failed, for the check's `skipped` reason.
pub async fn get(url: &str, timeout: Duration) -> Result<String, String> {
    match tokio::time::timeout(timeout, get_following(url)).await {
        Ok(r) => r,
        Err(_) => Err(format!(
            "GET {url}: no answer within {}s",
            timeout.as_secs()
        )),
    }
}

async fn get_following(url: &str) -> Result<String, String> {
    let client = client()?;
    let mut url = url.to_owned();
    for _ in 0..=MAX_REDIRECTS {
        let req = http::Request::get(&url)
            .header(http::header::USER_AGENT, "opsteps-verify-cluster")
            .body(Empty::<Bytes>::new())
            .map_err(|e| format!("GET {url}: {e}"))?;
        let resp = client
            .request(req)
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        let status = resp.status();
        if status.is_redirection() {
            let next = resp
                .headers()
                .get(http::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| format!("GET {url}: HTTP {status} without a Location"))?;
            url = resolve(&url, next)?;
            continue;
        }
        if !status.is_success() {
            return Err(format!("GET {url}: HTTP {status}"));
        }
        let body = Limited::new(resp.into_body(), MAX_BYTES)
            .collect()
            .await
            .map_err(|e| format!("GET {url}: reading the body: {e}"))?
            .to_bytes();
        return String::from_utf8(body.to_vec())
            .map_err(|_| format!("GET {url}: the body is not UTF-8 text"));
    }
    Err(format!("GET {url}: more than {MAX_REDIRECTS} redirects"))
}

/// A Location header made absolute against the URL that answered with it.
fn resolve(base: &str, location: &str) -> Result<String, String> {
    if location.starts_with("http://") || location.starts_with("https://") {
        return Ok(location.to_owned());
    }
    let uri: http::Uri = base.parse().map_err(|e| format!("{base}: {e}"))?;
    let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
        return Err(format!("{base}: not an absolute URL"));
    };
    if location.starts_with('/') {
        Ok(format!("{scheme}://{authority}{location}"))
    } else {
        let path = uri.path();
        let dir = &path[..=path.rfind('/').unwrap_or(0)];
        Ok(format!("{scheme}://{authority}{dir}{location}"))
    }
}

type Client = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Empty<Bytes>,
>;

/// HTTPS with the bundled web roots plus any system ones (opsteps::tls), or plain HTTP (an
/// in-cluster chart museum).
fn client() -> Result<Client, String> {
    let tls = opsteps::tls::roots()
        .client_config()
        .map_err(|e| format!("TLS setup: {e}"))?;
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .build();
    Ok(
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build(https),
    )
}

#[cfg(test)]
mod tests {
    use super::resolve;

    #[test]
    fn locations_resolve_against_the_url_that_sent_them() {
        let base = "https://charts.example.com/stable/index.yaml";
        assert_eq!(
            resolve(base, "https://cdn.example.com/i.yaml").unwrap(),
            "https://cdn.example.com/i.yaml"
        );
        assert_eq!(
            resolve(base, "/other/index.yaml").unwrap(),
            "https://charts.example.com/other/index.yaml"
        );
        assert_eq!(
            resolve(base, "v2/index.yaml").unwrap(),
            "https://charts.example.com/stable/v2/index.yaml"
        );
    }
}
