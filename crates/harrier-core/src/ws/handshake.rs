//! The opening handshake (RFC 6455 section 4.2): checking a client's upgrade request, choosing
//! a subprotocol and negotiating permessage-deflate (RFC 7692 section 7), and writing the 101.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use sha1::{Digest, Sha1};

use super::deflate::{DeflateConfig, DeflateParams};

/// Appended to the client's key before hashing (section 1.3).
const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Why an upgrade request was not accepted; the engine answers with `status()` and
/// `extra_headers()` and keeps speaking HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// No `Upgrade: websocket` with `Connection: upgrade`, or no version at all.
    NotUpgrade,
    /// A `Sec-WebSocket-Version` other than 13.
    Version,
    /// `Sec-WebSocket-Key` missing, repeated, or not 16 bytes in base64.
    BadKey,
    /// The upgrade request carries a body, which would be read as frames.
    HasBody,
    /// WebSocket needs HTTP/1.1 (section 4.1).
    Http10,
}

impl Refusal {
    pub fn status(&self) -> u16 {
        match self {
            Refusal::NotUpgrade | Refusal::Version => 426,
            Refusal::BadKey | Refusal::HasBody | Refusal::Http10 => 400,
        }
    }

    /// Headers the refusal must carry: 426 names the protocol to upgrade to (RFC 9110 section
    /// 15.5.22), and a version mismatch the version we speak (RFC 6455 section 4.4).
    pub fn extra_headers(&self) -> &'static [(&'static [u8], &'static [u8])] {
        match self {
            Refusal::NotUpgrade => &[(b"upgrade", b"websocket"), (b"connection", b"upgrade")],
            Refusal::Version => &[(b"sec-websocket-version", b"13")],
            _ => &[],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Accepted {
    /// base64(sha1(key + GUID)), the value of `Sec-WebSocket-Accept`.
    pub accept: [u8; 28],
    /// Index of the chosen subprotocol in the server's list.
    pub protocol: Option<usize>,
    pub deflate: Option<DeflateParams>,
}

/// Checks an upgrade request. `headers` are the request head's (name in any case, value)
/// pairs; `has_body` is Content-Length > 0 or chunked; `protocols` the server's subprotocols
/// in order of preference; `deflate` is `None` when the server does not compress.
pub(crate) fn check<'a>(
    headers: impl Iterator<Item = (&'a [u8], &'a [u8])> + Clone,
    http10: bool,
    has_body: bool,
    protocols: &[String],
    deflate: Option<&DeflateConfig>,
) -> Result<Accepted, Refusal> {
    let values = |name: &'static [u8]| {
        headers
            .clone()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    };
    let has_token = |name: &'static [u8], token: &[u8]| {
        values(name)
            .flat_map(list)
            .any(|t| t.eq_ignore_ascii_case(token))
    };

    if !has_token(b"upgrade", b"websocket") || !has_token(b"connection", b"upgrade") {
        return Err(Refusal::NotUpgrade);
    }
    if http10 {
        return Err(Refusal::Http10);
    }
    let mut versions = values(b"sec-websocket-version");
    match (versions.next(), versions.next()) {
        (None, _) => return Err(Refusal::NotUpgrade),
        (Some(v), None) if trim(v) == b"13" => {}
        _ => return Err(Refusal::Version),
    }
    let mut keys = values(b"sec-websocket-key");
    let key = match (keys.next(), keys.next()) {
        (Some(k), None) => trim(k),
        _ => return Err(Refusal::BadKey),
    };
    // 16 bytes are 24 base64 characters with padding; anything else cannot be right
    let mut decoded = [0u8; 18];
    if key.len() != 24 || STANDARD.decode_slice(key, &mut decoded) != Ok(16) {
        return Err(Refusal::BadKey);
    }
    if has_body {
        return Err(Refusal::HasBody);
    }

    let protocol = protocols.iter().position(|p| {
        values(b"sec-websocket-protocol")
            .flat_map(list)
            .any(|t| t == p.as_bytes())
    });
    let deflate = deflate.and_then(|config| {
        values(b"sec-websocket-extensions")
            .flat_map(|v| Split::new(v, b','))
            .find_map(|offer| negotiate(offer, config))
    });
    Ok(Accepted {
        accept: accept_key(key),
        protocol,
        deflate,
    })
}

