//! `TopicRouteData` bodies (GET_ROUTEINFO_BY_TOPIC) as a Java NameServer writes them, to and from
//! `sextant-model`'s route types (protocol.md §3.1-3.2).
//!
//! fastjson writes the `brokerAddrs` map (`HashMap<Long, String>`) with **unquoted** keys —
//! `{0:"10.0.0.1:10911"}`, not valid JSON — unless the client's version is at least `V4_9_4`
//! (401) or it asked for standard JSON; then the keys are quoted. Decoding accepts both, and the
//! 4.x spelling `topicSynFlag`; encoding writes either, with fastjson's sorted field order.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::Deserialize;
use sextant_model::route::{BrokerData, Perm, QueueData, TopicRouteData};

use crate::Error;
use crate::command::write_json_str;

/// How the keys of integer-keyed maps are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyStyle {
    /// `{"0":"addr"}`: standard JSON (clients with version ≥ 401, or `acceptStandardJsonOnly`).
    Quoted,
    /// `{0:"addr"}`: fastjson's default (older clients, and ClusterInfo always).
    Unquoted,
}

impl KeyStyle {
    /// The style a NameServer uses for a route request of `version` (and `acceptStandardJsonOnly`).
    pub fn for_request(version: i32, accept_standard_json_only: bool) -> KeyStyle {
        if version >= crate::command::VERSION_QUOTED_ROUTE_KEYS || accept_standard_json_only {
            KeyStyle::Quoted
        } else {
            KeyStyle::Unquoted
        }
    }
}

/// Quote bare integer object keys (`{0:"a"}` → `{"0":"a"}`) outside strings, so that a standard
/// JSON parser reads fastjson's output. Text that needs no change is borrowed.
pub fn quote_numeric_keys(text: &str) -> Cow<'_, str> {
    let b = text.as_bytes();
    // Fast path: a bare key needs `{` or `,` then optional space then a digit or `-`.
    let mut needs = false;
    let (mut in_str, mut esc) = (false, false);
    for (i, &c) in b.iter().enumerate() {
        if in_str {
            match (esc, c) {
                (true, _) => esc = false,
                (false, b'\\') => esc = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match c {
            b'"' => in_str = true,
            b'{' | b',' => {
                let rest = &b[i + 1..];
                let skip = rest.iter().take_while(|c| c.is_ascii_whitespace()).count();
                if rest
                    .get(skip)
                    .is_some_and(|c| c.is_ascii_digit() || *c == b'-')
                {
                    needs = true;
                    break;
                }
            }
            _ => {}
        }
    }
    if !needs {
        return Cow::Borrowed(text);
    }
    let mut out: Vec<u8> = Vec::with_capacity(text.len() + 16);
    // Stack of containers: true for an object (where keys appear).
    let mut stack: Vec<bool> = Vec::new();
    let (mut in_str, mut esc) = (false, false);
    let mut expect_key = false;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if in_str {
            match (esc, c) {
                (true, _) => esc = false,
                (false, b'\\') => esc = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
        } else {
            match c {
                b'"' => {
                    in_str = true;
                    expect_key = false;
                }
                b'{' => {
                    stack.push(true);
                    expect_key = true;
                }
                b'[' => {
                    stack.push(false);
                    expect_key = false;
                }
                b'}' | b']' => {
                    stack.pop();
                    expect_key = false;
                }
                b',' => expect_key = stack.last() == Some(&true),
                b':' => expect_key = false,
                c if expect_key && (c.is_ascii_digit() || c == b'-') => {
                    let mut end = i + 1;
                    while end < b.len() && b[end].is_ascii_digit() {
                        end += 1;
                    }
                    out.push(b'"');
                    out.extend_from_slice(&b[i..end]);
                    out.push(b'"');
                    expect_key = false;
                    i = end;
                    continue;
                }
                c if c.is_ascii_whitespace() => {}
                _ => expect_key = false,
            }
        }
        out.push(c);
        i += 1;
    }
    // Quotes were only inserted around ASCII digits, so the text is still UTF-8.
    Cow::Owned(
        String::from_utf8(out)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
    )
}

/// Decode a route body (either key style) into the model's route.
pub fn decode_route(body: &[u8]) -> Result<TopicRouteData, Error> {
    let text = std::str::from_utf8(body).map_err(|e| Error::Malformed(format!("route: {e}")))?;
    let text = quote_numeric_keys(text);
    let json: RouteJson =
        serde_json::from_str(&text).map_err(|e| Error::Malformed(format!("route: {e}")))?;
    json.into_model()
}

/// Encode a route as a NameServer answers it, in `style`.
pub fn encode_route(route: &TopicRouteData, style: KeyStyle) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + 160 * route.broker_datas.len());
    out.extend_from_slice(b"{\"brokerDatas\":[");
    for (i, b) in route.broker_datas.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        encode_broker_data(&mut out, b, style);
    }
    out.extend_from_slice(b"],\"filterServerTable\":{");
    for (i, (addr, servers)) in route.filter_server_table.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_json_str(&mut out, addr);
        out.extend_from_slice(b":[");
        for (j, s) in servers.iter().enumerate() {
            if j > 0 {
                out.push(b',');
            }
            write_json_str(&mut out, s);
        }
        out.push(b']');
    }
    out.push(b'}');
    if let Some(conf) = &route.order_topic_conf {
        out.extend_from_slice(b",\"orderTopicConf\":");
        write_json_str(&mut out, conf);
    }
    out.extend_from_slice(b",\"queueDatas\":[");
    for (i, q) in route.queue_datas.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"brokerName\":");
        write_json_str(&mut out, &q.broker_name);
        push_fmt(
            &mut out,
            format_args!(
                ",\"perm\":{},\"readQueueNums\":{},\"topicSysFlag\":{},\"writeQueueNums\":{}}}",
                q.perm.0, q.read_queue_nums, q.topic_sys_flag, q.write_queue_nums
            ),
        );
    }
    out.extend_from_slice(b"]}");
    out
}

