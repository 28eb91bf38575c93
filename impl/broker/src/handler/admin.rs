//! The admin requests RocketMQ's own tools (`mqadmin`, the dashboard) send a broker
//! (`AdminBrokerProcessor`, `QueryMessageProcessor.viewMessageById`), wire-compatible with
//! Apache RocketMQ 5.x:
//!
//! | request | answer |
//! |---|---|
//! | GET_BROKER_RUNTIME_INFO (28) | `KVTable`: versions, uptime, store offsets, message counts and TPS |
//! | GET_ALL_TOPIC_CONFIG (21) | the topic table (`TopicConfigSerializeWrapper`), paged for 5.x tools |
//! | GET_TOPIC_STATS_INFO (202) | `TopicStatsTable`: each queue's min and max offset, last store time |
//! | GET_CONSUME_STATS (208) | `ConsumeStats`: a group's progress on each queue of its topics |
//! | GET_CONSUMER_CONNECTION_LIST (203) | `ConsumerConnection`: a group's clients and subscriptions |
//! | GET_CONSUMER_RUNNING_INFO (307) | forwarded to the client, its answer returned as is |
//! | DELETE_TOPIC_IN_BROKER (215) | the topic's config, offsets and ConsumeQueues removed |
//! | VIEW_MESSAGE_BY_ID (33) | the stored record at a CommitLog offset |
//!
//! Bodies are fastjson's: fields sorted, nulls left out, maps keyed by `MessageQueue` written with
//! object keys. The decisions these requests make — which topics a consume-stats answer covers,
//! what a group's progress on a queue is, which topics are system topics, which page of the
//! topic table to answer, what a group's connection list says — are the pure functions at the
//! end of this file. (They belong with the broker decisions of `sextant_model::broker`; they are
//! here until the model takes them.)

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::Serialize;
use sextant_model::broker::ConsumerGroup;
use sextant_model::store::BrokerRole;
use sextant_remoting::body::{
    self, HeartbeatData, MessageQueueJson, SubscriptionData, decode_data_version,
    encode_object_key_map, encode_topic_table, java_hash,
};
use sextant_remoting::code::{request, response};
use sextant_remoting::command::CURRENT_VERSION;
use sextant_remoting::ext::CommandHeader;
use sextant_remoting::header::{
    ConsumerGroupHeader, DeleteTopicRequestHeader, GetAllTopicConfigRequestHeader,
    GetAllTopicConfigResponseHeader, GetConsumeStatsRequestHeader,
    GetConsumerRunningInfoRequestHeader, GetTopicStatsInfoRequestHeader, ViewMessageRequestHeader,
};
use sextant_remoting::message::MessageView;
use sextant_remoting::transport::TransportError;
use sextant_remoting::{LanguageCode, RemotingCommand};

use crate::broker::{Answer, Broker, Reply, header, lock, ok, reply, wall_ms};
use crate::stats::{TPS_WINDOWS, Totals, format_runtime, human_bytes, java_double};

/// `MQVersion.getVersionDesc(CURRENT_VERSION)`: the version Sextant speaks.
const VERSION_DESC: &str = "V5_3_3";

/// The most topics one GET_ALL_TOPIC_CONFIG page holds (`splitMetadataSize`).
const SPLIT_METADATA_SIZE: usize = 2000;

/// Connections whose heartbeat details are kept at most (one entry per open connection).
const MAX_CLIENTS: usize = 65_536;

fn system_error(e: impl std::fmt::Display) -> Reply {
    reply(response::SYSTEM_ERROR, e.to_string())
}

