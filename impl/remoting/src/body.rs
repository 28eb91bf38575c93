//! JSON bodies other than routes (protocol.md §3.3-3.6): the register-broker body (plain and
//! zlib-compressed), heartbeat data, cluster info, lock/unlock batch bodies, the consumer list
//! and the topic list. Decoding is fastjson-lenient (enum names or ordinals, missing fields,
//! numbers as strings, unquoted integer keys); encoding writes fastjson's sorted fields.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;

use serde::{Deserialize, Serialize};
use sextant_model::namesrv::{ClusterInfo, DataVersion, TopicConfig};
use sextant_model::route::Perm;

use crate::Error;
use crate::command::{Reader, write_json_str};
use crate::route::{BrokerJson, KeyStyle, encode_broker_data, lenient, parse_lenient};

/// Largest inflated register body accepted (a compressed body is inflated up to this, no further).
pub const MAX_INFLATED: u64 = 64 * 1024 * 1024;

fn json<'a, T: Deserialize<'a>>(what: &str, text: &'a str) -> Result<T, Error> {
    serde_json::from_str(text).map_err(|e| Error::Malformed(format!("{what}: {e}")))
}

fn utf8<'a>(what: &str, body: &'a [u8]) -> Result<&'a str, Error> {
    std::str::from_utf8(body).map_err(|e| Error::Malformed(format!("{what}: {e}")))
}

/// What a broker reports in REGISTER_BROKER.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RegisterBrokerBody {
    /// The data version of the topic table.
    pub data_version: DataVersion,
    /// Topics by name.
    pub topic_configs: BTreeMap<String, TopicConfig>,
    /// Filter servers.
    pub filter_servers: Vec<String>,
}

#[derive(Deserialize, Serialize, Default)]
#[serde(rename_all = "camelCase")]
struct DataVersionJson {
    #[serde(default, deserialize_with = "lenient::i64")]
    counter: i64,
    #[serde(default, deserialize_with = "lenient::i64")]
    state_version: i64,
    #[serde(default, deserialize_with = "lenient::i64")]
    timestamp: i64,
}

#[derive(Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
struct TopicConfigJson {
    #[serde(default)]
    attributes: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "lenient::bool")]
    order: bool,
    #[serde(default = "rw", deserialize_with = "lenient::u32")]
    perm: u32,
    #[serde(default, deserialize_with = "lenient::u32")]
    read_queue_nums: u32,
    #[serde(default = "single_tag")]
    topic_filter_type: String,
    #[serde(default)]
    topic_name: String,
    #[serde(default, alias = "topicSynFlag", deserialize_with = "lenient::u32")]
    topic_sys_flag: u32,
    #[serde(default, deserialize_with = "lenient::u32")]
    write_queue_nums: u32,
}

fn rw() -> u32 {
    Perm::READ_WRITE.0
}

fn single_tag() -> String {
    "SINGLE_TAG".into()
}

#[derive(Deserialize, Serialize, Default)]
#[serde(rename_all = "camelCase")]
struct WrapperJson {
    #[serde(default)]
    data_version: DataVersionJson,
    #[serde(default)]
    topic_config_table: BTreeMap<String, TopicConfigJson>,
}

#[derive(Deserialize, Serialize, Default)]
#[serde(rename_all = "camelCase")]
struct RegisterJson {
    #[serde(default)]
    filter_server_list: Vec<String>,
    #[serde(default)]
    topic_config_serialize_wrapper: WrapperJson,
}

impl From<TopicConfigJson> for TopicConfig {
    fn from(t: TopicConfigJson) -> Self {
        TopicConfig {
            topic_name: t.topic_name,
            read_queue_nums: t.read_queue_nums,
            write_queue_nums: t.write_queue_nums,
            perm: Perm(t.perm),
            topic_sys_flag: t.topic_sys_flag,
            order: t.order,
        }
    }
}

