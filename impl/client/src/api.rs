//! The requests the client sends, typed (RocketMQ's `MQClientAPIImpl`): each builds its command,
//! sends it on a connection and turns the answer into a value or an [`Error`] that names the
//! peer, the code and the remark.

use std::time::Duration;

use bytes::Bytes;
use sextant_model::namesrv::ClusterInfo;
use sextant_model::route::{MessageQueue, TopicRouteData};
use sextant_remoting::body::{
    self, ConsumerListBody, HeartbeatData, LockBatchRequestBody, LockBatchResponseBody,
    MessageQueueJson, TopicListBody,
};
use sextant_remoting::code::{request, response};
use sextant_remoting::ext::CommandHeader;
use sextant_remoting::header::{
    ConsumerGroupHeader, ConsumerSendMsgBackRequestHeader, CreateTopicRequestHeader,
    DeleteTopicRequestHeader, GetMaxOffsetRequestHeader, GetMinOffsetRequestHeader,
    GetRouteInfoRequestHeader, OffsetResponseHeader, PullMessageRequestHeader,
    PullMessageResponseHeader, QueryConsumerOffsetRequestHeader, SearchOffsetRequestHeader,
    SendMessageResponseHeader, UnregisterClientRequestHeader, UpdateConsumerOffsetRequestHeader,
};
use sextant_remoting::transport::Connection;
use sextant_remoting::{ExtFields, RemotingCommand};

use crate::error::{Error, Result};

/// A connection and the address it was opened to (for error messages).
#[derive(Clone, Debug)]
pub struct Peer {
    /// The address as routes name it.
    pub addr: String,
    /// The connection.
    pub conn: Connection,
}

fn remote(addr: &str, source: sextant_remoting::transport::TransportError) -> Error {
    Error::Remote {
        addr: addr.to_owned(),
        source,
    }
}

fn refused(addr: &str, resp: &RemotingCommand) -> Error {
    Error::Refused {
        addr: addr.to_owned(),
        code: resp.code,
        remark: resp.remark.clone().unwrap_or_default(),
    }
}

fn bad(addr: &str, reason: impl ToString) -> Error {
    Error::BadAnswer {
        addr: addr.to_owned(),
        reason: reason.to_string(),
    }
}

fn ext_of(resp: &RemotingCommand) -> ExtFields {
    resp.ext_fields.clone().unwrap_or_default()
}

impl Peer {
    /// Send `req` and wait up to `timeout` for the answer, whatever its code.
    pub async fn call(&self, req: RemotingCommand, timeout: Duration) -> Result<RemotingCommand> {
        self.conn
            .invoke(req, timeout)
            .await
            .map_err(|e| remote(&self.addr, e))
    }

    /// Send `req`; an answer other than SUCCESS is an [`Error::Refused`].
    pub async fn call_ok(
        &self,
        req: RemotingCommand,
        timeout: Duration,
    ) -> Result<RemotingCommand> {
        let resp = self.call(req, timeout).await?;
        if resp.code != response::SUCCESS {
            return Err(refused(&self.addr, &resp));
        }
        Ok(resp)
    }

    /// Send `req` as oneway.
    pub async fn oneway(&self, req: RemotingCommand) -> Result<()> {
        self.conn
            .invoke_oneway(req)
            .await
            .map_err(|e| remote(&self.addr, e))
    }

    fn header<H: CommandHeader>(&self, resp: &RemotingCommand) -> Result<H> {
        H::from_ext(&ext_of(resp)).map_err(|e| bad(&self.addr, e))
    }

    /// GET_ROUTEINFO_BY_TOPIC: the route, or `None` when the NameServer knows no such topic.
    pub async fn route(&self, topic: &str, timeout: Duration) -> Result<Option<TopicRouteData>> {
        let req = RemotingCommand::request(request::GET_ROUTEINFO_BY_TOPIC, 0).with_ext(
            GetRouteInfoRequestHeader {
                topic: topic.to_owned(),
                accept_standard_json_only: Some(true),
            }
            .to_ext(),
        );
        let resp = self.call(req, timeout).await?;
        match resp.code {
            response::SUCCESS => sextant_remoting::route::decode_route(&resp.body)
                .map(Some)
                .map_err(|e| bad(&self.addr, e)),
            response::TOPIC_NOT_EXIST => Ok(None),
            _ => Err(refused(&self.addr, &resp)),
        }
    }

    /// GET_BROKER_CLUSTER_INFO.
    pub async fn cluster_info(&self, timeout: Duration) -> Result<ClusterInfo> {
        let req = RemotingCommand::request(request::GET_BROKER_CLUSTER_INFO, 0);
        let resp = self.call_ok(req, timeout).await?;
        body::decode_cluster_info(&resp.body).map_err(|e| bad(&self.addr, e))
    }