impl Broker {
    /// GET_BROKER_RUNTIME_INFO: RocketMQ's runtime keys with Sextant's values. Counts, offsets,
    /// TPS, times and the unflushed bytes are measured; what Sextant has no notion of is
    /// RocketMQ's own "nothing" — no thread-pool queues (every request is a task: sizes,
    /// capacities and head waits `0`), no dispatch lag (dispatch happens inside the put: `0`),
    /// no page-cache lock (`0`), no timer wheel (RocketMQ's values with the wheel off), no
    /// transient store pool (`Integer.MAX_VALUE`), no latency histogram (maxima `0`) — and the
    /// disk ratios are RocketMQ's "cannot tell" (`-1.0`): Sextant does not read file-system
    /// usage.
    pub(crate) fn runtime_info(&self, req: &RemotingCommand) -> Answer {
        let now = wall_ms();
        let totals = self.stats.totals();
        let history = self.stats.history();
        let (log_min, log_max) = self.store.log_offsets();
        let earliest = self
            .store
            .earliest_store_time()
            .map_err(system_error)?
            .unwrap_or(-1);
        let puts = totals.puts;
        let put_bytes = self.stats.put_bytes();
        let mut t: BTreeMap<String, String> = BTreeMap::new();
        let mut put = |k: &str, v: String| {
            t.insert(k.to_owned(), v);
        };
        // StoreStatsService and DefaultMessageStore.getRuntimeInfo.
        put("bootTimestamp", self.stats.boot.to_string());
        put("runtime", format_runtime(now - self.stats.boot));
        put("putMessageTimesTotal", puts.to_string());
        put(
            "putMessageFailedTimes",
            self.stats.put_failures().to_string(),
        );
        put("putMessageSizeTotal", put_bytes.to_string());
        put(
            "putMessageAverageSize",
            java_double(put_bytes as f64 / puts.max(1) as f64),
        );
        put("putMessageEntireTimeMax", "0".into());
        put("getMessageEntireTimeMax", "0".into());
        put("dispatchMaxBuffer", "0".into());
        put("putTps", history.tps_text(|t| t.puts));
        put("getFoundTps", history.tps_text(|t| t.gets_found));
        put("getMissTps", history.tps_text(|t| t.gets_missed));
        put("getTransferredTps", history.tps_text(|t| t.transferred));
        // Found and missed together, a window not yet full counting as 0 (`getGetTotalTps`).
        let total_tps = TPS_WINDOWS
            .iter()
            .map(|w| {
                let tps = |pick: fn(&Totals) -> u64| history.tps(*w, pick).unwrap_or(0.0);
                java_double(tps(|t| t.gets_found) + tps(|t| t.gets_missed))
            })
            .collect::<Vec<_>>()
            .join(" ");
        put("getTotalTps", total_tps);
        put("commitLogDiskRatio", "-1.0".into());
        put("consumeQueueDiskRatio", "-1.0".into());
        put("commitLogMinOffset", log_min.to_string());
        put("commitLogMaxOffset", log_max.to_string());
        // AdminBrokerProcessor.prepareRuntimeInfo. The schedule service runs on a master only.
        put(
            "brokerActive",
            (self.settings.role != BrokerRole::Slave).to_string(),
        );
        put("brokerVersionDesc", VERSION_DESC.into());
        put("brokerVersion", CURRENT_VERSION.to_string());
        put(
            "msgPutTotalYesterdayMorning",
            history.yesterday_morning.puts.to_string(),
        );
        put(
            "msgPutTotalTodayMorning",
            history.today_morning.puts.to_string(),
        );
        put("msgPutTotalTodayNow", puts.to_string());
        put(
            "msgGetTotalYesterdayMorning",
            history.yesterday_morning.transferred.to_string(),
        );
        put(
            "msgGetTotalTodayMorning",
            history.today_morning.transferred.to_string(),
        );
        put("msgGetTotalTodayNow", totals.transferred.to_string());
        put("dispatchBehindBytes", "0".into());
        put("pageCacheLockTimeMills", "0".into());
        put("earliestMessageTimeStamp", earliest.to_string());
        put("startAcceptSendRequestTimeStamp", "0".into());
        for k in ["timerReadBehind", "timerOffsetBehind", "timerCongestNum"] {
            put(k, "0".into());
        }
        put("timerEnqueueTps", "0.0".into());
        put("timerDequeueTps", "0.0".into());
        put("remainTransientStoreBufferNumbs", i32::MAX.to_string());
        put(
            "remainHowManyDataToFlush",
            human_bytes(log_max.saturating_sub(self.store.flushed())),
        );
        for pool in ["send", "pull", "litePull", "query", "ack"] {
            put(&format!("{pool}ThreadPoolQueueSize"), "0".into());
            put(&format!("{pool}ThreadPoolQueueCapacity"), "0".into());
            put(
                &format!("{pool}ThreadPoolQueueHeadWaitTimeMills"),
                "0".into(),
            );
        }
        put("EndTransactionQueueSize", "0".into());
        put("EndTransactionThreadPoolQueueCapacity", "0".into());
        #[derive(Serialize)]
        struct KvTable<'a> {
            table: &'a BTreeMap<String, String>,
        }
        Ok(ok(req).with_body(body::encode(&KvTable { table: &t })))
    }

    /// GET_ALL_TOPIC_CONFIG: the topic table, or the page of it a 5.x tool asks for; the
    /// response header says how many topics there are in all.
    pub(crate) fn all_topic_config(&self, req: &RemotingCommand) -> Answer {
        let h: GetAllTopicConfigRequestHeader = header(req)?;
        let (version, table) = {
            let t = lock(&self.topics);
            (*t.version(), t.all().clone())
        };
        let total = table.len();
        let paged = h.topic_seq.is_some() || h.max_topic_num.is_some() || h.data_version.is_some();
        let asked_version = h
            .data_version
            .as_deref()
            .filter(|v| !v.trim().is_empty())
            .and_then(|v| decode_data_version(v.as_bytes()).ok());
        let page = topic_page(
            total,
            paged.then(|| Page {
                topic_seq: h.topic_seq.unwrap_or(0),
                max_topic_num: h.max_topic_num,
                same_version: asked_version == Some(version),
            }),
        );
        let page: BTreeMap<_, _> = table
            .into_iter()
            .skip(page.start)
            .take(page.len())
            .collect();
        // The file's pretty JSON, compacted as fastjson writes it (keys stay sorted).
        let pretty = encode_topic_table(&version, &page);
        let body = serde_json::from_slice::<serde_json::Value>(&pretty)
            .and_then(|v| serde_json::to_vec(&v))
            .map_err(system_error)?;
        let ext = GetAllTopicConfigResponseHeader {
            total_topic_num: i32::try_from(total).unwrap_or(i32::MAX),
        }
        .to_ext();
        Ok(ok(req).with_ext(ext).with_body(body))
    }

    /// GET_TOPIC_STATS_INFO: per queue (read or write), the offsets and when the last message
    /// was stored.
    pub(crate) fn topic_stats(&self, req: &RemotingCommand) -> Answer {
        let h: GetTopicStatsInfoRequestHeader = header(req)?;
        let Some(config) = self.topic(&h.topic) else {
            return Err(reply(
                response::TOPIC_NOT_EXIST,
                format!("topic[{}] not exist", h.topic),
            ));
        };
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct TopicOffset {
            last_update_timestamp: i64,
            max_offset: u64,
            min_offset: u64,
        }
        let mut table = Vec::new();
        for qid in 0..config.read_queue_nums.max(config.write_queue_nums) {
            let (min, max) = self.store.offsets(&h.topic, qid);
            let last = match max.checked_sub(1) {
                Some(o) => self
                    .store
                    .store_time(&h.topic, qid, o)
                    .map_err(system_error)?
                    .unwrap_or(0),
                None => 0,
            };
            table.push((
                self.mq(&h.topic, qid),
                TopicOffset {
                    last_update_timestamp: last,
                    max_offset: max,
                    min_offset: min,
                },
            ));
        }
        // `topicPutTps`: Sextant keeps no per-topic rate.
        let mut out = b"{\"offsetTable\":".to_vec();
        encode_object_key_map(&mut out, table);
        out.extend_from_slice(b",\"topicPutTps\":0.0}");
        Ok(ok(req).with_body(out))
    }

    /// GET_CONSUME_STATS: the group's progress on each readable queue of the topics
    /// [`consume_stats_topics`] picks.
    pub(crate) fn consume_stats(&self, req: &RemotingCommand) -> Answer {
        let h: GetConsumeStatsRequestHeader = header(req)?;
        let group = h.consumer_group.as_str();
        let committed: Vec<String> = lock(&self.offsets)
            .offset_table
            .keys()
            .filter_map(|k| k.split_once('@'))
            .filter(|(_, g)| *g == group)
            .map(|(t, _)| t.to_owned())
            .collect();
        let subscriptions = lock(&self.groups)
            .group(group)
            .map(|g| g.subscriptions.clone());
        let list: Vec<&str> = h
            .topic_list
            .as_deref()
            .map(|l| l.split(';').filter(|t| !t.is_empty()).collect())
            .unwrap_or_default();
        let topics = consume_stats_topics(
            &list,
            h.topic.as_deref(),
            committed.iter().map(String::as_str),
            subscriptions.as_ref(),
            |t| self.topic(t).is_some(),
        );
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct OffsetWrapper {
            broker_offset: u64,
            consumer_offset: u64,
            last_timestamp: i64,
            pull_offset: u64,
        }
        let mut table = Vec::new();
        for topic in &topics {
            let Some(config) = self.topic(topic) else {
                continue;
            };
            for qid in 0..config.read_queue_nums {
                let (_, max) = self.store.offsets(topic, qid);
                let p = queue_progress(max, self.committed_offset(topic, group, qid));
                let last = match p.last_consumed {
                    Some(o) => self
                        .store
                        .store_time(topic, qid, o)
                        .map_err(system_error)?
                        .filter(|t| *t > 0)
                        .unwrap_or(0),
                    None => 0,
                };
                table.push((
                    self.mq(topic, qid),
                    OffsetWrapper {
                        broker_offset: p.broker_offset,
                        consumer_offset: p.consumer_offset,
                        last_timestamp: last,
                        pull_offset: p.pull_offset,
                    },
                ));
            }
        }
        // `consumeTps`: Sextant keeps no per-group rate.
        let mut out = b"{\"consumeTps\":0.0,\"offsetTable\":".to_vec();
        encode_object_key_map(&mut out, table);
        out.push(b'}');
        Ok(ok(req).with_body(out))
    }

    /// GET_CONSUMER_CONNECTION_LIST: the group's clients and what they subscribe.
    pub(crate) fn consumer_connections(&self, req: &RemotingCommand) -> Answer {
        let h: ConsumerGroupHeader = header(req)?;
        let Some(group) = lock(&self.groups).group(&h.consumer_group).cloned() else {
            return Err(reply(
                response::CONSUMER_NOT_ONLINE,
                format!("the consumer group[{}] not online", h.consumer_group),
            ));
        };
        let body = consumer_connection(&h.consumer_group, &group, &lock(&self.clients));
        Ok(ok(req).with_body(body::encode(&body)))
    }

    /// GET_CONSUMER_RUNNING_INFO: forwarded, with its fields and body, to the client's
    /// connection; the client's answer goes back as it is.
    pub(crate) async fn consumer_running_info(&self, req: &RemotingCommand) -> Answer {
        let h: GetConsumerRunningInfoRequestHeader = header(req)?;
        let (g, cid) = (&h.consumer_group, &h.client_id);
        let addr = lock(&self.groups).group(g).and_then(|group| {
            group
                .channels
                .iter()
                .find(|(_, c)| c.client_id == *cid)
                .and_then(|(a, _)| a.parse::<SocketAddr>().ok())
        });
        let peer = addr.and_then(|a| lock(&self.peers).get(&a).cloned());
        let Some(peer) = peer else {
            return Err(reply(
                response::SYSTEM_ERROR,
                format!("The Consumer <{g}> <{cid}> not online"),
            ));
        };
        let mut forward = RemotingCommand::request(request::GET_CONSUMER_RUNNING_INFO, 0);
        forward.ext_fields = req.ext_fields.clone();
        forward.body = req.body.clone();
        let timeout = Duration::from_millis(self.config.consumer_running_info_timeout_mills.max(1));
        match peer.invoke(forward, timeout).await {
            Ok(answer) => Ok(answer),
            Err(e @ TransportError::Timeout { .. }) => Err(reply(
                response::CONSUME_MSG_TIMEOUT,
                format!("consumer <{g}> <{cid}> Timeout: {e}"),
            )),
            Err(e) => Err(reply(
                response::SYSTEM_ERROR,
                format!("invoke consumer <{g}> <{cid}> Exception: {e}"),
            )),
        }
    }

    /// DELETE_TOPIC_IN_BROKER: the topic's config (a new data version), every group's offsets
    /// on it and its ConsumeQueues go; its messages stay in the CommitLog. The broker
    /// registers with the NameServers at once: a NameServer with
    /// `deleteTopicWithBrokerRegistration` drops the route then; by default it keeps it until
    /// DELETE_TOPIC_IN_NAMESRV, which `mqadmin deleteTopic` sends next.
    pub(crate) fn delete_topic(&self, req: &RemotingCommand) -> Answer {
        let h: DeleteTopicRequestHeader = header(req)?;
        let topic = h.topic.as_str();
        if topic.trim().is_empty() {
            return Err(reply(
                response::INVALID_PARAMETER,
                "The specified topic is blank.",
            ));
        }
        if system_topic(
            topic,
            &self.config.broker_cluster_name,
            &self.config.broker_name,
        ) {
            return Err(reply(
                response::INVALID_PARAMETER,
                format!("The topic[{topic}] is conflict with system topic."),
            ));
        }
        let removed = lock(&self.topics)
            .remove(topic, wall_ms())
            .map_err(system_error)?;
        {
            let mut offsets = lock(&self.offsets);
            let before = offsets.offset_table.len();
            offsets
                .offset_table
                .retain(|k, _| k.split_once('@').is_none_or(|(t, _)| t != topic));
            if offsets.offset_table.len() != before {
                self.offsets_dirty.store(true, Ordering::Release);
            }
        }
        if let Err(e) = self.persist_offsets() {
            tracing::error!(error = %e, "persisting consumer offsets failed");
        }
        self.store.delete_topic(topic).map_err(system_error)?;
        // Held pulls on the topic wake (their sender is gone) and read the new, empty queue.
        lock(&self.arrivals).remove(topic);
        tracing::info!(topic, existed = removed.is_some(), "topic deleted");
        self.register_now.notify_one();
        Ok(ok(req))
    }

    /// VIEW_MESSAGE_BY_ID: the record stored at the offset the message id names.
    pub(crate) fn view_message(&self, req: &RemotingCommand) -> Answer {
        let h: ViewMessageRequestHeader = header(req)?;
        let not_found = || {
            reply(
                response::SYSTEM_ERROR,
                format!("can not find message by the offset, {}", h.offset),
            )
        };
        let offset = u64::try_from(h.offset).map_err(|_| not_found())?;
        let record = self.store.read_record(offset).map_err(|_| not_found())?;
        // Only the start of a record: an offset inside one reads as garbage, not as a message.
        match MessageView::decode(&record) {
            Ok((m, _)) if m.physical_offset == h.offset => Ok(ok(req).with_body(record)),
            _ => Err(not_found()),
        }
    }

    fn mq(&self, topic: &str, queue_id: u32) -> MessageQueueJson {
        MessageQueueJson {
            broker_name: self.config.broker_name.clone(),
            queue_id,
            topic: topic.to_owned(),
        }
    }
}

