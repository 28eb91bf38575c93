//! # sextant-trace — what the running cluster did, as the conformance checker reads it
//!
//! The NameServer, the broker and the client record structured events when tracing is on:
//! brokers registering, heartbeating, expiring and leaving; the routes served and the routes
//! clients took; every send attempt with its target and outcome; every rebalance with its member
//! list, queues, strategy and share; the queues a consumer takes and drops; pulls, deliveries and
//! offset commits; what the broker stored. `sextant-checks` rebuilds the observable state from a
//! trace and evaluates `sextant_model::invariants` on it.
//!
//! A trace is JSON lines: one [`Record`] per line — schema version, node, the node's sequence
//! number, wall time — with its [`Event`] flattened beside them. One file may hold any number of
//! nodes (an in-process cluster writes one merged stream); several files are merged by
//! [`merge`]. The schema is versioned ([`SCHEMA_VERSION`]) and documented in
//! `docs/conformance.md`.
//!
//! Tracing is off unless asked for: [`Tracer::off`] is the default of every server and client,
//! and costs one branch per event site; the servers and clients take a [`Tracer`] from their
//! embedder, and the `sextant` binary makes one from `--trace FILE` or [`ENV_VAR`].

mod event;
mod read;
mod record;

pub use event::{
    BrokerAddr, Event, Queue, Record, Route, RouteBroker, RouteQueues, SCHEMA_VERSION, SendOutcome,
    queues,
};
pub use read::{MAX_LINE, Merged, TraceError, merge, parse, read_file};
pub use record::{Sink, Tracer, from_env};

/// The environment variable that turns tracing on for the `sextant` binary: the file to append
/// records to.
pub const ENV_VAR: &str = "SEXTANT_TRACE";
