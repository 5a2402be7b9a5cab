//! TLS in the engine, driven by a Rust handler and a rustls client over loopback sockets:
//! the handshake, SNI, a reload, large bodies both ways, pipelining, files, and bad input.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use harrier_core::engine::{Batch, Event, Handler, Replier, ReplyWriter, RequestRef, FLAG_SECURE};
use harrier_core::tls::{CertSet, MinVersion, PemPair, TlsSettings};
use harrier_core::{Config, Router, Server};
use rustls::pki_types::{CertificateDer, ServerName};

const PATIENCE: Duration = Duration::from_secs(20);

fn backend() -> harrier_core::Backend {
    std::env::var("HARRIER_IO")
        .ok()
        .and_then(|v| harrier_core::Backend::parse(&v))
        .unwrap_or_default()
}

/// A CA and leaf certificates it signed, made for the test.
struct Pki {
    ca: CertificateDer<'static>,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl Pki {
    fn new() -> Pki {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "harrier test CA");
        let cert = params.self_signed(&key).unwrap();
        Pki {
            ca: cert.der().clone(),
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    fn leaf(&self, names: &[&str]) -> PemPair {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, names[0]);
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        PemPair {
            cert: cert.pem().into_bytes(),
            key: key.serialize_pem().into_bytes(),
        }
    }

    fn client(&self, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }
}

/// Answers `GET /` with whether the request came over TLS, `POST /` with its body, and
/// `GET /file` with the file named by the test.
struct App {
    bodies: Mutex<HashMap<u32, (RequestRef, Vec<u8>)>>,
    file: Option<std::path::PathBuf>,
}

impl Handler for App {
    fn on_batch(&self, batch: &mut Batch, replier: &Replier) {
        let mut w = ReplyWriter::default();
        let mut bodies = self.bodies.lock().unwrap();
        for event in batch.events() {
            match event {
                Event::Request(req) if req.route == 0 => {
                    let secure = if req.flags & FLAG_SECURE != 0 {
                        "secure"
                    } else {
                        "plain"
                    };
                    w.full(req.to, 200, &[], secure.as_bytes());
                }
                Event::Request(req) if req.route == 2 => {
                    let path = self.file.as_ref().unwrap().to_str().unwrap().as_bytes();
                    w.file(req.to, &[], path);
                }
                Event::Request(req) => {
                    bodies.insert(req.to.rid, (req.to, Vec::new()));
                }
                Event::Body { rid, data } => {
                    let (to, body) = bodies.get_mut(&rid).unwrap();
                    body.extend_from_slice(data);
                    // Taken at once: the engine reads on (flow control).
                    w.consumed(*to, data.len() as u32);
                }
                Event::End { rid } => {
                    let (to, body) = bodies.remove(&rid).unwrap();
                    w.full(to, 200, &[], &body);
                }
                _ => {}
            }
        }
        replier.send(&w.buf);
    }
}

fn start(settings: &TlsSettings, file: Option<std::path::PathBuf>, config: Config) -> Server {
    let mut router = Router::new();
    router.add("GET", "/", 0).unwrap();
    router.add("POST", "/", 1).unwrap();
    router.add("GET", "/file", 2).unwrap();
    let config = Config {
        io_threads: 2,
        io: backend(),
        max_body_size: 64 << 20,
        tls: Some(settings.clone()),
        ..config
    };
    Server::start(
        config,
        router,
        Box::new(App {
            bodies: Mutex::new(HashMap::new()),
            file,
        }),
    )
    .unwrap()
}

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

fn connect(
    addr: SocketAddr,
    client: &Arc<rustls::ClientConfig>,
    name: &str,
) -> std::io::Result<Tls> {
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(PATIENCE)).unwrap();
    let conn = rustls::ClientConnection::new(
        client.clone(),
        ServerName::try_from(name.to_string()).unwrap(),
    )
    .unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock)?;
    }
    Ok(tls)
}

/// Reads one answer with a `content-length`; returns its body.
fn answer(s: &mut impl Read) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .expect("content-length")
                .trim()
                .parse()
                .unwrap();
            if got.len() >= end + 4 + len {
                let body = got[end + 4..end + 4 + len].to_vec();
                got.drain(..end + 4 + len);
                assert!(got.is_empty(), "more than one answer");
                return body;
            }
        }
        let n = s.read(&mut buf).expect("read");
        assert!(
            n > 0,
            "closed before the answer was whole: {:?}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
}

