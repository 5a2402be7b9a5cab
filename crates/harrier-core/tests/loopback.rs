//! The engine driven by a Rust handler over real loopback sockets: what the napi bridge does,
//! without Node.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Mutex;
use std::time::Duration;

use harrier_core::engine::{Batch, Event, Handler, Replier, ReplyWriter, RequestRef};
use harrier_core::{Config, InlineServer, Router, Server};

/// How long a read waits for what must come before the test gives up: only a failing test
/// waits this long, so it is generous (on a loaded machine a prompt answer can take seconds).
const PATIENCE: Duration = Duration::from_secs(20);

/// The backend under test: `HARRIER_IO` (the test runner runs these tests once per backend).
fn backend() -> harrier_core::Backend {
    std::env::var("HARRIER_IO")
        .ok()
        .and_then(|v| harrier_core::Backend::parse(&v))
        .unwrap_or_default()
}

/// Answers every request with its route id and path; route 1 holds its answer until the
/// next batch, so that a later request is answered first.
struct Echo {
    held: Mutex<Vec<(RequestRef, String)>>,
}

impl Handler for Echo {
    fn on_batch(&self, batch: &mut Batch, replier: &Replier) {
        let mut w = ReplyWriter::default();
        let mut held = self.held.lock().unwrap();
        for event in batch.events() {
            let Event::Request(req) = event else { continue };
            let target = String::from_utf8_lossy(req.target).into_owned();
            if req.route == 1 {
                held.push((req.to, target));
                continue;
            }
            w.full(
                req.to,
                200,
                &[(b"content-type", b"text/plain")],
                format!("{} {target}", req.route).as_bytes(),
            );
        }
        // A held answer goes out after the ones of its batch, in reverse of request order.
        for (to, target) in held.drain(..).rev() {
            w.full(to, 200, &[], format!("1 {target}").as_bytes());
        }
        replier.send(&w.buf);
    }
}

fn router() -> Router {
    let mut router = Router::new();
    router.add("GET", "/", 0).unwrap();
    router.add("GET", "/slow/:n", 1).unwrap();
    router.add("POST", "/", 2).unwrap();
    router
}

fn start() -> Server {
    let config = Config {
        io_threads: 2,
        io: backend(),
        ..Config::default()
    };
    Server::start(
        config,
        router(),
        Box::new(Echo {
            held: Mutex::new(Vec::new()),
        }),
    )
    .unwrap()
}

fn exchange(server: &Server, request: &[u8], until: impl Fn(&str) -> bool) -> String {
    exchange_with(server.local_addr(), request, until)
}

fn exchange_with(
    addr: std::net::SocketAddr,
    request: &[u8],
    until: impl Fn(&str) -> bool,
) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    s.write_all(request).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !until(&String::from_utf8_lossy(&got)) {
        let n = s.read(&mut buf).expect("response in time");
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    String::from_utf8(got).unwrap()
}

#[test]
fn answers_pipelined_requests_in_order() {
    let server = start();
    let reqs = b"GET /slow/a HTTP/1.1\r\nHost: x\r\n\r\nGET /?q HTTP/1.1\r\nHost: x\r\n\r\nGET /missing HTTP/1.1\r\nHost: x\r\n\r\n";
    let got = exchange(&server, reqs, |s| {
        s.matches("HTTP/1.1").count() == 3 && s.ends_with("Not Found")
    });
    let bodies: Vec<&str> = got.split("HTTP/1.1 ").skip(1).collect();
    assert!(
        bodies[0].starts_with("200 OK") && bodies[0].ends_with("1 /slow/a"),
        "{got}"
    );
    assert!(bodies[1].ends_with("0 /?q"), "{got}");
    assert!(bodies[2].starts_with("404 Not Found"), "{got}");
    server.shutdown();
    server.join();
}

#[test]
fn refuses_what_it_cannot_route_or_parse() {
    let server = start();
    let got = exchange(&server, b"DELETE / HTTP/1.1\r\nHost: x\r\n\r\n", |s| {
        s.ends_with("Allowed")
    });
    assert!(
        got.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"),
        "{got}"
    );
    assert!(got.contains("\r\nallow: GET, HEAD, POST\r\n"), "{got}");
    let got = exchange(
        &server,
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
        |_| false,
    );
    assert!(
        got.starts_with("HTTP/1.1 400 Bad Request\r\n") && got.contains("connection: close"),
        "{got}"
    );
    server.shutdown();
    server.join();
}

