//! Messages as a user sends them ([`Message`]) and receives them ([`MessageExt`]), and what a
//! send returns ([`SendResult`]).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::SocketAddr;

use bytes::Bytes;
use sextant_model::route::MessageQueue;
use sextant_remoting::message::{self as wire, MessageView, property, sys_flag};

use crate::error::{Error, Result};

/// The delay-level property.
pub const DELAY: &str = property::DELAY;

/// A message to send (RocketMQ's `Message`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// The topic.
    pub topic: String,
    /// The body.
    pub body: Bytes,
    /// The user flag (`Message.flag`).
    pub flag: i32,
    /// The properties (tags, keys, delay level and the user's own).
    pub properties: BTreeMap<String, String>,
}

impl Message {
    /// A message to `topic` with `body`.
    pub fn new(topic: impl Into<String>, body: impl Into<Bytes>) -> Self {
        Message {
            topic: topic.into(),
            body: body.into(),
            flag: 0,
            properties: BTreeMap::new(),
        }
    }

    /// Set the tag (`TAGS`).
    pub fn with_tags(mut self, tags: impl Into<String>) -> Self {
        self.properties.insert(property::TAGS.into(), tags.into());
        self
    }

    /// Set the keys (`KEYS`, space-separated), which QUERY_MESSAGE looks up.
    pub fn with_keys<S: AsRef<str>>(mut self, keys: impl IntoIterator<Item = S>) -> Self {
        let joined = keys
            .into_iter()
            .map(|k| k.as_ref().to_owned())
            .collect::<Vec<_>>()
            .join(" ");
        self.properties.insert(property::KEYS.into(), joined);
        self
    }

    /// Deliver after delay level `level` (1 = 1 s, 2 = 5 s, ... as the broker's
    /// `messageDelayLevel`); 0 clears it.
    pub fn with_delay_level(mut self, level: u32) -> Self {
        if level == 0 {
            self.properties.remove(DELAY);
        } else {
            self.properties.insert(DELAY.into(), level.to_string());
        }
        self
    }

    /// Set a user property.
    pub fn with_property(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.properties.insert(name.into(), value.into());
        self
    }

    /// Set the user flag.
    pub fn with_flag(mut self, flag: i32) -> Self {
        self.flag = flag;
        self
    }

    /// The tag.
    pub fn tags(&self) -> Option<&str> {
        self.properties.get(property::TAGS).map(String::as_str)
    }

    /// The keys.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.properties
            .get(property::KEYS)
            .map(String::as_str)
            .unwrap_or("")
            .split(' ')
            .filter(|k| !k.is_empty())
    }

    /// The delay level, if any.
    pub fn delay_level(&self) -> Option<u32> {
        self.properties.get(DELAY).and_then(|l| l.parse().ok())
    }
}

/// How a send ended (`SendStatus`). All of these mean the message is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SendStatus {
    /// `SEND_OK`.
    SendOk,
    /// `FLUSH_DISK_TIMEOUT`: stored, not yet on disk within `syncFlushTimeout`.
    FlushDiskTimeout,
    /// `FLUSH_SLAVE_TIMEOUT`: stored, not yet on a slave within the timeout.
    FlushSlaveTimeout,
    /// `SLAVE_NOT_AVAILABLE`: stored, no slave in sync.
    SlaveNotAvailable,
}

/// What a successful send returns (`SendResult`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SendResult {
    /// How it ended.
    pub status: SendStatus,
    /// The client id (`UNIQ_KEY`); comma-joined for a batch.
    pub msg_id: String,
    /// The broker's id (store host and commit-log offset); comma-joined for a batch.
    pub offset_msg_id: String,
    /// The queue written.
    pub queue: MessageQueue,
    /// The offset of the (first) message in that queue.
    pub queue_offset: u64,
    /// The broker's region (`MSG_REGION`).
    pub region_id: Option<String>,
}

