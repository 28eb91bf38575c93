//! Administration (what `mqadmin` does): topics on a broker or a whole cluster, routes, cluster
//! lists, topic status, consumer group members and the queues each owns, consumer progress, and
//! messages by id.

use std::collections::BTreeMap;
use std::time::Duration;

use sextant_model::namesrv::ClusterInfo;
use sextant_model::route::{MessageQueue, TopicRouteData};
use sextant_remoting::RemotingCommand;
use sextant_remoting::ext::CommandHeader;
use sextant_remoting::header::CreateTopicRequestHeader;

use crate::config::ClientConfig;
use crate::error::{Error, Result};
use crate::instance::ClientInstance;
use crate::message::{MessageExt, decode_pulled};

/// The admin request codes.
pub use sextant_remoting::code::request as code;

/// Where a topic is created.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TopicTarget {
    /// On every master of this cluster.
    Cluster(String),
    /// On the broker at this address.
    Broker(String),
}

/// A topic's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicSpec {
    /// The topic.
    pub topic: String,
    /// Read and write queues per broker.
    pub queues: u32,
    /// Permission bits (6 = read and write).
    pub perm: u32,
    /// An ordered topic.
    pub order: bool,
}

/// One queue's offsets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueStatus {
    /// The queue.
    pub queue: MessageQueue,
    /// Its first offset.
    pub min_offset: u64,
    /// One past its last.
    pub max_offset: u64,
}

/// A queue a consumer reports holding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeldQueue {
    /// The queue.
    pub queue: MessageQueue,
    /// Whether it believes it holds the queue's orderly lock (and has not dropped the queue).
    pub locked: bool,
}

/// A group's progress on one queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueProgress {
    /// The queue.
    pub queue: MessageQueue,
    /// The queue's end.
    pub broker_offset: u64,
    /// What the group committed (None: nothing yet).
    pub consumer_offset: Option<u64>,
    /// The member that owns it now, if a member reported it.
    pub owner: Option<String>,
}

impl QueueProgress {
    /// Messages not yet consumed.
    pub fn lag(&self) -> u64 {
        self.broker_offset
            .saturating_sub(self.consumer_offset.unwrap_or(0))
    }
}

/// The admin API.
#[derive(Clone, Debug)]
pub struct Admin {
    instance: ClientInstance,
}

impl Admin {
    /// An admin on a new client instance.
    pub async fn start(config: ClientConfig) -> Result<Admin> {
        Ok(Admin {
            instance: ClientInstance::start(config).await?,
        })
    }

    /// An admin on an existing client instance.
    pub fn on(instance: ClientInstance) -> Admin {
        Admin { instance }
    }

    fn timeout(&self) -> Duration {
        self.instance.config().mq_client_api_timeout
    }

    /// GET_ROUTEINFO_BY_TOPIC.
    pub async fn route(&self, topic: &str) -> Result<TopicRouteData> {
        match self.instance.update_route(topic).await? {
            Some(r) => Ok((*r).clone()),
            None => Err(Error::NoRoute {
                topic: topic.to_owned(),
                namesrvs: self.instance.namesrvs().to_vec(),
            }),
        }
    }

    /// GET_BROKER_CLUSTER_INFO.
    pub async fn cluster_info(&self) -> Result<ClusterInfo> {
        let t = self.timeout();
        self.instance
            .with_namesrv(|p| async move { p.cluster_info(t).await })
            .await
    }

    /// Every topic the NameServer knows.
    pub async fn topics(&self) -> Result<Vec<String>> {
        let t = self.timeout();
        self.instance
            .with_namesrv(|p| async move { p.topic_list(t).await })
            .await
    }

    async fn masters_of(&self, cluster: &str) -> Result<Vec<String>> {
        let info = self.cluster_info().await?;
        let names = info
            .cluster_addr_table
            .get(cluster)
            .ok_or_else(|| Error::Config(format!("no cluster named {cluster}")))?;
        Ok(names
            .iter()
            .filter_map(|n| info.broker_addr_table.get(n))
            .filter_map(|b| b.master_addr().map(str::to_owned))
            .collect())
    }

    /// Create or update a topic (UPDATE_AND_CREATE_TOPIC on each master); the brokers register
    /// it with the NameServers. Returns the brokers written.
    pub async fn create_topic(
        &self,
        spec: &TopicSpec,
        target: &TopicTarget,
    ) -> Result<Vec<String>> {
        let addrs = match target {
            TopicTarget::Broker(a) => vec![a.clone()],
            TopicTarget::Cluster(c) => self.masters_of(c).await?,
        };
        let header = CreateTopicRequestHeader {
            topic: spec.topic.clone(),
            default_topic: sextant_model::broker::AUTO_CREATE_TOPIC.into(),
            read_queue_nums: spec.queues as i32,
            write_queue_nums: spec.queues as i32,
            perm: spec.perm as i32,
            topic_filter_type: "SINGLE_TAG".into(),
            order: spec.order,
            topic_sys_flag: 0,
            attributes: None,
            force: None,
        };
        for a in &addrs {
            self.instance
                .peer(a)
                .await?
                .create_topic(header.clone(), self.timeout())
                .await?;
        }
        Ok(addrs)
    }