/// What a connection's heartbeats tell beyond the model's group membership (RocketMQ's
/// `ClientChannelInfo` and the group-wide fields of `ConsumerGroupInfo`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ClientInfo {
    /// The client's language (from the heartbeat command).
    pub language: LanguageCode,
    /// The client's version ordinal.
    pub version: i32,
    /// Per consumer group of its last heartbeat.
    pub groups: BTreeMap<String, GroupInfo>,
}

/// One consumer group of a heartbeat.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct GroupInfo {
    /// Which heartbeat (the broker's count): the newest speaks for the group.
    pub seq: u64,
    /// `consumeType`.
    pub consume_type: String,
    /// `messageModel`.
    pub message_model: String,
    /// `consumeFromWhere`.
    pub consume_from_where: String,
    /// The subscriptions as the client sent them, by topic.
    pub subscriptions: BTreeMap<String, SubscriptionData>,
}

/// [`ClientInfo`] by connection, kept while the connection is open and it sends consumer
/// heartbeats; at most [`MAX_CLIENTS`].
#[derive(Debug, Default)]
pub(crate) struct Clients {
    by_addr: HashMap<SocketAddr, ClientInfo>,
    seq: u64,
}

impl Clients {
    /// A heartbeat arrived on `addr`, sent in a command of `language` and `version`.
    pub(crate) fn heartbeat(
        &mut self,
        addr: SocketAddr,
        language: LanguageCode,
        version: i32,
        hb: &HeartbeatData,
    ) {
        self.seq += 1;
        let groups: BTreeMap<String, GroupInfo> = hb
            .consumer_data_set
            .iter()
            .filter(|c| !c.group_name.is_empty())
            .map(|c| {
                let info = GroupInfo {
                    seq: self.seq,
                    consume_type: c.consume_type.clone(),
                    message_model: c.message_model.clone(),
                    consume_from_where: c.consume_from_where.clone(),
                    subscriptions: c
                        .subscription_data_set
                        .iter()
                        .map(|s| (s.topic.clone(), s.clone()))
                        .collect(),
                };
                (c.group_name.clone(), info)
            })
            .collect();
        if groups.is_empty() {
            self.by_addr.remove(&addr);
        } else if self.by_addr.contains_key(&addr) || self.by_addr.len() < MAX_CLIENTS {
            self.by_addr.insert(
                addr,
                ClientInfo {
                    language,
                    version,
                    groups,
                },
            );
        }
    }

