//! TLS to PostgreSQL with rustls, as libpq's `sslmode` and `sslrootcert` say.
//!
//! tokio-postgres knows only `disable`, `prefer` and `require`, and no root
//! certificate file, so both parameters are taken out of the URL here and turned into
//! the driver's mode plus a rustls configuration:
//!
//! | sslmode | TLS | the server's certificate |
//! |---|---|---|
//! | `disable` (the default) | never | |
//! | `prefer` | if the server offers it | not checked |
//! | `require` | always | not checked (checked as `verify-ca` if `sslrootcert` is given, as libpq does) |
//! | `verify-ca` | always | signed by `sslrootcert` (or a public root) |
//! | `verify-full` | always | signed, and issued for the host in the URL |

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

/// Why the TLS settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("sslmode must be disable, prefer, require, verify-ca or verify-full, not {0:?}")]
    Mode(String),
    #[error("cannot read sslrootcert {path}")]
    RootCert {
        path: PathBuf,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("sslrootcert {0} holds no usable certificate")]
    NoRootCert(PathBuf),
    #[error("cannot set up TLS")]
    Rustls(#[from] rustls::Error),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

/// The TLS part of a PostgreSQL URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tls {
    mode: Mode,
    root_cert: Option<PathBuf>,
}

impl Tls {
    /// Takes `sslmode` and `sslrootcert` out of `url`: the URL left for the driver,
    /// and the TLS settings.
    pub fn split_url(url: &str) -> Result<(String, Self), TlsError> {
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut tls = Self {
            mode: Mode::Disable,
            root_cert: None,
        };
        let mut rest = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("sslmode", value)) => tls.mode = parse_mode(value)?,
                Some(("sslrootcert", value)) => tls.root_cert = Some(PathBuf::from(value)),
                _ => rest.push(pair),
            }
        }
        if tls.mode == Mode::Require && tls.root_cert.is_some() {
            tls.mode = Mode::VerifyCa;
        }
        let url = if rest.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", rest.join("&"))
        };
        Ok((url, tls))
    }

    /// The driver's mode, and the connector for it (none without TLS).
    pub fn connector(&self) -> Result<(SslMode, Option<MakeRustlsConnect>), TlsError> {
        let driver_mode = match self.mode {
            Mode::Disable => return Ok((SslMode::Disable, None)),
            Mode::Prefer => SslMode::Prefer,
            Mode::Require | Mode::VerifyCa | Mode::VerifyFull => SslMode::Require,
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?;
        let config = match self.mode {
            Mode::Prefer | Mode::Require => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(Unchecked(
                    provider.signature_verification_algorithms,
                )))
                .with_no_client_auth(),
            Mode::VerifyCa => {
                let full = WebPkiServerVerifier::builder_with_provider(self.roots()?, provider)
                    .build()
                    .map_err(|e| TlsError::Rustls(rustls::Error::General(e.to_string())))?;
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(AnyName(full)))
                    .with_no_client_auth()
            }
            // (Disable returned above.)
            Mode::Disable | Mode::VerifyFull => builder
                .with_root_certificates(self.roots()?)
                .with_no_client_auth(),
        };
        Ok((driver_mode, Some(MakeRustlsConnect::new(config))))
    }

    /// `sslrootcert`'s certificates, or the public roots without one.
    fn roots(&self) -> Result<Arc<RootCertStore>, TlsError> {
        let Some(path) = &self.root_cert else {
            return Ok(Arc::new(RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            }));
        };
        let mut roots = RootCertStore::empty();
        let certs = CertificateDer::pem_file_iter(path).map_err(|source| TlsError::RootCert {
            path: path.clone(),
            source,
        })?;
        for cert in certs {
            let cert = cert.map_err(|source| TlsError::RootCert {
                path: path.clone(),
                source,
            })?;
            roots.add(cert)?;
        }
        if roots.is_empty() {
            return Err(TlsError::NoRootCert(path.clone()));
        }
        Ok(Arc::new(roots))
    }
}

fn parse_mode(value: &str) -> Result<Mode, TlsError> {
    Ok(match value {
        "disable" => Mode::Disable,
        "prefer" => Mode::Prefer,
        "require" => Mode::Require,
        "verify-ca" => Mode::VerifyCa,
        "verify-full" => Mode::VerifyFull,
        other => return Err(TlsError::Mode(other.to_owned())),
    })
}

/// `prefer` and `require`: encrypted, but any certificate is taken (libpq's meaning).
/// The handshake's signatures are still checked, so the key matches the certificate.
#[derive(Debug)]
struct Unchecked(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// `verify-ca`: the chain must lead to a trusted root; the name is not checked.
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslmode_and_sslrootcert_are_taken_out_of_the_url() {
        let (url, tls) = Tls::split_url(
            "postgres://u@h/db?sslmode=verify-full&application_name=x&sslrootcert=/ca.pem",
        )
        .expect("valid");
        assert_eq!(url, "postgres://u@h/db?application_name=x");
        assert_eq!(tls.mode, Mode::VerifyFull);
        assert_eq!(tls.root_cert, Some(PathBuf::from("/ca.pem")));
        let (url, tls) = Tls::split_url("postgres://u@h/db").expect("valid");
        assert_eq!(
            (url.as_str(), tls.mode),
            ("postgres://u@h/db", Mode::Disable)
        );
        let (_, tls) =
            Tls::split_url("postgres://h/db?sslmode=require&sslrootcert=/ca.pem").expect("valid");
        assert_eq!(
            tls.mode,
            Mode::VerifyCa,
            "libpq: require with a root cert verifies"
        );
        assert!(Tls::split_url("postgres://h/db?sslmode=allow-anything").is_err());
    }
}
