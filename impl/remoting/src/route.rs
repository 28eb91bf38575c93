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
/// JSON parser reads fastjson's output. A key is a run of digits (optionally negative) right after
/// `{` or `,` and followed by `:`; strings are skipped whole. Text that needs no change is
/// borrowed.
pub fn quote_numeric_keys(text: &str) -> Cow<'_, str> {
    let b = text.as_bytes();
    let mut keys: Vec<(usize, usize)> = Vec::new();
    let mut i = 0;
    while let Some(off) = memchr::memchr3(b'"', b'{', b',', &b[i..]) {
        let at = i + off;
        if b[at] == b'"' {
            // Skip the string: to the next quote not escaped.
            let mut j = at + 1;
            loop {
                match memchr::memchr2(b'"', b'\\', &b[j..]) {
                    Some(o) if b[j + o] == b'\\' => j += o + 2,
                    Some(o) => {
                        j += o + 1;
                        break;
                    }
                    None => return finish(text, &keys),
                }
                if j >= b.len() {
                    return finish(text, &keys);
                }
            }
            i = j;
            continue;
        }
        let mut k = at + 1;
        while k < b.len() && b[k].is_ascii_whitespace() {
            k += 1;
        }
        let start = k;
        if k < b.len() && b[k] == b'-' {
            k += 1;
        }
        let digits = k;
        while k < b.len() && b[k].is_ascii_digit() {
            k += 1;
        }
        if k > digits {
            let end = k;
            while k < b.len() && b[k].is_ascii_whitespace() {
                k += 1;
            }
            if k < b.len() && b[k] == b':' {
                keys.push((start, end));
            }
        }
        i = at + 1;
    }
    finish(text, &keys)
}

/// The integer-keyed maps of route and cluster bodies (`brokerAddrs`, and `currIdMap` of static
/// topics): quote their keys only, found by substring search. A needle that starts with an
/// unescaped quote and ends with `":{` cannot lie inside a JSON string, so every match is a map in
/// key-value position.
pub fn quote_known_maps(text: &str) -> Cow<'_, str> {
    let b = text.as_bytes();
    let mut keys: Vec<(usize, usize)> = Vec::new();
    static FINDERS: std::sync::LazyLock<[memchr::memmem::Finder<'static>; 2]> =
        std::sync::LazyLock::new(|| {
            [
                memchr::memmem::Finder::new(b"\"brokerAddrs\":{"),
                memchr::memmem::Finder::new(b"\"currIdMap\":{"),
            ]
        });
    for finder in FINDERS.iter() {
        let len = finder.needle().len();
        for at in finder.find_iter(b) {
            quote_object(b, at + len, &mut keys);
        }
    }
    keys.sort_unstable();
    finish(text, &keys)
}

/// Record the bare integer keys of the flat object whose body starts at `i` (just past `{`).
fn quote_object(b: &[u8], mut i: usize, keys: &mut Vec<(usize, usize)>) {
    let skip_ws = |i: &mut usize| {
        while *i < b.len() && b[*i].is_ascii_whitespace() {
            *i += 1;
        }
    };
    loop {
        skip_ws(&mut i);
        let start = i;
        if i < b.len() && b[i] == b'-' {
            i += 1;
        }
        let digits = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i > digits {
            keys.push((start, i));
        }
        // To the value, then past it.
        while i < b.len() && b[i] != b':' && b[i] != b'}' {
            if b[i] == b'"' {
                i = skip_string(b, i);
            } else {
                i += 1;
            }
        }
        while i < b.len() && b[i] != b',' && b[i] != b'}' {
            if b[i] == b'"' {
                i = skip_string(b, i);
            } else if b[i] == b'{' || b[i] == b'[' {
                // Not a flat map: leave the rest to the general pass.
                return;
            } else {
                i += 1;
            }
        }
        if i >= b.len() || b[i] == b'}' {
            return;
        }
        i += 1;
    }
}

/// The index just past the string starting at `i` (a quote).
fn skip_string(b: &[u8], i: usize) -> usize {
    let mut j = i + 1;
    while j < b.len() {
        match memchr::memchr2(b'"', b'\\', &b[j..]) {
            Some(o) if b[j + o] == b'\\' => j += o + 2,
            Some(o) => return j + o + 1,
            None => break,
        }
    }
    b.len()
}

