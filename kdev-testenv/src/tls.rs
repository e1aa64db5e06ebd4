//! The server's certificates: a fresh self-signed CA per server and a serving certificate for
//! `localhost`, `127.0.0.1` and `::1`, signed by it.

use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A CA and the serving certificate it signed.
#[derive(Debug)]
pub struct Certs {
    /// The CA certificate, PEM: what the kubeconfig's `certificate-authority-data` carries.
    pub ca_pem: String,
    chain: Vec<CertificateDer<'static>>,
    key_der: Vec<u8>,
}

/// Why certificates could not be made or loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Generating a key or certificate failed.
    #[error("generating the test CA or serving certificate failed")]
    Generate(#[source] rcgen::Error),
    /// rustls rejected the certificate or key.
    #[error("building the TLS configuration failed")]
    Rustls(#[source] rustls::Error),
}

impl Certs {
    /// Generates a CA and a serving certificate for loopback names.
    ///
    /// # Errors
    /// [`Error::Generate`] if key generation fails.
    pub fn generate() -> Result<Self, Error> {
        let ca_key = KeyPair::generate().map_err(Error::Generate)?;
        let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(Error::Generate)?;
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name.push(DnType::CommonName, "kdev-testenv-ca");
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca.self_signed(&ca_key).map_err(Error::Generate)?;
        let issuer = Issuer::new(ca, ca_key);

        let key = KeyPair::generate().map_err(Error::Generate)?;
        let names = vec![
            "localhost".to_string(),
            "127.0.0.1".to_string(),
            "::1".to_string(),
            "kubernetes".to_string(),
        ];
        let mut leaf = CertificateParams::new(names).map_err(Error::Generate)?;
        leaf.distinguished_name.push(DnType::CommonName, "kdev-testenv");
        let cert = leaf.signed_by(&key, &issuer).map_err(Error::Generate)?;
        Ok(Certs {
            ca_pem: ca_cert.pem(),
            chain: vec![cert.der().clone(), ca_cert.der().clone()],
            key_der: key.serialize_der(),
        })
    }

    /// A rustls server configuration (ring provider, TLS 1.2 and 1.3, ALPN `http/1.1`).
    ///
    /// # Errors
    /// [`Error::Rustls`] if rustls rejects the key.
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()));
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(Error::Rustls)?
            .with_no_client_auth()
            .with_single_cert(self.chain.clone(), key)
            .map_err(Error::Rustls)?;
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(cfg))
    }
}
