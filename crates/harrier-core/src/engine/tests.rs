//! Engine tests that need hooks only a test build has (see `cfg(test)` in `conn/` and `http1/conn.rs`).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use super::*;
use crate::engine::{Event, ReplyWriter};

/// How long a read waits for an answer (or the close) before the test gives up: generous,
/// only a failing test waits it out, and a loaded machine can take seconds.
const PATIENCE: Duration = Duration::from_secs(20);

/// The backend under test: `HARRIER_IO` (the test runner runs these tests once per backend).
fn backend() -> crate::Backend {
    std::env::var("HARRIER_IO")
        .ok()
        .and_then(|v| crate::Backend::parse(&v))
        .unwrap_or_default()
}

/// Answers every request with `ok`.
struct Ok200;

impl Handler for Ok200 {
    fn on_batch(&self, batch: &mut Batch, replier: &Replier) {
        let mut w = ReplyWriter::default();
        for event in batch.events() {
            if let Event::Request(req) = event {
                w.full(req.to, 200, &[], b"ok");
            }
        }
        replier.send(&w.buf);
    }
}

fn get(s: &mut TcpStream, path: &str) -> String {
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !got.ends_with(b"ok") {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

#[test]
fn a_panic_is_contained_at_its_connection() {
    let router = || {
        let mut router = Router::new();
        router.add("GET", "/", 0).unwrap();
        router.add("GET", "/__panic__", 1).unwrap();
        router
    };
    for threads in [1, 2] {
        let server = Server::start(
            Config {
                io_threads: threads,
                io: backend(),
                ..Config::default()
            },
            router(),
            Box::new(Ok200),
        )
        .unwrap();
        let mut bystander = TcpStream::connect(server.local_addr()).unwrap();
        bystander.set_read_timeout(Some(PATIENCE)).unwrap();
        assert!(get(&mut bystander, "/").ends_with("ok"));

        let mut victim = TcpStream::connect(server.local_addr()).unwrap();
        victim.set_read_timeout(Some(PATIENCE)).unwrap();
        // A request before the panicking one in the same read: undone with it, never answered.
        victim
            .write_all(
                b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /__panic__ HTTP/1.1\r\nHost: x\r\n\r\n",
            )
            .unwrap();
        let mut buf = [0u8; 1024];
        let n = victim.read(&mut buf).unwrap_or(0);
        assert_eq!(
            n,
            0,
            "the connection is dropped without an answer: {:?}",
            String::from_utf8_lossy(&buf[..n])
        );

        // The thread, the open connection and new ones go on.
        assert!(get(&mut bystander, "/").ends_with("ok"));
        let mut fresh = TcpStream::connect(server.local_addr()).unwrap();
        fresh.set_read_timeout(Some(PATIENCE)).unwrap();
        assert!(get(&mut fresh, "/").ends_with("ok"));
        server.shutdown();
        server.join();
    }
}

#[test]
fn an_idle_keep_alive_connection_holds_no_heap() {
    // Served once, then idle: its buffers and its list of requests in flight went back to
    // the thread's pools, so that ten thousand idle connections cost their records only.
    let mut router = Router::new();
    router.add("GET", "/", 0).unwrap();
    let mut server = InlineServer::start(
        Config {
            io: backend(),
            ..Config::default()
        },
        router,
        Box::new(Ok200),
    )
    .unwrap();
    let addr = server.local_addr();
    let client = std::thread::spawn(move || {
        let mut clients: Vec<TcpStream> =
            (0..8).map(|_| TcpStream::connect(addr).unwrap()).collect();
        for c in clients.iter_mut() {
            c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            assert!(get(c, "/").ends_with("ok"));
        }
        clients
    });
    let (open, held) = serve_then_measure(&mut server, client);
    assert_eq!(
        held, 0,
        "{open} idle connections hold {held} bytes of buffers and lists"
    );
    server.shutdown();
}

/// Serves until `client` (which returns the connections it leaves open) is done, then tells
/// how many connections are open and what they hold on the heap.
fn serve_then_measure(
    server: &mut InlineServer,
    client: std::thread::JoinHandle<Vec<TcpStream>>,
) -> (usize, usize) {
    while !client.is_finished() {
        server.step().unwrap();
        std::thread::yield_now();
    }
    let clients = client.join().unwrap();
    // The last answers were written in the turn that read their requests; one more turn
    // takes what the backend reports after the writes.
    server.step().unwrap();
    let (open, held) = server.worker.heap_of_connections();
    assert_eq!(open, clients.len());
    (open, held)
}

/// Accepts every WebSocket handshake and echoes every message.
struct WsEcho;

impl Handler for WsEcho {
    fn on_batch(&self, batch: &mut Batch, replier: &Replier) {
        let mut w = ReplyWriter::default();
        for event in batch.events() {
            match event {
                Event::Request(req) => w.upgrade(req.to),
                Event::WsOpen { id, slot, .. } => SLOTS.with(|s| s.borrow_mut().push((id, slot))),
                Event::WsMessage { id, binary, data } => {
                    let slot = SLOTS
                        .with(|s| s.borrow().iter().find(|(i, _)| *i == id).map(|(_, s)| *s))
                        .unwrap();
                    w.ws_send(
                        RequestRef {
                            thread: batch.thread,
                            slot,
                            rid: id,
                        },
                        binary as u16,
                        data,
                    );
                }
                _ => {}
            }
        }
        replier.send(&w.buf);
    }
}

thread_local! {
    /// The slots of the sockets the echo handler opened (the inline server calls it on the
    /// test's thread).
    static SLOTS: std::cell::RefCell<Vec<(u32, u32)>> = const { std::cell::RefCell::new(Vec::new()) };
}

#[test]
fn an_idle_websocket_holds_no_heap() {
    // Upgraded, one message echoed, then idle: the input and output buffers went back to
    // the pool, the reader keeps no message buffer.
    let mut router = Router::new();
    router.add("GET", "/ws", 0).unwrap();
    let config = Config {
        io: backend(),
        websockets: vec![Some(std::sync::Arc::new(crate::WsOptions::default()))],
        ..Config::default()
    };
    let mut server = InlineServer::start(config, router, Box::new(WsEcho)).unwrap();
    let addr = server.local_addr();
    let client = std::thread::spawn(move || {
        let mut clients: Vec<TcpStream> =
            (0..4).map(|_| TcpStream::connect(addr).unwrap()).collect();
        for c in clients.iter_mut() {
            c.set_read_timeout(Some(PATIENCE)).unwrap();
            c.write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 1024];
            while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = c.read(&mut buf).unwrap();
                assert!(n > 0, "closed during the handshake");
                got.extend_from_slice(&buf[..n]);
            }
            assert!(
                got.starts_with(b"HTTP/1.1 101"),
                "{}",
                String::from_utf8_lossy(&got)
            );
            // "hello", masked with 1 2 3 4
            let mask = [1u8, 2, 3, 4];
            let mut frame = vec![0x81, 0x80 | 5];
            frame.extend_from_slice(&mask);
            frame.extend(b"hello".iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
            c.write_all(&frame).unwrap();
            let mut echo = [0u8; 7];
            c.read_exact(&mut echo).unwrap();
            assert_eq!(&echo, b"\x81\x05hello");
        }
        clients
    });
    let (open, held) = serve_then_measure(&mut server, client);
    assert_eq!(
        held, 0,
        "{open} idle WebSockets hold {held} bytes of buffers"
    );
    server.shutdown();
}

/// Reads HTTP/2 frames from `s` until `done` says enough; returns them as (type, flags,
/// stream, payload).
fn read_frames(
    s: &mut TcpStream,
    done: impl Fn(&[(u8, u8, u32, Vec<u8>)]) -> bool,
) -> Vec<(u8, u8, u32, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut frames = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    while !done(&frames) {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        while buf.len() >= 9 {
            let len = (buf[0] as usize) << 16 | (buf[1] as usize) << 8 | buf[2] as usize;
            if buf.len() < 9 + len {
                break;
            }
            let stream = u32::from_be_bytes([buf[5], buf[6], buf[7], buf[8]]) & 0x7fff_ffff;
            frames.push((buf[3], buf[4], stream, buf[9..9 + len].to_vec()));
            buf.drain(..9 + len);
        }
    }
    frames
}

/// The preface, empty SETTINGS, and `GET /` on stream 1 (HPACK: `:method GET`, `:scheme
/// http`, `:path /` from the static table, `:authority x` literal).
const H2_GET: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0\0\0\x06\x01\x05\0\0\0\x01\x82\x86\x84\x41\x01x";

#[test]
fn http2_by_prior_knowledge_reaches_the_handler_beside_http1() {
    for threads in [1, 2] {
        let mut router = Router::new();
        router.add("GET", "/", 0).unwrap();
        let server = Server::start(
            Config {
                io_threads: threads,
                io: backend(),
                ..Config::default()
            },
            router,
            Box::new(Ok200),
        )
        .unwrap();
        let mut h2 = TcpStream::connect(server.local_addr()).unwrap();
        h2.set_read_timeout(Some(PATIENCE)).unwrap();
        // The preface in two pieces: the protocol is chosen once it is whole.
        h2.write_all(&H2_GET[..10]).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        h2.write_all(&H2_GET[10..]).unwrap();
        let frames = read_frames(&mut h2, |f| {
            f.iter()
                .any(|(kind, flags, stream, _)| *kind == 0 && *stream == 1 && flags & 1 != 0)
        });
        let head = frames
            .iter()
            .find(|(kind, _, stream, _)| *kind == 1 && *stream == 1)
            .expect("a HEADERS answer on stream 1");
        assert_eq!(head.3[0], 0x88, ":status 200, indexed");
        let body: Vec<u8> = frames
            .iter()
            .filter(|(kind, _, stream, _)| *kind == 0 && *stream == 1)
            .flat_map(|f| f.3.clone())
            .collect();
        assert_eq!(body, b"ok");
        let mut h1 = TcpStream::connect(server.local_addr()).unwrap();
        h1.set_read_timeout(Some(PATIENCE)).unwrap();
        assert!(get(&mut h1, "/").ends_with("ok"));
        server.shutdown();
        // GOAWAY on the shutdown, then the close.
        let frames = read_frames(&mut h2, |_| false);
        assert!(
            frames.iter().any(|(kind, ..)| *kind == 7),
            "a GOAWAY before the close: {frames:?}"
        );
        drop((h2, h1));
        server.join();
    }
}

#[test]
fn with_http2_off_a_preface_is_a_bad_http1_request() {
    let mut router = Router::new();
    router.add("GET", "/", 0).unwrap();
    let config = Config {
        io_threads: 1,
        io: backend(),
        http2: crate::engine::config::Http2Options {
            enabled: false,
            ..Default::default()
        },
        ..Config::default()
    };
    let server = Server::start(config, router, Box::new(Ok200)).unwrap();
    let mut s = TcpStream::connect(server.local_addr()).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    s.write_all(H2_GET).unwrap();
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    assert!(
        got.starts_with(b"HTTP/1.1 505 "),
        "{}",
        String::from_utf8_lossy(&got)
    );
    drop(s);
    server.shutdown();
    server.join();
}

#[test]
fn handoff_spreads_connections_over_the_io_threads_in_turn_and_refuses_once_shut_down() {
    let mut router = Router::new();
    router.add("GET", "/", 0).unwrap();
    let server = Server::start(
        Config {
            io_threads: 3,
            io: backend(),
            balance: Balance::Handoff,
            ..Config::default()
        },
        router,
        Box::new(Ok200),
    )
    .unwrap();
    let addr = server.local_addr();
    // Held open, so that each is counted once by the thread it was handed to.
    let mut conns = Vec::new();
    for _ in 0..12 {
        let mut c = TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(PATIENCE)).unwrap();
        assert!(get(&mut c, "/").ends_with("ok"));
        conns.push(c);
    }
    let accepted: Vec<u64> = server
        .shared
        .stats
        .threads
        .iter()
        .map(|t| t.accepted.load(Ordering::Relaxed))
        .collect();
    assert_eq!(accepted, [4, 4, 4], "one in turn to each I/O thread");
    server.shutdown();
    let refused = TcpStream::connect(addr).map(|mut c| {
        // Accepted by the kernel before the listener went: closed without an answer.
        let mut buf = [0u8; 16];
        c.set_read_timeout(Some(PATIENCE)).unwrap();
        let _ = c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        c.read(&mut buf).unwrap_or(0)
    });
    assert!(matches!(refused, Err(_) | Ok(0)), "{refused:?}");
    drop(conns);
    server.join();
}
