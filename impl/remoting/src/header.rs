//! Typed custom headers of the commands Sextant's NameServer, broker and clients use
//! (protocol.md §2.3). Field names are the extFields keys Java writes.

use crate::ext::header;

header! {
    /// REGISTER_BROKER request.
    RegisterBrokerRequestHeader {
        /// The broker group.
        broker_name: String = "brokerName",
        /// `ip:port` of the broker.
        broker_addr: String = "brokerAddr",
        /// The cluster.
        cluster_name: String = "clusterName",
        /// `ip:haPort`.
        ha_server_addr: String = "haServerAddr",
        /// 0 = master.
        broker_id: i64 = "brokerId",
    } defaulted {
        /// The body is zlib-compressed (unreliable in 5.x: try JSON first).
        compressed: bool = "compressed",
        /// CRC32 of the body & 0x7FFFFFFF; 0 = not checked.
        body_crc32: i32 = "bodyCrc32",
    } optional {
        /// Per-broker expiry (5.x).
        heartbeat_timeout_millis: i64 = "heartbeatTimeoutMillis",
        /// Slave acting master (5.x).
        enable_acting_master: bool = "enableActingMaster",
    }
}

header! {
    /// REGISTER_BROKER response.
    RegisterBrokerResponseHeader {} defaulted {} optional {
        /// The master's HA address (answered to a slave).
        ha_server_addr: String = "haServerAddr",
        /// The master's address (answered to a slave).
        master_addr: String = "masterAddr",
    }
}

header! {
    /// UNREGISTER_BROKER request.
    UnregisterBrokerRequestHeader {
        /// The broker group.
        broker_name: String = "brokerName",
        /// Its address.
        broker_addr: String = "brokerAddr",
        /// The cluster.
        cluster_name: String = "clusterName",
        /// Its id.
        broker_id: i64 = "brokerId",
    } defaulted {} optional {}
}

header! {
    /// QUERY_DATA_VERSION request (body: the broker's DataVersion).
    QueryDataVersionRequestHeader {
        /// The broker group.
        broker_name: String = "brokerName",
        /// Its address.
        broker_addr: String = "brokerAddr",
        /// The cluster.
        cluster_name: String = "clusterName",
        /// Its id.
        broker_id: i64 = "brokerId",
    } defaulted {} optional {}
}

header! {
    /// QUERY_DATA_VERSION response.
    QueryDataVersionResponseHeader {
        /// Whether the NameServer's view differs from the broker's.
        changed: bool = "changed",
    } defaulted {} optional {}
}

header! {
    /// GET_ROUTEINFO_BY_TOPIC request.
    GetRouteInfoRequestHeader {
        /// The topic.
        topic: String = "topic",
    } defaulted {} optional {
        /// Ask for quoted map keys whatever the version.
        accept_standard_json_only: bool = "acceptStandardJsonOnly",
    }
}

header! {
    /// WIPE_WRITE_PERM_OF_BROKER and ADD_WRITE_PERM_OF_BROKER request.
    BrokerPermRequestHeader {
        /// The broker group.
        broker_name: String = "brokerName",
    } defaulted {} optional {}
}

header! {
    /// WIPE_WRITE_PERM_OF_BROKER response.
    WipeWritePermResponseHeader {
        /// Topics whose write bit was cleared.
        wipe_topic_count: i32 = "wipeTopicCount",
    } defaulted {} optional {}
}

header! {
    /// ADD_WRITE_PERM_OF_BROKER response.
    AddWritePermResponseHeader {
        /// Topics whose write bit was set.
        add_topic_count: i32 = "addTopicCount",
    } defaulted {} optional {}
}

header! {
    /// DELETE_TOPIC_IN_NAMESRV request; also DELETE_TOPIC_IN_BROKER (topic only).
    DeleteTopicRequestHeader {
        /// The topic.
        topic: String = "topic",
    } defaulted {} optional {
        /// Only on this cluster's brokers (5.x); Sextant deletes the topic's route.
        cluster_name: String = "clusterName",
    }
}