impl From<&TopicConfig> for TopicConfigJson {
    fn from(t: &TopicConfig) -> Self {
        TopicConfigJson {
            attributes: BTreeMap::new(),
            order: t.order,
            perm: t.perm.0,
            read_queue_nums: t.read_queue_nums,
            topic_filter_type: single_tag(),
            topic_name: t.topic_name.clone(),
            topic_sys_flag: t.topic_sys_flag,
            write_queue_nums: t.write_queue_nums,
        }
    }
}

fn data_version(d: DataVersionJson) -> DataVersion {
    DataVersion {
        state_version: d.state_version,
        timestamp: d.timestamp,
        counter: d.counter,
    }
}

/// Encode a topic table as RocketMQ's `TopicConfigSerializeWrapper` (`dataVersion` and
/// `topicConfigTable`): the topic part of a register body, and the broker's `topics.json`.
pub fn encode_topic_table(version: &DataVersion, table: &BTreeMap<String, TopicConfig>) -> Vec<u8> {
    let w = WrapperJson {
        data_version: DataVersionJson {
            counter: version.counter,
            state_version: version.state_version,
            timestamp: version.timestamp,
        },
        topic_config_table: table
            .iter()
            .map(|(k, t)| (k.clone(), TopicConfigJson::from(t)))
            .collect(),
    };
    serde_json::to_vec_pretty(&w).expect("a topic table serializes")
}

/// Decode what [`encode_topic_table`] writes (leniently, as the register body).
pub fn decode_topic_table(
    body: &[u8],
) -> Result<(DataVersion, BTreeMap<String, TopicConfig>), Error> {
    let w: WrapperJson = parse_lenient("topic table", utf8("topic table", body)?)?;
    Ok((
        data_version(w.data_version),
        w.topic_config_table
            .into_iter()
            .map(|(k, t)| (k, t.into()))
            .collect(),
    ))
}

impl RegisterBrokerBody {
    /// Decode a register body: JSON, or (whatever the header's `compressed` says, which 5.x sets
    /// wrongly) the zlib-compressed form when the body is not JSON.
    pub fn decode(body: &[u8]) -> Result<Self, Error> {
        if body.first().is_some_and(|b| *b == b'{') {
            return Self::decode_json(body);
        }
        Self::decode_compressed(body)
    }

    fn decode_json(body: &[u8]) -> Result<Self, Error> {
        let j: RegisterJson = parse_lenient("register body", utf8("register body", body)?)?;
        Ok(RegisterBrokerBody {
            data_version: data_version(j.topic_config_serialize_wrapper.data_version),
            topic_configs: j
                .topic_config_serialize_wrapper
                .topic_config_table
                .into_iter()
                .map(|(k, v)| (k, v.into()))
                .collect(),
            filter_servers: j.filter_server_list,
        })
    }

    /// The compressed form (`RegisterBrokerBody.encode(true)`): zlib of `len + DataVersion JSON`,
    /// `topic count`, per topic `len + TopicConfig.encode()` (space-separated), `len + filter
    /// server list JSON`, then (5.x) the static-topic mapping section, ignored here.
    fn decode_compressed(body: &[u8]) -> Result<Self, Error> {
        let mut raw = Vec::new();
        flate2::read::ZlibDecoder::new(body)
            .take(MAX_INFLATED + 1)
            .read_to_end(&mut raw)
            .map_err(|e| Error::Malformed(format!("register body: not JSON, not zlib: {e}")))?;
        if raw.len() as u64 > MAX_INFLATED {
            return Err(Error::Malformed(
                "register body inflates past 64 MiB".into(),
            ));
        }
        let mut r = Reader(&raw);
        let dv_len = r.len32()?;
        let dv: DataVersionJson = json("data version", r.utf8(dv_len)?)?;
        let count = r.i32()?;
        let count =
            usize::try_from(count).map_err(|_| Error::Malformed(format!("topic count {count}")))?;
        let mut topic_configs = BTreeMap::new();
        for _ in 0..count {
            let len = r.len32()?;
            let t = parse_topic_config(r.utf8(len)?)?;
            topic_configs.insert(t.topic_name.clone(), t);
        }
        let filter_servers = if r.0.is_empty() {
            Vec::new()
        } else {
            let len = r.len32()?;
            json("filter servers", r.utf8(len)?)?
        };
        Ok(RegisterBrokerBody {
            data_version: data_version(dv),
            topic_configs,
            filter_servers,
        })
    }

