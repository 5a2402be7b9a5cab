//! Method and path dispatch on a radix tree (matchit). Route paths use `:name` for a segment
//! and a trailing `*` for the rest of the path; a match yields a route id and parameter spans.

use std::fmt;

/// The methods with a slot of their own; anything else matches only routes for all methods.
const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];
const GET: usize = 0;
const HEAD: usize = 1;

#[derive(Default)]
struct PathEntry {
    by_method: [Option<u32>; METHODS.len()],
    any: Option<u32>,
    /// Names of the params in order, `*` for the wildcard.
    params: Vec<String>,
}

#[derive(Default)]
pub struct Router {
    tree: matchit::Router<usize>,
    entries: Vec<PathEntry>,
    /// Route paths already inserted, in matchit syntax, to find their entry.
    inserted: Vec<(String, usize)>,
}

#[derive(Debug)]
pub struct RouteError(pub String);

impl fmt::Display for RouteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RouteError {}

/// The outcome of routing one request.
#[derive(Debug, PartialEq, Eq)]
pub enum RouteMatch {
    Found {
        route: u32,
    },
    /// The path exists, not for this method: the `Allow` header's value.
    MethodNotAllowed {
        allow: String,
    },
    NotFound,
}

impl Router {
    pub fn new() -> Router {
        Router::default()
    }

    /// Adds a route; `method` is an upper-case method name or `*` for every method.
    pub fn add(&mut self, method: &str, path: &str, route: u32) -> Result<(), RouteError> {
        if !path.starts_with('/') {
            return Err(RouteError(format!(
                "route path {path:?} must start with '/'"
            )));
        }
        let (pattern, params) = to_matchit(path)?;
        // `/files/*` also answers `/files/`, with an empty wildcard.
        let mut patterns = vec![pattern.clone()];
        if let Some(prefix) = pattern.strip_suffix("{*wildcard}") {
            patterns.push(prefix.to_string());
        }
        for pattern in patterns {
            let index = match self.inserted.iter().find(|(p, _)| *p == pattern) {
                Some(&(_, index)) => index,
                None => {
                    let index = self.entries.len();
                    self.tree
                        .insert(pattern.clone(), index)
                        .map_err(|e| RouteError(format!("route {path:?}: {e}")))?;
                    self.entries.push(PathEntry {
                        params: params.clone(),
                        ..PathEntry::default()
                    });
                    self.inserted.push((pattern, index));
                    index
                }
            };
            let entry = &mut self.entries[index];
            if entry.params != params {
                return Err(RouteError(format!("route {path:?} names its params differently from an earlier route on the same path")));
            }
            let slot = match method {
                "*" => &mut entry.any,
                m => match METHODS.iter().position(|x| *x == m) {
                    Some(i) => &mut entry.by_method[i],
                    None => return Err(RouteError(format!("unsupported method {m:?}"))),
                },
            };
            // The first registration wins, as in the order handlers were added.
            slot.get_or_insert(route);
        }
        Ok(())
    }

    /// Routes `path` (without the query); `params` receives `(start, len)` spans into `path`,
    /// in the order of the route's parameter names.
    pub fn find(&self, method: &[u8], path: &[u8], params: &mut Vec<(u32, u32)>) -> RouteMatch {
        params.clear();
        let Ok(path_str) = std::str::from_utf8(path) else {
            return RouteMatch::NotFound;
        };
        let Ok(m) = self.tree.at(path_str) else {
            return RouteMatch::NotFound;
        };
        let entry = &self.entries[*m.value];
        let slot = METHODS.iter().position(|x| x.as_bytes() == method);
        let route = slot
            .and_then(|i| entry.by_method[i])
            // HEAD is answered by the GET handler, without the body.
            .or_else(|| {
                if slot == Some(HEAD) {
                    entry.by_method[GET]
                } else {
                    None
                }
            })
            .or(entry.any);
        let Some(route) = route else {
            return RouteMatch::MethodNotAllowed {
                allow: allow_header(entry),
            };
        };
        let base = path.as_ptr() as usize;
        for (_, value) in m.params.iter() {
            params.push(((value.as_ptr() as usize - base) as u32, value.len() as u32));
        }
        if entry.params.last().is_some_and(|p| p == "*") && params.len() < entry.params.len() {
            params.push((path.len() as u32, 0));
        }
        RouteMatch::Found { route }
    }

    /// The names of a path's parameters in span order, as `find` reports them.
    pub fn param_names(path: &str) -> Result<Vec<String>, RouteError> {
        Ok(to_matchit(path)?.1)
    }
}

