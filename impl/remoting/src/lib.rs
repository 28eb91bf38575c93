//! # sextant-remoting — Apache RocketMQ's remoting protocol, byte for byte
//!
//! Everything Sextant's NameServer, broker and clients put on the wire, compatible with Apache
//! RocketMQ's own peers in both directions. The facts are in `shared/docs/protocol.md`; what was
//! learned beyond them is in `docs/protocol.md`.
//!
//! Decoding is as lenient as Java's fastjson (numbers and booleans as extFields values, missing
//! fields, enum ordinals, unquoted numeric map keys); encoding writes exactly what a Java peer
//! writes. Every decoder has a size limit and returns an [`Error`] on bad input: none panics, and
//! none allocates what the input merely claims.
//!
//! ## Modules
//! - [`command`] — `RemotingCommand` and its JSON and ROCKETMQ binary headers.
//! - [`frame`] — length-prefixed frames, sans-IO, and a `tokio_util` codec.
//! - [`code`] — request and response codes.
//! - [`ext`], [`header`] — typed custom headers to and from extFields.
//! - [`body`] — register-broker (plain and compressed), heartbeat, cluster info, lock batch,
//!   consumer list and topic list bodies.
//! - [`message`] — stored message records (borrowed decoding), batches, properties, message ids.
//! - [`route`] — `TopicRouteData` bodies, both key styles, to and from the model's route.
//! - [`transport`] — a tokio client connection (requests multiplexed by opaque, timeouts,
//!   oneway) and a server accept loop dispatching to a handler.
//! - [`ha`] — the master/slave replication streams (offset reports, CommitLog chunks).
//! - [`fuzz`] — the bodies of the cargo-fuzz targets, as plain functions the tests replay.

pub mod body;
pub mod code;
pub mod command;
pub mod ext;
pub mod fields;
pub mod frame;
pub mod fuzz;
pub mod ha;
pub mod header;
mod json_fast;
pub mod message;
pub mod route;
pub mod transport;

pub use command::{ExtFields, LanguageCode, RemotingCommand, SerializeType};
pub use frame::{DEFAULT_MAX_FRAME, FrameCodec};

/// What can go wrong decoding or encoding.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The bytes do not follow the protocol.
    #[error("malformed: {0}")]
    Malformed(String),
    /// A frame is longer than the configured maximum.
    #[error("frame of {len} bytes exceeds the maximum of {max}")]
    FrameTooLarge {
        /// The frame's length, prefix included.
        len: usize,
        /// The maximum.
        max: usize,
    },
    /// A required header field is missing (`@CFNotNull`).
    #[error("the custom field {0} is null")]
    MissingField(&'static str),
    /// A header field's value does not parse.
    #[error("the custom field {field} has the invalid value {value:?}")]
    InvalidField {
        /// The field.
        field: &'static str,
        /// Its value.
        value: String,
    },
    /// A socket error.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}