    /// GET_ALL_TOPIC_LIST_FROM_NAMESERVER.
    pub async fn topic_list(&self, timeout: Duration) -> Result<Vec<String>> {
        let req = RemotingCommand::request(request::GET_ALL_TOPIC_LIST_FROM_NAMESERVER, 0);
        let resp = self.call_ok(req, timeout).await?;
        let list: TopicListBody =
            body::decode("topic list", &resp.body).map_err(|e| bad(&self.addr, e))?;
        Ok(list.topic_list.into_iter().collect())
    }

    /// DELETE_TOPIC_IN_NAMESRV.
    pub async fn delete_topic_in_namesrv(&self, topic: &str, timeout: Duration) -> Result<()> {
        let req = RemotingCommand::request(request::DELETE_TOPIC_IN_NAMESRV, 0).with_ext(
            DeleteTopicRequestHeader {
                topic: topic.to_owned(),
                cluster_name: None,
            }
            .to_ext(),
        );
        self.call_ok(req, timeout).await.map(drop)
    }

    /// HEART_BEAT; returns the broker's version.
    pub async fn heartbeat(&self, data: &HeartbeatData, timeout: Duration) -> Result<i32> {
        let req = RemotingCommand::request(request::HEART_BEAT, 0).with_body(body::encode(data));
        let resp = self.call_ok(req, timeout).await?;
        Ok(resp.version)
    }

    /// UNREGISTER_CLIENT.
    pub async fn unregister_client(
        &self,
        client_id: &str,
        producer_group: Option<&str>,
        consumer_group: Option<&str>,
        timeout: Duration,
    ) -> Result<()> {
        let req = RemotingCommand::request(request::UNREGISTER_CLIENT, 0).with_ext(
            UnregisterClientRequestHeader {
                client_id: client_id.to_owned(),
                producer_group: producer_group.map(str::to_owned),
                consumer_group: consumer_group.map(str::to_owned),
            }
            .to_ext(),
        );
        self.call_ok(req, timeout).await.map(drop)
    }

    /// GET_CONSUMER_LIST_BY_GROUP.
    pub async fn consumer_list(&self, group: &str, timeout: Duration) -> Result<Vec<String>> {
        let req = RemotingCommand::request(request::GET_CONSUMER_LIST_BY_GROUP, 0).with_ext(
            ConsumerGroupHeader {
                consumer_group: group.to_owned(),
            }
            .to_ext(),
        );
        let resp = self.call_ok(req, timeout).await?;
        let list: ConsumerListBody =
            body::decode("consumer list", &resp.body).map_err(|e| bad(&self.addr, e))?;
        Ok(list.consumer_id_list)
    }

    /// PULL_MESSAGE: the answer's code, header and body (the caller classifies the code).
    pub async fn pull(
        &self,
        header: &PullMessageRequestHeader,
        timeout: Duration,
    ) -> Result<(i32, PullMessageResponseHeader, Bytes)> {
        let req = RemotingCommand::request(request::PULL_MESSAGE, 0).with_ext(header.to_ext());
        let resp = self.call(req, timeout).await?;
        match resp.code {
            response::SUCCESS
            | response::PULL_NOT_FOUND
            | response::PULL_RETRY_IMMEDIATELY
            | response::PULL_OFFSET_MOVED => {
                let h: PullMessageResponseHeader = self.header(&resp)?;
                Ok((resp.code, h, resp.body))
            }
            _ => Err(refused(&self.addr, &resp)),
        }
    }

    /// QUERY_CONSUMER_OFFSET: `Ok(None)` for QUERY_NOT_FOUND.
    pub async fn query_offset(
        &self,
        group: &str,
        mq: &MessageQueue,
        timeout: Duration,
    ) -> Result<Option<u64>> {
        let req = RemotingCommand::request(request::QUERY_CONSUMER_OFFSET, 0).with_ext(
            QueryConsumerOffsetRequestHeader {
                consumer_group: group.to_owned(),
                topic: mq.topic.to_string(),
                queue_id: mq.queue_id as i32,
                // Not sent, as RocketMQ 4.9 and 5.1+ clients: a broker then answers 0 for a group
                // new to a queue that still starts at 0 (its first message is still there).
                set_zero_if_not_found: None,
            }
            .to_ext(),
        );
        let resp = self.call(req, timeout).await?;
        match resp.code {
            response::SUCCESS => {
                let h: OffsetResponseHeader = self.header(&resp)?;
                Ok(Some(h.offset.max(0) as u64))
            }
            response::QUERY_NOT_FOUND => Ok(None),
            _ => Err(refused(&self.addr, &resp)),
        }
    }

    /// UPDATE_CONSUMER_OFFSET, waiting for the answer.
    pub async fn update_offset(
        &self,
        group: &str,
        mq: &MessageQueue,
        offset: u64,
        timeout: Duration,
    ) -> Result<()> {
        let req = RemotingCommand::request(request::UPDATE_CONSUMER_OFFSET, 0).with_ext(
            UpdateConsumerOffsetRequestHeader {
                consumer_group: group.to_owned(),
                topic: mq.topic.to_string(),
                queue_id: mq.queue_id as i32,
                commit_offset: offset as i64,
            }
            .to_ext(),
        );
        self.call_ok(req, timeout).await.map(drop)
    }