    /// Delete a topic on every master of `cluster` (DELETE_TOPIC_IN_BROKER) and on every
    /// NameServer (DELETE_TOPIC_IN_NAMESRV).
    pub async fn delete_topic(&self, topic: &str, cluster: &str) -> Result<()> {
        let mut ext = sextant_remoting::ExtFields::new();
        ext.insert("topic", topic);
        for a in self.masters_of(cluster).await? {
            let req =
                RemotingCommand::request(code::DELETE_TOPIC_IN_BROKER, 0).with_ext(ext.clone());
            self.instance
                .peer(&a)
                .await?
                .call_ok(req, self.timeout())
                .await?;
        }
        for ns in self.instance.namesrvs() {
            self.instance
                .peer(ns)
                .await?
                .delete_topic_in_namesrv(topic, self.timeout())
                .await?;
        }
        Ok(())
    }

    /// Every readable queue of `topic` with a connection to its broker (the master, or a slave
    /// when the master is gone: `BrokerData.selectBrokerAddr`).
    async fn queue_peers(&self, topic: &str) -> Result<Vec<(MessageQueue, crate::api::Peer)>> {
        let route = self.route(topic).await?;
        let mut out = Vec::new();
        for mq in route.subscribe_queues(topic) {
            if let Some(addr) = route
                .broker(&mq.broker_name)
                .and_then(|b| b.select_broker_addr(0))
            {
                out.push((mq, self.instance.peer(addr).await?));
            }
        }
        Ok(out)
    }

    /// Min and max offsets of every queue of `topic`.
    pub async fn topic_status(&self, topic: &str) -> Result<Vec<QueueStatus>> {
        let mut out = Vec::new();
        for (mq, p) in self.queue_peers(topic).await? {
            out.push(QueueStatus {
                min_offset: p.min_offset(&mq, self.timeout()).await?,
                max_offset: p.max_offset(&mq, self.timeout()).await?,
                queue: mq,
            });
        }
        Ok(out)
    }

    /// The members of `group` (from a broker of its retry topic's route).
    pub async fn group_members(&self, group: &str) -> Result<Vec<String>> {
        let route = self
            .route(&sextant_model::broker::retry_topic(group))
            .await?;
        let mut last = None;
        for b in &route.broker_datas {
            if let Some(addr) = b.select_broker_addr(0) {
                match self.instance.peer(addr).await {
                    Ok(p) => match p.consumer_list(group, self.timeout()).await {
                        Ok(list) => return Ok(list),
                        Err(e) => last = Some(e),
                    },
                    Err(e) => last = Some(e),
                }
            }
        }
        Err(last.unwrap_or_else(|| Error::NoRoute {
            topic: sextant_model::broker::retry_topic(group),
            namesrvs: self.instance.namesrvs().to_vec(),
        }))
    }

    /// The queues `client_id` of `group` holds, as it reports them (GET_CONSUMER_RUNNING_INFO,
    /// forwarded by a broker).
    pub async fn owned_queues(&self, group: &str, client_id: &str) -> Result<Vec<MessageQueue>> {
        Ok(self
            .held_queues(group, client_id)
            .await?
            .into_iter()
            .map(|h| h.queue)
            .collect())
    }

    /// The queues `client_id` of `group` holds, with whether it believes it holds each one's
    /// orderly lock (`ProcessQueueInfo.locked`, not dropped), as it reports them.
    pub async fn held_queues(&self, group: &str, client_id: &str) -> Result<Vec<HeldQueue>> {
        let route = self
            .route(&sextant_model::broker::retry_topic(group))
            .await?;
        let addr = route
            .broker_datas
            .iter()
            .find_map(|b| b.select_broker_addr(0))
            .ok_or_else(|| Error::Config(format!("no broker for group {group}")))?
            .to_owned();
        let mut ext = sextant_remoting::ExtFields::new();
        ext.insert("consumerGroup", group);
        ext.insert("clientId", client_id);
        ext.insert("jstackEnable", "false");
        let req = RemotingCommand::request(code::GET_CONSUMER_RUNNING_INFO, 0).with_ext(ext);
        let resp = self
            .instance
            .peer(&addr)
            .await?
            .call_ok(req, Duration::from_secs(5))
            .await?;
        let bad = |reason: String| Error::BadAnswer {
            addr: addr.clone(),
            reason,
        };
        let text = std::str::from_utf8(&resp.body).map_err(|e| bad(e.to_string()))?;
        let table = sextant_remoting::body::object_key_map(text, "mqTable")
            .map_err(|e| bad(e.to_string()))?;
        table
            .into_iter()
            .map(|(k, info)| {
                let flag = |name: &str| info.get(name).and_then(|v| v.as_bool()).unwrap_or(false);
                serde_json::from_value::<sextant_remoting::body::MessageQueueJson>(k)
                    .map(|m| HeldQueue {
                        queue: MessageQueue::new(&m.topic, &m.broker_name, m.queue_id),
                        // Java spells it `droped`.
                        locked: flag("locked") && !flag("droped"),
                    })
                    .map_err(|e| bad(e.to_string()))
            })
            .collect()
    }

