//! Static files through the engine over loopback sockets, without Node: a mount answered
//! in the engine, a `FILE` reply op from a handler, a large file streamed behind pipelined
//! answers that keep their order while the client reads slowly; the mount's cache of
//! resolved files (hits make no resolution, changes are seen after a second).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use harrier_core::engine::{Batch, Event, Handler, Replier, ReplyWriter};
use harrier_core::{Config, Router, Server, StaticMount, StaticOptions};

/// The backend under test: `HARRIER_IO` (the test runner runs these tests once per backend).
fn backend() -> harrier_core::Backend {
    std::env::var("HARRIER_IO")
        .ok()
        .and_then(|v| harrier_core::Backend::parse(&v))
        .unwrap_or_default()
}

/// Route 1 answers `js`; route 2 answers with the file named by its path after `/send/`.
struct Files {
    dir: PathBuf,
}

impl Handler for Files {
    fn on_batch(&self, batch: &mut Batch, replier: &Replier) {
        let mut w = ReplyWriter::default();
        for event in batch.events() {
            let Event::Request(req) = event else { continue };
            if req.route == 2 {
                let target = String::from_utf8_lossy(req.target).into_owned();
                let path = self.dir.join(target.trim_start_matches("/send/"));
                w.file(
                    req.to,
                    &[(b":max-age", b"5"), (b"x-handler", b"yes")],
                    path.to_str().unwrap().as_bytes(),
                );
            } else {
                w.full(req.to, 200, &[], b"js");
            }
        }
        replier.send(&w.buf);
    }
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 251) as u8).collect()
}

/// Reads `n` responses with Content-Length bodies; returns (head, body) pairs.
fn read_responses(s: &mut TcpStream, n: usize) -> Vec<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut out = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    while out.len() < n {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .map(|v| v.trim().parse().unwrap())
                .unwrap_or(0);
            if buf.len() >= end + 4 + length {
                let body = buf[end + 4..end + 4 + length].to_vec();
                buf.drain(..end + 4 + length);
                out.push((head, body));
                continue;
            }
        }
        let got = s.read(&mut chunk).expect("response in time");
        assert!(got > 0, "closed after {} responses", out.len());
        buf.extend_from_slice(&chunk[..got]);
    }
    out
}