header! {
    /// SEND_MESSAGE (v1, long names) and the decoded form of SEND_MESSAGE_V2.
    SendMessageRequestHeader {
        /// The producer group.
        producer_group: String = "producerGroup",
        /// The topic.
        topic: String = "topic",
        /// The topic new topics are created from (`TBW102`).
        default_topic: String = "defaultTopic",
        /// Queues of an auto-created topic.
        default_topic_queue_nums: i32 = "defaultTopicQueueNums",
        /// The queue.
        queue_id: i32 = "queueId",
        /// `MessageSysFlag` bits.
        sys_flag: i32 = "sysFlag",
        /// When the producer created the message (ms).
        born_timestamp: i64 = "bornTimestamp",
        /// The user flag.
        flag: i32 = "flag",
    } defaulted {
        /// Unit mode.
        unit_mode: bool = "unitMode",
        /// A batch (SEND_BATCH_MESSAGE).
        batch: bool = "batch",
    } optional {
        /// The properties string (`name\x01value\x02...`).
        properties: String = "properties",
        /// Times consumed before (retry topics).
        reconsume_times: i32 = "reconsumeTimes",
        /// Retries before the DLQ.
        max_reconsume_times: i32 = "maxReconsumeTimes",
    }
}

header! {
    /// SEND_MESSAGE_V2 and SEND_BATCH_MESSAGE: the same fields under one-letter keys.
    SendMessageRequestHeaderV2 {
        /// producerGroup.
        a: String = "a",
        /// topic.
        b: String = "b",
        /// defaultTopic.
        c: String = "c",
        /// defaultTopicQueueNums.
        d: i32 = "d",
        /// queueId.
        e: i32 = "e",
        /// sysFlag.
        f: i32 = "f",
        /// bornTimestamp.
        g: i64 = "g",
        /// flag.
        h: i32 = "h",
    } defaulted {} optional {
        /// properties.
        i: String = "i",
        /// reconsumeTimes.
        j: i32 = "j",
        /// unitMode.
        k: bool = "k",
        /// maxReconsumeTimes.
        l: i32 = "l",
        /// batch.
        m: bool = "m",
        /// brokerName.
        n: String = "n",
    }
}

impl SendMessageRequestHeaderV2 {
    /// A send of one message to `topic` queue `queue_id` as a Java producer of `producer_group`
    /// writes it (default topic TBW102 with 4 queues, no flags, born now is left 0); set the
    /// other fields with struct update syntax.
    pub fn new(producer_group: &str, topic: &str, queue_id: i32) -> Self {
        SendMessageRequestHeaderV2 {
            a: producer_group.into(),
            b: topic.into(),
            c: "TBW102".into(),
            d: 4,
            e: queue_id,
            f: 0,
            g: 0,
            h: 0,
            i: None,
            j: Some(0),
            k: Some(false),
            l: None,
            m: Some(false),
            n: None,
        }
    }
}

impl PullMessageRequestHeader {
    /// A pull of up to `max_msg_nums` messages from `queue_offset`, without suspend, commit or
    /// subscription flags; set the other fields with struct update syntax.
    pub fn new(
        consumer_group: &str,
        topic: &str,
        queue_id: i32,
        queue_offset: i64,
        max_msg_nums: i32,
    ) -> Self {
        PullMessageRequestHeader {
            consumer_group: consumer_group.into(),
            topic: topic.into(),
            queue_id,
            queue_offset,
            max_msg_nums,
            sys_flag: 0,
            commit_offset: 0,
            suspend_timeout_millis: 0,
            sub_version: 0,
            subscription: None,
            expression_type: None,
            max_msg_bytes: None,
        }
    }
}

impl From<SendMessageRequestHeaderV2> for SendMessageRequestHeader {
    fn from(v2: SendMessageRequestHeaderV2) -> Self {
        SendMessageRequestHeader {
            producer_group: v2.a,
            topic: v2.b,
            default_topic: v2.c,
            default_topic_queue_nums: v2.d,
            queue_id: v2.e,
            sys_flag: v2.f,
            born_timestamp: v2.g,
            flag: v2.h,
            unit_mode: v2.k.unwrap_or(false),
            batch: v2.m.unwrap_or(false),
            properties: v2.i,
            reconsume_times: v2.j,
            max_reconsume_times: v2.l,
        }
    }
}

