//! `RemotingCommand`: one request or response, and its two header encodings — fastjson's JSON
//! and the compact ROCKETMQ binary form (protocol.md §1.3-1.5).

use std::borrow::Cow;
use std::fmt;

use bytes::{BufMut, Bytes};
use serde::de::{self, Deserializer, MapAccess, Visitor};

use crate::Error;

/// Bit 0 of `flag`: the command is a response.
pub const FLAG_RESPONSE: i32 = 1;
/// Bit 1 of `flag`: a oneway request (no response).
pub const FLAG_ONEWAY: i32 = 1 << 1;

/// The `version` Sextant sends: `V5_3_3`'s ordinal, so NameServers answer standard JSON (§1.6).
pub const CURRENT_VERSION: i32 = 479;
/// `V4_9_4`: from this version on a NameServer quotes the keys of `brokerAddrs`.
pub const VERSION_QUOTED_ROUTE_KEYS: i32 = 401;

/// `LanguageCode`: who wrote the command.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LanguageCode(pub u8);

impl LanguageCode {
    /// `JAVA`.
    pub const JAVA: LanguageCode = LanguageCode(0);
    /// `CPP`.
    pub const CPP: LanguageCode = LanguageCode(1);
    /// `GO`.
    pub const GO: LanguageCode = LanguageCode(9);
    /// `RUST`.
    pub const RUST: LanguageCode = LanguageCode(12);

    const NAMES: [&'static str; 14] = [
        "JAVA", "CPP", "DOTNET", "PYTHON", "DELPHI", "ERLANG", "RUBY", "OTHER", "HTTP", "GO",
        "PHP", "OMS", "RUST", "NODE_JS",
    ];

    /// The enum name Java writes (`OTHER` for codes it does not know).
    pub fn name(self) -> &'static str {
        Self::NAMES.get(self.0 as usize).copied().unwrap_or("OTHER")
    }

    /// The code of an enum name.
    pub fn from_name(name: &str) -> Option<LanguageCode> {
        Self::NAMES
            .iter()
            .position(|n| *n == name)
            .map(|i| LanguageCode(i as u8))
    }
}

impl Default for LanguageCode {
    fn default() -> Self {
        LanguageCode::JAVA
    }
}

/// How a command's header is serialized (the high byte of the header-length word).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum SerializeType {
    /// fastjson JSON (0), the default.
    #[default]
    Json,
    /// The ROCKETMQ binary layout (1).
    RocketMq,
}

impl SerializeType {
    /// The type byte.
    pub fn code(self) -> u8 {
        match self {
            SerializeType::Json => 0,
            SerializeType::RocketMq => 1,
        }
    }

    /// The type of a type byte.
    pub fn from_code(code: u8) -> Result<Self, Error> {
        match code {
            0 => Ok(SerializeType::Json),
            1 => Ok(SerializeType::RocketMq),
            other => Err(Error::Malformed(format!("unknown serialize type {other}"))),
        }
    }

    fn name(self) -> &'static str {
        match self {
            SerializeType::Json => "JSON",
            SerializeType::RocketMq => "ROCKETMQ",
        }
    }
}

pub use crate::fields::ExtFields;

/// One request or response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemotingCommand {
    /// Request code, or response code in a response.
    pub code: i32,
    /// Who wrote it.
    pub language: LanguageCode,
    /// The sender's version ordinal.
    pub version: i32,
    /// Request id; a response echoes its request's.
    pub opaque: i32,
    /// Bit 0: response; bit 1: oneway.
    pub flag: i32,
    /// Error text.
    pub remark: Option<String>,
    /// Custom header fields.
    pub ext_fields: Option<ExtFields>,
    /// The body (may be empty).
    pub body: Bytes,
    /// How the header is (or will be) serialized.
    pub serialize_type: SerializeType,
}

impl RemotingCommand {
    /// A request with `code`, sent by Sextant (`RUST`, [`CURRENT_VERSION`]).
    pub fn request(code: i32, opaque: i32) -> Self {
        RemotingCommand {
            code,
            language: LanguageCode::RUST,
            version: CURRENT_VERSION,
            opaque,
            flag: 0,
            remark: None,
            ext_fields: None,
            body: Bytes::new(),
            serialize_type: SerializeType::Json,
        }
    }