fn leaf_name(tls: &Tls) -> Vec<u8> {
    tls.conn.peer_certificates().unwrap()[0].to_vec()
}

#[test]
fn https_answers_say_they_are_secure_and_alpn_picks_http11() {
    let pki = Pki::new();
    let settings = TlsSettings::new(
        CertSet::from_pem("tls", &pki.leaf(&["localhost"]), &[]).unwrap(),
        MinVersion::Tls12,
    );
    let server = start(&settings, None, Config::default());
    let mut tls = connect(
        server.local_addr(),
        &pki.client(&[b"http/1.1"]),
        "localhost",
    )
    .unwrap();
    assert_eq!(tls.conn.alpn_protocol(), Some(&b"http/1.1"[..]));
    for _ in 0..3 {
        tls.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        assert_eq!(answer(&mut tls), b"secure");
    }
    // A client that offers only protocols the server does not speak is refused.
    let refused = connect(server.local_addr(), &pki.client(&[b"spdy/1"]), "localhost");
    assert!(
        refused.is_err(),
        "a handshake without a common protocol must fail"
    );
    server.shutdown();
    server.join();
}

#[test]
fn sni_chooses_the_certificate_and_a_reload_is_seen_by_the_next_handshake() {
    let pki = Pki::new();
    let default = pki.leaf(&["localhost"]);
    let api = pki.leaf(&["api.example.test"]);
    let wild = pki.leaf(&["*.wild.example.test"]);
    let sni = vec![
        ("api.example.test".to_string(), api.clone()),
        ("*.wild.example.test".to_string(), wild.clone()),
    ];
    let settings = TlsSettings::new(
        CertSet::from_pem("tls", &default, &sni).unwrap(),
        MinVersion::Tls12,
    );
    let server = start(&settings, None, Config::default());
    let client = pki.client(&[]);
    let der = |pair: &PemPair| CertificateDer::from_pem_slice_first(&pair.cert);
    let localhost = connect(server.local_addr(), &client, "localhost").unwrap();
    assert_eq!(leaf_name(&localhost), der(&default));
    assert_eq!(
        leaf_name(&connect(server.local_addr(), &client, "api.example.test").unwrap()),
        der(&api)
    );
    assert_eq!(
        leaf_name(&connect(server.local_addr(), &client, "a.wild.example.test").unwrap()),
        der(&wild)
    );

    let renewed = pki.leaf(&["localhost"]);
    settings.reload(CertSet::from_pem("tls", &renewed, &[]).unwrap());
    let mut after = connect(server.local_addr(), &client, "localhost").unwrap();
    assert_eq!(leaf_name(&after), der(&renewed));
    after
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert_eq!(answer(&mut after), b"secure");
    // The connection made before the reload goes on.
    let mut before = localhost;
    before
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert_eq!(answer(&mut before), b"secure");
    server.shutdown();
    server.join();
}

trait FirstDer {
    fn from_pem_slice_first(pem: &[u8]) -> Vec<u8>;
}

impl FirstDer for CertificateDer<'_> {
    fn from_pem_slice_first(pem: &[u8]) -> Vec<u8> {
        use rustls::pki_types::pem::PemObject;
        CertificateDer::pem_slice_iter(pem)
            .next()
            .unwrap()
            .unwrap()
            .to_vec()
    }
}

