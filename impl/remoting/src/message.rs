//! Messages on the wire and in the commit log (protocol.md §4): the stored record a pull returns,
//! batches of them, the properties string, message ids, and the SEND_BATCH_MESSAGE body.
//!
//! Decoding borrows: a [`MessageView`] points into the buffer it was read from, so a pull
//! response of many messages is decoded without copying a body.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use bytes::BufMut;

use crate::Error;
use crate::command::Reader;

/// Magic code of a V1 record (1-byte topic length).
pub const MAGIC_V1: i32 = 0xDAA3_20A7_u32 as i32;
/// Magic code of a V2 record (2-byte topic length, topics over 127 bytes).
pub const MAGIC_V2: i32 = 0xDAA3_20AB_u32 as i32;
/// Magic code of the blank record that ends a commit-log file.
pub const BLANK_MAGIC: i32 = 0xCBD4_3194_u32 as i32;

/// `MessageSysFlag` bits.
pub mod sys_flag {
    /// The body is compressed.
    pub const COMPRESSED: i32 = 0x1;
    /// Several tags.
    pub const MULTI_TAGS: i32 = 0x2;
    /// A prepared (half) transactional message.
    pub const TRANSACTION_PREPARED: i32 = 0x4;
    /// A committed transactional message.
    pub const TRANSACTION_COMMIT: i32 = 0x8;
    /// The born host is IPv6.
    pub const BORNHOST_V6: i32 = 0x10;
    /// The store host is IPv6.
    pub const STOREHOST_V6: i32 = 0x20;
    /// An inner batch.
    pub const INNER_BATCH: i32 = 0x80;
}

/// Property names (`MessageConst`).
pub mod property {
    /// Keys, space-separated.
    pub const KEYS: &str = "KEYS";
    /// The tag.
    pub const TAGS: &str = "TAGS";
    /// Wait for the store to be OK.
    pub const WAIT: &str = "WAIT";
    /// Delay level.
    pub const DELAY: &str = "DELAY";
    /// The client-side unique id.
    pub const UNIQ_KEY: &str = "UNIQ_KEY";
    /// The topic before a retry or delay rewrite.
    pub const REAL_TOPIC: &str = "REAL_TOPIC";
    /// The queue before a rewrite.
    pub const REAL_QID: &str = "REAL_QID";
    /// The retry topic.
    pub const RETRY_TOPIC: &str = "RETRY_TOPIC";
    /// The original message id (send-back).
    pub const ORIGIN_MESSAGE_ID: &str = "ORIGIN_MESSAGE_ID";
    /// Retries before the DLQ.
    pub const MAX_RECONSUME_TIMES: &str = "MAX_RECONSUME_TIMES";
    /// The cluster that stored it.
    pub const CLUSTER: &str = "CLUSTER";
    /// Min offset of the queue at pull time.
    pub const MIN_OFFSET: &str = "MIN_OFFSET";
    /// Max offset of the queue at pull time.
    pub const MAX_OFFSET: &str = "MAX_OFFSET";
    /// `"true"` on a prepared transaction message (`PROPERTY_TRANSACTION_PREPARED`).
    pub const TRANSACTION_PREPARED: &str = "TRAN_MSG";
}

/// Largest stored record a decoder accepts (the broker's 4 MiB message limit plus room for the
/// fields around the body).
pub const MAX_RECORD: usize = 4 * 1024 * 1024 + 64 * 1024;

/// A stored message, borrowed from the buffer it was decoded from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageView<'a> {
    /// The queue.
    pub queue_id: i32,
    /// The user flag.
    pub flag: i32,
    /// Offset in the queue.
    pub queue_offset: i64,
    /// Offset in the commit log.
    pub physical_offset: i64,
    /// `MessageSysFlag` bits.
    pub sys_flag: i32,
    /// When the producer created it (ms).
    pub born_timestamp: i64,
    /// The producer's address.
    pub born_host: SocketAddr,
    /// When the broker stored it (ms).
    pub store_timestamp: i64,
    /// The broker's address.
    pub store_host: SocketAddr,
    /// Times consumed before.
    pub reconsume_times: i32,
    /// Prepared transaction offset.
    pub prepared_transaction_offset: i64,
    /// CRC32 of the body & 0x7FFFFFFF, as stored.
    pub body_crc: i32,
    /// The body (still compressed if `sys_flag` says so).
    pub body: &'a [u8],
    /// The topic.
    pub topic: &'a str,
    /// The properties string (`name\x01value\x02...`).
    pub properties: &'a str,
}