    /// The response to `request` with `code` and a remark.
    pub fn response_to(request: &RemotingCommand, code: i32, remark: Option<String>) -> Self {
        RemotingCommand {
            code,
            language: LanguageCode::RUST,
            version: CURRENT_VERSION,
            opaque: request.opaque,
            flag: FLAG_RESPONSE,
            remark,
            ext_fields: None,
            body: Bytes::new(),
            serialize_type: SerializeType::Json,
        }
    }

    /// Set the custom header fields.
    pub fn with_ext(mut self, ext: ExtFields) -> Self {
        self.ext_fields = Some(ext);
        self
    }

    /// Set the body.
    pub fn with_body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// Mark as oneway.
    pub fn oneway(mut self) -> Self {
        self.flag |= FLAG_ONEWAY;
        self
    }

    /// Whether this is a response.
    pub fn is_response(&self) -> bool {
        self.flag & FLAG_RESPONSE != 0
    }

    /// Whether this is a oneway request.
    pub fn is_oneway(&self) -> bool {
        self.flag & FLAG_ONEWAY != 0
    }

    /// A custom header field.
    pub fn ext(&self, key: &str) -> Option<&str> {
        self.ext_fields.as_ref()?.get(key)
    }

    /// Append the header in its serialize type to `out`.
    pub fn encode_header(&self, out: &mut Vec<u8>) -> Result<(), Error> {
        match self.serialize_type {
            SerializeType::Json => {
                self.encode_json_header(out);
                Ok(())
            }
            SerializeType::RocketMq => self.encode_binary_header(out),
        }
    }

    /// The JSON header exactly as fastjson writes it: keys sorted, nulls left out, enums by name.
    pub fn encode_json_header(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"code\":");
        push_int(out, self.code.into());
        if let Some(ext) = &self.ext_fields {
            out.extend_from_slice(b",\"extFields\":{");
            for (i, (k, v)) in ext.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_json_str(out, k);
                out.push(b':');
                write_json_str(out, v);
            }
            out.push(b'}');
        }
        out.extend_from_slice(b",\"flag\":");
        push_int(out, self.flag.into());
        out.extend_from_slice(b",\"language\":\"");
        out.extend_from_slice(self.language.name().as_bytes());
        out.extend_from_slice(b"\",\"opaque\":");
        push_int(out, self.opaque.into());
        if let Some(remark) = &self.remark {
            out.extend_from_slice(b",\"remark\":");
            write_json_str(out, remark);
        }
        out.extend_from_slice(b",\"serializeTypeCurrentRPC\":\"");
        out.extend_from_slice(self.serialize_type.name().as_bytes());
        out.extend_from_slice(b"\",\"version\":");
        push_int(out, self.version.into());
        out.push(b'}');
    }

    /// The ROCKETMQ binary header (`RocketMQSerializable.rocketMQProtocolEncode`).
    pub fn encode_binary_header(&self, out: &mut Vec<u8>) -> Result<(), Error> {
        let code = i16::try_from(self.code).map_err(|_| {
            Error::Malformed(format!(
                "code {} does not fit the binary header's 16 bits",
                self.code
            ))
        })?;
        out.put_i16(code);
        out.put_u8(self.language.0);
        out.put_i16(self.version as i16);
        out.put_i32(self.opaque);
        out.put_i32(self.flag);
        match self.remark.as_deref().filter(|r| !r.is_empty()) {
            Some(r) => {
                out.put_i32(r.len() as i32);
                out.put_slice(r.as_bytes());
            }
            None => out.put_i32(0),
        }
        let len_at = out.len();
        out.put_i32(0);
        if let Some(ext) = &self.ext_fields {
            for (k, v) in ext.iter() {
                let klen = i16::try_from(k.len())
                    .map_err(|_| Error::Malformed(format!("extFields key of {} bytes", k.len())))?;
                out.put_i16(klen);
                out.put_slice(k.as_bytes());
                out.put_i32(v.len() as i32);
                out.put_slice(v.as_bytes());
            }
        }
        let ext_len = (out.len() - len_at - 4) as i32;
        out[len_at..len_at + 4].copy_from_slice(&ext_len.to_be_bytes());
        Ok(())
    }

    /// Decode a header of `serialize_type` from `header`, with `body`.
    pub fn decode_header(
        serialize_type: SerializeType,
        header: &[u8],
        body: Bytes,
    ) -> Result<Self, Error> {
        let mut cmd = match serialize_type {
            SerializeType::Json => Self::decode_json_header(header)?,
            SerializeType::RocketMq => Self::decode_binary_header(header)?,
        };
        cmd.body = body;
        Ok(cmd)
    }

    /// Decode a JSON header as leniently as fastjson: missing fields take Java's defaults,
    /// unknown keys are ignored, `language` may be a name or a number, and extFields values may be
    /// strings, numbers or booleans.
    pub fn decode_json_header(header: &[u8]) -> Result<Self, Error> {
        // One UTF-8 check for the whole header; parsing a `str` then skips it per string.
        let text = std::str::from_utf8(header)
            .map_err(|e| Error::Malformed(format!("JSON header: {e}")))?;
        match crate::json_fast::decode(text) {
            Some(cmd) => Ok(cmd),
            None => Self::decode_json_header_general(text),
        }
    }

    /// The general JSON header decoder (serde), for every shape the fast path leaves to it.
    pub(crate) fn decode_json_header_general(text: &str) -> Result<Self, Error> {
        let h: JsonHeader<'_> = serde_json::from_str(text)
            .map_err(|e| Error::Malformed(format!("JSON header: {e}")))?;
        Ok(RemotingCommand {
            code: h.code,
            language: h.language.0,
            version: h.version,
            opaque: h.opaque,
            flag: h.flag,
            remark: h.remark.map(Cow::into_owned),
            ext_fields: h.ext_fields.map(|e| e.0),
            body: Bytes::new(),
            serialize_type: SerializeType::Json,
        })
    }

    /// Decode a ROCKETMQ binary header; every length is checked against what is left.
    pub fn decode_binary_header(header: &[u8]) -> Result<Self, Error> {
        let mut r = Reader(header);
        let code = i32::from(r.i16()?);
        let language = LanguageCode(r.u8()?);
        let version = i32::from(r.i16()?);
        let opaque = r.i32()?;
        let flag = r.i32()?;
        let remark_len = r.len32()?;
        let remark = if remark_len == 0 {
            None
        } else {
            Some(r.utf8(remark_len)?.to_owned())
        };
        let ext_len = r.len32()?;
        let ext_fields = if ext_len == 0 {
            None
        } else {
            Some(decode_binary_ext(r.take(ext_len)?)?)
        };
        Ok(RemotingCommand {
            code,
            language,
            version,
            opaque,
            flag,
            remark,
            ext_fields,
            body: Bytes::new(),
            serialize_type: SerializeType::RocketMq,
        })
    }
}