    async fn offset_call(&self, req: RemotingCommand, timeout: Duration) -> Result<u64> {
        let resp = self.call_ok(req, timeout).await?;
        let h: OffsetResponseHeader = self.header(&resp)?;
        Ok(h.offset.max(0) as u64)
    }

    /// GET_MAX_OFFSET.
    pub async fn max_offset(&self, mq: &MessageQueue, timeout: Duration) -> Result<u64> {
        let req = RemotingCommand::request(request::GET_MAX_OFFSET, 0).with_ext(
            GetMaxOffsetRequestHeader {
                topic: mq.topic.to_string(),
                queue_id: mq.queue_id as i32,
                committed: None,
            }
            .to_ext(),
        );
        self.offset_call(req, timeout).await
    }

    /// GET_MIN_OFFSET.
    pub async fn min_offset(&self, mq: &MessageQueue, timeout: Duration) -> Result<u64> {
        let req = RemotingCommand::request(request::GET_MIN_OFFSET, 0).with_ext(
            GetMinOffsetRequestHeader {
                topic: mq.topic.to_string(),
                queue_id: mq.queue_id as i32,
            }
            .to_ext(),
        );
        self.offset_call(req, timeout).await
    }

    /// SEARCH_OFFSET_BY_TIMESTAMP.
    pub async fn search_offset(
        &self,
        mq: &MessageQueue,
        timestamp: i64,
        timeout: Duration,
    ) -> Result<u64> {
        let req = RemotingCommand::request(request::SEARCH_OFFSET_BY_TIMESTAMP, 0).with_ext(
            SearchOffsetRequestHeader {
                topic: mq.topic.to_string(),
                queue_id: mq.queue_id as i32,
                timestamp,
                boundary_type: None,
            }
            .to_ext(),
        );
        self.offset_call(req, timeout).await
    }

    /// LOCK_BATCH_MQ: the queues now locked for `client_id`.
    pub async fn lock_batch(
        &self,
        group: &str,
        client_id: &str,
        mqs: &[MessageQueue],
        timeout: Duration,
    ) -> Result<Vec<MessageQueue>> {
        let req = lock_request(request::LOCK_BATCH_MQ, group, client_id, mqs);
        let resp = self.call_ok(req, timeout).await?;
        let locked: LockBatchResponseBody =
            body::decode("lock batch", &resp.body).map_err(|e| bad(&self.addr, e))?;
        Ok(locked
            .lock_ok_mq_set
            .iter()
            .map(|m| MessageQueue::new(&m.topic, &m.broker_name, m.queue_id))
            .collect())
    }

    /// UNLOCK_BATCH_MQ.
    pub async fn unlock_batch(
        &self,
        group: &str,
        client_id: &str,
        mqs: &[MessageQueue],
        timeout: Duration,
    ) -> Result<()> {
        let req = lock_request(request::UNLOCK_BATCH_MQ, group, client_id, mqs);
        self.call_ok(req, timeout).await.map(drop)
    }

    /// CONSUMER_SEND_MSG_BACK.
    pub async fn send_back(
        &self,
        header: ConsumerSendMsgBackRequestHeader,
        timeout: Duration,
    ) -> Result<()> {
        let req =
            RemotingCommand::request(request::CONSUMER_SEND_MSG_BACK, 0).with_ext(header.to_ext());
        self.call_ok(req, timeout).await.map(drop)
    }

    /// UPDATE_AND_CREATE_TOPIC.
    pub async fn create_topic(
        &self,
        header: CreateTopicRequestHeader,
        timeout: Duration,
    ) -> Result<()> {
        let req =
            RemotingCommand::request(request::UPDATE_AND_CREATE_TOPIC, 0).with_ext(header.to_ext());
        self.call_ok(req, timeout).await.map(drop)
    }
}

/// LOCK_BATCH_MQ or UNLOCK_BATCH_MQ with its `LockBatchRequestBody`.
fn lock_request(code: i32, group: &str, client_id: &str, mqs: &[MessageQueue]) -> RemotingCommand {
    let body = LockBatchRequestBody {
        client_id: client_id.to_owned(),
        consumer_group: group.to_owned(),
        mq_set: mqs.iter().map(mq_json).collect(),
        only_this_broker: false,
    };
    RemotingCommand::request(code, 0).with_body(body::encode(&body))
}

/// A queue as lock bodies carry it.
pub fn mq_json(mq: &MessageQueue) -> MessageQueueJson {
    MessageQueueJson {
        broker_name: mq.broker_name.to_string(),
        queue_id: mq.queue_id,
        topic: mq.topic.to_string(),
    }
}

/// The send response header and its code, decoded.
pub fn send_response(addr: &str, resp: &RemotingCommand) -> Result<SendMessageResponseHeader> {
    SendMessageResponseHeader::from_ext(&ext_of(resp)).map_err(|e| bad(addr, e))
}
