//! CAs: generated, found in a bundle by their key, and the PEM and X.509 helpers they need.

use std::fmt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use time::OffsetDateTime;

use super::{CA_FILE, CA_KEY_FILE, Error};

pub(super) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How far before its issuance a certificate's notBefore is set, for clocks a little behind.
pub(super) const BACKDATE: Duration = Duration::from_secs(60);

/// `now` less [`BACKDATE`] (never before 1970), as an X.509 date.
pub(super) fn backdated(now: SystemTime) -> OffsetDateTime {
    datetime(now - BACKDATE.min(now.duration_since(UNIX_EPOCH).unwrap_or_default()))
}

pub(super) fn datetime(t: SystemTime) -> OffsetDateTime {
    let secs = t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    OffsetDateTime::from_unix_timestamp(i64::try_from(secs).unwrap_or(i64::MAX)).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// A CA: its certificate, its signing key, and its lifetime.
pub(super) struct Ca {
    pub(super) issuer: Issuer<'static, KeyPair>,
    pub(super) pem: String,
    pub(super) key_pem: String,
    /// When it was issued (its notBefore less the backdating).
    pub(super) not_before: SystemTime,
    pub(super) not_after: SystemTime,
}

impl fmt::Debug for Ca {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ca")
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

/// A CA certificate trusted in a bundle without its key: a previous CA, kept in `ca.crt` until
/// it expires.
#[derive(Debug, Clone)]
pub(super) struct Trusted {
    pub(super) pem: String,
    pub(super) not_after: SystemTime,
}

/// Which of the two inputs of [`Ca::find`] is wrong.
#[derive(Debug)]
pub(super) enum FindError {
    /// The key does not parse.
    Key(BoxError),
    /// The bundle does not parse or holds no certificate of the key.
    Bundle(BoxError),
}

impl Ca {
    pub(super) fn generate(validity: Duration) -> Result<Ca, Error> {
        let key = KeyPair::generate().map_err(|source| Error::Generate { what: "CA key", source })?;
        let mut params = CertificateParams::default();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, "kdev-webhook-ca");
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let now = SystemTime::now();
        let not_after = now + validity;
        params.not_before = backdated(now);
        params.not_after = datetime(not_after);
        let cert = params
            .self_signed(&key)
            .map_err(|source| Error::Generate { what: "CA", source })?;
        let key_pem = key.serialize_pem();
        Ok(Ca {
            pem: cert.pem(),
            key_pem,
            issuer: Issuer::new(params, key),
            not_before: now,
            not_after,
        })
    }

    /// The CA in `dir` (`ca.crt`, the certificate of `ca.key` in it, and `ca.key`), if both
    /// files exist.
    pub(super) fn load(dir: &Path) -> Result<Option<Ca>, Error> {
        let (cert_path, key_path) = (dir.join(CA_FILE), dir.join(CA_KEY_FILE));
        let read = |path: &Path| match std::fs::read_to_string(path) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(Error::Read {
                path: path.to_path_buf(),
                source,
            }),
        };
        let (Some(bundle_pem), Some(key_pem)) = (read(&cert_path)?, read(&key_path)?) else {
            return Ok(None);
        };
        Ca::find(&bundle_pem, &key_pem).map(Some).map_err(|e| match e {
            FindError::Key(source) => Error::Parse { path: key_path, source },
            FindError::Bundle(source) => Error::Parse {
                path: cert_path,
                source,
            },
        })
    }

    /// The CA of `key_pem` among the certificates of `bundle_pem`, found by its public key:
    /// during a CA rollover `ca.crt` lists the new CA first, before it signs.
    pub(super) fn find(bundle_pem: &str, key_pem: &str) -> Result<Ca, FindError> {
        let key = KeyPair::from_pem(key_pem).map_err(|e| FindError::Key(e.into()))?;
        for block in pem_blocks(bundle_pem) {
            let der = cert_der(block).map_err(FindError::Bundle)?;
            if public_key_of(&der).map_err(FindError::Bundle)? != key.public_key_raw() {
                continue;
            }
            let (not_before, not_after) = lifetime_of(&der).map_err(FindError::Bundle)?;
            let issuer = Issuer::from_ca_cert_der(&der, key).map_err(|e| FindError::Bundle(e.into()))?;
            return Ok(Ca {
                issuer,
                pem: owned_block(block),
                key_pem: key_pem.to_string(),
                not_before,
                not_after,
            });
        }
        Err(FindError::Bundle("no certificate of the key".into()))
    }

    pub(super) fn renew_time(&self, fraction: f64) -> SystemTime {
        renew_time(self.not_before, self.not_after, fraction)
    }

    /// Its certificate, to stay trusted after it stops signing.
    pub(super) fn trusted(&self) -> Trusted {
        Trusted {
            pem: self.pem.clone(),
            not_after: self.not_after,
        }
    }
}