impl<'a> MessageView<'a> {
    /// Decode the record at the front of `buf`; returns it and its total size.
    pub fn decode(buf: &'a [u8]) -> Result<(MessageView<'a>, usize), Error> {
        let mut head = Reader(buf);
        let total = head.i32()?;
        let total = usize::try_from(total)
            .ok()
            .filter(|t| (4..=MAX_RECORD).contains(t))
            .ok_or_else(|| Error::Malformed(format!("record size {total}")))?;
        if total > buf.len() {
            return Err(Error::Malformed(format!(
                "record of {total} bytes, {} left",
                buf.len()
            )));
        }
        let mut r = Reader(&buf[4..total]);
        let magic = r.i32()?;
        if magic != MAGIC_V1 && magic != MAGIC_V2 {
            return Err(Error::Malformed(format!("magic code {magic:#x}")));
        }
        let body_crc = r.i32()?;
        let queue_id = r.i32()?;
        let flag = r.i32()?;
        let queue_offset = r.i64()?;
        let physical_offset = r.i64()?;
        let sys_flag = r.i32()?;
        let born_timestamp = r.i64()?;
        let born_host = host(&mut r, sys_flag & sys_flag::BORNHOST_V6 != 0)?;
        let store_timestamp = r.i64()?;
        let store_host = host(&mut r, sys_flag & sys_flag::STOREHOST_V6 != 0)?;
        let reconsume_times = r.i32()?;
        let prepared_transaction_offset = r.i64()?;
        let body_len = r.len32()?;
        let body = r.take(body_len)?;
        let topic_len = if magic == MAGIC_V1 {
            usize::from(r.u8()?)
        } else {
            u16::from_be_bytes(r.array()?) as usize
        };
        let topic = r.utf8(topic_len)?;
        let props_len = u16::from_be_bytes(r.array()?) as usize;
        let properties = r.utf8(props_len)?;
        Ok((
            MessageView {
                queue_id,
                flag,
                queue_offset,
                physical_offset,
                sys_flag,
                born_timestamp,
                born_host,
                store_timestamp,
                store_host,
                reconsume_times,
                prepared_transaction_offset,
                body_crc,
                body,
                topic,
                properties,
            },
            total,
        ))
    }

    /// Append the stored record to `out` (V2 when the topic is longer than 127 bytes, as the
    /// store's `autoMessageVersionOnTopicLen` does). The body CRC is computed.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), Error> {
        let v2 = self.topic.len() > 127;
        if self.topic.len() > u16::MAX as usize {
            return Err(Error::Malformed(format!(
                "topic of {} bytes",
                self.topic.len()
            )));
        }
        let props_len = u16::try_from(self.properties.len()).map_err(|_| {
            Error::Malformed(format!("properties of {} bytes", self.properties.len()))
        })?;
        let mut sys_flag = self.sys_flag & !(sys_flag::BORNHOST_V6 | sys_flag::STOREHOST_V6);
        if self.born_host.is_ipv6() {
            sys_flag |= sys_flag::BORNHOST_V6;
        }
        if self.store_host.is_ipv6() {
            sys_flag |= sys_flag::STOREHOST_V6;
        }
        let start = out.len();
        out.put_i32(0);
        out.put_i32(if v2 { MAGIC_V2 } else { MAGIC_V1 });
        out.put_i32(body_crc(self.body));
        out.put_i32(self.queue_id);
        out.put_i32(self.flag);
        out.put_i64(self.queue_offset);
        out.put_i64(self.physical_offset);
        out.put_i32(sys_flag);
        out.put_i64(self.born_timestamp);
        put_host(out, self.born_host);
        out.put_i64(self.store_timestamp);
        put_host(out, self.store_host);
        out.put_i32(self.reconsume_times);
        out.put_i64(self.prepared_transaction_offset);
        out.put_i32(self.body.len() as i32);
        out.put_slice(self.body);
        if v2 {
            out.put_u16(self.topic.len() as u16);
        } else {
            out.put_u8(self.topic.len() as u8);
        }
        out.put_slice(self.topic.as_bytes());
        out.put_u16(props_len);
        out.put_slice(self.properties.as_bytes());
        let total = out.len() - start;
        if total > MAX_RECORD {
            out.truncate(start);
            return Err(Error::Malformed(format!("record of {total} bytes")));
        }
        out[start..start + 4].copy_from_slice(&(total as i32).to_be_bytes());
        Ok(())
    }

    /// The offset message id: store host and commit-log offset, uppercase hex (`createMessageId`).
    pub fn offset_msg_id(&self) -> String {
        offset_msg_id(self.store_host, self.physical_offset)
    }

    /// One property's value.
    pub fn property(&self, name: &str) -> Option<&'a str> {
        property_of(self.properties, name)
    }
}