/// A received message (RocketMQ's `MessageExt`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageExt {
    /// The topic as the producer sent it (for a message consumed again through the group's
    /// retry topic, its original topic).
    pub topic: String,
    /// The queue it was pulled from.
    pub queue: MessageQueue,
    /// Its offset in that queue.
    pub queue_offset: u64,
    /// Its offset in the broker's commit log.
    pub commit_log_offset: u64,
    /// The body, decompressed.
    pub body: Bytes,
    /// The user flag.
    pub flag: i32,
    /// `MessageSysFlag` bits as stored.
    pub sys_flag: i32,
    /// How many times it was consumed before (retries).
    pub reconsume_times: i32,
    /// When the producer made it (ms).
    pub born_timestamp: i64,
    /// Where the producer was.
    pub born_host: SocketAddr,
    /// When the broker stored it (ms).
    pub store_timestamp: i64,
    /// The broker that stored it.
    pub store_host: SocketAddr,
    /// The properties string (`name\x01value\x02...`).
    pub properties: String,
    /// The client id (`UNIQ_KEY`), or the offset id when the producer set none.
    pub msg_id: String,
    /// The broker's id (store host and commit-log offset).
    pub offset_msg_id: String,
}

impl MessageExt {
    /// Build from a stored record pulled from `queue`. `buf` is the pull body the view borrows
    /// from, so the body is not copied unless it must be decompressed.
    pub fn from_view(view: &MessageView<'_>, buf: &Bytes, queue: &MessageQueue) -> Result<Self> {
        let body = if view.sys_flag & sys_flag::COMPRESSED != 0 {
            decompress(view.body, view.sys_flag)?
        } else {
            buf.slice_ref(view.body)
        };
        let offset_msg_id = view.offset_msg_id();
        let msg_id = view
            .property(property::UNIQ_KEY)
            .map_or_else(|| offset_msg_id.clone(), str::to_owned);
        let topic = match view.property(property::RETRY_TOPIC) {
            Some(original) if view.topic.starts_with(sextant_model::broker::RETRY_PREFIX) => {
                original.to_owned()
            }
            _ => view.topic.to_owned(),
        };
        Ok(MessageExt {
            topic,
            // The record's own queue id (an admin lookup passes only the topic and broker).
            queue: MessageQueue::from_shared(
                queue.topic.clone(),
                queue.broker_name.clone(),
                u32::try_from(view.queue_id).unwrap_or(queue.queue_id),
            ),
            queue_offset: view.queue_offset.max(0) as u64,
            commit_log_offset: view.physical_offset.max(0) as u64,
            body,
            flag: view.flag,
            sys_flag: view.sys_flag,
            reconsume_times: view.reconsume_times,
            born_timestamp: view.born_timestamp,
            born_host: view.born_host,
            store_timestamp: view.store_timestamp,
            store_host: view.store_host,
            properties: view.properties.to_owned(),
            msg_id,
            offset_msg_id,
        })
    }

    /// One property.
    pub fn property(&self, name: &str) -> Option<&str> {
        wire::property_of(&self.properties, name)
    }

    /// Every property.
    pub fn properties(&self) -> BTreeMap<&str, &str> {
        wire::parse_properties(&self.properties)
    }

    /// The tag.
    pub fn tags(&self) -> Option<&str> {
        self.property(property::TAGS)
    }

    /// The keys.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.property(property::KEYS)
            .unwrap_or("")
            .split(' ')
            .filter(|k| !k.is_empty())
    }

    /// The size the consumer's flow control counts (the body).
    pub fn size(&self) -> usize {
        self.body.len()
    }
}

/// The compression type bits of `MessageSysFlag` (bits 8-10).
const COMPRESSION_TYPE_MASK: i32 = 0x700;
/// `CompressionType.ZLIB`'s bits (a compressed body without type bits is zlib too).
pub const COMPRESSION_ZLIB: i32 = 0x300;

/// Compress a body as RocketMQ's producer does over `compressMsgBodyOverHowmuch`: zlib, level 5.
pub fn compress(body: &[u8]) -> Vec<u8> {
    let mut z = flate2::write::ZlibEncoder::new(
        Vec::with_capacity(body.len() / 2),
        flate2::Compression::new(5),
    );
    z.write_all(body).expect("writing to a Vec");
    z.finish().expect("writing to a Vec")
}

/// The largest body decompression may produce (a broker stores at most 4 MiB compressed; a
/// bomb must not take the consumer's memory).
pub const MAX_DECOMPRESSED: u64 = 64 * 1024 * 1024;