pub(super) fn renew_time(not_before: SystemTime, not_after: SystemTime, fraction: f64) -> SystemTime {
    let lifetime = not_after.duration_since(not_before).unwrap_or_default();
    not_before + lifetime.mul_f64(fraction)
}

/// The `-----BEGIN ...-----` to `-----END ...-----` blocks of `pem` in order, each with the end
/// of its last line; text between blocks is skipped.
pub(super) fn pem_blocks(pem: &str) -> impl Iterator<Item = &str> {
    let mut rest = pem;
    std::iter::from_fn(move || {
        let from = &rest[rest.find("-----BEGIN")?..];
        let end = from
            .find("-----END")
            .map_or(from.len(), |e| from[e..].find('\n').map_or(from.len(), |n| e + n + 1));
        rest = &from[end..];
        Some(&from[..end])
    })
}

/// A PEM block as a string ending with a newline, ready to be concatenated.
pub(super) fn owned_block(block: &str) -> String {
    let mut owned = block.to_string();
    if !owned.ends_with('\n') {
        owned.push('\n');
    }
    owned
}

/// The certificate of one PEM block.
pub(super) fn cert_der(block: &str) -> Result<CertificateDer<'static>, BoxError> {
    CertificateDer::from_pem_slice(block.as_bytes()).map_err(Into::into)
}

/// A certificate's public key (the bits of its subjectPublicKey).
pub(super) fn public_key_of(der: &[u8]) -> Result<Vec<u8>, BoxError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| e.to_string())?;
    Ok(cert.public_key().subject_public_key.data.to_vec())
}

/// When a certificate was issued (its notBefore plus the [`BACKDATE`] this module puts in,
/// so a certificate read back has the lifetime it was issued with) and its notAfter.
pub(super) fn lifetime_of(der: &[u8]) -> Result<(SystemTime, SystemTime), BoxError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| e.to_string())?;
    let at = |t: i64| UNIX_EPOCH + Duration::from_secs(u64::try_from(t).unwrap_or(0));
    let validity = cert.validity();
    let not_after = at(validity.not_after.timestamp());
    let not_before = (at(validity.not_before.timestamp()) + BACKDATE).min(not_after);
    Ok((not_before, not_after))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_blocks_are_cut_whole_and_in_order() {
        let pem = "junk\n-----BEGIN A-----\nxx\n-----END A-----\n-----BEGIN B-----\ny\n-----END B-----";
        let blocks: Vec<&str> = pem_blocks(pem).collect();
        assert_eq!(
            blocks,
            [
                "-----BEGIN A-----\nxx\n-----END A-----\n",
                "-----BEGIN B-----\ny\n-----END B-----"
            ]
        );
        assert_eq!(owned_block(blocks[1]), "-----BEGIN B-----\ny\n-----END B-----\n");
        assert_eq!(pem_blocks("no pem here").count(), 0);
    }

    #[test]
    fn a_ca_read_back_has_the_lifetime_it_was_issued_with() {
        let ca = Ca::generate(Duration::from_secs(3600)).unwrap();
        let found = Ca::find(&ca.pem, &ca.key_pem).unwrap();
        let secs = |t: SystemTime| t.duration_since(UNIX_EPOCH).unwrap().as_secs();
        assert_eq!(secs(found.not_before), secs(ca.not_before));
        assert_eq!(secs(found.not_after), secs(ca.not_after));
    }
}
