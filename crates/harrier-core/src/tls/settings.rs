//! What a TLS listener is given: certificates (reloadable), the lowest protocol version, and
//! the rustls configuration built from them once per server.

use std::fmt;
use std::sync::Arc;

use rustls::server::{ServerConfig, ServerSessionMemoryCache};

use super::certs::{CertSet, Resolver, TlsError};

/// The lowest TLS version a client may speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MinVersion {
    #[default]
    Tls12,
    Tls13,
}

impl MinVersion {
    pub fn parse(name: &str) -> Option<MinVersion> {
        match name {
            "TLSv1.2" => Some(MinVersion::Tls12),
            "TLSv1.3" => Some(MinVersion::Tls13),
            _ => None,
        }
    }
}

/// The suites offered, in the server's order of preference: AEAD with forward secrecy only.
const CIPHER_SUITES: &[rustls::SupportedCipherSuite] = {
    use rustls::crypto::ring::cipher_suite::*;
    &[
        TLS13_AES_128_GCM_SHA256,
        TLS13_AES_256_GCM_SHA384,
        TLS13_CHACHA20_POLY1305_SHA256,
        TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ]
};

/// Sessions remembered for resumption by id (TLS 1.2 clients without tickets).
const SESSION_CACHE: usize = 4096;

/// TLS for a listener. Cloning shares the certificates: a reload through any clone is seen by
/// every server started with it.
#[derive(Clone)]
pub struct TlsSettings {
    resolver: Arc<Resolver>,
    min_version: MinVersion,
}

impl fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsSettings")
            .field("min_version", &self.min_version)
            .finish_non_exhaustive()
    }
}

impl TlsSettings {
    pub fn new(certs: CertSet, min_version: MinVersion) -> TlsSettings {
        TlsSettings {
            resolver: Arc::new(Resolver::new(certs)),
            min_version,
        }
    }

    /// New handshakes use `certs`; connections open already keep what they agreed on.
    pub fn reload(&self, certs: CertSet) {
        self.resolver.replace(certs);
    }

    /// The rustls configuration, offering `protocols` by ALPN in that order.
    pub(crate) fn server_config(&self, protocols: &[&[u8]]) -> Result<Arc<ServerConfig>, TlsError> {
        let provider = Arc::new(rustls::crypto::CryptoProvider {
            cipher_suites: CIPHER_SUITES.to_vec(),
            ..rustls::crypto::ring::default_provider()
        });
        let versions: &[&'static rustls::SupportedProtocolVersion] = match self.min_version {
            MinVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
            MinVersion::Tls13 => &[&rustls::version::TLS13],
        };
        let fail = |e: rustls::Error| TlsError {
            field: "tls".into(),
            reason: e.to_string(),
        };
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .map_err(fail)?
            .with_no_client_auth()
            .with_cert_resolver(self.resolver.clone());
        config.alpn_protocols = protocols.iter().map(|p| p.to_vec()).collect();
        // The server's order: AES-128-GCM first (as strong as any here, and the cheapest
        // where the CPU has AES instructions), whatever the client prefers.
        config.ignore_client_order = true;
        // Resumption skips the signature and the key exchange's certificate work: tickets
        // (stateless, TLS 1.2 and 1.3) and a cache by session id for clients without them.
        config.session_storage = ServerSessionMemoryCache::new(SESSION_CACHE);
        config.ticketer = rustls::crypto::ring::Ticketer::new().map_err(fail)?;
        /* One ticket per full handshake: clients resume with one, and each costs a record. */
        config.send_tls13_tickets = 1;
        Ok(Arc::new(config))
    }
}