    /// The uncompressed JSON a Java broker sends by default.
    pub fn encode(&self) -> Vec<u8> {
        let j = RegisterJson {
            filter_server_list: self.filter_servers.clone(),
            topic_config_serialize_wrapper: WrapperJson {
                data_version: DataVersionJson {
                    counter: self.data_version.counter,
                    state_version: self.data_version.state_version,
                    timestamp: self.data_version.timestamp,
                },
                topic_config_table: self
                    .topic_configs
                    .iter()
                    .map(|(k, v)| (k.clone(), v.into()))
                    .collect(),
            },
        };
        serde_json::to_vec(&j).expect("plain data serializes")
    }
}

/// Decode a `DataVersion` body (QUERY_DATA_VERSION).
pub fn decode_data_version(body: &[u8]) -> Result<DataVersion, Error> {
    let j: DataVersionJson = parse_lenient("data version", utf8("data version", body)?)?;
    Ok(data_version(j))
}

/// Encode a `DataVersion` body.
pub fn encode_data_version(v: &DataVersion) -> Vec<u8> {
    encode(&DataVersionJson {
        counter: v.counter,
        state_version: v.state_version,
        timestamp: v.timestamp,
    })
}

/// `TopicConfig.decode`: `topicName readQueueNums writeQueueNums perm topicFilterType [attrs]`.
fn parse_topic_config(s: &str) -> Result<TopicConfig, Error> {
    let mut parts = s.splitn(6, ' ');
    let mut next = |what: &str| {
        parts
            .next()
            .ok_or_else(|| Error::Malformed(format!("topic config {s:?}: no {what}")))
    };
    let topic_name = next("name")?.to_owned();
    let num = |v: &str| {
        v.parse::<u32>()
            .map_err(|_| Error::Malformed(format!("topic config {s:?}: {v:?}")))
    };
    let read_queue_nums = num(next("read queues")?)?;
    let write_queue_nums = num(next("write queues")?)?;
    let perm = Perm(num(next("perm")?)?);
    Ok(TopicConfig {
        topic_name,
        read_queue_nums,
        write_queue_nums,
        perm,
        topic_sys_flag: 0,
        order: false,
    })
}

/// Encode cluster info as a Java NameServer does: always with unquoted broker-id keys.
pub fn encode_cluster_info(info: &ClusterInfo) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"{\"brokerAddrTable\":{");
    for (i, (name, b)) in info.broker_addr_table.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_json_str(&mut out, name);
        out.push(b':');
        encode_broker_data(&mut out, b, KeyStyle::Unquoted);
    }
    out.extend_from_slice(b"},\"clusterAddrTable\":{");
    for (i, (cluster, names)) in info.cluster_addr_table.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_json_str(&mut out, cluster);
        out.extend_from_slice(b":[");
        for (j, n) in names.iter().enumerate() {
            if j > 0 {
                out.push(b',');
            }
            write_json_str(&mut out, n);
        }
        out.push(b']');
    }
    out.extend_from_slice(b"}}");
    out
}

/// Decode cluster info (either key style).
pub fn decode_cluster_info(body: &[u8]) -> Result<ClusterInfo, Error> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Json {
        #[serde(default)]
        broker_addr_table: BTreeMap<String, BrokerJson>,
        #[serde(default)]
        cluster_addr_table: BTreeMap<String, BTreeSet<String>>,
    }
    let j: Json = parse_lenient("cluster info", utf8("cluster info", body)?)?;
    Ok(ClusterInfo {
        broker_addr_table: j
            .broker_addr_table
            .into_iter()
            .map(|(k, v)| Ok((k, v.into_model()?)))
            .collect::<Result<_, Error>>()?,
        cluster_addr_table: j.cluster_addr_table,
    })
}

