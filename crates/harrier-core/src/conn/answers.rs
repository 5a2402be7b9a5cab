//! What the engine decides and answers itself, for every protocol: the per-address rate
//! limit and the route, static files (a mount's, and `res.sendFile`'s `FILE` op). Each
//! protocol writes the answer in its own framing (`http1::conn`, `h2::conn`).

use std::sync::Arc;

use crate::engine::event_loop::Ctx;
use crate::engine::limits::IpState;
use crate::engine::reply::ReplyOp;
use crate::http1::encode;
use crate::http1::Status;
use crate::router::RouteMatch;
use crate::statics::{self, Conditions, Plan, StaticMount, StaticOptions};

/// Takes the request's token from its address's bucket, then routes it (the params go to
/// `ctx.params`). `Err(seconds)`: over the rate limit, answer 429 with that `Retry-After`.
pub(crate) fn route(
    ctx: &mut Ctx,
    ip: &Option<Arc<IpState>>,
    method: &[u8],
    path: &[u8],
) -> Result<RouteMatch, u64> {
    if let (Some(table), Some(ip)) = (&ctx.shared.ips, ip) {
        table.take(ip, ctx.now)?;
    }
    Ok(ctx.shared.router.find(method, path, &mut ctx.params))
}

/// A static mount's answer for a request to one of its routes: the wildcard (the path under
/// the mount) is the route's last param.
pub(crate) fn mount_plan<'a>(
    mount: &StaticMount,
    params: &[(u32, u32)],
    path: &[u8],
    query: &[u8],
    headers: impl Iterator<Item = (&'a [u8], &'a [u8])>,
) -> Plan {
    let rel = params
        .last()
        .map_or(&b""[..], |&(s, l)| &path[s as usize..(s + l) as usize]);
    let cond = Conditions::from_headers(headers);
    statics::serve(mount, rel, path, query, &cond)
}

/// The answer to a `FILE` op (`res.sendFile`): the file it names, by the static-file rules
/// and the options, request headers and response headers the op carries (see reply.rs).
pub(crate) fn file_plan(op: &ReplyOp) -> Option<Plan> {
    let (headers, path) = op.split()?;
    let mut options = StaticOptions::default();
    let mut cond = Conditions::default();
    let mut extra = Vec::new();
    for (name, value) in headers {
        match name.first() {
            Some(b':') => {
                let on = value == b"1";
                match &name[1..] {
                    b"max-age" => {
                        options.max_age =
                            std::str::from_utf8(value).ok().and_then(|v| v.parse().ok())
                    }
                    b"immutable" => options.immutable = on,
                    b"dotfiles" => options.dotfiles = on,
                    b"precompressed" => options.precompressed = on,
                    b"index" => {
                        options.index = Some(String::from_utf8_lossy(value).into_owned())
                            .filter(|s| !s.is_empty())
                    }
                    _ => {}
                }
            }
            Some(b'<') => {
                cond.set(&name[1..], value);
            }
            _ => {
                if !encode::is_engine_header(name) {
                    extra.push((name, value));
                }
            }
        }
    }
    #[cfg(unix)]
    let path = std::path::PathBuf::from(
        <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(path),
    );
    #[cfg(not(unix))]
    let path = std::path::PathBuf::from(String::from_utf8_lossy(path).into_owned());
    // A status of the handler's own (`res.status(404).sendFile(page)`) answers with the
    // whole file, whatever the request's validators and ranges say.
    let own_status = op.status != 200 && (200..=999).contains(&op.status);
    if own_status {
        cond = Conditions {
            accept_encoding: cond.accept_encoding,
            ..Conditions::default()
        };
    }
    let mut plan = statics::serve_path(&path, &options, &cond);
    if own_status && plan.status == Status::OK {
        plan.status = Status(op.status);
    }
    if plan.status.0 < 400 {
        for (name, value) in extra {
            // The file's own headers stand; the handler's others are added.
            let has = plan.headers.split(|&b| b == b'\n').any(|line| {
                line.len() > name.len()
                    && line[..name.len()].eq_ignore_ascii_case(name)
                    && line[name.len()] == b':'
            });
            if has {
                continue;
            }
            encode::header(&mut plan.headers, name, value);
        }
    }
    Some(plan)
}

/// The header lines of a plan (`name: value\r\n`), as pairs.
pub(crate) fn plan_headers(headers: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    headers.split(|&b| b == b'\n').filter_map(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let colon = line.iter().position(|&b| b == b':')?;
        let value = &line[colon + 1..];
        let start = value
            .iter()
            .position(|&b| b != b' ' && b != b'\t')
            .unwrap_or(value.len());
        Some((&line[..colon], &value[start..]))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_header_lines_split_into_pairs() {
        let lines = b"content-type: text/plain\r\netag: \"abc\"\r\naccept-ranges: bytes\r\n";
        let pairs: Vec<_> = plan_headers(lines).collect();
        assert_eq!(
            pairs,
            vec![
                (&b"content-type"[..], &b"text/plain"[..]),
                (&b"etag"[..], &b"\"abc\""[..]),
                (&b"accept-ranges"[..], &b"bytes"[..])
            ]
        );
    }
}