/// Decompress a stored body with `sys_flag`'s compression type.
pub fn decompress(body: &[u8], flag: i32) -> Result<Bytes> {
    match flag & COMPRESSION_TYPE_MASK {
        0 | COMPRESSION_ZLIB => {
            let mut out = Vec::with_capacity(body.len() * 2);
            flate2::read::ZlibDecoder::new(body)
                .take(MAX_DECOMPRESSED + 1)
                .read_to_end(&mut out)
                .map_err(|e| Error::InvalidMessage(format!("zlib body: {e}")))?;
            if out.len() as u64 > MAX_DECOMPRESSED {
                return Err(Error::InvalidMessage(format!(
                    "body decompresses to more than {MAX_DECOMPRESSED} bytes"
                )));
            }
            Ok(Bytes::from(out))
        }
        other => Err(Error::InvalidMessage(format!(
            "compression type {other:#x} (LZ4/ZSTD) is not supported"
        ))),
    }
}

/// Decode a pull body into messages of `queue`. As RocketMQ's client does, decoding stops at
/// the first record that does not decode; a body that does not decompress is an error.
pub fn decode_pulled(buf: &Bytes, queue: &MessageQueue) -> Result<Vec<MessageExt>> {
    let (views, _bad_tail) = wire::decode_batch(buf);
    views
        .iter()
        .map(|v| MessageExt::from_view(v, buf, queue))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_builders_set_rocketmq_properties() {
        let m = Message::new("T", "hi")
            .with_tags("TagA")
            .with_keys(["k1", "k2"])
            .with_delay_level(3)
            .with_property("p", "v");
        assert_eq!(m.tags(), Some("TagA"));
        assert_eq!(m.keys().collect::<Vec<_>>(), ["k1", "k2"]);
        assert_eq!(m.delay_level(), Some(3));
        assert_eq!(m.properties["KEYS"], "k1 k2");
        assert_eq!(m.with_delay_level(0).delay_level(), None);
    }

    #[test]
    fn compression_round_trips_and_bombs_are_refused() {
        let body = vec![b'a'; 10_000];
        let z = compress(&body);
        assert!(z.len() < 200);
        assert_eq!(decompress(&z, 1).unwrap(), body);
        assert_eq!(decompress(&z, 1 | COMPRESSION_ZLIB).unwrap(), body);
        assert!(decompress(&z, 1 | 0x100).is_err());
        assert!(decompress(b"not zlib", 1).is_err());
        let huge = compress(&vec![0u8; (MAX_DECOMPRESSED + 10) as usize]);
        assert!(decompress(&huge, 1).is_err());
    }

    #[test]
    fn pulled_records_decode_without_copying_and_retry_topics_are_restored() {
        let props =
            wire::encode_properties([("UNIQ_KEY", "ABC"), ("TAGS", "t"), ("RETRY_TOPIC", "Orig")]);
        let view = MessageView {
            queue_id: 0,
            flag: 7,
            queue_offset: 3,
            physical_offset: 100,
            sys_flag: 0,
            born_timestamp: 1,
            born_host: "127.0.0.1:1".parse().unwrap(),
            store_timestamp: 2,
            store_host: "127.0.0.1:10911".parse().unwrap(),
            reconsume_times: 1,
            prepared_transaction_offset: 0,
            body_crc: 0,
            body: b"payload",
            topic: "%RETRY%g",
            properties: &props,
        };
        let mut raw = Vec::new();
        view.encode(&mut raw).unwrap();
        let buf = Bytes::from(raw);
        let q = MessageQueue::new("%RETRY%g", "b", 0);
        let msgs = decode_pulled(&buf, &q).unwrap();
        assert_eq!(msgs.len(), 1);
        let m = &msgs[0];
        assert_eq!(m.topic, "Orig");
        assert_eq!(m.msg_id, "ABC");
        assert_eq!(&m.body[..], b"payload");
        assert_eq!(m.tags(), Some("t"));
        assert_eq!(
            (m.queue_offset, m.commit_log_offset, m.reconsume_times),
            (3, 100, 1)
        );
        // The body points into the pull buffer.
        let start = buf.as_ptr() as usize;
        let at = m.body.as_ptr() as usize;
        assert!(at >= start && at < start + buf.len());
        // A truncated tail ends the list quietly.
        let cut = buf.slice(..buf.len() - 3);
        assert!(decode_pulled(&cut, &q).unwrap().is_empty());
    }
}