/// A queue as bodies carry it (`MessageQueue` JSON: brokerName, queueId, topic).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageQueueJson {
    /// The broker group.
    #[serde(default)]
    pub broker_name: String,
    /// The queue id.
    #[serde(default, deserialize_with = "lenient::u32")]
    pub queue_id: u32,
    /// The topic.
    #[serde(default)]
    pub topic: String,
}

/// LOCK_BATCH_MQ and UNLOCK_BATCH_MQ request bodies.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LockBatchRequestBody {
    /// The client asking.
    #[serde(default)]
    pub client_id: String,
    /// Its consumer group.
    #[serde(default)]
    pub consumer_group: String,
    /// The queues.
    #[serde(default)]
    pub mq_set: BTreeSet<MessageQueueJson>,
    /// Lock only on this broker (5.x).
    #[serde(default, deserialize_with = "lenient::bool")]
    pub only_this_broker: bool,
}

/// LOCK_BATCH_MQ response body.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct LockBatchResponseBody {
    /// The queues locked for the client.
    #[serde(rename = "lockOKMQSet", default)]
    pub lock_ok_mq_set: BTreeSet<MessageQueueJson>,
}

/// GET_CONSUMER_LIST_BY_GROUP response body.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsumerListBody {
    /// Client ids of the group.
    #[serde(default)]
    pub consumer_id_list: Vec<String>,
}

/// GET_ALL_TOPIC_LIST_FROM_NAMESERVER response body.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TopicListBody {
    /// The topics.
    #[serde(default)]
    pub topic_list: BTreeSet<String>,
    /// The broker address (omitted when null).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker_addr: Option<String>,
}

/// `ConsumeType`.
pub const CONSUME_TYPES: [&str; 3] = ["CONSUME_ACTIVELY", "CONSUME_PASSIVELY", "CONSUME_POP"];
/// `MessageModel`.
pub const MESSAGE_MODELS: [&str; 2] = ["BROADCASTING", "CLUSTERING"];
/// `ConsumeFromWhere`, in enum order.
pub const CONSUME_FROM: [&str; 6] = [
    "CONSUME_FROM_LAST_OFFSET",
    "CONSUME_FROM_LAST_OFFSET_AND_FROM_MIN_WHEN_BOOT_FIRST",
    "CONSUME_FROM_MIN_OFFSET",
    "CONSUME_FROM_MAX_OFFSET",
    "CONSUME_FROM_FIRST_OFFSET",
    "CONSUME_FROM_TIMESTAMP",
];

/// Deserialize a Java enum given by name or ordinal into its name.
fn enum_name<'de, D: serde::Deserializer<'de>>(
    names: &'static [&'static str],
    d: D,
) -> Result<String, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    match v {
        serde_json::Value::String(s) => Ok(s),
        serde_json::Value::Number(n) => n
            .as_u64()
            .and_then(|i| names.get(i as usize))
            .map(|s| (*s).to_owned())
            .ok_or_else(|| serde::de::Error::custom(format!("ordinal {n} out of range"))),
        serde_json::Value::Null => Ok(names[0].to_owned()),
        other => Err(serde::de::Error::custom(format!("enum {other}"))),
    }
}

/// One subscription of a consumer group (`SubscriptionData`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionData {
    /// Class filter mode.
    #[serde(default, deserialize_with = "lenient::bool")]
    pub class_filter_mode: bool,
    /// Java `String.hashCode` of each tag.
    #[serde(default)]
    pub code_set: BTreeSet<i32>,
    /// `TAG` or `SQL92`.
    #[serde(default = "tag")]
    pub expression_type: String,
    /// The expression (`TagA || TagB`, `*`).
    #[serde(default)]
    pub sub_string: String,
    /// The subscription's version (ms).
    #[serde(default, deserialize_with = "lenient::i64")]
    pub sub_version: i64,
    /// The tags.
    #[serde(default)]
    pub tags_set: BTreeSet<String>,
    /// The topic.
    #[serde(default)]
    pub topic: String,
}

fn tag() -> String {
    "TAG".into()
}

