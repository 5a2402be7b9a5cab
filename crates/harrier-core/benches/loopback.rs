//! The engine with a Rust handler over loopback sockets, no Node: request parsing, routing,
//! the batch format, the reply format and response serialising, end to end. The handler
//! answers the suite's routes (`GET /`, `GET /json`, `GET /users/:id?q=`, `POST /echo`)
//! the way the napi bridge does, through `ReplyWriter` and `Replier`.
//!
//! cargo bench -p harrier-core --bench loopback            (add `-- --quick` for a short run)
//!
//! The client is a plain blocking socket on the same machine, so each figure includes the
//! client's syscalls and the loopback's cost; compare them with each other, over time.

use std::collections::HashMap;
use std::hint::black_box;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Mutex;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use harrier_core::engine::{Event, FLAG_HAS_BODY};
use harrier_core::{Batch, Config, Handler, Replier, ReplyWriter, RequestRef, Router, Server};

const HELLO: &[u8] = b"Hello, World!";
const TEXT: (&[u8], &[u8]) = (b"content-type", b"text/plain; charset=utf-8");
const JSON: (&[u8], &[u8]) = (b"content-type", b"application/json; charset=utf-8");

const ROUTE_HELLO: u32 = 0;
const ROUTE_JSON: u32 = 1;
const ROUTE_USER: u32 = 2;
const ROUTE_ECHO: u32 = 3;

/// Answers each request as the benchmark servers of `benchmark/servers/` do.
#[derive(Default)]
struct Routes {
    /// Requests whose body is still arriving, by (I/O thread, request id).
    bodies: Mutex<HashMap<(u8, u32), (RequestRef, Vec<u8>)>>,
}