/// The extFields blob of a binary header: `(int16 keyLen, key, int32 valueLen, value)*`. When
/// the whole blob is UTF-8 (as it is whenever every length is below 128 and the strings are
/// UTF-8), the map keeps a copy of the blob and ranges into it; otherwise each string is checked.
fn decode_binary_ext(blob: &[u8]) -> Result<ExtFields, Error> {
    let mut ranges = Vec::with_capacity(16);
    let mut r = Reader(blob);
    let at = |r: &Reader<'_>| blob.len() - r.0.len();
    while !r.0.is_empty() {
        let klen = r.i16()?;
        let klen = usize::try_from(klen)
            .map_err(|_| Error::Malformed(format!("negative key length {klen}")))?;
        let k = at(&r);
        r.take(klen)?;
        let vlen = r.len32()?;
        let v = at(&r);
        r.take(vlen)?;
        ranges.push((k..k + klen, v..v + vlen));
    }
    if let Ok(text) = std::str::from_utf8(blob)
        && ranges.iter().all(|(k, v)| {
            [k.start, k.end, v.start, v.end]
                .into_iter()
                .all(|i| text.is_char_boundary(i))
        })
    {
        return Ok(ExtFields::from_ranges(text.to_owned(), ranges));
    }
    let mut map = ExtFields::with_capacity(ranges.len(), blob.len());
    for (k, v) in ranges {
        map.insert(utf8_str(&blob[k])?, utf8_str(&blob[v])?);
    }
    Ok(map)
}

fn utf8_str(b: &[u8]) -> Result<&str, Error> {
    std::str::from_utf8(b).map_err(|e| Error::Malformed(format!("not UTF-8: {e}")))
}