    /// The connection closed.
    pub(crate) fn closed(&mut self, addr: &SocketAddr) {
        self.by_addr.remove(addr);
    }

    /// What `addr` told.
    pub(crate) fn get(&self, addr: &str) -> Option<&ClientInfo> {
        self.by_addr.get(&addr.parse().ok()?)
    }
}

/// One client of a GET_CONSUMER_CONNECTION_LIST answer (`Connection`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ConnectionJson {
    /// `ip:port` of its connection.
    pub client_addr: String,
    /// Its client id.
    pub client_id: String,
    /// Its language (`JAVA`, `CPP`, ...).
    pub language: &'static str,
    /// Its version ordinal.
    pub version: i32,
}

/// The GET_CONSUMER_CONNECTION_LIST body (`ConsumerConnection`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ConsumerConnectionBody {
    /// The group's clients.
    pub connection_set: Vec<ConnectionJson>,
    /// From the group's newest heartbeat (left out if none is known).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consume_from_where: Option<String>,
    /// See `consume_from_where`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consume_type: Option<String>,
    /// See `consume_from_where`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_model: Option<String>,
    /// The group's subscriptions by topic.
    pub subscription_table: BTreeMap<String, SubscriptionData>,
}

/// What GET_CONSUMER_CONNECTION_LIST says of `group` (named `name`): each channel with its
/// client's language and version; the consume type, message model and start of the newest
/// heartbeat any member sent (RocketMQ keeps the last one written); and the group's
/// subscriptions as the model holds them, each as its client sent it when that matches, else
/// built from the expression.
pub(crate) fn consumer_connection(
    name: &str,
    group: &ConsumerGroup,
    clients: &Clients,
) -> ConsumerConnectionBody {
    let connection_set = group
        .channels
        .iter()
        .map(|(addr, c)| {
            let info = clients.get(addr);
            ConnectionJson {
                client_addr: addr.clone(),
                client_id: c.client_id.clone(),
                language: info.map_or(LanguageCode::default(), |i| i.language).name(),
                version: info.map_or(0, |i| i.version),
            }
        })
        .collect();
    let newest = group
        .channels
        .keys()
        .filter_map(|a| clients.get(a)?.groups.get(name))
        .max_by_key(|g| g.seq);
    let subscription_table = group
        .subscriptions
        .iter()
        .map(|(topic, expression)| {
            let reported = newest
                .and_then(|g| g.subscriptions.get(topic))
                .filter(|s| s.sub_string == *expression);
            let data = reported
                .cloned()
                .unwrap_or_else(|| subscription_data(topic, expression));
            (topic.clone(), data)
        })
        .collect();
    ConsumerConnectionBody {
        connection_set,
        consume_from_where: newest.map(|g| g.consume_from_where.clone()),
        consume_type: newest.map(|g| g.consume_type.clone()),
        message_model: newest.map(|g| g.message_model.clone()),
        subscription_table,
    }
}