#[test]
fn shutdown_closes_idle_connections() {
    // One I/O thread, so one listener: it accepts in order, and an answer on a connection
    // made after the idle one shows that the idle one was accepted too. (A fixed pause was
    // not always enough on a loaded machine: the shutdown then closed the listener with the
    // idle connection still in its backlog, and the kernel reset it.)
    let config = Config {
        io_threads: 1,
        io: backend(),
        ..Config::default()
    };
    let server = Server::start(
        config,
        router(),
        Box::new(Echo {
            held: Mutex::new(Vec::new()),
        }),
    )
    .unwrap();
    let mut idle = TcpStream::connect(server.local_addr()).unwrap();
    idle.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut after = TcpStream::connect(server.local_addr()).unwrap();
    after.set_read_timeout(Some(PATIENCE)).unwrap();
    after
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !got.ends_with(b"0 /") {
        let n = after.read(&mut buf).expect("an answer in time");
        assert!(
            n > 0,
            "closed before answering: {:?}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
    server.shutdown();
    assert_eq!(
        idle.read(&mut buf).unwrap(),
        0,
        "the idle connection is closed"
    );
    assert_eq!(
        after.read(&mut buf).unwrap(),
        0,
        "and so is the one idle after an answer"
    );
    server.join();
}

#[test]
fn inline_server_is_driven_by_its_owner() {
    let mut server = InlineServer::start(
        Config {
            io: backend(),
            ..Config::default()
        },
        router(),
        Box::new(Echo {
            held: Mutex::new(Vec::new()),
        }),
    )
    .unwrap();
    let addr = server.local_addr();
    let client = std::thread::spawn(move || {
        exchange_with(
            addr,
            b"GET /slow/a HTTP/1.1\r\nHost: x\r\n\r\nGET /?b HTTP/1.1\r\nHost: x\r\n\r\n",
            |s| s.ends_with("0 /?b"),
        )
    });
    // Nothing happens unless the owner turns the engine: here, a plain loop stands in for libuv.
    while !client.is_finished() {
        server.step().unwrap();
        std::thread::sleep(Duration::from_millis(1));
    }
    let got = client.join().unwrap();
    assert!(
        got.find("1 /slow/a").unwrap() < got.find("0 /?b").unwrap(),
        "{got}"
    );
    server.shutdown();
    // No connection is left, so the drain is over within a few turns (a completion backend
    // hears its sockets and listener close one turn later): turns, not time, but on a loaded
    // machine the kernel can take a while to complete the closes, so allow a deadline.
    let deadline = std::time::Instant::now() + PATIENCE;
    while !server.finished() && std::time::Instant::now() < deadline {
        server.step().unwrap();
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(server.finished(), "the drain is over");
}

/// Reads until the server closes (or PATIENCE passes).
fn read_to_close(s: &mut TcpStream) -> String {
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    String::from_utf8_lossy(&got).into_owned()
}

#[test]
fn protection_without_node() {
    let config = Config {
        io_threads: 1,
        header_timeout: Duration::from_millis(200),
        keep_alive_timeout: Duration::from_millis(1500),
        max_body_size: 10,
        max_url_length: 32,
        io: backend(),
        ..Config::default()
    };
    let server = Server::start(
        config,
        router(),
        Box::new(Echo {
            held: Mutex::new(Vec::new()),
        }),
    )
    .unwrap();
    let addr = server.local_addr();

    // a head that never ends: 408 after the header timeout, then the close
    let mut slow = TcpStream::connect(addr).unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: 1")
        .unwrap();
    let got = read_to_close(&mut slow);
    assert!(
        got.starts_with("HTTP/1.1 408 Request Timeout\r\n") && got.contains("connection: close"),
        "{got}"
    );

    // a declared body over the limit: 413 without waiting for it
    let mut big = TcpStream::connect(addr).unwrap();
    big.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n")
        .unwrap();
    assert!(read_to_close(&mut big).starts_with("HTTP/1.1 413 Content Too Large\r\n"));

    // a chunked body crossing it
    let mut chunked = TcpStream::connect(addr).unwrap();
    chunked.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nabcdef\r\n6\r\nghijkl\r\n").unwrap();
    assert!(read_to_close(&mut chunked).starts_with("HTTP/1.1 413 Content Too Large\r\n"));

    // a long target
    let long = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(40));
    let mut uri = TcpStream::connect(addr).unwrap();
    uri.write_all(long.as_bytes()).unwrap();
    assert!(read_to_close(&mut uri).starts_with("HTTP/1.1 414 URI Too Long\r\n"));

    // keep-alive is announced, and an idle connection is closed after it
    let got = exchange_with(addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", |s| {
        s.ends_with("0 /")
    });
    assert!(got.contains("\r\nkeep-alive: timeout=1\r\n"), "{got}");
    let mut idle = TcpStream::connect(addr).unwrap();
    let started = std::time::Instant::now();
    assert_eq!(read_to_close(&mut idle), "");
    assert!(
        started.elapsed() >= Duration::from_millis(1400),
        "closed after {:?}",
        started.elapsed()
    );

    server.shutdown();
    server.join();
}

#[test]
fn deep_pipelines_do_not_wait_for_a_timer() {
    // Past the per-connection cap on requests in flight (128), reading pauses; it must resume
    // as soon as answers free room, not on the next 100 ms sweep. 40 times the cap: were it
    // the sweep, the 39 pauses would take about 3.9 s; as it is, this takes some 30 ms on a
    // quiet machine, and 2 s leaves a loaded one 60 times that. (1,000 requests against
    // 400 ms left a loaded machine 0.4 s of slack; this leaves it 2.
    let server = start();
    let n = 128 * 40;
    let request = b"GET /?deep HTTP/1.1\r\nHost: x\r\n\r\n".repeat(n);
    let started = std::time::Instant::now();
    // (counting only when a read ends with an answer: counting all along costs more than the engine)
    let got = exchange(&server, &request, |s| {
        s.ends_with("0 /?deep") && s.matches("0 /?deep").count() == n
    });
    let took = started.elapsed();
    assert_eq!(got.matches("HTTP/1.1 200 OK").count(), n);
    assert!(
        took < Duration::from_secs(2),
        "{n} pipelined requests took {took:?}"
    );
    server.shutdown();
    server.join();
}

#[test]
fn the_body_of_a_closing_request_is_still_read() {
    let server = start();
    let got = exchange(
        &server,
        b"POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 3\r\n\r\nabc",
        |_| false,
    );
    assert!(
        got.starts_with("HTTP/1.1 200 OK\r\n")
            && got.contains("connection: close")
            && got.ends_with("2 /"),
        "{got}"
    );
    server.shutdown();
    server.join();
}