/// One `BrokerData` object, fields in fastjson's order.
pub(crate) fn encode_broker_data(out: &mut Vec<u8>, b: &BrokerData, style: KeyStyle) {
    out.extend_from_slice(b"{\"brokerAddrs\":{");
    for (i, (id, addr)) in b.broker_addrs.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        match style {
            KeyStyle::Quoted => push_fmt(out, format_args!("\"{id}\":")),
            KeyStyle::Unquoted => push_fmt(out, format_args!("{id}:")),
        }
        write_json_str(out, addr);
    }
    out.extend_from_slice(b"},\"brokerName\":");
    write_json_str(out, &b.broker_name);
    out.extend_from_slice(b",\"cluster\":");
    write_json_str(out, &b.cluster);
    push_fmt(
        out,
        format_args!(",\"enableActingMaster\":{}", b.enable_acting_master),
    );
    if let Some(zone) = &b.zone_name {
        out.extend_from_slice(b",\"zoneName\":");
        write_json_str(out, zone);
    }
    out.push(b'}');
}

fn push_fmt(out: &mut Vec<u8>, args: std::fmt::Arguments<'_>) {
    let _ = std::io::Write::write_fmt(out, args);
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RouteJson {
    #[serde(default)]
    order_topic_conf: Option<String>,
    #[serde(default)]
    queue_datas: Option<Vec<QueueJson>>,
    #[serde(default)]
    broker_datas: Option<Vec<BrokerJson>>,
    #[serde(default)]
    filter_server_table: Option<BTreeMap<String, Vec<String>>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct QueueJson {
    #[serde(default)]
    broker_name: String,
    #[serde(default, deserialize_with = "lenient::u32")]
    read_queue_nums: u32,
    #[serde(default, deserialize_with = "lenient::u32")]
    write_queue_nums: u32,
    #[serde(default = "default_perm", deserialize_with = "lenient::u32")]
    perm: u32,
    #[serde(default, alias = "topicSynFlag", deserialize_with = "lenient::u32")]
    topic_sys_flag: u32,
}

fn default_perm() -> u32 {
    Perm::READ_WRITE.0
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BrokerJson {
    #[serde(default)]
    cluster: Option<String>,
    #[serde(default)]
    broker_name: String,
    #[serde(default)]
    broker_addrs: Option<BTreeMap<String, String>>,
    #[serde(default)]
    zone_name: Option<String>,
    #[serde(default, deserialize_with = "lenient::bool")]
    enable_acting_master: bool,
}

impl BrokerJson {
    pub(crate) fn into_model(self) -> Result<BrokerData, Error> {
        let mut broker_addrs = BTreeMap::new();
        for (id, addr) in self.broker_addrs.unwrap_or_default() {
            let id: u64 = id.trim().parse().map_err(|_| {
                Error::Malformed(format!("broker id {id:?} of {}", self.broker_name))
            })?;
            broker_addrs.insert(id, addr);
        }
        Ok(BrokerData {
            cluster: self.cluster.unwrap_or_default(),
            broker_name: self.broker_name,
            broker_addrs,
            zone_name: self.zone_name,
            enable_acting_master: self.enable_acting_master,
        })
    }
}

impl RouteJson {
    fn into_model(self) -> Result<TopicRouteData, Error> {
        Ok(TopicRouteData {
            order_topic_conf: self.order_topic_conf,
            queue_datas: self
                .queue_datas
                .unwrap_or_default()
                .into_iter()
                .map(|q| QueueData {
                    broker_name: q.broker_name,
                    read_queue_nums: q.read_queue_nums,
                    write_queue_nums: q.write_queue_nums,
                    perm: Perm(q.perm),
                    topic_sys_flag: q.topic_sys_flag,
                })
                .collect(),
            broker_datas: self
                .broker_datas
                .unwrap_or_default()
                .into_iter()
                .map(BrokerJson::into_model)
                .collect::<Result<_, _>>()?,
            filter_server_table: self.filter_server_table.unwrap_or_default(),
        })
    }
}

/// Deserializers as lenient as fastjson: numbers may come as strings, booleans as `"true"`,
/// `"1"` or `1`, nulls give the default.
pub(crate) mod lenient {
    use serde::Deserializer;
    use serde::de::{self, Visitor};
    use std::fmt;

    struct Num;
    impl Visitor<'_> for Num {
        type Value = i64;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an integer")
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<i64, E> {
            Ok(v)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<i64, E> {
            i64::try_from(v).map_err(|_| E::custom("integer out of range"))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<i64, E> {
            if v.fract() == 0.0 && v.abs() < 9.2e18 {
                Ok(v as i64)
            } else {
                Err(E::custom("not an integer"))
            }
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<i64, E> {
            v.trim().parse().map_err(|_| E::custom("not an integer"))
        }
        fn visit_unit<E: de::Error>(self) -> Result<i64, E> {
            Ok(0)
        }
    }

    /// An `i64` from a number or a numeric string.
    pub(crate) fn i64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        d.deserialize_any(Num)
    }

    /// A `u32` from a number or a numeric string.
    pub(crate) fn u32<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
        let v = d.deserialize_any(Num)?;
        u32::try_from(v).map_err(|_| de::Error::custom(format!("{v} out of range")))
    }

    /// A `bool` from a boolean, `"true"`/`"1"` (any case) or a number.
    pub(crate) fn bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
        struct B;
        impl Visitor<'_> for B {
            type Value = bool;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a boolean")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<bool, E> {
                Ok(v)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<bool, E> {
                Ok(v != 0)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<bool, E> {
                Ok(v != 0)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
                Ok(super::super::ext::parse_bool(v))
            }
            fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
                Ok(false)
            }
        }
        d.deserialize_any(B)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A route as a 5.x NameServer writes it for a client with version ≥ 401 (protocol.md §3.2).
    const QUOTED: &str = r#"{"brokerDatas":[{"brokerAddrs":{"0":"10.0.0.1:10911","1":"10.0.0.2:10911"},"brokerName":"broker-a","cluster":"DefaultCluster","enableActingMaster":false,"zoneName":"z1"}],"filterServerTable":{},"orderTopicConf":"broker-a:4;broker-b:4","queueDatas":[{"brokerName":"broker-a","perm":6,"readQueueNums":4,"topicSysFlag":0,"writeQueueNums":4}]}"#;

    fn model() -> TopicRouteData {
        TopicRouteData {
            order_topic_conf: Some("broker-a:4;broker-b:4".into()),
            queue_datas: vec![QueueData {
                broker_name: "broker-a".into(),
                read_queue_nums: 4,
                write_queue_nums: 4,
                perm: Perm(6),
                topic_sys_flag: 0,
            }],
            broker_datas: vec![BrokerData {
                cluster: "DefaultCluster".into(),
                broker_name: "broker-a".into(),
                broker_addrs: BTreeMap::from([
                    (0, "10.0.0.1:10911".to_string()),
                    (1, "10.0.0.2:10911".to_string()),
                ]),
                zone_name: Some("z1".into()),
                enable_acting_master: false,
            }],
            filter_server_table: BTreeMap::new(),
        }
    }

    #[test]
    fn golden_route_both_key_styles() {
        assert_eq!(decode_route(QUOTED.as_bytes()).unwrap(), model());
        assert_eq!(
            std::str::from_utf8(&encode_route(&model(), KeyStyle::Quoted)).unwrap(),
            QUOTED
        );
        let unquoted = QUOTED.replace(r#"{"0":"#, "{0:").replace(r#","1":"#, ",1:");
        assert!(unquoted.contains(r#"{"brokerAddrs":{0:"10.0.0.1:10911",1:"#));
        assert_eq!(
            std::str::from_utf8(&encode_route(&model(), KeyStyle::Unquoted)).unwrap(),
            unquoted
        );
        assert_eq!(decode_route(unquoted.as_bytes()).unwrap(), model());
    }

    #[test]
    fn old_and_sparse_routes_decode() {
        // 4.x: topicSynFlag, no enableActingMaster, numbers as strings, unknown fields.
        let old = r#"{"brokerDatas":[{"brokerAddrs":{0:"a:1"},"brokerName":"b","cluster":"C"}],"queueDatas":[{"brokerName":"b","perm":"6","readQueueNums":2,"topicSynFlag":1,"writeQueueNums":2}],"extra":{"x":[1,2]}}"#;
        let r = decode_route(old.as_bytes()).unwrap();
        assert_eq!(r.queue_datas[0].topic_sys_flag, 1);
        assert_eq!(r.queue_datas[0].perm, Perm(6));
        assert_eq!(r.broker_datas[0].master_addr(), Some("a:1"));
        assert_eq!(decode_route(b"{}").unwrap(), TopicRouteData::default());
        assert!(decode_route(b"{\"brokerDatas\":[{\"brokerAddrs\":{\"x\":\"a\"}}]}").is_err());
        assert!(decode_route(b"[").is_err());
        assert!(decode_route(&[0xff, 0xfe]).is_err());
    }

    #[test]
    fn quoting_leaves_strings_alone() {
        let text = r#"{"a":"{0:1, 2:3}","m":{10:"x",-1:"y"},"l":[1,2,{3:4}]}"#;
        assert_eq!(
            quote_numeric_keys(text),
            r#"{"a":"{0:1, 2:3}","m":{"10":"x","-1":"y"},"l":[1,2,{"3":4}]}"#
        );
        assert!(matches!(quote_numeric_keys(QUOTED), Cow::Borrowed(_)));
        assert_eq!(
            quote_numeric_keys(r#"{"é":{ 5 :"ü"}}"#),
            r#"{"é":{ "5" :"ü"}}"#
        );
    }
}