impl Handler for Routes {
    fn on_batch(&self, batch: &mut Batch, replier: &Replier) {
        let mut w = ReplyWriter::default();
        for event in batch.events() {
            match event {
                Event::Request(req) => match req.route {
                    ROUTE_HELLO => w.full(req.to, 200, &[TEXT], HELLO),
                    ROUTE_JSON => w.full(req.to, 200, &[JSON], br#"{"message":"Hello, World!"}"#),
                    ROUTE_USER => {
                        let id = req.params().next().unwrap_or(b"");
                        let q = req.target[req.path_len..]
                            .strip_prefix(b"?q=")
                            .unwrap_or(b"");
                        let mut body = Vec::with_capacity(24 + id.len() + q.len());
                        body.extend_from_slice(br#"{"id":""#);
                        body.extend_from_slice(id);
                        body.extend_from_slice(br#"","q":""#);
                        body.extend_from_slice(q);
                        body.extend_from_slice(br#""}"#);
                        w.full(req.to, 200, &[JSON], &body);
                    }
                    _ if req.flags & FLAG_HAS_BODY != 0 => {
                        self.bodies
                            .lock()
                            .unwrap()
                            .insert((batch.thread, req.to.rid), (req.to, Vec::new()));
                    }
                    _ => w.full(
                        req.to,
                        200,
                        &[(b"content-type", b"application/octet-stream")],
                        b"",
                    ),
                },
                Event::Body { rid, data } => {
                    if let Some((_, body)) =
                        self.bodies.lock().unwrap().get_mut(&(batch.thread, rid))
                    {
                        body.extend_from_slice(data);
                    }
                }
                Event::End { rid } => {
                    if let Some((to, body)) =
                        self.bodies.lock().unwrap().remove(&(batch.thread, rid))
                    {
                        w.full(
                            to,
                            200,
                            &[(b"content-type", b"application/octet-stream")],
                            &body,
                        );
                    }
                }
                Event::Abort { rid } => {
                    self.bodies.lock().unwrap().remove(&(batch.thread, rid));
                }
            }
        }
        if !w.buf.is_empty() {
            replier.send(&w.buf);
        }
    }
}

fn start(io_threads: usize) -> Server {
    let mut router = Router::new();
    router.add("GET", "/", ROUTE_HELLO).unwrap();
    router.add("GET", "/json", ROUTE_JSON).unwrap();
    router.add("GET", "/users/:id", ROUTE_USER).unwrap();
    router.add("POST", "/echo", ROUTE_ECHO).unwrap();
    // Connections sit idle while criterion analyses between benches: keep them open.
    let config = Config {
        io_threads,
        keep_alive_timeout: Duration::ZERO,
        ..Config::default()
    };
    Server::start(config, router, Box::new(Routes::default())).unwrap()
}

/// A client connection that counts whole responses (head plus `content-length` body).
struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
    chunk: Box<[u8]>,
    /// Bytes of `buf` already known to belong to counted responses.
    done: usize,
    /// The last complete response's body (offset, length in `buf`), for checks.
    last_body: (usize, usize),
}

impl Client {
    fn connect(server: &Server) -> Client {
        let stream = TcpStream::connect(server.local_addr()).unwrap();
        stream.set_nodelay(true).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream
            .set_write_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        Client {
            stream,
            buf: Vec::with_capacity(1 << 16),
            chunk: vec![0; 1 << 16].into_boxed_slice(),
            done: 0,
            last_body: (0, 0),
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// Writes `requests` and reads `n` answers. Large writes go from a second thread while
    /// this one reads: the engine stops reading a connection whose answers pile up unread,
    /// and a client that only reads after writing everything would wait for ever.
    fn exchange(&mut self, requests: &[u8], n: usize) {
        if requests.len() <= 64 * 1024 {
            self.send(requests);
            self.receive(n);
            return;
        }
        let mut writer = self.stream.try_clone().unwrap();
        std::thread::scope(|scope| {
            scope.spawn(move || writer.write_all(requests).unwrap());
            self.receive(n);
        });
    }

    /// Reads until `n` more responses are complete.
    fn receive(&mut self, n: usize) {
        // Drop the responses counted last time (kept until now for `last_body`).
        self.buf.drain(..self.done);
        self.done = 0;
        let mut counted = 0;
        loop {
            while counted < n {
                match complete_response(&self.buf[self.done..]) {
                    Some((body_at, len)) => {
                        self.last_body = (self.done + body_at, len);
                        self.done += body_at + len;
                        counted += 1;
                    }
                    None => break,
                }
            }
            if counted == n {
                break;
            }
            let read = self
                .stream
                .read(&mut self.chunk)
                .expect("responses in time");
            assert!(read > 0, "the server closed the connection");
            self.buf.extend_from_slice(&self.chunk[..read]);
        }
    }

    fn last_body(&self) -> &[u8] {
        &self.buf[self.last_body.0..self.last_body.0 + self.last_body.1]
    }
}

/// If `buf` starts with a whole response: where its body starts and how long it is.
fn complete_response(buf: &[u8]) -> Option<(usize, usize)> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = &buf[..end];
    let mut len = 0;
    for line in head.split(|&c| c == b'\n') {
        if line.len() > 15 && line[..15].eq_ignore_ascii_case(b"content-length:") {
            let value = std::str::from_utf8(&line[15..]).ok()?.trim();
            len = value.parse().ok()?;
        }
    }
    (buf.len() >= end + 4 + len).then_some((end + 4, len))
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").into_bytes()
}

/// A head as browsers send it: a dozen headers, about 600 bytes.
fn browser_get(path: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\n\
         Host: 127.0.0.1:3000\r\n\
         User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n\
         Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n\
         Accept-Language: en-US,en;q=0.5\r\n\
         Accept-Encoding: gzip, deflate, br, zstd\r\n\
         Connection: keep-alive\r\n\
         Cookie: session=4f9c2a7e1b3d5f60a8c9e0d1b2a3f4e5; theme=dark; consent=yes\r\n\
         Upgrade-Insecure-Requests: 1\r\n\
         Sec-Fetch-Dest: document\r\n\
         Sec-Fetch-Mode: navigate\r\n\
         Sec-Fetch-Site: none\r\n\
         Sec-Fetch-User: ?1\r\n\
         Priority: u=0, i\r\n\r\n"
    )
    .into_bytes()
}

fn post(path: &str, size: usize) -> Vec<u8> {
    let mut out = format!("POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\nContent-Length: {size}\r\n\r\n").into_bytes();
    out.extend((0..size).map(|i| b'a' + (i % 26) as u8));
    out
}

fn repeat(request: &[u8], n: usize) -> Vec<u8> {
    request.repeat(n)
}

/// N requests written at once on one connection, then read until N answers are in.
fn pipelined(c: &mut Criterion) {
    let server = start(1);
    let mut client = Client::connect(&server);
    client.send(&get("/"));
    client.receive(1);
    assert_eq!(client.last_body(), HELLO);

    let mut group = c.benchmark_group("loopback/pipelined-hello");
    for depth in [1usize, 16, 64, 256] {
        let requests = repeat(&get("/"), depth);
        group.throughput(Throughput::Elements(depth as u64));
        group.bench_with_input(BenchmarkId::from_parameter(depth), &depth, |b, &depth| {
            b.iter(|| client.exchange(&requests, depth))
        });
    }
    group.finish();
    drop(client);
    server.shutdown();
    server.join();
}

/// One request on each of K connections, written before any answer is read: the engine
/// sees them in one or a few polls and hands them over in few batches.
fn connections(c: &mut Criterion) {
    let server = start(1);
    let mut group = c.benchmark_group("loopback/one-request-per-connection");
    let request = get("/");
    for k in [1usize, 4, 16, 64] {
        let mut clients: Vec<Client> = (0..k).map(|_| Client::connect(&server)).collect();
        for client in &mut clients {
            client.send(&request);
            client.receive(1);
        }
        group.throughput(Throughput::Elements(k as u64));
        group.bench_with_input(BenchmarkId::from_parameter(k), &k, |b, _| {
            b.iter(|| {
                for client in clients.iter_mut() {
                    client.send(&request);
                }
                for client in clients.iter_mut() {
                    client.receive(1);
                }
            })
        });
    }
    group.finish();
    server.shutdown();
    server.join();
}

/// The suite's routes, 16 pipelined per write: what each costs beyond plain hello.
fn routes(c: &mut Criterion) {
    const DEPTH: usize = 16;
    let server = start(1);
    let mut client = Client::connect(&server);
    let cases: Vec<(&str, Vec<u8>, Option<&[u8]>)> = vec![
        ("hello", get("/"), Some(HELLO)),
        ("hello-browser-headers", browser_get("/"), Some(HELLO)),
        (
            "json",
            get("/json"),
            Some(br#"{"message":"Hello, World!"}"#),
        ),
        (
            "params-query",
            get("/users/42?q=hello"),
            Some(br#"{"id":"42","q":"hello"}"#),
        ),
        ("not-found-no-handler", get("/nope"), None),
        ("echo-1k", post("/echo", 1024), None),
        ("echo-64k", post("/echo", 65536), None),
    ];
    let mut group = c.benchmark_group("loopback/routes-pipelined-16");
    for (name, request, expected) in &cases {
        // Check the answer once, so that a broken route cannot pass for a fast one.
        client.exchange(request, 1);
        match expected {
            Some(body) => assert_eq!(client.last_body(), *body, "{name}"),
            None if name.starts_with("echo") => {
                let sent = &request[request.len() - client.last_body().len()..];
                assert!(
                    client.last_body().len() >= 1024 && client.last_body() == sent,
                    "{name}"
                );
            }
            None => {}
        }
        let requests = repeat(request, DEPTH);
        group.throughput(Throughput::Elements(DEPTH as u64));
        group.bench_with_input(
            BenchmarkId::from_parameter(name),
            &requests,
            |b, requests| b.iter(|| client.exchange(requests, DEPTH)),
        );
    }
    group.finish();
    drop(client);
    server.shutdown();
    server.join();
}

/// The handler's side of the reply format on its own: 16 hello replies into one buffer.
fn reply_writer(c: &mut Criterion) {
    let mut group = c.benchmark_group("reply-writer");
    group.throughput(Throughput::Elements(16));
    group.bench_function("16-hello-replies", |b| {
        let mut w = ReplyWriter::default();
        b.iter(|| {
            w.buf.clear();
            for rid in 0..16 {
                w.full(
                    RequestRef {
                        thread: 0,
                        slot: 7,
                        rid,
                    },
                    200,
                    &[TEXT],
                    HELLO,
                );
            }
            black_box(w.buf.len())
        })
    });
    group.finish();
}

criterion_group!(benches, pipelined, connections, routes, reply_writer);
criterion_main!(benches);