/// One consumer group of a heartbeat (`ConsumerData`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsumerData {
    /// Where a new group starts.
    #[serde(deserialize_with = "consume_from", default = "first_consume_from")]
    pub consume_from_where: String,
    /// Pull or push.
    #[serde(deserialize_with = "consume_type", default = "first_consume_type")]
    pub consume_type: String,
    /// The group.
    #[serde(default)]
    pub group_name: String,
    /// Clustering or broadcasting.
    #[serde(deserialize_with = "message_model", default = "clustering")]
    pub message_model: String,
    /// Subscriptions.
    #[serde(default)]
    pub subscription_data_set: Vec<SubscriptionData>,
    /// Unit mode.
    #[serde(default, deserialize_with = "lenient::bool")]
    pub unit_mode: bool,
}

fn consume_from<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    enum_name(&CONSUME_FROM, d)
}
fn consume_type<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    enum_name(&CONSUME_TYPES, d)
}
fn message_model<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    enum_name(&MESSAGE_MODELS, d)
}
fn first_consume_from() -> String {
    CONSUME_FROM[0].into()
}
fn first_consume_type() -> String {
    CONSUME_TYPES[1].into()
}
fn clustering() -> String {
    MESSAGE_MODELS[1].into()
}

/// One producer group of a heartbeat.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProducerData {
    /// The group.
    #[serde(default)]
    pub group_name: String,
}

/// HEART_BEAT body (`HeartbeatData`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HeartbeatData {
    /// `ip@instance`.
    #[serde(rename = "clientID", default)]
    pub client_id: String,
    /// Consumer groups.
    #[serde(default)]
    pub consumer_data_set: Vec<ConsumerData>,
    /// 0 = heartbeat V1.
    #[serde(default, deserialize_with = "lenient::i64")]
    pub heartbeat_fingerprint: i64,
    /// Producer groups.
    #[serde(default)]
    pub producer_data_set: Vec<ProducerData>,
    /// Without subscriptions.
    #[serde(default, deserialize_with = "lenient::bool")]
    pub without_sub: bool,
}

/// The entries of the map under `field` in a fastjson body whose map keys are objects
/// (`{"mqTable":{{"brokerName":"b","queueId":0,"topic":"T"}:{...}}}`, protocol.md §3.1), which no
/// standard JSON parser reads: each key and value is parsed as a JSON value of its own. A
/// missing field is an empty map.
pub fn object_key_map(
    text: &str,
    field: &str,
) -> Result<Vec<(serde_json::Value, serde_json::Value)>, Error> {
    let pattern = format!("\"{field}\":");
    let Some(at) = text.find(&pattern) else {
        return Ok(Vec::new());
    };
    let bad = |what: &str| Error::Malformed(format!("{field}: {what}"));
    let mut rest = text[at + pattern.len()..].trim_start();
    rest = rest.strip_prefix('{').ok_or_else(|| bad("not an object"))?;
    let mut out = Vec::new();
    let next_value = |s: &str| -> Result<(serde_json::Value, usize), Error> {
        let mut it = serde_json::Deserializer::from_str(s).into_iter::<serde_json::Value>();
        match it.next() {
            Some(Ok(v)) => Ok((v, it.byte_offset())),
            _ => Err(bad("a key or value does not parse")),
        }
    };
    loop {
        rest = rest.trim_start();
        if let Some(r) = rest.strip_prefix('}') {
            let _ = r;
            return Ok(out);
        }
        if out.len() >= 1 << 20 {
            return Err(bad("too many entries"));
        }
        let (key, n) = next_value(rest)?;
        rest = rest[n..].trim_start();
        rest = rest
            .strip_prefix(':')
            .ok_or_else(|| bad("no ':' after a key"))?;
        let (value, n) = next_value(rest.trim_start())?;
        rest = rest.trim_start()[n..].trim_start();
        out.push((key, value));
        if let Some(r) = rest.strip_prefix(',') {
            rest = r;
        } else if !rest.starts_with('}') {
            return Err(bad("no ',' or '}' after a value"));
        }
    }
}

