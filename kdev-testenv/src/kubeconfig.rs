//! The kubeconfig written for the embedded server
//! ([kubeconfig files](https://kubernetes.io/docs/concepts/configuration/organize-cluster-access-kubeconfig/)).

use base64::Engine;

/// Renders a kubeconfig with one cluster, one user and the context `kdev-testenv`.
///
/// The server does not authenticate requests; the user carries a token because some clients
/// insist on a credential, and a TokenReview of it answers `system:admin`.
pub fn render(url: &str, ca_pem: Option<&str>) -> String {
    let ca = match ca_pem {
        Some(pem) => format!(
            "    certificate-authority-data: {}\n",
            base64::engine::general_purpose::STANDARD.encode(pem.as_bytes())
        ),
        None => String::new(),
    };
    format!(
        "apiVersion: v1\n\
         kind: Config\n\
         clusters:\n\
         - name: kdev-testenv\n\
         \x20 cluster:\n\
         \x20   server: {url}\n\
         {ca}\
         users:\n\
         - name: kdev-testenv\n\
         \x20 user:\n\
         \x20   token: kdev-testenv\n\
         contexts:\n\
         - name: kdev-testenv\n\
         \x20 context:\n\
         \x20   cluster: kdev-testenv\n\
         \x20   user: kdev-testenv\n\
         \x20   namespace: default\n\
         current-context: kdev-testenv\n"
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_kubeconfig_names_the_server_and_embeds_the_ca() {
        let y = super::render("https://127.0.0.1:6443", Some("PEM"));
        assert!(y.contains("    server: https://127.0.0.1:6443\n"));
        assert!(y.contains("certificate-authority-data: UEVN\n"));
        assert!(y.contains("current-context: kdev-testenv\n"));
    }
}
