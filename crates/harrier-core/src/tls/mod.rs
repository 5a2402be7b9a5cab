//! TLS as a transport (rustls): the protocols above it do not know it is there.

mod certs;
pub(crate) mod session;
mod settings;

pub use certs::{CertSet, PemPair, TlsError};
pub use settings::{MinVersion, TlsSettings};
