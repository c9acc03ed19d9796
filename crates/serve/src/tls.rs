//! TLS for the gRPC listeners (rustls), with optional client-certificate
//! verification (mTLS).

use crate::ServeError;
use std::path::{Path, PathBuf};
use tonic::transport::{Certificate, Identity, ServerTlsConfig};

/// Where a service's TLS material lives.
#[derive(Debug, Clone, Default)]
pub struct TlsFiles {
    /// The server's certificate chain (PEM).
    pub cert: Option<PathBuf>,
    /// The server's private key (PEM).
    pub key: Option<PathBuf>,
    /// CA certificates (PEM) that client certificates must chain to; when
    /// set, clients without a valid certificate are refused (mTLS).
    pub client_ca: Option<PathBuf>,
}

fn read(what: &str, path: &Path) -> Result<Vec<u8>, ServeError> {
    std::fs::read(path)
        .map_err(|e| ServeError::Tls(format!("cannot read the {what} {}: {e}", path.display())))
}

impl TlsFiles {
    /// The server TLS configuration, or `None` when TLS is off. A key
    /// without a certificate (or the reverse), or a client CA without
    /// either, is a configuration error rather than a silent plaintext
    /// listener.
    pub fn server_config(&self) -> Result<Option<ServerTlsConfig>, ServeError> {
        let (cert, key) = match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => (cert, key),
            (None, None) if self.client_ca.is_none() => return Ok(None),
            _ => {
                return Err(ServeError::Tls(
                    "TLS needs both a certificate and a key (and a client CA only with them)"
                        .into(),
                ));
            }
        };
        let identity = Identity::from_pem(read("certificate", cert)?, read("key", key)?);
        let mut config = ServerTlsConfig::new().identity(identity);
        if let Some(ca) = &self.client_ca {
            config = config
                .client_ca_root(Certificate::from_pem(read("client CA", ca)?))
                .client_auth_optional(false);
        }
        Ok(Some(config))
    }
}