fn host(r: &mut Reader<'_>, v6: bool) -> Result<SocketAddr, Error> {
    let ip = if v6 {
        IpAddr::V6(Ipv6Addr::from(r.array::<16>()?))
    } else {
        IpAddr::V4(Ipv4Addr::from(r.array::<4>()?))
    };
    let port = r.i32()?;
    let port = u16::try_from(port).map_err(|_| Error::Malformed(format!("port {port}")))?;
    Ok(SocketAddr::new(ip, port))
}

fn put_host(out: &mut Vec<u8>, addr: SocketAddr) {
    match addr.ip() {
        IpAddr::V4(ip) => out.put_slice(&ip.octets()),
        IpAddr::V6(ip) => out.put_slice(&ip.octets()),
    }
    out.put_i32(i32::from(addr.port()));
}

/// CRC32 of a body & 0x7FFFFFFF (`UtilAll.crc32`).
pub fn body_crc(body: &[u8]) -> i32 {
    (crc32fast::hash(body) & 0x7FFF_FFFF) as i32
}

/// Decode the records of a pull response body, in order. As RocketMQ's client does, decoding
/// stops at the first record that does not decode; the error says why, after the messages
/// before it.
pub fn decode_batch(body: &[u8]) -> (Vec<MessageView<'_>>, Option<Error>) {
    let mut out = Vec::new();
    let mut at = 0;
    while at < body.len() {
        match MessageView::decode(&body[at..]) {
            Ok((m, size)) => {
                out.push(m);
                at += size;
            }
            Err(e) => return (out, Some(e)),
        }
    }
    (out, None)
}

/// The offset message id of a record stored at `offset` on `store_host` (32 hex digits for IPv4).
pub fn offset_msg_id(store_host: SocketAddr, offset: i64) -> String {
    let mut raw = Vec::with_capacity(28);
    put_host(&mut raw, store_host);
    raw.put_i64(offset);
    hex_upper(&raw)
}

/// Parse an offset message id back into its store host and commit-log offset.
pub fn parse_offset_msg_id(id: &str) -> Result<(SocketAddr, i64), Error> {
    let raw = unhex(id)?;
    let mut r = Reader(&raw);
    let addr = match raw.len() {
        16 => host(&mut r, false)?,
        28 => host(&mut r, true)?,
        n => return Err(Error::Malformed(format!("message id of {n} bytes"))),
    };
    Ok((addr, r.i64()?))
}

fn hex_upper(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 15) as usize] as char);
    }
    s
}

fn unhex(s: &str) -> Result<Vec<u8>, Error> {
    if !s.len().is_multiple_of(2) || s.len() > 64 {
        return Err(Error::Malformed(format!("message id {s:?}")));
    }
    let digit = |c: u8| {
        (c as char)
            .to_digit(16)
            .ok_or_else(|| Error::Malformed(format!("message id {s:?}")))
    };
    s.as_bytes()
        .chunks(2)
        .map(|p| Ok((digit(p[0])? * 16 + digit(p[1])?) as u8))
        .collect()
}

const NAME_VALUE: char = '\u{1}';
const PROPERTY: char = '\u{2}';

