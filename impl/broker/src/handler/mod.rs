//! The request handlers, one file per request family, and the dispatch table: which code goes
//! to which handler.

mod admin;
mod client;
mod groups;
mod locks;
mod offsets;
mod pull;
mod query;
mod send;
mod send_back;
mod sync;
mod topic;

pub(crate) use admin::Clients;

use std::sync::Arc;

use sextant_remoting::RemotingCommand;
use sextant_remoting::code::request;
use sextant_remoting::transport::{Handler, Peer};

use crate::broker::{Broker, Reply};

/// The broker as the transport's request handler.
pub struct BrokerHandler(pub Arc<Broker>);

impl Handler for BrokerHandler {
    async fn handle(&self, peer: &Peer, req: RemotingCommand) -> Option<RemotingCommand> {
        let b = &self.0;
        let answer = match req.code {
            request::SEND_MESSAGE | request::SEND_MESSAGE_V2 | request::SEND_BATCH_MESSAGE => {
                b.send(peer, &req).await
            }
            request::PULL_MESSAGE => b.pull(&req).await,
            request::QUERY_CONSUMER_OFFSET => b.query_offset(&req),
            request::UPDATE_CONSUMER_OFFSET => b.update_offset(&req),
            request::GET_MAX_OFFSET => b.max_offset(&req),
            request::GET_MIN_OFFSET => b.min_offset(&req),
            request::SEARCH_OFFSET_BY_TIMESTAMP => b.search_offset(&req),
            request::HEART_BEAT => b.heartbeat(peer, &req).await,
            request::UNREGISTER_CLIENT => b.unregister_client(peer, &req).await,
            request::GET_CONSUMER_LIST_BY_GROUP => b.consumer_list(&req),
            request::LOCK_BATCH_MQ => b.lock_batch(&req, false),
            request::UNLOCK_BATCH_MQ => b.lock_batch(&req, true),
            request::CONSUMER_SEND_MSG_BACK => b.send_back(peer, &req).await,
            request::UPDATE_AND_CREATE_TOPIC => b.update_topic(&req),
            request::GET_BROKER_RUNTIME_INFO => b.runtime_info(&req),
            request::GET_ALL_TOPIC_CONFIG => b.all_topic_config(&req),
            request::GET_TOPIC_STATS_INFO => b.topic_stats(&req),
            request::GET_CONSUME_STATS => b.consume_stats(&req),
            request::GET_CONSUMER_CONNECTION_LIST => b.consumer_connections(&req),
            request::GET_CONSUMER_RUNNING_INFO => b.consumer_running_info(&req).await,
            request::DELETE_TOPIC_IN_BROKER => b.delete_topic(&req),
            request::VIEW_MESSAGE_BY_ID => b.view_message(&req),
            request::QUERY_MESSAGE => b.query_message(&req),
            request::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP => b.update_group(&req),
            request::GET_ALL_SUBSCRIPTIONGROUP_CONFIG => b.all_groups(&req),
            request::DELETE_SUBSCRIPTIONGROUP => b.delete_group(&req),
            request::GET_ALL_CONSUMER_OFFSET => b.all_consumer_offsets(&req),
            request::GET_ALL_DELAY_OFFSET => b.all_delay_offsets(&req),
            _ => return None,
        };
        Some(answer.unwrap_or_else(|Reply(code, remark)| {
            RemotingCommand::response_to(&req, code, Some(remark))
        }))
    }

    async fn closed(&self, peer: &Peer) {
        self.0.closed(peer).await;
    }
}
