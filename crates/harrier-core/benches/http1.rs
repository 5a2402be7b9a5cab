//! The HTTP/1.1 hot path without sockets: parsing request heads, decoding a chunked body,
//! serialising a response.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use harrier_core::fuzzing::hot::{batch_heads, decode_chunked, encode_response, HeadParser};
use std::hint::black_box;

const WRK_HEAD: &[u8] = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:3000\r\n\r\n";
const BROWSER_HEAD: &[u8] = b"GET /users/42?q=hello HTTP/1.1\r\nHost: example.com\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36\r\nAccept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\nAccept-Language: en-US,en;q=0.9\r\nAccept-Encoding: gzip, deflate, br\r\nConnection: keep-alive\r\nCookie: session=abcdef0123456789; theme=dark\r\nCache-Control: max-age=0\r\n\r\n";

fn heads(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse_head");
    for (name, head) in [("wrk", WRK_HEAD), ("browser", BROWSER_HEAD)] {
        group.throughput(Throughput::Bytes(head.len() as u64));
        let mut parser = HeadParser::default();
        group.bench_function(name, |b| b.iter(|| parser.parse(black_box(head)).unwrap()));
    }
    group.finish();
}

fn batch(c: &mut Criterion) {
    // What one read of 16 pipelined requests becomes for the handler: one byte buffer, one u32 array.
    let input = BROWSER_HEAD.repeat(16);
    let mut parser = HeadParser::default();
    let mut group = c.benchmark_group("batch");
    group.throughput(Throughput::Elements(16));
    group.bench_function("16_browser_heads", |b| {
        b.iter(|| batch_heads(&mut parser, black_box(&input)))
    });
    group.finish();
}

fn chunked(c: &mut Criterion) {
    let mut body = Vec::new();
    for _ in 0..16 {
        body.extend_from_slice(b"1000\r\n");
        body.extend(std::iter::repeat_n(b'x', 4096));
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"0\r\n\r\n");
    let mut group = c.benchmark_group("chunked");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("64KiB_in_4KiB_chunks", |b| {
        b.iter(|| assert_eq!(decode_chunked(black_box(&body)).unwrap(), 65536))
    });
    group.finish();
}

fn encode(c: &mut Criterion) {
    let date = b"Sun, 06 Nov 1994 08:49:37 GMT";
    c.bench_function("encode_response/hello", |b| {
        b.iter_batched_ref(
            || Vec::with_capacity(256),
            |out| {
                encode_response(
                    out,
                    200,
                    date,
                    &[(b"content-type", b"text/plain; charset=utf-8")],
                    black_box(b"Hello, World!"),
                )
            },
            BatchSize::SmallInput,
        )
    });
}

criterion_group!(benches, heads, batch, chunked, encode);
criterion_main!(benches);