/// Appends the whole 101 response head.
pub(crate) fn write_101(out: &mut Vec<u8>, accepted: &Accepted, protocols: &[String]) {
    out.extend_from_slice(b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-accept: ");
    out.extend_from_slice(&accepted.accept);
    out.extend_from_slice(b"\r\n");
    if let Some(p) = accepted.protocol.and_then(|i| protocols.get(i)) {
        out.extend_from_slice(b"sec-websocket-protocol: ");
        out.extend_from_slice(p.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if let Some(d) = &accepted.deflate {
        out.extend_from_slice(b"sec-websocket-extensions: ");
        d.write_response_value(out);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

pub(crate) fn accept_key(key: &[u8]) -> [u8; 28] {
    let mut sha = Sha1::new();
    sha.update(key);
    sha.update(GUID);
    let digest = sha.finalize();
    let mut accept = [0u8; 28];
    // 20 bytes always encode to 28 characters
    STANDARD
        .encode_slice(digest.as_slice(), &mut accept)
        .expect("28 bytes hold base64 of 20");
    accept
}

fn trim(v: &[u8]) -> &[u8] {
    v.trim_ascii()
}

/// The non-empty elements of a comma-separated header list (RFC 9110 section 5.6.1).
fn list(v: &[u8]) -> impl Iterator<Item = &[u8]> {
    v.split(|&b| b == b',').map(trim).filter(|t| !t.is_empty())
}

/// Splits at `sep` outside quoted strings, trimming each piece; empty pieces are skipped.
struct Split<'a> {
    rest: &'a [u8],
    sep: u8,
}

impl<'a> Split<'a> {
    fn new(v: &'a [u8], sep: u8) -> Split<'a> {
        Split { rest: v, sep }
    }
}

impl<'a> Iterator for Split<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        while !self.rest.is_empty() {
            let (mut quoted, mut escaped) = (false, false);
            let mut end = self.rest.len();
            for (i, &b) in self.rest.iter().enumerate() {
                if escaped {
                    escaped = false;
                } else if quoted && b == b'\\' {
                    escaped = true;
                } else if b == b'"' {
                    quoted = !quoted;
                } else if b == self.sep && !quoted {
                    end = i;
                    break;
                }
            }
            let piece = trim(&self.rest[..end]);
            self.rest = self.rest.get(end + 1..).unwrap_or(&[]);
            if !piece.is_empty() {
                return Some(piece);
            }
        }
        None
    }
}

/// A parameter's name and value, with a quoted value unquoted; `Err` if malformed.
fn param(p: &[u8]) -> Result<(&[u8], Option<&[u8]>), ()> {
    let Some(eq) = p.iter().position(|&b| b == b'=') else {
        return Ok((p, None));
    };
    let (name, mut value) = (trim(&p[..eq]), trim(&p[eq + 1..]));
    if let [b'"', inner @ .., b'"'] = value {
        // escapes cannot occur in the values permessage-deflate knows, so refuse them
        if inner.contains(&b'\\') || inner.contains(&b'"') {
            return Err(());
        }
        value = inner;
    } else if value.contains(&b'"') {
        return Err(());
    }
    Ok((name, Some(value)))
}

/// A window size, 8 to 15 written without leading zeros (RFC 7692 section 7.1.2).
fn window_bits(v: &[u8]) -> Option<u8> {
    match v {
        [d @ b'8'..=b'9'] => Some(d - b'0'),
        [b'1', d @ b'0'..=b'5'] => Some(10 + d - b'0'),
        _ => None,
    }
}

/// Accepts one offer if it is permessage-deflate with parameters that are valid, known and
/// not repeated; else `None`, so that the next offer is tried.
fn negotiate(offer: &[u8], config: &DeflateConfig) -> Option<DeflateParams> {
    let mut parts = Split::new(offer, b';');
    if !parts.next()?.eq_ignore_ascii_case(b"permessage-deflate") {
        return None;
    }
    let (mut server_no_takeover, mut client_no_takeover) = (false, false);
    let mut server_bits: Option<u8> = None;
    // Some(None): offered without a value, which only says the client could take one
    let mut client_bits: Option<Option<u8>> = None;
    for part in parts {
        let (name, value) = param(part).ok()?;
        if name.eq_ignore_ascii_case(b"server_no_context_takeover") {
            if value.is_some() || server_no_takeover {
                return None;
            }
            server_no_takeover = true;
        } else if name.eq_ignore_ascii_case(b"client_no_context_takeover") {
            if value.is_some() || client_no_takeover {
                return None;
            }
            client_no_takeover = true;
        } else if name.eq_ignore_ascii_case(b"server_max_window_bits") {
            if server_bits.is_some() {
                return None;
            }
            server_bits = Some(window_bits(value?)?);
        } else if name.eq_ignore_ascii_case(b"client_max_window_bits") {
            if client_bits.is_some() {
                return None;
            }
            client_bits = Some(match value {
                Some(v) => Some(window_bits(v)?),
                None => None,
            });
        } else {
            return None;
        }
    }
    let server_limit = config.server_max_window_bits.clamp(8, 15);
    // the response may only carry server_max_window_bits if the offer did
    let server_max_window_bits = server_bits.map_or(15, |b| b.min(server_limit));
    Some(DeflateParams {
        // a server may always add this one (section 7.1.1.1)
        server_no_context_takeover: server_no_takeover || config.server_no_context_takeover,
        client_no_context_takeover: client_no_takeover && config.client_no_context_takeover_allowed,
        server_max_window_bits,
        // echoed when the client named a limit; without a value zlib-rs would gain nothing
        // from a smaller one, as it allocates a 32 KiB inflate window regardless
        client_max_window_bits: client_bits.flatten().unwrap_or(15),
        deflate_window_bits: server_max_window_bits.min(server_limit).max(9),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"dGhlIHNhbXBsZSBub25jZQ==";

    fn request<'a>(extra: &'a [(&'a [u8], &'a [u8])]) -> Vec<(&'a [u8], &'a [u8])> {
        let mut h: Vec<(&[u8], &[u8])> = vec![
            (b"host", b"example.com"),
            (b"upgrade", b"websocket"),
            (b"connection", b"Upgrade"),
            (b"sec-websocket-key", KEY),
            (b"sec-websocket-version", b"13"),
        ];
        // each of `extra` replaces the header of its name; an empty value removes it
        for (name, value) in extra {
            h.retain(|(n, _)| n != name);
            if !value.is_empty() {
                h.push((name, value));
            }
        }
        h
    }

    fn run(
        h: &[(&[u8], &[u8])],
        protocols: &[String],
        deflate: Option<&DeflateConfig>,
    ) -> Result<Accepted, Refusal> {
        check(h.iter().copied(), false, false, protocols, deflate)
    }

    fn negotiated(extensions: &[&str]) -> Option<DeflateParams> {
        negotiated_with(extensions, &DeflateConfig::default())
    }

    fn negotiated_with(extensions: &[&str], config: &DeflateConfig) -> Option<DeflateParams> {
        let mut h = request(&[]);
        for e in extensions {
            h.push((b"sec-websocket-extensions", e.as_bytes()));
        }
        run(&h, &[], Some(config)).unwrap().deflate
    }

    #[test]
    fn rfc_example_key() {
        assert_eq!(&accept_key(KEY), b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        let a = run(&request(&[]), &[], None).unwrap();
        assert_eq!(&a.accept, b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert_eq!((a.protocol, a.deflate), (None, None));
    }

    #[test]
    fn header_names_in_any_case() {
        let h: Vec<(&[u8], &[u8])> = vec![
            (b"Upgrade", b"websocket"),
            (b"CONNECTION", b"Upgrade"),
            (b"Sec-WebSocket-Key", KEY),
            (b"Sec-WebSocket-Version", b"13"),
        ];
        assert_eq!(
            &run(&h, &[], None).unwrap().accept,
            b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn upgrade_and_connection_tokens() {
        assert!(run(&request(&[(b"upgrade", b"WebSocket")]), &[], None).is_ok());
        assert!(run(
            &request(&[(b"connection", b"keep-alive, UPGRADE")]),
            &[],
            None
        )
        .is_ok());
        assert!(run(&request(&[(b"upgrade", b"h2c, websocket")]), &[], None).is_ok());
        assert_eq!(
            run(&request(&[(b"upgrade", b"websockets")]), &[], None),
            Err(Refusal::NotUpgrade)
        );
        assert_eq!(
            run(&request(&[(b"connection", b"keep-alive")]), &[], None),
            Err(Refusal::NotUpgrade)
        );
        assert_eq!(
            run(&request(&[(b"upgrade", b"")]), &[], None),
            Err(Refusal::NotUpgrade)
        );
        // several Connection headers are one list
        let mut h = request(&[(b"connection", b"keep-alive")]);
        h.push((b"connection", b"upgrade"));
        assert!(run(&h, &[], None).is_ok());
    }

    #[test]
    fn version() {
        assert_eq!(
            run(&request(&[(b"sec-websocket-version", b"8")]), &[], None),
            Err(Refusal::Version)
        );
        assert_eq!(
            run(&request(&[(b"sec-websocket-version", b"13, 8")]), &[], None),
            Err(Refusal::Version)
        );
        assert_eq!(
            run(&request(&[(b"sec-websocket-version", b"")]), &[], None),
            Err(Refusal::NotUpgrade)
        );
        assert!(run(&request(&[(b"sec-websocket-version", b" 13 ")]), &[], None).is_ok());
        assert_eq!(Refusal::Version.status(), 426);
        assert_eq!(
            Refusal::Version.extra_headers(),
            &[(&b"sec-websocket-version"[..], &b"13"[..])]
        );
        assert_eq!(Refusal::NotUpgrade.status(), 426);
        assert_eq!(
            Refusal::NotUpgrade.extra_headers()[0],
            (&b"upgrade"[..], &b"websocket"[..])
        );
    }

    #[test]
    fn bad_keys() {
        for key in [
            &b"dGhlIHNhbXBsZSBub25jZQ"[..],
            b"dGhlIHNhbXBsZSBub25jZQ=",
            b"dGhlIHNhbXBsZSBub25jZQ==dG==",
            b"!!!!!!!!!!!!!!!!!!!!!!==",
            b"dGhlIHNhbXBsZSBub25jZXg=",
        ] {
            assert_eq!(
                run(&request(&[(b"sec-websocket-key", key)]), &[], None),
                Err(Refusal::BadKey),
                "{}",
                String::from_utf8_lossy(key)
            );
        }
        assert_eq!(
            run(&request(&[(b"sec-websocket-key", b"")]), &[], None),
            Err(Refusal::BadKey)
        );
        let mut twice = request(&[]);
        twice.push((b"sec-websocket-key", KEY));
        assert_eq!(run(&twice, &[], None), Err(Refusal::BadKey));
        assert_eq!(Refusal::BadKey.status(), 400);
    }

    #[test]
    fn body_and_http10() {
        let h = request(&[]);
        assert_eq!(
            check(h.iter().copied(), false, true, &[], None),
            Err(Refusal::HasBody)
        );
        assert_eq!(
            check(h.iter().copied(), true, false, &[], None),
            Err(Refusal::Http10)
        );
        assert_eq!(Refusal::HasBody.status(), 400);
        assert_eq!(Refusal::Http10.status(), 400);
    }

    #[test]
    fn subprotocol_is_the_servers_first_offered_choice() {
        let server = vec![
            "graphql-ws".to_string(),
            "chat".to_string(),
            "superchat".to_string(),
        ];
        let mut h = request(&[(b"sec-websocket-protocol", b"superchat, chat")]);
        assert_eq!(run(&h, &server, None).unwrap().protocol, Some(1));
        h.push((b"sec-websocket-protocol", b"graphql-ws"));
        assert_eq!(run(&h, &server, None).unwrap().protocol, Some(0));
        assert_eq!(
            run(
                &request(&[(b"sec-websocket-protocol", b"mqtt")]),
                &server,
                None
            )
            .unwrap()
            .protocol,
            None
        );
        assert_eq!(
            run(
                &request(&[(b"sec-websocket-protocol", b"Chat")]),
                &server,
                None
            )
            .unwrap()
            .protocol,
            None
        );
    }

    #[test]
    fn write_101_head() {
        let server = vec!["chat".to_string()];
        let h = request(&[
            (b"sec-websocket-protocol", b"chat"),
            (
                b"sec-websocket-extensions",
                b"permessage-deflate; client_max_window_bits",
            ),
        ]);
        let a = run(&h, &server, Some(&DeflateConfig::default())).unwrap();
        let mut out = Vec::new();
        write_101(&mut out, &a, &server);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nsec-websocket-protocol: chat\r\nsec-websocket-extensions: permessage-deflate\r\n\r\n"
        );
        let mut out = Vec::new();
        write_101(&mut out, &run(&request(&[]), &[], None).unwrap(), &[]);
        assert!(out.ends_with(b"sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"));
    }

    fn value(p: &DeflateParams) -> String {
        let mut out = Vec::new();
        p.write_response_value(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn deflate_plain_offer() {
        let p = negotiated(&["permessage-deflate"]).unwrap();
        assert_eq!(p, DeflateParams::default_params());
        assert_eq!(value(&p), "permessage-deflate");
        // not offered, or not configured
        assert_eq!(negotiated(&["x-webkit-deflate-frame"]), None);
        let h = request(&[(b"sec-websocket-extensions", b"permessage-deflate")]);
        assert_eq!(run(&h, &[], None).unwrap().deflate, None);
    }

    #[test]
    fn deflate_parameters() {
        let p =
            negotiated(&["permessage-deflate; client_max_window_bits; server_max_window_bits=10"])
                .unwrap();
        assert_eq!(
            (
                p.server_max_window_bits,
                p.deflate_window_bits,
                p.client_max_window_bits
            ),
            (10, 10, 15)
        );
        assert_eq!(value(&p), "permessage-deflate; server_max_window_bits=10");

        let p = negotiated(&["permessage-deflate;client_max_window_bits=9;server_no_context_takeover;client_no_context_takeover"]).unwrap();
        assert!(p.server_no_context_takeover && p.client_no_context_takeover);
        assert_eq!(value(&p), "permessage-deflate; server_no_context_takeover; client_no_context_takeover; client_max_window_bits=9");

        // quoted values, and case in names
        let p = negotiated(&["Permessage-Deflate; Server_Max_Window_Bits=\"12\""]).unwrap();
        assert_eq!(p.server_max_window_bits, 12);

        // 8 is answered as 8, and compressed with 9 (safe: see DeflateParams)
        let p = negotiated(&["permessage-deflate; server_max_window_bits=8"]).unwrap();
        assert_eq!((p.server_max_window_bits, p.deflate_window_bits), (8, 9));
        assert_eq!(
            negotiated(&["permessage-deflate; client_max_window_bits=8"])
                .unwrap()
                .client_max_window_bits,
            8
        );
    }

    #[test]
    fn deflate_server_config() {
        let config = DeflateConfig {
            server_max_window_bits: 11,
            server_no_context_takeover: true,
            client_no_context_takeover_allowed: false,
            ..DeflateConfig::default()
        };
        let p =
            negotiated_with(&["permessage-deflate; client_no_context_takeover"], &config).unwrap();
        // a smaller server window is used silently: the response may not name it unasked
        assert_eq!((p.server_max_window_bits, p.deflate_window_bits), (15, 11));
        assert!(p.server_no_context_takeover && !p.client_no_context_takeover);
        assert_eq!(value(&p), "permessage-deflate; server_no_context_takeover");
        let p =
            negotiated_with(&["permessage-deflate; server_max_window_bits=13"], &config).unwrap();
        assert_eq!((p.server_max_window_bits, p.deflate_window_bits), (11, 11));
    }

    #[test]
    fn invalid_offers_are_declined_and_the_next_one_taken() {
        for bad in [
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_max_window_bits=7",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits=010",
            "permessage-deflate; client_max_window_bits=abc",
            "permessage-deflate; server_no_context_takeover=1",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; client_max_window_bits; client_max_window_bits=10",
            "permessage-deflate; server_max_window_bits=10; server_max_window_bits=10",
            "permessage-deflate; mystery",
            "permessage-deflate; server_max_window_bits=\"1\\0\"",
        ] {
            assert_eq!(negotiated(&[bad]), None, "{bad}");
            let p = negotiated(&[&format!(
                "{bad}, permessage-deflate; client_max_window_bits=12"
            )])
            .unwrap_or_else(|| panic!("{bad}"));
            assert_eq!(p.client_max_window_bits, 12, "{bad}");
        }
        // offers over several headers, first acceptable wins
        let p = negotiated(&[
            "foo, permessage-deflate; bogus",
            "permessage-deflate; server_no_context_takeover",
            "permessage-deflate",
        ])
        .unwrap();
        assert!(p.server_no_context_takeover);
    }

    #[test]
    fn split_respects_quotes() {
        let v = b"a; b=\"x,y;z\" , c ,, d";
        let commas: Vec<&[u8]> = Split::new(v, b',').collect();
        assert_eq!(commas, [&b"a; b=\"x,y;z\""[..], b"c", b"d"]);
        let semis: Vec<&[u8]> = Split::new(commas[0], b';').collect();
        assert_eq!(semis, [&b"a"[..], b"b=\"x,y;z\""]);
    }
}