impl From<SendMessageRequestHeader> for SendMessageRequestHeaderV2 {
    fn from(v1: SendMessageRequestHeader) -> Self {
        SendMessageRequestHeaderV2 {
            a: v1.producer_group,
            b: v1.topic,
            c: v1.default_topic,
            d: v1.default_topic_queue_nums,
            e: v1.queue_id,
            f: v1.sys_flag,
            g: v1.born_timestamp,
            h: v1.flag,
            i: v1.properties,
            j: v1.reconsume_times,
            k: Some(v1.unit_mode),
            l: v1.max_reconsume_times,
            m: Some(v1.batch),
            n: None,
        }
    }
}

header! {
    /// The send response.
    SendMessageResponseHeader {
        /// The offset message id (store host + commit-log offset, hex).
        msg_id: String = "msgId",
        /// The queue written.
        queue_id: i32 = "queueId",
        /// The message's offset in that queue.
        queue_offset: i64 = "queueOffset",
    } defaulted {} optional {
        /// The UNIQ_KEY.
        transaction_id: String = "transactionId",
        /// Batch unique id.
        batch_uniq_id: String = "batchUniqId",
        /// The broker's region (the Java client reads it unconditionally).
        msg_region: String = "MSG_REGION",
        /// Whether tracing is on (likewise).
        trace_on: String = "TRACE_ON",
    }
}

header! {
    /// PULL_MESSAGE request.
    PullMessageRequestHeader {
        /// The consumer group.
        consumer_group: String = "consumerGroup",
        /// The topic.
        topic: String = "topic",
        /// The queue.
        queue_id: i32 = "queueId",
        /// The first offset wanted.
        queue_offset: i64 = "queueOffset",
        /// At most this many messages.
        max_msg_nums: i32 = "maxMsgNums",
        /// `PullSysFlag` bits.
        sys_flag: i32 = "sysFlag",
        /// The offset to commit on the way (COMMIT_OFFSET flag).
        commit_offset: i64 = "commitOffset",
        /// Long-polling suspend time.
        suspend_timeout_millis: i64 = "suspendTimeoutMillis",
        /// The subscription's version.
        sub_version: i64 = "subVersion",
    } defaulted {} optional {
        /// The subscription expression.
        subscription: String = "subscription",
        /// `TAG` or `SQL92`.
        expression_type: String = "expressionType",
        /// At most this many bytes.
        max_msg_bytes: i32 = "maxMsgBytes",
    }
}

header! {
    /// PULL_MESSAGE response.
    PullMessageResponseHeader {
        /// Which broker id to pull from next (0 master, else a slave).
        suggest_which_broker_id: i64 = "suggestWhichBrokerId",
        /// The offset to pull from next.
        next_begin_offset: i64 = "nextBeginOffset",
        /// The queue's min offset.
        min_offset: i64 = "minOffset",
        /// The queue's max offset.
        max_offset: i64 = "maxOffset",
    } defaulted {} optional {
        /// Offset delta (static topics).
        offset_delta: i64 = "offsetDelta",
        /// The topic's sys flag.
        topic_sys_flag: i32 = "topicSysFlag",
        /// The group's sys flag.
        group_sys_flag: i32 = "groupSysFlag",
        /// Why the pull is forbidden.
        forbidden_type: i32 = "forbiddenType",
    }
}

header! {
    /// UNREGISTER_CLIENT request.
    UnregisterClientRequestHeader {
        /// The client id.
        client_id: String = "clientID",
    } defaulted {} optional {
        /// Its producer group.
        producer_group: String = "producerGroup",
        /// Its consumer group.
        consumer_group: String = "consumerGroup",
    }
}

header! {
    /// GET_CONSUMER_LIST_BY_GROUP request; also NOTIFY_CONSUMER_IDS_CHANGED and
    /// GET_CONSUMER_CONNECTION_LIST.
    ConsumerGroupHeader {
        /// The consumer group.
        consumer_group: String = "consumerGroup",
    } defaulted {} optional {}
}

header! {
    /// DELETE_SUBSCRIPTIONGROUP request.
    DeleteSubscriptionGroupRequestHeader {
        /// The group.
        group_name: String = "groupName",
    } defaulted {
        /// Also delete the group's consumer offsets.
        clean_offset: bool = "cleanOffset",
    } optional {}
}

header! {
    /// QUERY_CONSUMER_OFFSET request.
    QueryConsumerOffsetRequestHeader {
        /// The group.
        consumer_group: String = "consumerGroup",
        /// The topic.
        topic: String = "topic",
        /// The queue.
        queue_id: i32 = "queueId",
    } defaulted {} optional {
        /// Answer 0 rather than QUERY_NOT_FOUND.
        set_zero_if_not_found: bool = "setZeroIfNotFound",
    }
}

