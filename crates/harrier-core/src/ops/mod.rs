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

/// The dashboard's page, shipped inside the binary.
pub(crate) const DASHBOARD_HTML: &str = include_str!("dashboard.html");
