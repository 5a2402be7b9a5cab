//! Operations: the engine's own figures (metrics, health), the access log, and the routes
//! the engine answers with them, never calling the handler.

pub(crate) mod access_log;
mod json;
mod prometheus;
pub(crate) mod stats;

pub use access_log::{AccessLogConfig, LogFormat};
pub use json::{snapshot_event, snapshot_json};
pub use stats::Snapshot;

/// A route the engine answers itself with its own figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpsRoute {
    /// Prometheus text.
    Metrics,
    /// `200 ok` while serving, `503 draining` once the drain began.
    Health,
    /// The dashboard's page.
    Dashboard,
    /// The dashboard's event stream: a snapshot as JSON every second.
    DashboardEvents,
}

pub(crate) use prometheus::{exposition, CONTENT_TYPE as PROMETHEUS_CONTENT_TYPE};

/// A whole answer the engine makes from its figures, the same for every protocol.
pub(crate) struct OwnAnswer {
    pub status: crate::http1::Status,
    pub content_type: &'static [u8],
    pub cache_control: &'static [u8],
    pub body: std::borrow::Cow<'static, [u8]>,
}

/// What a metrics, health or dashboard route answers now; `None` for the event stream,
/// which each protocol opens its own way.
pub(crate) fn own_answer(
    kind: OpsRoute,
    ctx: &crate::engine::event_loop::Ctx,
) -> Option<OwnAnswer> {
    use crate::http1::Status;
    use std::borrow::Cow;
    use std::sync::atomic::Ordering::SeqCst;
    const TEXT: &[u8] = b"text/plain; charset=utf-8";
    Some(match kind {
        OpsRoute::Metrics => OwnAnswer {
            status: Status::OK,
            content_type: PROMETHEUS_CONTENT_TYPE,
            cache_control: b"no-store",
            body: Cow::Owned(exposition(&ctx.shared.snapshot()).into_bytes()),
        },
        OpsRoute::Health => {
            // Draining from the moment a shutdown is asked or announced, on every thread and
            // every engine of the port group.
            let shared = &ctx.shared;
            let draining = ctx.draining
                || shared.shutdown.load(SeqCst)
                || shared.drain_announced.load(SeqCst)
                || shared.group.as_ref().is_some_and(|g| g.draining());
            let (status, body): (Status, &'static [u8]) = if draining {
                (Status::SERVICE_UNAVAILABLE, b"draining")
            } else {
                (Status::OK, b"ok")
            };
            OwnAnswer {
                status,
                content_type: TEXT,
                cache_control: b"no-store",
                body: Cow::Borrowed(body),
            }
        }
        OpsRoute::Dashboard => OwnAnswer {
            status: Status::OK,
            content_type: b"text/html; charset=utf-8",
            cache_control: b"no-cache",
            body: Cow::Borrowed(DASHBOARD_HTML.as_bytes()),
        },
        OpsRoute::DashboardEvents => return None,
    })
}

/// The dashboard's page, shipped inside the binary.
pub(crate) const DASHBOARD_HTML: &str = include_str!("dashboard.html");
