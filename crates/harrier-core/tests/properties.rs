//! Properties of the HTTP/1.1 parsers (proptest): what a serialiser writes parses back to the
//! same request, a pipelined stream parses to the same requests however its bytes are split,
//! and arbitrary or mutated input never panics and gives the same answer in any split. The
//! last is also the bounded fuzz loop that runs without libFuzzer (see `fuzz/`).

use harrier_core::fuzzing::{decode_chunked, parse_head, Chunked, Framing, RequestStream};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Body {
    None,
    Length(Vec<u8>),
    /// The pieces each chunk carries, and a trailer field or not.
    Chunked(Vec<Vec<u8>>, bool),
}

#[derive(Debug, Clone)]
struct Req {
    method: String,
    target: String,
    http10: bool,
    headers: Vec<(String, String)>,
    body: Body,
}

impl Req {
    fn bytes(&self) -> Vec<u8> {
        let mut out = format!(
            "{} {} HTTP/1.{}\r\n",
            self.method,
            self.target,
            if self.http10 { 0 } else { 1 }
        )
        .into_bytes();
        for (n, v) in self.all_headers() {
            out.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        match &self.body {
            Body::None => {}
            Body::Length(b) => out.extend_from_slice(b),
            Body::Chunked(pieces, trailer) => {
                for (i, p) in pieces.iter().filter(|p| !p.is_empty()).enumerate() {
                    let ext = if i % 2 == 1 { ";ext=1" } else { "" };
                    out.extend_from_slice(format!("{:x}{ext}\r\n", p.len()).as_bytes());
                    out.extend_from_slice(p);
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(b"0\r\n");
                if *trailer {
                    out.extend_from_slice(b"X-Trailer: t\r\n");
                }
                out.extend_from_slice(b"\r\n");
            }
        }
        out
    }

    /// The fields as sent: Host first (always in HTTP/1.1), the generated ones, then framing.
    fn all_headers(&self) -> Vec<(String, String)> {
        let mut all = Vec::new();
        if !self.http10 {
            all.push(("Host".to_string(), "example.test".to_string()));
        }
        all.extend(self.headers.iter().cloned());
        match &self.body {
            Body::None => {}
            Body::Length(b) => all.push(("Content-Length".into(), b.len().to_string())),
            Body::Chunked(..) => all.push(("Transfer-Encoding".into(), "chunked".into())),
        }
        all
    }

    fn body_bytes(&self) -> Vec<u8> {
        match &self.body {
            Body::None => Vec::new(),
            Body::Length(b) => b.clone(),
            Body::Chunked(pieces, _) => pieces.concat(),
        }
    }
}

fn request() -> impl Strategy<Value = Req> {
    let method = prop_oneof![
        Just("GET".to_string()),
        Just("POST".to_string()),
        Just("PUT".to_string()),
        "[A-Z]{1,10}"
    ];
    let target = (
        "(/[a-zA-Z0-9._~-]{0,8}){1,4}",
        proptest::option::of("[a-z0-9=&%+]{0,16}"),
    )
        .prop_map(|(path, query)| match query {
            Some(q) => format!("{path}?{q}"),
            None => path,
        });
    let name = "[A-Za-z][A-Za-z0-9-]{0,15}".prop_filter(
        "the engine's framing fields are written by the serialiser",
        |n| {
            ![
                "host",
                "content-length",
                "transfer-encoding",
                "connection",
                "expect",
            ]
            .contains(&n.to_ascii_lowercase().as_str())
        },
    );
    let value = "[!-~]([ -~]{0,30}[!-~])?";
    let headers = proptest::collection::vec((name, value), 0..8);
    let bytes = proptest::collection::vec(any::<u8>(), 0..300);
    let body = prop_oneof![
        Just(Body::None),
        bytes
            .clone()
            .prop_filter("an empty Content-Length body is no body", |b| !b.is_empty())
            .prop_map(Body::Length),
        (proptest::collection::vec(bytes, 0..4), any::<bool>())
            .prop_map(|(p, t)| Body::Chunked(p, t)),
    ];
    (method, target, any::<bool>(), headers, body).prop_map(
        |(method, target, http10, headers, body)| {
            // HTTP/1.0 has no chunked coding: such a request is refused, so it is not generated.
            let body = match body {
                Body::Chunked(p, _) if http10 => Body::Length(p.concat()).non_empty(),
                b => b,
            };
            Req {
                method,
                target,
                http10,
                headers,
                body,
            }
        },
    )
}

impl Body {
    fn non_empty(self) -> Body {
        match self {
            Body::Length(b) if b.is_empty() => Body::None,
            b => b,
        }
    }
}

fn check_head(req: &Req, bytes: &[u8]) -> Result<(), TestCaseError> {
    let head = parse_head(bytes).map_err(|s| TestCaseError::fail(format!("refused with {s}")))?;
    let head = head.ok_or_else(|| TestCaseError::fail("partial"))?;
    prop_assert_eq!(&head.method, req.method.as_bytes());
    prop_assert_eq!(&head.target, req.target.as_bytes());
    prop_assert_eq!(
        head.path_len,
        req.target.find('?').unwrap_or(req.target.len())
    );
    prop_assert_eq!(head.http10, req.http10);
    let sent: Vec<(Vec<u8>, Vec<u8>)> = req
        .all_headers()
        .into_iter()
        .map(|(n, v)| (n.into_bytes(), v.into_bytes()))
        .collect();
    prop_assert_eq!(&head.headers, &sent);
    let framing = match &req.body {
        Body::None => Framing::None,
        Body::Length(b) => Framing::Length(b.len() as u64),
        Body::Chunked(..) => Framing::Chunked,
    };
    prop_assert_eq!(head.framing, framing);
    if let Body::Chunked(..) = req.body {
        match decode_chunked(&bytes[head.len..], &[]) {
            Chunked::Complete { body, left } => {
                prop_assert_eq!(body, req.body_bytes());
                prop_assert_eq!(left, 0);
            }
            other => return Err(TestCaseError::fail(format!("chunked body: {other:?}"))),
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn a_serialised_request_parses_back_the_same(req in request()) {
        let bytes = req.bytes();
        check_head(&req, &bytes)?;
        // every strict prefix of the head is partial, never another request
        let head_len = parse_head(&bytes).unwrap().unwrap().len;
        for cut in [0, 1, head_len / 2, head_len - 1] {
            prop_assert_eq!(parse_head(&bytes[..cut]), Ok(None));
        }
    }

    #[test]
    fn a_pipelined_stream_parses_the_same_in_any_split(reqs in proptest::collection::vec(request(), 1..6), cuts in proptest::collection::vec(any::<usize>(), 0..12)) {
        let stream: Vec<u8> = reqs.iter().flat_map(|r| r.bytes()).collect();
        let mut whole = RequestStream::new();
        whole.feed(&stream).map_err(|s| TestCaseError::fail(format!("refused with {s}")))?;
        prop_assert_eq!(whole.requests.len(), reqs.len());
        prop_assert!(!whole.in_body);
        for (got, sent) in whole.requests.iter().zip(&reqs) {
            prop_assert_eq!(&got.head.method, sent.method.as_bytes());
            prop_assert_eq!(&got.head.target, sent.target.as_bytes());
            prop_assert_eq!(&got.body, &sent.body_bytes());
        }
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (stream.len() + 1)).collect();
        cuts.sort_unstable();
        let mut split = RequestStream::new();
        let mut pos = 0;
        for cut in cuts.into_iter().chain([stream.len()]) {
            split.feed(&stream[pos..cut]).map_err(|s| TestCaseError::fail(format!("refused with {s} when split")))?;
            pos = cut;
        }
        prop_assert_eq!(&split.requests, &whole.requests);
    }

    /// The fuzz targets' checks, on arbitrary bytes and on valid requests with bytes changed.
    #[test]
    fn arbitrary_input_never_panics_and_splits_agree(
        req in request(),
        junk in proptest::collection::vec(any::<u8>(), 0..200),
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4),
        cuts in proptest::collection::vec(any::<usize>(), 0..6),
    ) {
        let mut mutated = req.bytes();
        for (at, byte) in flips {
            let len = mutated.len();
            mutated[at % len] = byte;
        }
        for input in [&junk[..], &mutated[..]] {
            head_invariants(input)?;
            let whole = decode_chunked(input, &[]);
            prop_assert_eq!(decode_chunked(input, &cuts.iter().map(|c| c % (input.len() + 1)).collect::<Vec<_>>()), whole);
        }
    }
}

/// A complete head is complete at the same length on its own, and no strict prefix of it is.
fn head_invariants(input: &[u8]) -> Result<(), TestCaseError> {
    match parse_head(input) {
        Ok(Some(head)) => {
            prop_assert!(head.len <= input.len());
            prop_assert_eq!(parse_head(&input[..head.len]), Ok(Some(head.clone())));
            prop_assert!(!matches!(parse_head(&input[..head.len - 1]), Ok(Some(_))));
        }
        Ok(None) => {}
        Err(status) => prop_assert!(
            [400, 414, 431, 501, 505].contains(&status),
            "status {}",
            status
        ),
    }
    Ok(())
}