    /// The progress of `group` on every queue of the topics it consumes (its retry topic
    /// included): queue end, committed offset, lag, and the member that owns the queue.
    pub async fn consumer_progress(
        &self,
        group: &str,
        topics: &[String],
    ) -> Result<Vec<QueueProgress>> {
        let members = self.group_members(group).await.unwrap_or_default();
        let mut owners: BTreeMap<MessageQueue, String> = BTreeMap::new();
        for m in &members {
            if let Ok(qs) = self.owned_queues(group, m).await {
                for q in qs {
                    owners.insert(q, m.clone());
                }
            }
        }
        let mut out = Vec::new();
        for topic in topics {
            for (mq, p) in self.queue_peers(topic).await? {
                out.push(QueueProgress {
                    broker_offset: p.max_offset(&mq, self.timeout()).await?,
                    consumer_offset: p.query_offset(group, &mq, self.timeout()).await?,
                    owner: owners.get(&mq).cloned(),
                    queue: mq,
                });
            }
        }
        Ok(out)
    }

    /// The message with broker id `offset_msg_id` (VIEW_MESSAGE_BY_ID at the store host it
    /// names).
    pub async fn view_message(&self, offset_msg_id: &str) -> Result<MessageExt> {
        let (host, offset) = sextant_remoting::message::parse_offset_msg_id(offset_msg_id)
            .map_err(|e| Error::InvalidMessage(format!("message id {offset_msg_id}: {e}")))?;
        let addr = host.to_string();
        let mut ext = sextant_remoting::ExtFields::new();
        ext.insert("offset", offset.to_string());
        let req = RemotingCommand::request(code::VIEW_MESSAGE_BY_ID, 0).with_ext(ext);
        let resp = self
            .instance
            .peer(&addr)
            .await?
            .call_ok(req, self.timeout())
            .await?;
        let any = MessageQueue::new("", "", 0);
        let mut msgs = decode_pulled(&resp.body, &any)?;
        let mut m = msgs.pop().ok_or_else(|| Error::BadAnswer {
            addr: addr.clone(),
            reason: "no message in the answer".into(),
        })?;
        m.queue = MessageQueue::new(&m.topic, "", m.queue.queue_id);
        Ok(m)
    }

    /// Messages of `topic` with key `key` (QUERY_MESSAGE on every broker of the topic).
    pub async fn query_message(&self, topic: &str, key: &str, max: u32) -> Result<Vec<MessageExt>> {
        self.query(topic, key, max, false).await
    }

    /// The message of `topic` whose client id (`UNIQ_KEY`) is `msg_id` (QUERY_MESSAGE with the
    /// unique-key flag); more than one when it was stored twice (a retried send).
    pub async fn query_unique(&self, topic: &str, msg_id: &str) -> Result<Vec<MessageExt>> {
        self.query(topic, msg_id, 32, true).await
    }

    async fn query(
        &self,
        topic: &str,
        key: &str,
        max: u32,
        unique: bool,
    ) -> Result<Vec<MessageExt>> {
        let route = self.route(topic).await?;
        let mut out = Vec::new();
        for b in &route.broker_datas {
            let Some(addr) = b.select_broker_addr(0) else {
                continue;
            };
            let mut ext = sextant_remoting::ExtFields::new();
            ext.insert("topic", topic);
            ext.insert("key", key);
            ext.insert("maxNum", max.to_string());
            ext.insert("beginTimestamp", "0");
            ext.insert("endTimestamp", i64::MAX.to_string());
            ext.insert("_UNIQUE_KEY_QUERY", if unique { "true" } else { "false" });
            let req = RemotingCommand::request(code::QUERY_MESSAGE, 0).with_ext(ext);
            let resp = self
                .instance
                .peer(addr)
                .await?
                .call(req, self.timeout())
                .await?;
            if resp.code == sextant_remoting::code::response::QUERY_NOT_FOUND {
                continue;
            }
            if resp.code != 0 {
                return Err(Error::Refused {
                    addr: addr.to_owned(),
                    code: resp.code,
                    remark: resp.remark.unwrap_or_default(),
                });
            }
            let mq = MessageQueue::new(topic, &b.broker_name, 0);
            for m in decode_pulled(&resp.body, &mq)? {
                // The index hashes keys: collisions are dropped here, as RocketMQ's admin does.
                let hit = if unique {
                    m.msg_id == key
                } else {
                    m.keys().any(|k| k == key)
                };
                if m.topic == topic && hit {
                    out.push(m);
                }
            }
        }
        Ok(out)
    }

    /// Close the admin's connections.
    pub async fn shutdown(self) {
        self.instance.shutdown().await;
    }
}

impl Default for TopicSpec {
    fn default() -> Self {
        TopicSpec {
            topic: String::new(),
            queues: 8,
            perm: 6,
            order: false,
        }
    }
}

/// Encode a header into a command (a helper for the CLI's raw calls).
pub fn command(code: i32, header: &impl CommandHeader) -> RemotingCommand {
    RemotingCommand::request(code, 0).with_ext(header.to_ext())
}
