//! harrier's engine, without Node.js: HTTP/1.1 and HTTP/2 on mio event loops, a radix router, and a
//! batch interface through which a handler (the napi bridge, a test, a benchmark) answers.

mod conn;
pub mod engine;
#[doc(hidden)]
pub mod fuzzing;
pub(crate) mod h2;
pub mod http1;
pub mod ops;
pub mod router;
pub mod statics;
pub mod tls;
pub(crate) mod ws;

pub use engine::{
    Backend, Balance, Batch, Config, GroupJoin, GroupRole, Handler, Http2Options, InlineServer,
    ListenError, Metrics, PortGroup, Replier, ReplyWriter, RequestRef, Server, ShutdownSignal,
    WsOptions,
};
pub use router::{RouteError, RouteMatch, Router};
pub use statics::{StaticMount, StaticOptions};