header! {
    /// UPDATE_CONSUMER_OFFSET request.
    UpdateConsumerOffsetRequestHeader {
        /// The group.
        consumer_group: String = "consumerGroup",
        /// The topic.
        topic: String = "topic",
        /// The queue.
        queue_id: i32 = "queueId",
        /// The offset to commit.
        commit_offset: i64 = "commitOffset",
    } defaulted {} optional {}
}

header! {
    /// GET_MAX_OFFSET request.
    GetMaxOffsetRequestHeader {
        /// The topic.
        topic: String = "topic",
        /// The queue.
        queue_id: i32 = "queueId",
    } defaulted {} optional {
        /// Committed (dispatched) offset only; default true.
        committed: bool = "committed",
    }
}

header! {
    /// GET_MIN_OFFSET request.
    GetMinOffsetRequestHeader {
        /// The topic.
        topic: String = "topic",
        /// The queue.
        queue_id: i32 = "queueId",
    } defaulted {} optional {}
}

header! {
    /// SEARCH_OFFSET_BY_TIMESTAMP request.
    SearchOffsetRequestHeader {
        /// The topic.
        topic: String = "topic",
        /// The queue.
        queue_id: i32 = "queueId",
        /// The time (ms).
        timestamp: i64 = "timestamp",
    } defaulted {} optional {
        /// `lower` or `upper` (5.x).
        boundary_type: String = "boundaryType",
    }
}

header! {
    /// Responses carrying one offset (QUERY_CONSUMER_OFFSET, GET_MAX/MIN_OFFSET, SEARCH_OFFSET).
    OffsetResponseHeader {
        /// The offset.
        offset: i64 = "offset",
    } defaulted {} optional {}
}

header! {
    /// UPDATE_AND_CREATE_TOPIC request.
    CreateTopicRequestHeader {
        /// The topic.
        topic: String = "topic",
        /// The default topic (`TBW102`).
        default_topic: String = "defaultTopic",
        /// Read queues.
        read_queue_nums: i32 = "readQueueNums",
        /// Write queues.
        write_queue_nums: i32 = "writeQueueNums",
        /// Permission bits.
        perm: i32 = "perm",
        /// `SINGLE_TAG` or `MULTI_TAG`.
        topic_filter_type: String = "topicFilterType",
    } defaulted {
        /// Ordered topic.
        order: bool = "order",
        /// Topic sys flag.
        topic_sys_flag: i32 = "topicSysFlag",
    } optional {
        /// Attributes (`+message.type=NORMAL`).
        attributes: String = "attributes",
        /// Force the update.
        force: bool = "force",
    }
}

header! {
    /// CONSUMER_SEND_MSG_BACK request.
    ConsumerSendMsgBackRequestHeader {
        /// The commit-log (physical) offset of the message.
        offset: i64 = "offset",
        /// The consumer group.
        group: String = "group",
        /// Delay level; 0 = broker decides, < 0 = straight to the DLQ.
        delay_level: i32 = "delayLevel",
    } defaulted {} optional {
        /// The original message id.
        origin_msg_id: String = "originMsgId",
        /// The original topic.
        origin_topic: String = "originTopic",
        /// Unit mode.
        unit_mode: bool = "unitMode",
        /// Retries before the DLQ.
        max_reconsume_times: i32 = "maxReconsumeTimes",
    }
}

header! {
    /// GET_ALL_TOPIC_CONFIG request. 5.x tools page through the table (`topicSeq`, `maxTopicNum`,
    /// `dataVersion`); older ones send none of the fields and get the whole table.
    GetAllTopicConfigRequestHeader {} defaulted {} optional {
        /// How many topics, in name order, the asker already holds.
        topic_seq: i32 = "topicSeq",
        /// The `DataVersion` JSON of the pages it holds (empty on the first request).
        data_version: String = "dataVersion",
        /// The most topics one answer may hold.
        max_topic_num: i32 = "maxTopicNum",
    }
}

header! {
    /// GET_ALL_TOPIC_CONFIG response.
    GetAllTopicConfigResponseHeader {
        /// How many topics the broker has in all.
        total_topic_num: i32 = "totalTopicNum",
    } defaulted {} optional {}
}

