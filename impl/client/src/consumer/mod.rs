//! Consumers: the push consumer ([`PushConsumer`], concurrent or orderly, clustering or
//! broadcasting) and the lite pull consumer ([`PullConsumer`]), with what they share — the
//! process queues, the offset store and the rebalance.

pub mod offset;
mod process_queue;
pub mod pull;
pub mod push;
mod rebalance;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub use pull::{PullConsumer, PullConsumerBuilder};
pub use push::{PushConsumer, PushConsumerBuilder};

use std::collections::BTreeMap;

use sextant_model::client::{ConsumeFromWhere, Subscription};
use sextant_remoting::body::{ConsumerData, SubscriptionData, java_hash};

use crate::message::MessageExt;

/// What a handler says about the messages it was given.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConsumeResult {
    /// Consumed (`CONSUME_SUCCESS` / orderly `SUCCESS`).
    Success,
    /// Not now: concurrent consumers send the messages back to the group's retry topic (the
    /// broker picks the delay level); orderly consumers suspend the queue for
    /// `suspendCurrentQueueTimeMillis` and consume them again (`RECONSUME_LATER` /
    /// `SUSPEND_CURRENT_QUEUE_A_MOMENT`).
    RetryLater,
    /// Like `RetryLater`, with the delay level of the next attempt
    /// (`context.delayLevelWhenNextConsume`; concurrent consumers only).
    RetryLaterAt(i32),
}

/// How a group shares its messages (`MessageModel`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum MessageModel {
    /// Each message goes to one member of the group (the queues are split among them).
    #[default]
    Clustering,
    /// Every member gets every message (offsets are kept by each member, in a local file).
    Broadcasting,
}

impl MessageModel {
    /// The Java enum name.
    pub fn name(self) -> &'static str {
        match self {
            MessageModel::Clustering => "CLUSTERING",
            MessageModel::Broadcasting => "BROADCASTING",
        }
    }
}

/// A boxed handler: messages in, a [`ConsumeResult`] out.
pub(crate) type Handler = Arc<
    dyn Fn(Vec<MessageExt>) -> Pin<Box<dyn Future<Output = ConsumeResult> + Send>> + Send + Sync,
>;

/// Box an async closure as a [`Handler`].
pub(crate) fn handler<F, Fut>(f: F) -> Handler
where
    F: Fn(Vec<MessageExt>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ConsumeResult> + Send + 'static,
{
    Arc::new(move |msgs| Box::pin(f(msgs)))
}

/// The allocation strategy by its CLI name (the model's six; `config` and `machine-room` need
/// settings and are built with [`crate::consumer::push::PushConsumerBuilder::allocate_strategy`]).
pub fn strategy_by_name(name: &str) -> Option<Box<dyn sextant_model::consumer::AllocateStrategy>> {
    use sextant_model::consumer::{
        Averagely, AveragelyByCircle, ConsistentHash, MachineRoomNearby,
    };
    Some(match name {
        "averagely" | "AVG" => Box::new(Averagely),
        "circle" | "AVG_BY_CIRCLE" => Box::new(AveragelyByCircle),
        "consistent-hash" | "CONSISTENT_HASH" => Box::new(ConsistentHash::default()),
        "machine-room-nearby" => Box::new(MachineRoomNearby::new(Box::new(Averagely))),
        _ => return None,
    })
}

/// A subscription as heartbeats carry it (`SubscriptionData`: tags and their Java hashes).
pub(crate) fn subscription_data(topic: &str, s: &Subscription, version: i64) -> SubscriptionData {
    SubscriptionData {
        class_filter_mode: false,
        code_set: s.tags.iter().map(|t| java_hash(t)).collect(),
        expression_type: "TAG".into(),
        sub_string: s.expression.clone(),
        sub_version: version,
        tags_set: s.tags.iter().cloned().collect(),
        topic: topic.to_owned(),
    }
}

/// A consumer's part of a heartbeat (`ConsumerData`).
pub(crate) fn consumer_data(
    group: &str,
    consume_type: &str,
    model: MessageModel,
    from: ConsumeFromWhere,
    subscriptions: &BTreeMap<String, Subscription>,
    version: i64,
) -> ConsumerData {
    ConsumerData {
        consume_from_where: from.name().into(),
        consume_type: consume_type.into(),
        group_name: group.to_owned(),
        message_model: model.name().into(),
        subscription_data_set: subscriptions
            .iter()
            .map(|(t, s)| subscription_data(t, s, version))
            .collect(),
        unit_mode: false,
    }
}