/// A tag subscription built from its expression (`FilterAPI.buildSubscriptionData`): `*` for
/// an empty one, else each trimmed tag of `a || b` with its Java hash.
pub(crate) fn subscription_data(topic: &str, expression: &str) -> SubscriptionData {
    let mut s = SubscriptionData {
        topic: topic.to_owned(),
        sub_string: expression.to_owned(),
        expression_type: "TAG".into(),
        ..SubscriptionData::default()
    };
    if expression.is_empty() || expression == "*" {
        s.sub_string = "*".into();
        return s;
    }
    for tag in expression
        .split("||")
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        s.tags_set.insert(tag.to_owned());
        s.code_set.insert(java_hash(tag));
    }
    s
}

/// The topics a GET_CONSUME_STATS answer covers (`getTopicsForCollectingConsumeStats`): those
/// of `topic_list` if given, as they are; else `topic`, or if it is blank every topic the group
/// has committed an offset on — keeping, when the group is online with subscriptions, only the
/// subscribed ones. Topics that do not `exist` (any more) are left out.
pub(crate) fn consume_stats_topics<'a>(
    topic_list: &[&str],
    topic: Option<&str>,
    committed: impl IntoIterator<Item = &'a str>,
    subscriptions: Option<&BTreeMap<String, String>>,
    exists: impl Fn(&str) -> bool,
) -> BTreeSet<String> {
    let picked: BTreeSet<String> = if !topic_list.is_empty() {
        topic_list.iter().map(|t| (*t).to_owned()).collect()
    } else {
        let asked: BTreeSet<String> = match topic.filter(|t| !t.trim().is_empty()) {
            Some(t) => BTreeSet::from([t.to_owned()]),
            None => committed.into_iter().map(str::to_owned).collect(),
        };
        match subscriptions.filter(|s| !s.is_empty()) {
            Some(subs) => asked.into_iter().filter(|t| subs.contains_key(t)).collect(),
            None => asked,
        }
    };
    picked.into_iter().filter(|t| exists(t)).collect()
}

