//! The client's errors: each says what failed, where, and why.

use std::fmt;
use std::time::Duration;

use sextant_remoting::transport::TransportError;

/// One attempt of a send that did not succeed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attempt {
    /// The broker group tried.
    pub broker: String,
    /// Its master's address, if the client knew one.
    pub addr: Option<String>,
    /// The queue id.
    pub queue_id: u32,
    /// Why it failed.
    pub error: String,
}

impl fmt::Display for Attempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}[{}]@{}: {}",
            self.broker,
            self.queue_id,
            self.addr.as_deref().unwrap_or("?"),
            self.error
        )
    }
}

fn list_attempts(list: &[Attempt]) -> String {
    list.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// What can go wrong in the client.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is invalid (no NameServer address, an empty group, ...).
    #[error("invalid client configuration: {0}")]
    Config(String),
    /// The message cannot be sent as it is (empty body, bad topic, ...).
    #[error("invalid message: {0}")]
    InvalidMessage(String),
    /// The message (or batch) is larger than `maxMessageSize`.
    #[error("the message is {size} bytes, larger than maxMessageSize {max}")]
    MessageTooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// No NameServer answered.
    #[error("no NameServer answered ({asked:?}): {last}")]
    NameServerUnavailable {
        /// The NameServers asked.
        asked: Vec<String>,
        /// The last error.
        last: String,
    },
    /// The NameServers know no route for the topic (and no fallback applies).
    #[error("no route info of topic {topic} (NameServers asked: {namesrvs:?})")]
    NoRoute {
        /// The topic.
        topic: String,
        /// The NameServers asked.
        namesrvs: Vec<String>,
    },
    /// The topic's queues are all on broker groups whose master is down (their slaves serve
    /// reads only).
    #[error("topic {topic}: no master for {brokers:?} (master down? their slaves take no writes)")]
    NoMaster {
        /// The topic.
        topic: String,
        /// The broker groups without a master.
        brokers: Vec<String>,
    },
    /// A broker group has no address the request can go to (no master for a send).
    #[error("broker {broker} has no address to send to (master down?)")]
    BrokerNotFound {
        /// The broker group.
        broker: String,
    },
    /// Connecting, sending or waiting for an answer failed.
    #[error("{addr}: {source}")]
    Remote {
        /// The peer.
        addr: String,
        /// What failed.
        source: TransportError,
    },
    /// A peer answered with an error code.
    #[error("{addr} answered code {code} ({}): {remark}", sextant_remoting::code::response_name(*code).unwrap_or("?"))]
    Refused {
        /// The peer.
        addr: String,
        /// The response code.
        code: i32,
        /// Its remark.
        remark: String,
    },
    /// A peer's answer could not be decoded.
    #[error("{addr} answered something undecodable: {reason}")]
    BadAnswer {
        /// The peer.
        addr: String,
        /// Why.
        reason: String,
    },
    /// Every attempt of a send failed.
    #[error("send to {topic} failed {} times: {}", attempts.len(), list_attempts(attempts))]
    SendFailed {
        /// The topic.
        topic: String,
        /// Each attempt, in order.
        attempts: Vec<Attempt>,
    },
    /// The send's time budget (`sendMsgTimeout`, all attempts together) ran out.
    #[error(
        "send to {topic} timed out after {elapsed:?} (budget {budget:?}); attempts: {}",
        list_attempts(attempts)
    )]
    SendTimeout {
        /// The topic.
        topic: String,
        /// How long it took.
        elapsed: Duration,
        /// The budget.
        budget: Duration,
        /// The attempts made.
        attempts: Vec<Attempt>,
    },
    /// A broker refused the message with a code that is not retried (MESSAGE_ILLEGAL, ...).
    #[error("broker {broker} ({addr}) refused the message: code {code} ({}): {remark}", sextant_remoting::code::response_name(*code).unwrap_or("?"))]
    BrokerRefused {
        /// The broker group.
        broker: String,
        /// Its address.
        addr: String,
        /// The response code.
        code: i32,
        /// Its remark.
        remark: String,
    },
    /// The client (or the consumer or producer) is shut down.
    #[error("the client is shut down")]
    Shutdown,
    /// A local file (broadcasting offsets) could not be read or written.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

impl Error {
    /// The response code when a peer refused, if it did.
    pub fn code(&self) -> Option<i32> {
        match self {
            Error::Refused { code, .. } | Error::BrokerRefused { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// The client's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