/// Append the decimal form of `n` (without going through `fmt`).
pub(crate) fn push_int(out: &mut Vec<u8>, n: i64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    let mut v = n.unsigned_abs();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    if n < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&buf[i..]);
}

/// Write `s` as a JSON string (the escapes fastjson writes).
pub(crate) fn write_json_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(&bytes[start..i]);
                out.extend_from_slice(&[
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[(b >> 4) as usize],
                    HEX[(b & 15) as usize],
                ]);
                start = i + 1;
                continue;
            }
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(escape);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// A bounds-checked big-endian reader over a byte slice.
pub(crate) struct Reader<'a>(pub(crate) &'a [u8]);

impl<'a> Reader<'a> {
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        if n > self.0.len() {
            return Err(Error::Malformed(format!(
                "needs {n} bytes, {} left",
                self.0.len()
            )));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], Error> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, Error> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn i16(&mut self) -> Result<i16, Error> {
        Ok(i16::from_be_bytes(self.array()?))
    }

    pub(crate) fn i32(&mut self) -> Result<i32, Error> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    pub(crate) fn i64(&mut self) -> Result<i64, Error> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    /// An int32 length, checked to be non-negative and to fit in what is left.
    pub(crate) fn len32(&mut self) -> Result<usize, Error> {
        let n = self.i32()?;
        let n = usize::try_from(n).map_err(|_| Error::Malformed(format!("negative length {n}")))?;
        if n > self.0.len() {
            return Err(Error::Malformed(format!(
                "length {n} exceeds the {} bytes left",
                self.0.len()
            )));
        }
        Ok(n)
    }

    pub(crate) fn utf8(&mut self, n: usize) -> Result<&'a str, Error> {
        std::str::from_utf8(self.take(n)?).map_err(|e| Error::Malformed(format!("not UTF-8: {e}")))
    }
}

#[derive(serde::Deserialize)]
struct JsonHeader<'a> {
    code: i32,
    #[serde(default)]
    language: Lang,
    #[serde(default)]
    version: i32,
    #[serde(default)]
    opaque: i32,
    #[serde(default)]
    flag: i32,
    #[serde(default, borrow)]
    remark: Option<Cow<'a, str>>,
    #[serde(default, rename = "extFields")]
    ext_fields: Option<LenientMap>,
}

/// `language` as a name or a number.
#[derive(Default)]
struct Lang(LanguageCode);

impl<'de> serde::Deserialize<'de> for Lang {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Lang;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a language name or code")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Lang, E> {
                Ok(Lang(LanguageCode::from_name(v).unwrap_or(LanguageCode(7))))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Lang, E> {
                // Java's enum has no other values: anything else is OTHER.
                Ok(Lang(match u8::try_from(v) {
                    Ok(c) if (c as usize) < LanguageCode::NAMES.len() => LanguageCode(c),
                    _ => LanguageCode(7),
                }))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Lang, E> {
                self.visit_u64(u64::try_from(v).unwrap_or(u64::MAX))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Lang, E> {
                Ok(Lang::default())
            }
        }
        d.deserialize_any(V)
    }
}

/// extFields with string, number or boolean values (nulls dropped).
struct LenientMap(ExtFields);