/// A group's progress on one queue (`OffsetWrapper`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct QueueProgress {
    /// The queue's end.
    pub broker_offset: u64,
    /// The committed offset, 0 when there is none (RocketMQ floors its -1).
    pub consumer_offset: u64,
    /// Where the group pulls: the committed offset (Sextant keeps no pull offsets apart from
    /// it; RocketMQ's differ only for POP consumers).
    pub pull_offset: u64,
    /// The queue offset of the last consumed message, whose store time is `lastTimestamp`.
    pub last_consumed: Option<u64>,
}

/// A group's progress on a queue ending at `max` with `committed` (`getConsumeStats`).
pub(crate) fn queue_progress(max: u64, committed: Option<u64>) -> QueueProgress {
    let consumer_offset = committed.unwrap_or(0);
    QueueProgress {
        broker_offset: max,
        consumer_offset,
        pull_offset: consumer_offset,
        last_consumed: consumer_offset.checked_sub(1),
    }
}

/// Whether DELETE_TOPIC_IN_BROKER refuses `topic` as a system topic: the model's rule.
pub(crate) use sextant_model::broker::admit::system_topic;

/// A 5.x GET_ALL_TOPIC_CONFIG asking for a page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Page {
    /// Topics the asker holds already.
    pub topic_seq: i32,
    /// The most it takes in one answer.
    pub max_topic_num: Option<i32>,
    /// Whether the data version it holds is the broker's.
    pub same_version: bool,
}

