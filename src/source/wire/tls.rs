//! TLS for the row reader's connections, following the same `ssl-mode`s as the `mysql` crate's
//! sessions: `preferred` and `required` encrypt without checking the certificate, `verify_ca`
//! checks it against `ssl-ca` (or the public roots) but not the host name, `verify_identity`
//! checks both.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::packet::Stream;
use super::WireError;
use crate::source::connect::TlsMode;

/// Wraps `plain` in TLS to `host` as `mode` asks.
pub fn secure(plain: std::net::TcpStream, host: &str, mode: TlsMode, ca: Option<&std::path::Path>) -> Result<Box<dyn Stream>, WireError> {
    let tls = |why: String| WireError::Tls(why);
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca {
        let pem = std::fs::read(path).map_err(|e| tls(format!("ssl-ca {}: {e}", path.display())))?;
        let mut found = 0;
        for cert in rustls_pemfile::certs(&mut &pem[..]) {
            let cert = cert.map_err(|e| tls(format!("ssl-ca {}: {e}", path.display())))?;
            roots.add(cert).map_err(|e| tls(format!("ssl-ca {}: {e}", path.display())))?;
            found += 1;
        }
        if found == 0 {
            return Err(tls(format!("ssl-ca {}: no PEM certificate in it", path.display())));
        }
    }
    let webpki = WebPkiServerVerifier::builder(Arc::new(roots)).build().map_err(|e| tls(e.to_string()))?;
    let verifier = Arc::new(Verifier { mode, webpki });
    let config = ClientConfig::builder().dangerous().with_custom_certificate_verifier(verifier).with_no_client_auth();
    let name = ServerName::try_from(host.to_string()).map_err(|e| tls(format!("host name {host:?}: {e}")))?;
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name).map_err(|e| tls(e.to_string()))?;
    // The handshake here, not lazily on the first write: its failures are TLS failures (which
    // the driver is then asked to serve, with its own words for a certificate problem).
    let mut sock = plain;
    while conn.is_handshaking() {
        conn.complete_io(&mut sock).map_err(|e| tls(e.to_string()))?;
    }
    Ok(Box::new(rustls::StreamOwned::new(conn, sock)))
}

#[derive(Debug)]
struct Verifier {
    mode: TlsMode,
    webpki: Arc<WebPkiServerVerifier>,
}

impl Verifier {
    fn checks(&self) -> bool {
        matches!(self.mode, TlsMode::VerifyCa | TlsMode::VerifyIdentity)
    }
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if !self.checks() {
            return Ok(ServerCertVerified::assertion());
        }
        match self.webpki.verify_server_cert(end_entity, intermediates, name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }))
                if self.mode == TlsMode::VerifyCa =>
            {
                Ok(ServerCertVerified::assertion())
            }
            other => other,
        }
    }

    fn verify_tls12_signature(&self, m: &[u8], c: &CertificateDer<'_>, d: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        if self.checks() { self.webpki.verify_tls12_signature(m, c, d) } else { Ok(HandshakeSignatureValid::assertion()) }
    }

    fn verify_tls13_signature(&self, m: &[u8], c: &CertificateDer<'_>, d: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        if self.checks() { self.webpki.verify_tls13_signature(m, c, d) } else { Ok(HandshakeSignatureValid::assertion()) }
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        let mut schemes = self.webpki.supported_verify_schemes();
        if !self.checks() {
            // Unchecked, as the driver: a legacy server's SHA-1 signatures are accepted too.
            schemes.extend([SignatureScheme::RSA_PKCS1_SHA1, SignatureScheme::ECDSA_SHA1_Legacy]);
        }
        schemes
    }
}
