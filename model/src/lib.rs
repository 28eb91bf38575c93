//! # sextant-model — the reference model of a RocketMQ-style cluster
//!
//! Every *decision* the cluster makes lives here as pure, deterministic code with an explicit clock
//! and no I/O: which brokers a NameServer still lists, what route it returns, which queue a producer
//! sends to and which broker it avoids, which queues each consumer owns and what a rebalance changes.
//! The tokio implementation (`impl/`) and the model checker (`checks/`, the stateright models) call
//! exactly these functions, so what is checked is what runs.
//!
//! Time is a plain number of milliseconds ([`Millis`]) passed in by the caller; randomness, where
//! RocketMQ uses it, is a value passed in by the caller too. Nothing here reads a clock, a socket, a
//! file or a thread-local.
//!
//! ## Modules
//! - [`route`] — `TopicRouteData`, `QueueData`, `BrokerData`, permission bits, `MessageQueue`.
//! - [`namesrv`] — the NameServer's [`namesrv::RouteTable`]: register, unregister, heartbeat,
//!   `scan_expired(now)`, `route(topic)`, cluster info, topic list.
//! - [`producer`] — publish info built from a route, round-robin and skip-failed selection, latency
//!   fault tolerance, and the send retry loop.
//! - [`consumer`] — the six allocation strategies behind [`consumer::AllocateStrategy`], the
//!   rebalance plan and the committable offset of a process queue.
//! - [`client`] — the client's other decisions: which address a request goes to, heartbeat
//!   targets, route changes and offline brokers, the TBW102 fallback route, subscriptions, where a
//!   new queue starts, flow control and what a pull answer means, lock and pull expiry, orderly
//!   retries, hash selection.
//! - [`broker`] — the broker's decisions: send queue, TBW102 auto-creation, pull status and long
//!   polling, send-back to retry or dead-letter topics, delay levels, queue locks, consumer groups.
//! - [`store`] — when a broker may acknowledge a put, by flush mode and replication role.
//! - [`ha`] — master/slave replication: where streaming starts, chunking, which chunks a slave
//!   appends, when a slave is in sync.
//! - [`invariants`] — the invariants of the design as plain predicates, shared with `checks/`.

pub mod broker;
pub mod client;
pub mod consumer;
pub mod ha;
pub mod invariants;
pub mod namesrv;
pub mod producer;
pub mod route;
pub mod store;

/// A point in time or a duration, in milliseconds. The model never reads a clock: callers pass `now`.
pub type Millis = u64;
