//! # sextant-client — a RocketMQ client on tokio
//!
//! Producers, push and pull consumers and an admin API that speak Apache RocketMQ's remoting
//! protocol to Sextant's servers and to any RocketMQ-compatible cluster (4.9, 5.x and other
//! implementations). Every decision — which queues a route offers, which queue a send goes to,
//! which broker a retry avoids and for how long a slow one is avoided, when a send gives up, who
//! owns which queue, what a rebalance drops and adds, where a new queue starts, when pulls pause,
//! which offset may be committed — is `sextant_model`'s. This crate owns the sockets, the timers
//! and the tasks.
//!
//! ## Modules
//! - [`config`] — `ClientConfig`, RocketMQ's client settings and defaults.
//! - [`instance`] — the client instance: connections, routes, heartbeats, pushed requests.
//! - [`api`] — the requests, typed (`MQClientAPIImpl`).
//! - [`producer`] — sync, async, oneway, batch, chosen-queue and ordered sends.
//! - [`consumer`] — the push consumer (concurrent and orderly), the lite pull consumer, offsets.
//! - [`admin`] — topics, routes, clusters, groups, progress, messages.
//! - [`message`] — messages sent and received, send results, compression.
//! - [`id`] — `UNIQ_KEY` message ids.
//! - [`error`] — the errors, each naming what failed.
//!
//! ```no_run
//! # async fn demo() -> sextant_client::Result<()> {
//! use sextant_client::{Message, Producer};
//! let producer = Producer::builder()
//!     .producer_group("pg")
//!     .namesrv_addr("127.0.0.1:9876")
//!     .start()
//!     .await?;
//! let sent = producer.send(Message::new("TopicTest", "hello").with_tags("TagA")).await?;
//! println!("{} at {:?} offset {}", sent.msg_id, sent.queue, sent.queue_offset);
//! producer.shutdown().await;
//! # Ok(()) }
//! ```

pub mod admin;
pub mod api;
pub mod config;
pub mod consumer;
pub mod error;
pub mod id;
pub mod instance;
pub mod message;
pub mod producer;

pub use config::ClientConfig;
pub use consumer::{ConsumeResult, MessageModel, PullConsumer, PushConsumer};
pub use error::{Attempt, Error, Result};
pub use instance::ClientInstance;
pub use message::{Message, MessageExt, SendResult, SendStatus};
pub use producer::{Producer, ProducerConfig, SendHandle};
pub use sextant_model::client::ConsumeFromWhere;
pub use sextant_model::route::MessageQueue;