/// Append a map whose keys are objects as fastjson writes it (`{{"brokerName":"b","queueId":0,
/// "topic":"T"}:{...}}`, protocol.md §3.1): each key and value as JSON, in the order given. The
/// counterpart of [`object_key_map`].
pub fn encode_object_key_map<K: Serialize, V: Serialize>(
    out: &mut Vec<u8>,
    entries: impl IntoIterator<Item = (K, V)>,
) {
    out.push(b'{');
    for (i, (k, v)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        serde_json::to_writer(&mut *out, &k).expect("plain data serializes");
        out.push(b':');
        serde_json::to_writer(&mut *out, &v).expect("plain data serializes");
    }
    out.push(b'}');
}

/// GET_ALL_CONSUMER_OFFSET response body (`ConsumerOffsetSerializeWrapper`, what a slave syncs
/// from its master): `topic@group` → queue id → offset. Decoded from fastjson's bare integer
/// keys (`{0:12}`) or quoted ones; encoded with quoted keys, as the broker's
/// `consumerOffset.json` (fastjson reads both). Values are Java `long`s, negative ones included:
/// the receiver decides what to keep.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsumerOffsetBody {
    /// `topic@group` → queue id → offset.
    #[serde(default)]
    pub offset_table: BTreeMap<String, BTreeMap<i64, i64>>,
}

/// GET_ALL_DELAY_OFFSET response body (`DelayOffsetSerializeWrapper`, the master's
/// `delayOffset.json`): delay level → the next offset of its schedule queue. Key styles as
/// [`ConsumerOffsetBody`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DelayOffsetBody {
    /// Delay level → offset.
    #[serde(default)]
    pub offset_table: BTreeMap<i64, i64>,
}

/// Decode one of the JSON bodies of this module.
pub fn decode<T: for<'a> Deserialize<'a>>(what: &str, body: &[u8]) -> Result<T, Error> {
    parse_lenient(what, utf8(what, body)?)
}

/// Encode one of the JSON bodies of this module (fields in fastjson's sorted order).
pub fn encode<T: Serialize>(body: &T) -> Vec<u8> {
    serde_json::to_vec(body).expect("plain data serializes")
}