#[test]
fn large_bodies_pipelining_and_files_pass_whole() {
    let pki = Pki::new();
    let settings = TlsSettings::new(
        CertSet::from_pem("tls", &pki.leaf(&["localhost"]), &[]).unwrap(),
        MinVersion::Tls13,
    );
    let dir = std::env::temp_dir().join(format!("harrier-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("big.bin");
    let content: Vec<u8> = (0..(3 << 20) + 12345)
        .map(|i: u32| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(&file, &content).unwrap();
    let server = start(&settings, Some(file), Config::default());
    let mut tls = connect(server.local_addr(), &pki.client(&[]), "localhost").unwrap();

    // An upload larger than every buffer on the way, echoed back.
    let body: Vec<u8> = (0..(5 << 20) + 7).map(|i: u32| (i % 251) as u8).collect();
    let head = format!(
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let writer = {
        let mut request = head.into_bytes();
        request.extend_from_slice(&body);
        request
    };
    // Written while the answer is read: the server answers as the body streams in.
    tls.write_all(&writer).unwrap();
    assert!(answer(&mut tls) == body, "echoed body differs");

    // A file sent through the cipher.
    tls.write_all(b"GET /file HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert!(answer(&mut tls) == content, "file differs");

    // Three requests in one record, answered in order.
    tls.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nPOST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    while all.windows(6).filter(|w| *w == b"secure").count() < 2 {
        let n = tls.read(&mut buf).unwrap();
        assert!(n > 0);
        all.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&all);
    let (a, b, c) = (
        text.find("secure").unwrap(),
        text.find("abc").unwrap(),
        text.rfind("secure").unwrap(),
    );
    assert!(a < b && b < c, "out of order: {text}");
    server.shutdown();
    server.join();
    let _ = std::fs::remove_dir_all(&dir);
}

/// Waits for the server to close; returns what it sent before.
fn until_closed(s: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return got,
            Err(e) => panic!("no close: {e} after {got:?}"),
        }
    }
}

#[test]
fn plaintext_garbage_and_stalled_handshakes_are_closed() {
    let pki = Pki::new();
    let settings = TlsSettings::new(
        CertSet::from_pem("tls", &pki.leaf(&["localhost"]), &[]).unwrap(),
        MinVersion::Tls12,
    );
    let server = start(
        &settings,
        None,
        Config {
            header_timeout: Duration::from_millis(300),
            keep_alive_timeout: Duration::from_secs(120),
            ..Config::default()
        },
    );
    let addr = server.local_addr();

    // Plain HTTP to the TLS port: an alert, then the close.
    let mut plain = TcpStream::connect(addr).unwrap();
    plain.set_read_timeout(Some(PATIENCE)).unwrap();
    plain
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let got = until_closed(&mut plain);
    assert_eq!(got.first(), Some(&0x15), "a TLS alert: {got:?}");

    // A handshake that never finishes is closed after the header timeout (the keep-alive
    // timeout, which would close it too, is far longer than the read's patience).
    let started = Instant::now();
    let mut silent = TcpStream::connect(addr).unwrap();
    silent.set_read_timeout(Some(PATIENCE)).unwrap();
    silent
        .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .unwrap();
    until_closed(&mut silent);
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "closed before the timeout"
    );

    // Garbage after a finished handshake closes that connection only.
    let client = pki.client(&[]);
    let mut bystander = connect(addr, &client, "localhost").unwrap();
    let mut victim = connect(addr, &client, "localhost").unwrap();
    victim
        .sock
        .write_all(&[0x17, 0x03, 0x03, 0x00, 0x20])
        .unwrap();
    victim.sock.write_all(&[0xAB; 32]).unwrap();
    until_closed(&mut victim.sock);
    bystander
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert_eq!(answer(&mut bystander), b"secure");
    server.shutdown();
    server.join();
}

#[test]
fn bad_certificates_say_which_and_why() {
    let pki = Pki::new();
    let a = pki.leaf(&["localhost"]);
    let b = pki.leaf(&["localhost"]);
    let mismatched = PemPair {
        cert: a.cert.clone(),
        key: b.key.clone(),
    };
    let e = CertSet::from_pem("tls", &mismatched, &[]).unwrap_err();
    assert_eq!(e.field, "tls.key");
    assert!(e.reason.contains("does not match"), "{e}");

    let no_key = PemPair {
        cert: a.cert.clone(),
        key: a.cert.clone(),
    };
    let e = CertSet::from_pem("tls", &no_key, &[]).unwrap_err();
    assert!(
        e.field == "tls.key" && e.reason.contains("no private key"),
        "{e}"
    );

    let e = CertSet::from_pem("tls", &a, &[("api.example.test".into(), mismatched)]).unwrap_err();
    assert_eq!(e.field, "tls.sni[\"api.example.test\"].key");
}
