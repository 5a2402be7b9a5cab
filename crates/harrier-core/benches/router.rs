//! Routing: `Router::find` over a route table shaped like a real API (static paths,
//! parameters at several depths, wildcards, several methods per path).
//!
//! cargo bench -p harrier-core --bench router

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use harrier_core::{RouteMatch, Router};

/// About fifty routes, as a mid-sized service registers them.
const ROUTES: &[(&str, &str)] = &[
    ("GET", "/"),
    ("GET", "/health"),
    ("GET", "/metrics"),
    ("GET", "/favicon.ico"),
    ("GET", "/login"),
    ("POST", "/login"),
    ("POST", "/logout"),
    ("GET", "/static/*"),
    ("GET", "/assets/*"),
    ("GET", "/docs/*"),
    ("GET", "/api/v1/users"),
    ("POST", "/api/v1/users"),
    ("GET", "/api/v1/users/me"),
    ("GET", "/api/v1/users/:id"),
    ("PUT", "/api/v1/users/:id"),
    ("PATCH", "/api/v1/users/:id"),
    ("DELETE", "/api/v1/users/:id"),
    ("GET", "/api/v1/users/:id/posts"),
    ("POST", "/api/v1/users/:id/posts"),
    ("GET", "/api/v1/users/:id/posts/:post"),
    ("DELETE", "/api/v1/users/:id/posts/:post"),
    ("GET", "/api/v1/users/:id/posts/:post/comments"),
    ("GET", "/api/v1/users/:id/followers"),
    ("GET", "/api/v1/users/:id/following"),
    ("GET", "/api/v1/posts"),
    ("GET", "/api/v1/posts/:post"),
    ("GET", "/api/v1/search"),
    ("GET", "/api/v1/orgs"),
    ("GET", "/api/v1/orgs/:org"),
    ("GET", "/api/v1/orgs/:org/members"),
    ("GET", "/api/v1/orgs/:org/repos"),
    ("POST", "/api/v1/orgs/:org/repos"),
    ("GET", "/api/v1/orgs/:org/repos/:repo"),
    ("GET", "/api/v1/orgs/:org/repos/:repo/issues"),
    ("POST", "/api/v1/orgs/:org/repos/:repo/issues"),
    ("GET", "/api/v1/orgs/:org/repos/:repo/issues/:number"),
    ("PATCH", "/api/v1/orgs/:org/repos/:repo/issues/:number"),
    ("GET", "/api/v1/orgs/:org/repos/:repo/pulls"),
    ("GET", "/api/v1/orgs/:org/repos/:repo/pulls/:number"),
    ("GET", "/api/v1/orgs/:org/repos/:repo/contents/*"),
    ("GET", "/api/v2/items"),
    ("GET", "/api/v2/items/:item"),
    ("GET", "/api/v2/items/:item/variants/:variant"),
    ("GET", "/api/v2/carts/:cart"),
    ("POST", "/api/v2/carts/:cart/items"),
    ("DELETE", "/api/v2/carts/:cart/items/:item"),
    ("POST", "/api/v2/checkout"),
    ("GET", "/admin"),
    ("GET", "/admin/users"),
    ("GET", "/admin/settings"),
    ("*", "/webhooks/:source"),
];

fn table() -> Router {
    let mut router = Router::new();
    for (id, (method, path)) in ROUTES.iter().enumerate() {
        router.add(method, path, id as u32).unwrap();
    }
    router
}

/// Lookups by kind: (name, method, path, what it should find).
const LOOKUPS: &[(&str, &str, &str, Outcome)] = &[
    ("root", "GET", "/", Outcome::Found),
    ("static-deep", "GET", "/api/v1/users/me", Outcome::Found),
    ("one-param", "GET", "/api/v1/users/12345", Outcome::Found),
    (
        "two-params",
        "GET",
        "/api/v1/users/12345/posts/678",
        Outcome::Found,
    ),
    (
        "three-params",
        "GET",
        "/api/v1/orgs/acme/repos/harrier/issues/42",
        Outcome::Found,
    ),
    (
        "wildcard",
        "GET",
        "/static/js/app.3f9a2c.js",
        Outcome::Found,
    ),
    ("any-method", "PROPFIND", "/webhooks/github", Outcome::Found),
    ("head-to-get", "HEAD", "/api/v1/posts/99", Outcome::Found),
    (
        "not-found",
        "GET",
        "/api/v1/nothing/here",
        Outcome::NotFound,
    ),
    (
        "method-not-allowed",
        "DELETE",
        "/api/v1/orgs/acme",
        Outcome::NotAllowed,
    ),
];

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Outcome {
    Found,
    NotFound,
    NotAllowed,
}

fn outcome(m: &RouteMatch) -> Outcome {
    match m {
        RouteMatch::Found { .. } => Outcome::Found,
        RouteMatch::NotFound => Outcome::NotFound,
        RouteMatch::MethodNotAllowed { .. } => Outcome::NotAllowed,
    }
}

fn find(c: &mut Criterion) {
    let router = table();
    let mut params = Vec::with_capacity(8);
    // The table must route as the names say, or the figures would measure something else.
    for (name, method, path, expected) in LOOKUPS {
        assert_eq!(
            outcome(&router.find(method.as_bytes(), path.as_bytes(), &mut params)),
            *expected,
            "{name}"
        );
    }

    let mut group = c.benchmark_group("router/find");
    group.throughput(Throughput::Elements(1));
    for (name, method, path, _) in LOOKUPS {
        group.bench_with_input(
            BenchmarkId::from_parameter(name),
            &(method, path),
            |b, (method, path)| {
                b.iter(|| {
                    let m = router.find(
                        black_box(method.as_bytes()),
                        black_box(path.as_bytes()),
                        &mut params,
                    );
                    black_box(m)
                })
            },
        );
    }
    group.finish();

    // Every lookup above in turn, as a mixed stream of requests would hit the router.
    let mut group = c.benchmark_group("router");
    group.throughput(Throughput::Elements(LOOKUPS.len() as u64));
    group.bench_function("mixed", |b| {
        b.iter(|| {
            for (_, method, path, _) in LOOKUPS {
                black_box(router.find(
                    black_box(method.as_bytes()),
                    black_box(path.as_bytes()),
                    &mut params,
                ));
            }
        })
    });
    group.finish();
}

fn build(c: &mut Criterion) {
    c.bench_function("router/build-51-routes", |b| b.iter(|| black_box(table())));
}

criterion_group!(benches, find, build);
criterion_main!(benches);
