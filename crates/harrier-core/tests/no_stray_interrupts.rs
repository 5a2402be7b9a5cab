//! The engine must not interrupt threads of its process that are not its own. io_uring
//! interrupts (task work with TWA_SIGNAL) every thread that made or used a ring when the ring
//! is torn down, some time after it is dropped; a thread blocked in a call that does not
//! restart (a socket read with a timeout, `epoll_wait`) then fails with EINTR, and most
//! native code does not retry. So the engine makes its rings on the threads that serve them,
//! and its probe on a thread of its own.
//!
//! Its own file: a process of its own, in which this test's thread is the first to ask for
//! io_uring (the probe runs once per process).
#![cfg(target_os = "linux")]

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use harrier_core::engine::{Batch, Event, Handler, Replier, ReplyWriter};
use harrier_core::{Backend, Config, InlineServer, Router, Server};

struct Hello;

impl Handler for Hello {
    fn on_batch(&self, batch: &mut Batch, replier: &Replier) {
        let mut w = ReplyWriter::default();
        for event in batch.events() {
            if let Event::Request(req) = event {
                w.full(req.to, 200, &[], b"hello");
            }
        }
        replier.send(&w.buf);
    }
}

fn router() -> Router {
    let mut router = Router::new();
    router.add("GET", "/", 0).unwrap();
    router
}

fn config() -> Config {
    Config {
        io_threads: 2,
        io: Backend::Uring,
        ..Config::default()
    }
}

/// Keep-alive requests, each answer read before the next request.
fn load(addr: std::net::SocketAddr, requests: usize) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = [0u8; 1024];
    for _ in 0..requests {
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut got = Vec::new();
        while !got.ends_with(b"hello") {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "the server closed");
            got.extend_from_slice(&buf[..n]);
        }
    }
}

/// Blocks this thread in socket reads with a short timeout until `done` says the work is
/// over and `grace` more has passed (a torn-down ring interrupts its threads some time
/// after): each read must end by its timeout, never by an interruption.
fn watch(done: &mpsc::Receiver<()>, grace: Duration) -> usize {
    let (mut quiet, _peer) = UnixStream::pair().unwrap();
    quiet
        .set_read_timeout(Some(Duration::from_millis(10)))
        .unwrap();
    let mut buf = [0u8; 1];
    let mut reads = 0;
    let mut over: Option<Instant> = None;
    loop {
        if over.is_none() && done.try_recv().is_ok() {
            over = Some(Instant::now());
        }
        if over.is_some_and(|t| t.elapsed() >= grace) {
            return reads;
        }
        match quiet.read(&mut buf) {
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut => {
                reads += 1
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {
                panic!(
                    "a thread of the server's process was interrupted (EINTR) after {reads} reads"
                )
            }
            other => panic!("unexpected read result {other:?}"),
        }
    }
}

#[test]
fn threads_that_are_not_the_engines_are_never_interrupted() {
    // This thread starts the servers, as Node's JS thread does, then blocks while they serve
    // load, shut down and are dropped.
    for _round in 0..3 {
        let server = Server::start(config(), router(), Box::new(Hello)).unwrap();
        assert_eq!(server.backend(), "uring");
        let (done_tx, done_rx) = mpsc::channel();
        let loader = std::thread::spawn(move || {
            load(server.local_addr(), 200);
            server.shutdown();
            server.join();
            done_tx.send(()).unwrap();
        });
        let reads = watch(&done_rx, Duration::from_millis(300));
        loader.join().unwrap();
        assert!(reads > 0);
    }

    // The inline engine runs on the thread that drives it (its ring is that thread's); the
    // others, this one among them, are left alone.
    let (done_tx, done_rx) = mpsc::channel();
    let driver = std::thread::spawn(move || {
        let mut server = InlineServer::start(config(), router(), Box::new(Hello)).unwrap();
        assert_eq!(server.backend(), "uring");
        let addr = server.local_addr();
        let client = std::thread::spawn(move || load(addr, 200));
        while !client.is_finished() {
            server.step().unwrap();
            std::thread::yield_now();
        }
        client.join().unwrap();
        server.shutdown();
        while !server.finished() {
            server.step().unwrap();
            std::thread::yield_now();
        }
        drop(server);
        done_tx.send(()).unwrap();
    });
    let reads = watch(&done_rx, Duration::from_millis(300));
    driver.join().unwrap();
    assert!(reads > 0);
}