header! {
    /// GET_TOPIC_STATS_INFO request.
    GetTopicStatsInfoRequestHeader {
        /// The topic.
        topic: String = "topic",
    } defaulted {} optional {}
}

header! {
    /// GET_CONSUME_STATS request.
    GetConsumeStatsRequestHeader {
        /// The consumer group.
        consumer_group: String = "consumerGroup",
    } defaulted {} optional {
        /// One topic (blank: every topic the group has an offset on).
        topic: String = "topic",
        /// Topics separated by `;` (5.x): exactly these, without the subscription check.
        topic_list: String = "topicList",
    }
}

header! {
    /// GET_CONSUMER_RUNNING_INFO request, which a broker forwards to the client.
    GetConsumerRunningInfoRequestHeader {
        /// The consumer group.
        consumer_group: String = "consumerGroup",
        /// The client asked.
        client_id: String = "clientId",
    } defaulted {
        /// Include the client's thread stacks.
        jstack_enable: bool = "jstackEnable",
    } optional {}
}

header! {
    /// VIEW_MESSAGE_BY_ID request.
    ViewMessageRequestHeader {
        /// The CommitLog offset of the record (from the offset message id).
        offset: i64 = "offset",
    } defaulted {} optional {
        /// The topic (5.x, for static topics).
        topic: String = "topic",
    }
}

header! {
    /// QUERY_MESSAGE request (`queryMsgByKey`, `queryMsgByUniqueKey`). The extFields key
    /// `_UNIQUE_KEY_QUERY` (`"true"`) marks a query by unique key; it is not a header field.
    QueryMessageRequestHeader {
        /// The topic.
        topic: String = "topic",
        /// A key (`KEYS` token) or a unique key (`UNIQ_KEY`).
        key: String = "key",
        /// Messages wanted at most.
        max_num: i32 = "maxNum",
        /// Earliest store time (ms).
        begin_timestamp: i64 = "beginTimestamp",
        /// Latest store time (ms).
        end_timestamp: i64 = "endTimestamp",
    } defaulted {} optional {}
}