/// `text` with quotes around each `(start, end)` range.
fn finish<'a>(text: &'a str, keys: &[(usize, usize)]) -> Cow<'a, str> {
    if keys.is_empty() {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 2 * keys.len());
    let mut from = 0;
    for &(start, end) in keys {
        // Matches found from two needles may cover the same key (in text that is not JSON
        // anyway); quote each place once.
        if start < from {
            continue;
        }
        out.push_str(&text[from..start]);
        out.push('"');
        out.push_str(&text[start..end]);
        out.push('"');
        from = end;
    }
    out.push_str(&text[from..]);
    Cow::Owned(out)
}

/// Parse fastjson output, whichever key style: quote the keys of the known integer-keyed maps
/// (nothing to do for clients with version ≥ 401), and if the text still does not parse, every
/// bare integer key.
pub(crate) fn parse_lenient<T: serde::de::DeserializeOwned>(
    what: &str,
    text: &str,
) -> Result<T, Error> {
    // The known integer-keyed maps first (a substring search), then, if the text still does not
    // parse, every bare key (a full scan).
    let known = quote_known_maps(text);
    let first = match serde_json::from_str(&known) {
        Ok(v) => return Ok(v),
        Err(e) => e,
    };
    match quote_numeric_keys(&known) {
        Cow::Borrowed(_) => Err(Error::Malformed(format!("{what}: {first}"))),
        Cow::Owned(quoted) => {
            serde_json::from_str(&quoted).map_err(|e| Error::Malformed(format!("{what}: {e}")))
        }
    }
}

/// Decode a route body (either key style) into the model's route. Queue counts above
/// [`sextant_model::route::MAX_QUEUE_NUMS`] are refused.
pub fn decode_route(body: &[u8]) -> Result<TopicRouteData, Error> {
    let text = std::str::from_utf8(body).map_err(|e| Error::Malformed(format!("route: {e}")))?;
    parse_lenient::<RouteJson>("route", text)?.into_model()
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
    broker_addrs: Option<BTreeMap<u64, String>>,
    #[serde(default)]
    zone_name: Option<String>,
    #[serde(default, deserialize_with = "lenient::bool")]
    enable_acting_master: bool,
}

impl BrokerJson {
    pub(crate) fn into_model(self) -> Result<BrokerData, Error> {
        Ok(BrokerData {
            cluster: self.cluster.unwrap_or_default(),
            broker_name: self.broker_name,
            broker_addrs: self.broker_addrs.unwrap_or_default(),
            zone_name: self.zone_name,
            enable_acting_master: self.enable_acting_master,
        })
    }
}

impl RouteJson {
    fn into_model(self) -> Result<TopicRouteData, Error> {
        let max = sextant_model::route::MAX_QUEUE_NUMS;
        if let Some(q) = self
            .queue_datas
            .iter()
            .flatten()
            .find(|q| q.read_queue_nums > max || q.write_queue_nums > max)
        {
            return Err(Error::Malformed(format!(
                "route: {} claims {}/{} queues, more than {max}",
                q.broker_name, q.read_queue_nums, q.write_queue_nums
            )));
        }
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
        let known =
            r#"{"x":"\"brokerAddrs\":{0:","brokerAddrs":{0:"a:1", 1 :"b:2"},"currIdMap":{-1:2}}"#;
        assert_eq!(
            quote_known_maps(known),
            r#"{"x":"\"brokerAddrs\":{0:","brokerAddrs":{"0":"a:1", "1" :"b:2"},"currIdMap":{"-1":2}}"#
        );
        assert!(matches!(quote_known_maps(QUOTED), Cow::Borrowed(_)));
        // Found by cargo-fuzz: two matches whose scans cover the same key.
        let overlapping = r#""brokerAddrs":{:""brokerAddrs":{:\"",0"#;
        let _ = quote_known_maps(overlapping);
        assert!(decode_route(overlapping.as_bytes()).is_err());
    }

    #[test]
    fn absurd_queue_counts_are_refused() {
        let body = br#"{"brokerDatas":[],"queueDatas":[{"brokerName":"b","perm":6,"readQueueNums":4000000000,"topicSysFlag":0,"writeQueueNums":4}]}"#;
        let err = decode_route(body).unwrap_err().to_string();
        assert!(err.contains("4000000000"), "{err}");
        let ok = br#"{"brokerDatas":[],"queueDatas":[{"brokerName":"b","perm":6,"readQueueNums":65536,"topicSysFlag":0,"writeQueueNums":4}]}"#;
        assert_eq!(
            decode_route(ok).unwrap().queue_datas[0].read_queue_nums,
            65_536
        );
    }
}