impl<'de> serde::Deserialize<'de> for LenientMap {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = LenientMap;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of scalar values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<LenientMap, A::Error> {
                let mut out = ExtFields::with_capacity(16, 256);
                while let Some(Text(key)) = map.next_key::<Text<'de>>()? {
                    if let LenientValue(Some(v)) = map.next_value::<LenientValue<'de>>()? {
                        out.push_unsorted(&key, &v);
                    }
                }
                out.sort_dedup();
                Ok(LenientMap(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// A string, borrowed from the input when it has no escapes.
struct Text<'de>(Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// A scalar as Java's `toString` would give it (borrowed when it is a plain string); `None` for
/// null.
pub(crate) struct LenientValue<'de>(pub(crate) Option<Cow<'de, str>>);

impl<'de> serde::Deserialize<'de> for LenientValue<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = LenientValue<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, number, boolean or null")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<LenientValue<'de>, E> {
                Ok(LenientValue(Some(Cow::Borrowed(v))))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<LenientValue<'de>, E> {
                Ok(LenientValue(Some(Cow::Owned(v.to_owned()))))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<LenientValue<'de>, E> {
                Ok(LenientValue(Some(Cow::Owned(v))))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<LenientValue<'de>, E> {
                Ok(LenientValue(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<LenientValue<'de>, E> {
                Ok(LenientValue(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<LenientValue<'de>, E> {
                Ok(LenientValue(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<LenientValue<'de>, E> {
                Ok(LenientValue(Some(Cow::Borrowed(if v {
                    "true"
                } else {
                    "false"
                }))))
            }
            fn visit_unit<E: de::Error>(self) -> Result<LenientValue<'de>, E> {
                Ok(LenientValue(None))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_header_is_fastjsons() {
        // protocol.md §1.4's example, as a Java client writes it.
        let mut ext = ExtFields::new();
        ext.insert("topic", "TopicTest");
        let mut cmd = RemotingCommand::request(105, 7).with_ext(ext);
        cmd.language = LanguageCode::JAVA;
        let mut out = Vec::new();
        cmd.encode_json_header(&mut out);
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"code":105,"extFields":{"topic":"TopicTest"},"flag":0,"language":"JAVA","opaque":7,"serializeTypeCurrentRPC":"JSON","version":479}"#
        );
        let back = RemotingCommand::decode_json_header(&out).unwrap();
        assert_eq!(back, cmd);
    }

    #[test]
    fn json_header_decodes_leniently() {
        // Numbers and booleans as extFields values, no serializeTypeCurrentRPC, a language code
        // as a number, an empty remark, unknown keys (protocol.md §12).
        let h = br#"{"code":310,"language":1,"opaque":3,"remark":"","extFields":{"e":2,"m":false,"a":"x","z":null},"unknown":[1]}"#;
        let cmd = RemotingCommand::decode_json_header(h).unwrap();
        assert_eq!(cmd.code, 310);
        assert_eq!(cmd.language, LanguageCode::CPP);
        assert_eq!(cmd.version, 0);
        assert_eq!(cmd.remark.as_deref(), Some(""));
        assert_eq!(cmd.ext("e"), Some("2"));
        assert_eq!(cmd.ext("m"), Some("false"));
        assert_eq!(cmd.ext("z"), None);
        assert!(RemotingCommand::decode_json_header(b"{\"flag\":1}").is_err());
        assert!(RemotingCommand::decode_json_header(b"not json").is_err());
    }

    #[test]
    fn binary_header_golden_bytes() {
        // RocketMQSerializable.rocketMQProtocolEncode: code i16, language u8, version i16,
        // opaque i32, flag i32, remark (len i32 + bytes), ext (len i32 + (i16 klen, key, i32 vlen, value)*).
        let mut ext = ExtFields::new();
        ext.insert("a", "bc");
        let mut cmd = RemotingCommand::request(105, 7).with_ext(ext);
        cmd.language = LanguageCode::JAVA;
        cmd.serialize_type = SerializeType::RocketMq;
        cmd.remark = Some("r".into());
        let mut out = Vec::new();
        cmd.encode_binary_header(&mut out).unwrap();
        let expected: &[u8] = &[
            0, 105, // code
            0,   // language JAVA
            1, 223, // version 479
            0, 0, 0, 7, // opaque
            0, 0, 0, 0, // flag
            0, 0, 0, 1, b'r', // remark
            0, 0, 0, 9, // ext length
            0, 1, b'a', 0, 0, 0, 2, b'b', b'c',
        ];
        assert_eq!(out, expected);
        assert_eq!(RemotingCommand::decode_binary_header(&out).unwrap(), cmd);
        // A length past the end is an error, not a panic or an allocation.
        let mut bad = out.clone();
        bad[16] = 0x7f;
        assert!(RemotingCommand::decode_binary_header(&bad).is_err());
        assert!(
            RemotingCommand::request(200_050, 1)
                .encode_binary_header(&mut Vec::new())
                .is_err()
        );
    }

    #[test]
    fn json_strings_are_escaped() {
        let mut out = Vec::new();
        write_json_str(&mut out, "a\"b\\c\nd\u{1}é");
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            "\"a\\\"b\\\\c\\nd\\u0001é\""
        );
        let back: String = serde_json::from_slice(&out).unwrap();
        assert_eq!(back, "a\"b\\c\nd\u{1}é");
    }
}