/// Parse a properties string as `string2messageProperties`: split on `\x02`, then on the first
/// `\x01`, skipping fragments too short to hold a pair.
pub fn parse_properties(s: &str) -> BTreeMap<&str, &str> {
    s.split(PROPERTY)
        .filter(|p| p.len() >= 3)
        .filter_map(|p| p.split_once(NAME_VALUE))
        .collect()
}

/// One property of a properties string, without building the map.
pub fn property_of<'a>(s: &'a str, name: &str) -> Option<&'a str> {
    s.split(PROPERTY)
        .filter(|p| p.len() >= 3)
        .filter_map(|p| p.split_once(NAME_VALUE))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Write properties as `messageProperties2String`: `name\x01value\x02` per pair.
pub fn encode_properties<'a>(props: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut s = String::new();
    for (k, v) in props {
        s.push_str(k);
        s.push(NAME_VALUE);
        s.push_str(v);
        s.push(PROPERTY);
    }
    s
}

/// One message of a SEND_BATCH_MESSAGE body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchItem<'a> {
    /// The user flag.
    pub flag: i32,
    /// The body.
    pub body: &'a [u8],
    /// Its properties string.
    pub properties: &'a str,
}

/// Encode a SEND_BATCH_MESSAGE body (`MessageDecoder.encodeMessages`): per message
/// `totalSize | magic 0 | bodyCRC 0 | flag | bodyLen + body | propsLen(i16) + props`.
pub fn encode_send_batch(items: &[BatchItem<'_>], out: &mut Vec<u8>) -> Result<(), Error> {
    for m in items {
        let props_len = u16::try_from(m.properties.len())
            .map_err(|_| Error::Malformed("properties longer than 32767 bytes".into()))?;
        let total = 4 + 4 + 4 + 4 + 4 + m.body.len() + 2 + m.properties.len();
        out.put_i32(total as i32);
        out.put_i32(0);
        out.put_i32(0);
        out.put_i32(m.flag);
        out.put_i32(m.body.len() as i32);
        out.put_slice(m.body);
        out.put_u16(props_len);
        out.put_slice(m.properties.as_bytes());
    }
    Ok(())
}

/// Decode a SEND_BATCH_MESSAGE body.
pub fn decode_send_batch(body: &[u8]) -> Result<Vec<BatchItem<'_>>, Error> {
    let mut out = Vec::new();
    let mut r = Reader(body);
    while !r.0.is_empty() {
        let total = r.i32()?;
        let inner = usize::try_from(total)
            .ok()
            .and_then(|t| t.checked_sub(4))
            .ok_or_else(|| Error::Malformed(format!("batch item of {total} bytes")))?;
        let mut m = Reader(r.take(inner)?);
        let _magic = m.i32()?;
        let _crc = m.i32()?;
        let flag = m.i32()?;
        let body_len = m.len32()?;
        let body = m.take(body_len)?;
        let props_len = u16::from_be_bytes(m.array()?) as usize;
        let properties = m.utf8(props_len)?;
        out.push(BatchItem {
            flag,
            body,
            properties,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample<'a>(body: &'a [u8], topic: &'a str, props: &'a str) -> MessageView<'a> {
        MessageView {
            queue_id: 3,
            flag: 0,
            queue_offset: 42,
            physical_offset: 1_048_576,
            sys_flag: 0,
            born_timestamp: 1_700_000_000_000,
            born_host: "10.0.0.5:54321".parse().unwrap(),
            store_timestamp: 1_700_000_000_123,
            store_host: "10.0.0.1:10911".parse().unwrap(),
            reconsume_times: 0,
            prepared_transaction_offset: 0,
            body_crc: body_crc(body),
            body,
            topic,
            properties: props,
        }
    }

    #[test]
    fn golden_record_layout() {
        // Field offsets of CommitLog's record (protocol.md §4.1): MAGIC at 4, FLAG at 16,
        // QUEUEOFFSET at 20, PHYSICALOFFSET at 28, SYSFLAG at 36, BORNTIMESTAMP at 40.
        let m = sample(b"hello", "TopicTest", "TAGS\u{1}TagA\u{2}");
        let mut out = Vec::new();
        m.encode(&mut out).unwrap();
        assert_eq!(&out[4..8], &MAGIC_V1.to_be_bytes());
        assert_eq!(&out[20..28], &42i64.to_be_bytes());
        assert_eq!(&out[28..36], &1_048_576i64.to_be_bytes());
        assert_eq!(&out[40..48], &1_700_000_000_000i64.to_be_bytes());
        assert_eq!(&out[48..52], &[10, 0, 0, 5]);
        let total = 4 + 4 + 4 + 4 + 4 + 8 + 8 + 4 + 8 + 8 + 8 + 8 + 4 + 8 + 4 + 5 + 1 + 9 + 2 + 10;
        assert_eq!(out.len(), total);
        assert_eq!(&out[..4], &(total as i32).to_be_bytes());
        let (back, size) = MessageView::decode(&out).unwrap();
        assert_eq!(size, total);
        assert_eq!(back, m);
        assert_eq!(back.property("TAGS"), Some("TagA"));
        // crc32("hello") = 0x3610a686.
        assert_eq!(back.body_crc, 0x3610_a686);
        assert_eq!(back.offset_msg_id(), "0A00000100002A9F0000000000100000");
    }

    #[test]
    fn ipv6_hosts_and_long_topics() {
        let long = "t".repeat(200);
        let mut m = sample(b"x", &long, "");
        m.born_host = "[::1]:1234".parse().unwrap();
        let mut out = Vec::new();
        m.encode(&mut out).unwrap();
        assert_eq!(&out[4..8], &MAGIC_V2.to_be_bytes());
        let (back, _) = MessageView::decode(&out).unwrap();
        assert_eq!(back.sys_flag & sys_flag::BORNHOST_V6, sys_flag::BORNHOST_V6);
        assert_eq!(back.born_host, m.born_host);
        assert_eq!(back.topic, long);
        let id = offset_msg_id("[::1]:10911".parse().unwrap(), 7);
        assert_eq!(id.len(), 56);
        assert_eq!(
            parse_offset_msg_id(&id).unwrap(),
            ("[::1]:10911".parse().unwrap(), 7)
        );
    }

    #[test]
    fn batches_stop_at_the_first_bad_record() {
        let mut body = Vec::new();
        for i in 0..3 {
            let mut m = sample(b"payload", "T", "");
            m.queue_offset = i;
            m.encode(&mut body).unwrap();
        }
        let (ms, err) = decode_batch(&body);
        assert_eq!(ms.len(), 3);
        assert!(err.is_none());
        let cut = body.len() - 5;
        let (ms, err) = decode_batch(&body[..cut]);
        assert_eq!(ms.len(), 2);
        assert!(err.is_some());
        assert!(MessageView::decode(&[0, 0, 0, 4]).is_err());
        assert!(MessageView::decode(&[0x7f, 0, 0, 0, 1, 2]).is_err());
    }

    #[test]
    fn properties_as_java_parses_them() {
        let s = encode_properties([("KEYS", "k1 k2"), ("TAGS", "TagA")]);
        assert_eq!(s, "KEYS\u{1}k1 k2\u{2}TAGS\u{1}TagA\u{2}");
        let p = parse_properties(&s);
        assert_eq!(p["KEYS"], "k1 k2");
        assert_eq!(property_of(&s, "TAGS"), Some("TagA"));
        // Fragments shorter than 3 chars and ones without a separator are skipped.
        assert_eq!(parse_properties("a\u{2}b\u{1}c\u{2}nosep\u{2}").len(), 1);
    }

    #[test]
    fn send_batch_round_trip() {
        let items = [
            BatchItem {
                flag: 1,
                body: b"one",
                properties: "UNIQ_KEY\u{1}A\u{2}",
            },
            BatchItem {
                flag: 0,
                body: b"",
                properties: "",
            },
        ];
        let mut out = Vec::new();
        encode_send_batch(&items, &mut out).unwrap();
        assert_eq!(&out[..4], &(4 + 16 + 3 + 2 + 11i32).to_be_bytes());
        assert_eq!(decode_send_batch(&out).unwrap(), items);
        assert!(decode_send_batch(&out[..out.len() - 1]).is_err());
        assert!(decode_send_batch(&[0, 0, 0, 1]).is_err());
    }
}