/// Java's `String.hashCode` over UTF-16 code units (tag codes, protocol.md §4.4).
pub fn java_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, u| h.wrapping_mul(31).wrapping_add(i32::from(u)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sextant_model::route::BrokerData;

    /// protocol.md §3.6, as a Java 5.x push consumer sends it.
    const HEARTBEAT: &str = r#"{"clientID":"10.0.0.5@12345#9876543210","consumerDataSet":[{"consumeFromWhere":"CONSUME_FROM_LAST_OFFSET","consumeType":"CONSUME_PASSIVELY","groupName":"cg","messageModel":"CLUSTERING","subscriptionDataSet":[{"classFilterMode":false,"codeSet":[2598919],"expressionType":"TAG","subString":"TagA","subVersion":1700000000000,"tagsSet":["TagA"],"topic":"TopicTest"}],"unitMode":false}],"heartbeatFingerprint":0,"producerDataSet":[{"groupName":"pg"},{"groupName":"CLIENT_INNER_PRODUCER"}],"withoutSub":false}"#;

    #[test]
    fn heartbeat_golden_and_lenient() {
        let h: HeartbeatData = decode("heartbeat", HEARTBEAT.as_bytes()).unwrap();
        assert_eq!(
            h.consumer_data_set[0].subscription_data_set[0].code_set,
            [java_hash("TagA")].into()
        );
        assert_eq!(java_hash("TagA"), 2_598_919);
        assert_eq!(std::str::from_utf8(&encode(&h)).unwrap(), HEARTBEAT);
        // C++/JavaScript style: ordinals, subVersion as a string, missing sets and flags.
        let lenient = r#"{"clientID":"c","consumerDataSet":[{"consumeType":1,"messageModel":1,"consumeFromWhere":4,"groupName":"g","subscriptionDataSet":[{"topic":"T","subString":"*","subVersion":"17"}]}],"producerDataSet":[]}"#;
        let h: HeartbeatData = decode("heartbeat", lenient.as_bytes()).unwrap();
        let c = &h.consumer_data_set[0];
        assert_eq!(c.consume_type, "CONSUME_PASSIVELY");
        assert_eq!(c.message_model, "CLUSTERING");
        assert_eq!(c.consume_from_where, "CONSUME_FROM_FIRST_OFFSET");
        assert_eq!(c.subscription_data_set[0].sub_version, 17);
        assert_eq!(c.subscription_data_set[0].expression_type, "TAG");
        assert!(!c.unit_mode);
        assert!(
            decode::<HeartbeatData>("heartbeat", br#"{"consumerDataSet":[{"consumeType":9}]}"#)
                .is_err()
        );
    }

    #[test]
    fn register_body_plain_and_compressed() {
        let plain = br#"{"filterServerList":[],"topicConfigSerializeWrapper":{"dataVersion":{"counter":12,"stateVersion":0,"timestamp":1700000000000},"topicConfigTable":{"TopicTest":{"attributes":{},"order":false,"perm":6,"readQueueNums":4,"topicFilterType":"SINGLE_TAG","topicName":"TopicTest","topicSysFlag":0,"writeQueueNums":4}}}}"#;
        let b = RegisterBrokerBody::decode(plain).unwrap();
        assert_eq!(b.data_version.counter, 12);
        assert_eq!(b.topic_configs["TopicTest"].write_queue_nums, 4);
        assert_eq!(b.encode(), plain.to_vec());
        // The compressed form: zlib of length-prefixed sections.
        let mut raw = Vec::new();
        let dv = br#"{"counter":3,"stateVersion":1,"timestamp":5}"#;
        raw.extend_from_slice(&(dv.len() as i32).to_be_bytes());
        raw.extend_from_slice(dv);
        raw.extend_from_slice(&1i32.to_be_bytes());
        let t = b"TopicTest 4 4 6 SINGLE_TAG {}";
        raw.extend_from_slice(&(t.len() as i32).to_be_bytes());
        raw.extend_from_slice(t);
        raw.extend_from_slice(&2i32.to_be_bytes());
        raw.extend_from_slice(b"[]");
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        std::io::Write::write_all(&mut z, &raw).unwrap();
        let compressed = z.finish().unwrap();
        let b = RegisterBrokerBody::decode(&compressed).unwrap();
        assert_eq!(b.data_version.state_version, 1);
        assert_eq!(b.topic_configs["TopicTest"].perm, Perm(6));
        assert!(RegisterBrokerBody::decode(b"\x00garbage").is_err());
    }

    #[test]
    fn cluster_info_is_always_unquoted() {
        let mut info = ClusterInfo::default();
        info.broker_addr_table.insert(
            "broker-a".into(),
            BrokerData {
                cluster: "DefaultCluster".into(),
                broker_name: "broker-a".into(),
                broker_addrs: BTreeMap::from([(0, "10.0.0.1:10911".into())]),
                ..Default::default()
            },
        );
        info.cluster_addr_table
            .insert("DefaultCluster".into(), BTreeSet::from(["broker-a".into()]));
        let text = encode_cluster_info(&info);
        assert_eq!(
            std::str::from_utf8(&text).unwrap(),
            r#"{"brokerAddrTable":{"broker-a":{"brokerAddrs":{0:"10.0.0.1:10911"},"brokerName":"broker-a","cluster":"DefaultCluster","enableActingMaster":false}},"clusterAddrTable":{"DefaultCluster":["broker-a"]}}"#
        );
        assert_eq!(decode_cluster_info(&text).unwrap(), info);
    }

    #[test]
    fn object_keyed_maps_as_fastjson_writes_them() {
        let text = r#"{"mqTable":{{"brokerName":"b","queueId":0,"topic":"T"}:{"locked":false},{"brokerName":"b","queueId":1,"topic":"T"}:{"x":[1,{"y":"}"}]}},"properties":{}}"#;
        let m = object_key_map(text, "mqTable").unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[1].0["queueId"], 1);
        assert_eq!(m[1].1["x"][1]["y"], "}");
        assert!(object_key_map(text, "absent").unwrap().is_empty());
        assert!(
            object_key_map(r#"{"mqTable":{}}"#, "mqTable")
                .unwrap()
                .is_empty()
        );
        // Written back in the same form.
        let mut out = b"{\"mqTable\":".to_vec();
        encode_object_key_map(&mut out, m.iter().map(|(k, v)| (k, v)));
        out.extend_from_slice(br#","properties":{}}"#);
        assert_eq!(std::str::from_utf8(&out).unwrap(), text);
        let mut empty = Vec::new();
        encode_object_key_map(&mut empty, std::iter::empty::<(u8, u8)>());
        assert_eq!(empty, b"{}");
        for broken in [
            r#"{"mqTable":{{"a":1}"#,
            r#"{"mqTable":{{"a":1}:}"#,
            r#"{"mqTable":[1]}"#,
            r#"{"mqTable":{{"a":1}:2 3}"#,
        ] {
            assert!(object_key_map(broken, "mqTable").is_err(), "{broken}");
        }
    }

    #[test]
    fn offset_tables_in_either_key_style() {
        // As a Java 4.9.8 master's fastjson writes them: bare integer keys.
        let java = br#"{"offsetTable":{"TopicTest@cg":{0:250,1:-1},"%RETRY%cg@cg":{0:0}}}"#;
        let o: ConsumerOffsetBody = decode("consumer offsets", java).unwrap();
        assert_eq!(
            o.offset_table["TopicTest@cg"],
            BTreeMap::from([(0, 250), (1, -1)])
        );
        assert_eq!(o.offset_table.len(), 2);
        let ours = encode(&o);
        assert_eq!(
            std::str::from_utf8(&ours).unwrap(),
            r#"{"offsetTable":{"%RETRY%cg@cg":{"0":0},"TopicTest@cg":{"0":250,"1":-1}}}"#
        );
        assert_eq!(decode::<ConsumerOffsetBody>("offsets", &ours).unwrap(), o);
        let d: DelayOffsetBody =
            decode("delay offsets", br#"{"offsetTable":{1:123,"3":7}}"#).unwrap();
        assert_eq!(d.offset_table, BTreeMap::from([(1, 123), (3, 7)]));
        assert_eq!(encode(&d), br#"{"offsetTable":{"1":123,"3":7}}"#.to_vec());
        assert_eq!(
            decode::<DelayOffsetBody>("d", b"{}").unwrap(),
            DelayOffsetBody::default()
        );
        for bad in [
            &b"{\"offsetTable\":[1]}"[..],
            b"{\"offsetTable\":{\"x\":1}}",
            b"\xff",
        ] {
            assert!(decode::<DelayOffsetBody>("d", bad).is_err());
        }
    }

    #[test]
    fn lock_consumer_and_topic_lists() {
        let lock = br#"{"clientId":"c1","consumerGroup":"g","mqSet":[{"brokerName":"b","queueId":0,"topic":"T"}],"onlyThisBroker":false}"#;
        let l: LockBatchRequestBody = decode("lock", lock).unwrap();
        assert_eq!(l.mq_set.len(), 1);
        assert_eq!(encode(&l), lock.to_vec());
        let ok = LockBatchResponseBody {
            lock_ok_mq_set: l.mq_set.clone(),
        };
        assert_eq!(
            std::str::from_utf8(&encode(&ok)).unwrap(),
            r#"{"lockOKMQSet":[{"brokerName":"b","queueId":0,"topic":"T"}]}"#
        );
        let c = ConsumerListBody {
            consumer_id_list: vec!["10.0.0.5@1".into()],
        };
        assert_eq!(encode(&c), br#"{"consumerIdList":["10.0.0.5@1"]}"#.to_vec());
        let t = TopicListBody {
            topic_list: BTreeSet::from(["A".into(), "B".into()]),
            broker_addr: None,
        };
        assert_eq!(encode(&t), br#"{"topicList":["A","B"]}"#.to_vec());
        assert_eq!(decode::<TopicListBody>("topics", &encode(&t)).unwrap(), t);
    }
}