fn allow_header(entry: &PathEntry) -> String {
    let mut allow: Vec<&str> = Vec::new();
    for (i, m) in METHODS.iter().enumerate() {
        if entry.by_method[i].is_some() || (i == HEAD && entry.by_method[GET].is_some()) {
            allow.push(m);
        }
    }
    allow.join(", ")
}

/// `/users/:id/*` becomes `/users/{id}/{*wildcard}`.
fn to_matchit(path: &str) -> Result<(String, Vec<String>), RouteError> {
    let mut out = String::with_capacity(path.len() + 8);
    let mut params = Vec::new();
    let segments: Vec<&str> = path.split('/').collect();
    for (i, segment) in segments.iter().enumerate() {
        if i > 0 {
            out.push('/');
        }
        if let Some(name) = segment.strip_prefix(':') {
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
            {
                return Err(RouteError(format!(
                    "route {path:?}: bad parameter name {name:?}"
                )));
            }
            if params.iter().any(|p| p == name) {
                return Err(RouteError(format!(
                    "route {path:?}: parameter {name:?} appears twice"
                )));
            }
            out.push('{');
            out.push_str(name);
            out.push('}');
            params.push(name.to_string());
        } else if *segment == "*" {
            if i != segments.len() - 1 {
                return Err(RouteError(format!(
                    "route {path:?}: '*' may only end the path"
                )));
            }
            out.push_str("{*wildcard}");
            params.push("*".to_string());
        } else {
            // matchit gives braces a meaning; a literal brace is written twice
            for c in segment.chars() {
                match c {
                    '{' => out.push_str("{{"),
                    '}' => out.push_str("}}"),
                    c => out.push(c),
                }
            }
        }
    }
    Ok((out, params))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find(r: &Router, method: &str, path: &str) -> (RouteMatch, Vec<String>) {
        let mut spans = Vec::new();
        let m = r.find(method.as_bytes(), path.as_bytes(), &mut spans);
        let params = spans
            .iter()
            .map(|&(s, l)| path[s as usize..(s + l) as usize].to_string())
            .collect();
        (m, params)
    }

    #[test]
    fn params_and_wildcards() {
        let mut r = Router::new();
        r.add("GET", "/", 0).unwrap();
        r.add("GET", "/users/:id", 1).unwrap();
        r.add("GET", "/users/me", 2).unwrap();
        r.add("GET", "/files/*", 3).unwrap();
        r.add("GET", "/a/:x/b/:y", 4).unwrap();
        assert_eq!(
            find(&r, "GET", "/"),
            (RouteMatch::Found { route: 0 }, vec![])
        );
        assert_eq!(
            find(&r, "GET", "/users/42"),
            (RouteMatch::Found { route: 1 }, vec!["42".into()])
        );
        assert_eq!(
            find(&r, "GET", "/users/me"),
            (RouteMatch::Found { route: 2 }, vec![])
        );
        assert_eq!(
            find(&r, "GET", "/files/a/b.txt"),
            (RouteMatch::Found { route: 3 }, vec!["a/b.txt".into()])
        );
        assert_eq!(
            find(&r, "GET", "/files/"),
            (RouteMatch::Found { route: 3 }, vec!["".into()])
        );
        assert_eq!(
            find(&r, "GET", "/a/1/b/2"),
            (RouteMatch::Found { route: 4 }, vec!["1".into(), "2".into()])
        );
        assert_eq!(find(&r, "GET", "/nope").0, RouteMatch::NotFound);
        assert_eq!(find(&r, "GET", "/users/42/x").0, RouteMatch::NotFound);
    }

    #[test]
    fn methods() {
        let mut r = Router::new();
        r.add("GET", "/x", 0).unwrap();
        r.add("POST", "/x", 1).unwrap();
        r.add("*", "/any", 2).unwrap();
        assert_eq!(find(&r, "POST", "/x").0, RouteMatch::Found { route: 1 });
        assert_eq!(find(&r, "HEAD", "/x").0, RouteMatch::Found { route: 0 });
        assert_eq!(
            find(&r, "DELETE", "/x").0,
            RouteMatch::MethodNotAllowed {
                allow: "GET, HEAD, POST".into()
            }
        );
        assert_eq!(
            find(&r, "PROPFIND", "/any").0,
            RouteMatch::Found { route: 2 }
        );
    }

    #[test]
    fn refuses_bad_routes() {
        let mut r = Router::new();
        assert!(r.add("GET", "nope", 0).is_err());
        assert!(r.add("GET", "/a/*/b", 0).is_err());
        assert!(r.add("GET", "/a/:", 0).is_err());
        assert!(r.add("GET", "/a/:x/:x", 0).is_err());
        r.add("GET", "/u/:id", 0).unwrap();
        assert!(r.add("POST", "/u/:name", 1).is_err());
    }
}