header! {
    /// QUERY_MESSAGE response, also with QUERY_NOT_FOUND.
    QueryMessageResponseHeader {
        /// The newest index file's end time.
        index_last_update_timestamp: i64 = "indexLastUpdateTimestamp",
        /// The newest index file's end offset (Java's spelling: lowercase `o`).
        index_last_update_phyoffset: i64 = "indexLastUpdatePhyoffset",
    } defaulted {} optional {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::ExtFields;
    use crate::ext::CommandHeader;

    fn ext(pairs: &[(&str, &str)]) -> ExtFields {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn send_v2_golden_ext_fields_and_v1_conversion() {
        // What a Java 5.x producer sends for `new Message("TopicTest", "TagA", body)`.
        let wire = ext(&[
            ("a", "pg"),
            ("b", "TopicTest"),
            ("c", "TBW102"),
            ("d", "4"),
            ("e", "3"),
            ("f", "0"),
            ("g", "1700000000000"),
            ("h", "0"),
            ("i", "TAGS\u{1}TagA\u{2}WAIT\u{1}true\u{2}"),
            ("j", "0"),
            ("k", "false"),
            ("m", "false"),
            ("n", "broker-a"),
            ("bname", "broker-a"),
        ]);
        let v2 = SendMessageRequestHeaderV2::from_ext(&wire).unwrap();
        assert_eq!(v2.e, 3);
        assert_eq!(v2.g, 1_700_000_000_000);
        let mut back = wire.clone();
        back.remove("bname");
        assert_eq!(v2.to_ext(), back);
        let v1 = SendMessageRequestHeader::from(v2);
        assert_eq!(v1.topic, "TopicTest");
        assert_eq!(v1.queue_id, 3);
        assert!(!v1.batch);
        let v1_wire = v1.to_ext();
        assert_eq!(&v1_wire["producerGroup"], "pg");
        assert_eq!(&v1_wire["unitMode"], "false");
        assert_eq!(SendMessageRequestHeader::from_ext(&v1_wire).unwrap(), v1);
    }

    #[test]
    fn lenient_values_and_missing_fields() {
        // C++ client style: "1" for a boolean; a missing required field is an error naming it.
        let h = PullMessageRequestHeader::from_ext(&ext(&[
            ("consumerGroup", "g"),
            ("topic", "T"),
            ("queueId", "0"),
            ("queueOffset", "5"),
            ("maxMsgNums", "32"),
            ("sysFlag", "2"),
            ("commitOffset", "0"),
            ("suspendTimeoutMillis", "15000"),
            ("subVersion", "0"),
        ]))
        .unwrap();
        assert_eq!(h.queue_offset, 5);
        assert_eq!(h.subscription, None);
        let err = GetRouteInfoRequestHeader::from_ext(&ExtFields::new()).unwrap_err();
        assert_eq!(err.to_string(), "the custom field topic is null");
        let q = QueryConsumerOffsetRequestHeader::from_ext(&ext(&[
            ("consumerGroup", "g"),
            ("topic", "T"),
            ("queueId", "1"),
            ("setZeroIfNotFound", "1"),
        ]))
        .unwrap();
        assert_eq!(q.set_zero_if_not_found, Some(true));
        // Java primitives are always written.
        let reg = RegisterBrokerRequestHeader::default().to_ext();
        assert_eq!(&reg["compressed"], "false");
        assert_eq!(&reg["bodyCrc32"], "0");
        assert!(!reg.contains_key("heartbeatTimeoutMillis"));
    }

    #[test]
    fn admin_headers_as_mqadmin_writes_them() {
        // `DefaultMQAdminExt.examineConsumeStats` and `getConsumerRunningInfo`, 5.x.
        let stats = GetConsumeStatsRequestHeader::from_ext(&ext(&[
            ("consumerGroup", "cg"),
            ("topic", "T"),
        ]))
        .unwrap();
        assert_eq!(stats.topic.as_deref(), Some("T"));
        assert_eq!(stats.topic_list, None);
        let running = GetConsumerRunningInfoRequestHeader {
            consumer_group: "cg".into(),
            client_id: "10.0.0.5@1".into(),
            jstack_enable: false,
        };
        assert_eq!(
            running.to_ext(),
            ext(&[
                ("consumerGroup", "cg"),
                ("clientId", "10.0.0.5@1"),
                ("jstackEnable", "false"),
            ])
        );
        // A 5.x paged GET_ALL_TOPIC_CONFIG, and the old form without fields.
        let paged = GetAllTopicConfigRequestHeader::from_ext(&ext(&[
            ("topicSeq", "0"),
            ("maxTopicNum", "2000"),
            ("dataVersion", ""),
        ]))
        .unwrap();
        assert_eq!(
            (
                paged.topic_seq,
                paged.max_topic_num,
                paged.data_version.as_deref()
            ),
            (Some(0), Some(2000), Some(""))
        );
        assert_eq!(
            GetAllTopicConfigRequestHeader::from_ext(&ExtFields::new()).unwrap(),
            GetAllTopicConfigRequestHeader::default()
        );
        // `MQAdminImpl.queryMessage`, 5.x: every field written, the unique-key flag beside them.
        let query = QueryMessageRequestHeader::from_ext(&ext(&[
            ("topic", "T"),
            ("key", "order-1"),
            ("maxNum", "32"),
            ("beginTimestamp", "0"),
            ("endTimestamp", "9223372036854775807"),
            ("_UNIQUE_KEY_QUERY", "false"),
        ]))
        .unwrap();
        assert_eq!(
            (query.key.as_str(), query.max_num, query.end_timestamp),
            ("order-1", 32, i64::MAX)
        );
        assert!(!query.to_ext().contains_key("_UNIQUE_KEY_QUERY"));
        let err = QueryMessageRequestHeader::from_ext(&ext(&[("topic", "T")])).unwrap_err();
        assert!(err.to_string().contains("key"), "{err}");
        let answer = QueryMessageResponseHeader {
            index_last_update_timestamp: 1_700_000_000_000,
            index_last_update_phyoffset: 4096,
        };
        assert_eq!(
            answer.to_ext(),
            ext(&[
                ("indexLastUpdateTimestamp", "1700000000000"),
                ("indexLastUpdatePhyoffset", "4096"),
            ])
        );
        let err = ViewMessageRequestHeader::from_ext(&ext(&[("offset", "x")])).unwrap_err();
        assert!(err.to_string().contains("offset"), "{err}");
        assert_eq!(
            ViewMessageRequestHeader::from_ext(&ext(&[("offset", "1234")]))
                .unwrap()
                .offset,
            1234
        );
    }
}
