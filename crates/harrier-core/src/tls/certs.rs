//! Certificates: PEM in, checked key pairs out, chosen per handshake by server name (SNI).
//! A reload swaps the whole set at once; handshakes under way keep the set they started with.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// A certificate or key that cannot serve, with the option it came from (`tls.key`,
/// `tls.sni["api.example.com"].cert`) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsError {
    pub field: String,
    pub reason: String,
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

impl std::error::Error for TlsError {}

/// A certificate chain (leaf first) and its private key, both PEM.
#[derive(Debug, Clone)]
pub struct PemPair {
    pub cert: Vec<u8>,
    pub key: Vec<u8>,
}

/// The default certificate and the ones chosen by server name.
#[derive(Debug)]
pub struct CertSet {
    default: Arc<CertifiedKey>,
    /// Lower-case names.
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// `*.example.com` stored as `example.com`: matches one more label, not the bare name.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
}

impl CertSet {
    /// Checks every pair: the chain parses, the key parses and is not encrypted, and the key
    /// is the one the leaf certificate names. `prefix` names the option (`tls`).
    pub fn from_pem(
        prefix: &str,
        default: &PemPair,
        sni: &[(String, PemPair)],
    ) -> Result<CertSet, TlsError> {
        let default = certified_key(prefix, default)?;
        let mut set = CertSet {
            default,
            exact: HashMap::new(),
            wildcard: HashMap::new(),
        };
        for (name, pair) in sni {
            let field = format!("{prefix}.sni[{name:?}]");
            let host = name.trim().to_ascii_lowercase();
            let (table, host) = match host.strip_prefix("*.") {
                Some(rest) => (&mut set.wildcard, rest.to_string()),
                None => (&mut set.exact, host),
            };
            if !is_host_name(&host) {
                return Err(TlsError {
                    field,
                    reason:
                        "not a host name (an exact name like api.example.com, or *.example.com)"
                            .into(),
                });
            }
            table.insert(host, certified_key(&field, pair)?);
        }
        Ok(set)
    }

    /// The certificate for a server name: an exact match, else a wildcard one label up, else
    /// the default (a client that names nothing, or a name we have no certificate for).
    fn choose(&self, name: Option<&str>) -> Arc<CertifiedKey> {
        let Some(name) = name else {
            return self.default.clone();
        };
        let lower;
        let name = if name.bytes().any(|b| b.is_ascii_uppercase()) {
            lower = name.to_ascii_lowercase();
            lower.as_str()
        } else {
            name
        };
        if let Some(key) = self.exact.get(name) {
            return key.clone();
        }
        if let Some((_, parent)) = name.split_once('.') {
            if let Some(key) = self.wildcard.get(parent) {
                return key.clone();
            }
        }
        self.default.clone()
    }
}

fn is_host_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

fn certified_key(field: &str, pair: &PemPair) -> Result<Arc<CertifiedKey>, TlsError> {
    let cert_field = format!("{field}.cert");
    let key_field = format!("{field}.key");
    let chain = CertificateDer::pem_slice_iter(&pair.cert)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError {
            field: cert_field.clone(),
            reason: pem_reason(&e),
        })?;
    if chain.is_empty() {
        return Err(TlsError {
            field: cert_field,
            reason: "no certificate in this PEM (expected -----BEGIN CERTIFICATE-----)".into(),
        });
    }
    if is_encrypted(&pair.key) {
        return Err(TlsError {
            field: key_field,
            reason: "the private key is encrypted; give it decrypted (openssl pkey -in key.pem -out plain.pem)".into(),
        });
    }
    let key = PrivateKeyDer::from_pem_slice(&pair.key).map_err(|e| TlsError {
        field: key_field.clone(),
        reason: match e {
            pem::Error::NoItemsFound => {
                "no private key in this PEM (expected PKCS#8, PKCS#1 RSA or SEC1 EC)".into()
            }
            e => pem_reason(&e),
        },
    })?;
    let signer = rustls::crypto::ring::sign::any_supported_type(&key).map_err(|e| TlsError {
        field: key_field.clone(),
        reason: format!("unusable private key: {e}"),
    })?;
    let certified = CertifiedKey::new(chain, signer);
    match certified.keys_match() {
        Ok(()) => Ok(Arc::new(certified)),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Err(TlsError {
                field: key_field,
                reason: format!("the private key does not match the certificate in {cert_field}"),
            })
        }
        Err(e) => Err(TlsError {
            field: cert_field,
            reason: format!("the certificate cannot be read: {e}"),
        }),
    }
}

fn is_encrypted(pem: &[u8]) -> bool {
    let has = |needle: &[u8]| pem.windows(needle.len()).any(|w| w == needle);
    has(b"-----BEGIN ENCRYPTED PRIVATE KEY-----") || has(b"Proc-Type: 4,ENCRYPTED")
}

fn pem_reason(e: &pem::Error) -> String {
    match e {
        pem::Error::NoItemsFound => "nothing in PEM form".into(),
        e => format!("malformed PEM: {e}"),
    }
}

/// The certificate set in use, swapped by a reload.
#[derive(Debug)]
pub(crate) struct Resolver {
    current: RwLock<Arc<CertSet>>,
}

impl Resolver {
    pub fn new(set: CertSet) -> Resolver {
        Resolver {
            current: RwLock::new(Arc::new(set)),
        }
    }

    pub fn replace(&self, set: CertSet) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(set);
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let set = self
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        Some(set.choose(hello.server_name()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names() {
        assert!(is_host_name("api.example.com"));
        assert!(is_host_name("localhost"));
        assert!(!is_host_name(""));
        assert!(!is_host_name("a..b"));
        assert!(!is_host_name("a b"));
        assert!(!is_host_name("*.x"));
    }

    #[test]
    fn encrypted_keys_are_recognised() {
        assert!(is_encrypted(
            b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nMII\n"
        ));
        assert!(is_encrypted(
            b"-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n"
        ));
        assert!(!is_encrypted(b"-----BEGIN PRIVATE KEY-----\nMII\n"));
    }

    #[test]
    fn pem_without_certificate_is_refused() {
        let pair = PemPair {
            cert: b"hello".to_vec(),
            key: Vec::new(),
        };
        let e = CertSet::from_pem("tls", &pair, &[]).unwrap_err();
        assert_eq!(e.field, "tls.cert");
        assert!(e.reason.contains("no certificate"), "{e}");
    }
}
