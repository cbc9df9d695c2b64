//! Kubeconfig files for clients of the sandbox: server URL, CA (for HTTPS) and a bearer token.

use base64::Engine;

/// Renders a kubeconfig with one cluster, user and context, all named `sandbox`.
#[must_use]
pub fn render(server: &str, ca_pem: Option<&str>, token: &str, user: &str) -> String {
    let ca = ca_pem.map_or_else(String::new, |pem| {
        format!(
            "    certificate-authority-data: {}\n",
            base64::engine::general_purpose::STANDARD.encode(pem)
        )
    });
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: sandbox\n  cluster:\n    server: {server}\n{ca}\
         users:\n- name: {user:?}\n  user:\n    token: {token}\n\
         contexts:\n- name: sandbox\n  context:\n    cluster: sandbox\n    user: {user:?}\n    namespace: default\n\
         current-context: sandbox\npreferences: {{}}\n"
    )
}