/// Which topics (by index in name order, of `total`) a GET_ALL_TOPIC_CONFIG answers
/// (`TopicConfigManager.subTopicConfigTable`): all without a page; else from `topic_seq` — from
/// 0 when the asker's data version is not the broker's — at most `maxTopicNum` and
/// [`SPLIT_METADATA_SIZE`].
pub(crate) fn topic_page(total: usize, page: Option<Page>) -> Range<usize> {
    let Some(p) = page else {
        return 0..total;
    };
    let begin = if p.same_version {
        usize::try_from(p.topic_seq).unwrap_or(0)
    } else {
        0
    };
    let n = p
        .max_topic_num
        .map_or(SPLIT_METADATA_SIZE, |m| usize::try_from(m).unwrap_or(0))
        .min(SPLIT_METADATA_SIZE);
    let begin = begin.min(total);
    begin..begin.saturating_add(n).min(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sextant_model::broker::{ClientChannel, ConsumerGroups};
    use sextant_remoting::body::ConsumerData;

    fn subs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(t, e)| ((*t).to_owned(), (*e).to_owned()))
            .collect()
    }

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|t| (*t).to_owned()).collect()
    }

    #[test]
    fn consume_stats_cover_committed_or_asked_subscribed_existing_topics() {
        let committed = ["A", "B", "%RETRY%G", "GONE"];
        let exists = |t: &str| t != "GONE";
        // Offline group: every committed topic that still exists.
        assert_eq!(
            consume_stats_topics(&[], None, committed, None, exists),
            set(&["%RETRY%G", "A", "B"])
        );
        // A blank topic is no topic.
        assert_eq!(
            consume_stats_topics(&[], Some("  "), committed, None, exists),
            set(&["%RETRY%G", "A", "B"])
        );
        // Online with subscriptions: only the subscribed ones.
        let online = subs(&[("A", "*"), ("%RETRY%G", "*"), ("C", "x")]);
        assert_eq!(
            consume_stats_topics(&[], None, committed, Some(&online), exists),
            set(&["%RETRY%G", "A"])
        );
        // One topic asked: kept if subscribed (or the group has no subscriptions), even
        // without an offset; dropped if not subscribed or gone.
        assert_eq!(
            consume_stats_topics(&[], Some("C"), committed, Some(&online), exists),
            set(&["C"])
        );
        assert!(consume_stats_topics(&[], Some("B"), committed, Some(&online), exists).is_empty());
        assert_eq!(
            consume_stats_topics(&[], Some("B"), committed, Some(&subs(&[])), exists),
            set(&["B"])
        );
        assert!(consume_stats_topics(&[], Some("GONE"), committed, None, exists).is_empty());
        // A topic list: exactly those, no subscription check.
        assert_eq!(
            consume_stats_topics(
                &["B", "X", "GONE"],
                Some("A"),
                committed,
                Some(&online),
                exists
            ),
            set(&["B", "X"])
        );
    }

    #[test]
    fn progress_floors_a_missing_offset_and_names_the_last_consumed() {
        assert_eq!(
            queue_progress(10, Some(4)),
            QueueProgress {
                broker_offset: 10,
                consumer_offset: 4,
                pull_offset: 4,
                last_consumed: Some(3),
            }
        );
        let none = queue_progress(7, None);
        assert_eq!((none.consumer_offset, none.pull_offset), (0, 0));
        assert_eq!(none.last_consumed, None);
        assert_eq!(queue_progress(0, Some(0)).last_consumed, None);
    }

    #[test]
    fn system_topics_are_refused() {
        for t in [
            "TBW102",
            "SCHEDULE_TOPIC_XXXX",
            "SELF_TEST_TOPIC",
            "OFFSET_MOVED_EVENT",
            "BenchmarkTest",
            "RMQ_SYS_TRACE_TOPIC",
            "RMQ_SYS_ANYTHING",
            "rmq_sys_wheel_timer",
            "DefaultCluster",
            "broker-a",
            "DefaultCluster_REPLY_TOPIC",
        ] {
            assert!(system_topic(t, "DefaultCluster", "broker-a"), "{t}");
        }
        for t in [
            "TopicTest",
            "%RETRY%G",
            "%DLQ%G",
            "broker-b",
            "Other_REPLY_TOPIC",
            "tbw102",
        ] {
            assert!(!system_topic(t, "DefaultCluster", "broker-a"), "{t}");
        }
    }

    #[test]
    fn topic_pages() {
        assert_eq!(topic_page(5, None), 0..5);
        let page = |seq, max, same| {
            Some(Page {
                topic_seq: seq,
                max_topic_num: max,
                same_version: same,
            })
        };
        assert_eq!(topic_page(5, page(0, Some(2), false)), 0..2);
        assert_eq!(topic_page(5, page(2, Some(2), true)), 2..4);
        assert_eq!(topic_page(5, page(4, Some(2), true)), 4..5);
        assert_eq!(topic_page(5, page(5, Some(2), true)), 5..5);
        // A changed data version starts again from the first topic.
        assert_eq!(topic_page(5, page(4, Some(2), false)), 0..2);
        // At most 2000 whatever the asker takes; nothing for a page size of 0 or less.
        assert_eq!(topic_page(5000, page(0, None, false)), 0..2000);
        assert_eq!(topic_page(5000, page(0, Some(100_000), false)), 0..2000);
        assert_eq!(topic_page(5, page(0, Some(0), false)), 0..0);
        assert_eq!(topic_page(5, page(-3, Some(-1), true)), 0..0);
    }

    #[test]
    fn subscriptions_built_from_expressions() {
        let all = subscription_data("T", "");
        assert_eq!((all.sub_string.as_str(), all.tags_set.len()), ("*", 0));
        assert_eq!(subscription_data("T", "*").sub_string, "*");
        let tags = subscription_data("T", "TagA || TagB||  ");
        assert_eq!(tags.sub_string, "TagA || TagB||  ");
        assert_eq!(tags.tags_set, set(&["TagA", "TagB"]));
        assert_eq!(
            tags.code_set,
            BTreeSet::from([java_hash("TagA"), java_hash("TagB")])
        );
        assert_eq!(tags.expression_type, "TAG");
    }

    fn heartbeat(client: &str, group: &str, consume_type: &str, sub: &str) -> HeartbeatData {
        HeartbeatData {
            client_id: client.into(),
            consumer_data_set: vec![ConsumerData {
                consume_from_where: "CONSUME_FROM_FIRST_OFFSET".into(),
                consume_type: consume_type.into(),
                group_name: group.into(),
                message_model: "CLUSTERING".into(),
                subscription_data_set: vec![SubscriptionData {
                    sub_version: 42,
                    ..subscription_data("T", sub)
                }],
                unit_mode: false,
            }],
            ..HeartbeatData::default()
        }
    }

    #[test]
    fn a_connection_list_takes_the_newest_heartbeat_and_the_models_subscriptions() {
        let a: SocketAddr = "10.0.0.1:1000".parse().unwrap();
        let b: SocketAddr = "10.0.0.2:2000".parse().unwrap();
        let mut clients = Clients::default();
        clients.heartbeat(
            a,
            LanguageCode::JAVA,
            479,
            &heartbeat("ca", "G", "CONSUME_ACTIVELY", "x"),
        );
        clients.heartbeat(
            b,
            LanguageCode::CPP,
            400,
            &heartbeat("cb", "G", "CONSUME_PASSIVELY", "y"),
        );
        let mut groups = ConsumerGroups::new(1_000);
        groups.register("G", &a.to_string(), "ca", subs(&[("T", "x")]), 0);
        groups.register("G", &b.to_string(), "cb", subs(&[("T", "y")]), 0);
        let g = groups.group("G").unwrap().clone();
        let body = consumer_connection("G", &g, &clients);
        assert_eq!(
            body.connection_set,
            vec![
                ConnectionJson {
                    client_addr: "10.0.0.1:1000".into(),
                    client_id: "ca".into(),
                    language: "JAVA",
                    version: 479,
                },
                ConnectionJson {
                    client_addr: "10.0.0.2:2000".into(),
                    client_id: "cb".into(),
                    language: "CPP",
                    version: 400,
                },
            ]
        );
        // b's heartbeat is the newest: its fields and its subscription, as sent.
        assert_eq!(body.consume_type.as_deref(), Some("CONSUME_PASSIVELY"));
        assert_eq!(
            body.consume_from_where.as_deref(),
            Some("CONSUME_FROM_FIRST_OFFSET")
        );
        assert_eq!(body.subscription_table["T"].sub_version, 42);
        assert_eq!(body.subscription_table["T"].sub_string, "y");
        // b's connection closes, the model keeps the last subscription it saw ("y"); a's
        // heartbeat said "x": the subscription is built from the model's expression.
        clients.closed(&b);
        let mut g2 = g.clone();
        g2.channels.remove(&b.to_string());
        let body = consumer_connection("G", &g2, &clients);
        assert_eq!(body.consume_type.as_deref(), Some("CONSUME_ACTIVELY"));
        assert_eq!(body.subscription_table["T"], subscription_data("T", "y"));
        // A channel whose details are unknown: Java, version 0, and no group-wide fields.
        let mut g3 = ConsumerGroup::default();
        g3.channels.insert(
            "10.0.0.3:3000".into(),
            ClientChannel {
                client_id: "cc".into(),
                last_update: 0,
            },
        );
        let body = consumer_connection("G", &g3, &Clients::default());
        assert_eq!(body.connection_set[0].language, "JAVA");
        assert_eq!(body.consume_type, None);
        assert_eq!(
            String::from_utf8(body::encode(&body)).unwrap(),
            r#"{"connectionSet":[{"clientAddr":"10.0.0.3:3000","clientId":"cc","language":"JAVA","version":0}],"subscriptionTable":{}}"#
        );
    }

    #[test]
    fn client_details_are_dropped_with_the_connection_or_their_groups() {
        let a: SocketAddr = "10.0.0.1:1000".parse().unwrap();
        let mut clients = Clients::default();
        clients.heartbeat(
            a,
            LanguageCode::GO,
            1,
            &heartbeat("ca", "G", "CONSUME_PASSIVELY", "*"),
        );
        assert_eq!(
            clients.get("10.0.0.1:1000").map(|c| c.language),
            Some(LanguageCode::GO)
        );
        assert_eq!(clients.get("not an address"), None);
        // A heartbeat without consumer groups (a producer only) forgets the details.
        clients.heartbeat(a, LanguageCode::GO, 1, &HeartbeatData::default());
        assert_eq!(clients.get("10.0.0.1:1000"), None);
        clients.heartbeat(
            a,
            LanguageCode::GO,
            1,
            &heartbeat("ca", "G", "CONSUME_PASSIVELY", "*"),
        );
        clients.closed(&a);
        assert_eq!(clients.get("10.0.0.1:1000"), None);
    }
}