#[test]
fn static_files_in_the_engine() {
    let dir = std::env::temp_dir().join(format!("harrier-statics-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let big = pattern(3 * 1024 * 1024 + 17);
    std::fs::write(dir.join("big.bin"), &big).unwrap();
    std::fs::write(dir.join("small.txt"), b"small").unwrap();

    let mount = StaticMount::new(&dir, StaticOptions::default()).unwrap();
    for threads in [1, 2] {
        let config = Config {
            io_threads: threads,
            statics: vec![Some(Arc::new(mount_clone(&mount)))],
            io: backend(),
            ..Config::default()
        };
        let server =
            Server::start(config, router_clone(), Box::new(Files { dir: dir.clone() })).unwrap();
        let mut s = TcpStream::connect(server.local_addr()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let reqs: String = [
            "/static/big.bin",
            "/js",
            "/static/small.txt",
            "/send/big.bin",
            "/static/nope",
            "/send/small.txt",
            "/js",
        ]
        .iter()
        .map(|p| format!("GET {p} HTTP/1.1\r\nHost: x\r\n\r\n"))
        .collect();
        s.write_all(reqs.as_bytes()).unwrap();
        // The client reads nothing for a while: the engine must wait on the socket, not buffer.
        std::thread::sleep(Duration::from_millis(200));
        let rs = read_responses(&mut s, 7);
        let statuses: Vec<&str> = rs.iter().map(|(h, _)| &h[9..12]).collect();
        assert_eq!(statuses, ["200", "200", "200", "200", "404", "200", "200"]);
        assert!(rs[0].1 == big, "static big file intact");
        assert_eq!(rs[1].1, b"js");
        assert_eq!(rs[2].1, b"small");
        assert!(rs[3].1 == big, "sendFile big file intact");
        assert!(
            rs[3].0.contains("cache-control: public, max-age=5")
                && rs[3].0.contains("x-handler: yes"),
            "{}",
            rs[3].0
        );
        assert_eq!(rs[5].1, b"small");
        assert_eq!(rs[6].1, b"js");

        // A range out of the streamed file.
        s.write_all(
            b"GET /static/big.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=1000000-2999999\r\n\r\n",
        )
        .unwrap();
        let r = read_responses(&mut s, 1).pop().unwrap();
        assert!(r.0.starts_with("HTTP/1.1 206"), "{}", r.0);
        assert!(r.1 == big[1_000_000..3_000_000]);
        server.shutdown();
        server.join();
    }
    std::fs::remove_dir_all(&dir).unwrap();

    fn mount_clone(m: &StaticMount) -> StaticMount {
        StaticMount::new(m.root(), m.options.clone()).unwrap()
    }
    fn router_clone() -> Router {
        let mut router = Router::new();
        router.add("GET", "/static/*", 0).unwrap();
        router.add("GET", "/js", 1).unwrap();
        router.add("GET", "/send/*", 2).unwrap();
        router
    }
}

fn get(s: &mut TcpStream, path: &str) -> (String, Vec<u8>) {
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .unwrap();
    read_responses(s, 1).pop().unwrap()
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(": ")))
}

#[test]
fn cached_files_are_revalidated_after_a_second() {
    let dir = std::env::temp_dir().join(format!("harrier-statics-cache-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::write(dir.join("a.txt"), b"one").unwrap();
    std::fs::write(dir.join("sub/index.html"), b"<p>sub</p>").unwrap();
    let big = pattern(200 * 1024);
    std::fs::write(dir.join("big.bin"), &big).unwrap();
    let mount = Arc::new(StaticMount::new(&dir, StaticOptions::default()).unwrap());
    let mut router = Router::new();
    router.add("GET", "/static/*", 0).unwrap();
    let config = Config {
        io_threads: 1,
        statics: vec![Some(mount.clone())],
        io: backend(),
        ..Config::default()
    };
    let server = Server::start(config, router, Box::new(Files { dir: dir.clone() })).unwrap();
    let mut s = TcpStream::connect(server.local_addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();

    // The first request resolves the file; the next ones are answered from the cache.
    let (head, body) = get(&mut s, "/static/a.txt");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body, b"one");
    let etag = header(&head, "etag").unwrap().to_string();
    assert_eq!(mount.cache_stats().misses, 1);
    for _ in 0..5 {
        let (h, b) = get(&mut s, "/static/a.txt");
        assert_eq!(b, b"one");
        assert_eq!(header(&h, "etag"), Some(etag.as_str()));
    }
    let stats = mount.cache_stats();
    assert_eq!(
        stats.misses, 1,
        "a hit does not resolve (open, stat) the file again: {stats:?}"
    );
    assert!(
        stats.hits >= 5 && stats.entries == 1 && stats.bytes == 3,
        "{stats:?}"
    );

    // Changed on disk: served anew once the entry's second is over.
    std::fs::write(dir.join("a.txt"), b"two, longer").unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    let (head, body) = get(&mut s, "/static/a.txt");
    assert_eq!(body, b"two, longer");
    assert_ne!(header(&head, "etag"), Some(etag.as_str()));
    assert_eq!(header(&head, "content-length"), Some("11"));
    let stats = mount.cache_stats();
    assert!(stats.invalidated >= 1 && stats.misses == 2, "{stats:?}");

    // Unchanged after a second: kept (one stat, no resolution).
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(get(&mut s, "/static/a.txt").1, b"two, longer");
    let stats = mount.cache_stats();
    assert!(stats.revalidated >= 1 && stats.misses == 2, "{stats:?}");

    // A large file: cached as an open descriptor, streamed; replaced, the new one is served.
    for _ in 0..2 {
        let (h, b) = get(&mut s, "/static/big.bin");
        assert!(h.starts_with("HTTP/1.1 200"), "{h}");
        assert!(b == big);
    }
    assert_eq!(mount.cache_stats().files, 1);
    let big2 = pattern(150 * 1024).into_iter().rev().collect::<Vec<u8>>();
    std::fs::write(dir.join("big.tmp"), &big2).unwrap();
    std::fs::rename(dir.join("big.tmp"), dir.join("big.bin")).unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    assert!(get(&mut s, "/static/big.bin").1 == big2);

    // Deleted: 404 once the second is over (and a miss is not cached).
    std::fs::remove_file(dir.join("a.txt")).unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    let (head, _) = get(&mut s, "/static/a.txt");
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    let entries = mount.cache_stats().entries;
    assert!(get(&mut s, "/static/nope").0.starts_with("HTTP/1.1 404"));
    assert_eq!(mount.cache_stats().entries, entries);
    // Created: served at once (misses are not remembered).
    std::fs::write(dir.join("a.txt"), b"three").unwrap();
    assert_eq!(get(&mut s, "/static/a.txt").1, b"three");

    // A directory without its trailing slash is redirected to it, with the query.
    let (head, _) = get(&mut s, "/static/sub?x=1");
    assert!(head.starts_with("HTTP/1.1 301"), "{head}");
    assert_eq!(header(&head, "location"), Some("/static/sub/?x=1"));
    assert_eq!(get(&mut s, "/static/sub/").1, b"<p>sub</p>");
    // Also once the index is cached.
    assert_eq!(
        header(&get(&mut s, "/static/sub").0, "location"),
        Some("/static/sub/")
    );

    server.shutdown();
    server.join();
    std::fs::remove_dir_all(&dir).unwrap();
}
