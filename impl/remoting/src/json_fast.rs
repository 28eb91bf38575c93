//! A fast path for JSON headers in the shape Java peers (and Sextant) write: one flat object of
//! the known fields, with `extFields` an object of scalars. Anything else — an unknown key, a
//! duplicate field, a number that is not a plain `i32`, invalid JSON — returns `None`, and the
//! caller decodes with the general (serde) decoder, which is lenient where fastjson is and gives
//! the error message. Property tests check that whenever this path answers, it answers what the
//! general decoder does.

use std::borrow::Cow;

use bytes::Bytes;

use crate::command::{LanguageCode, RemotingCommand, SerializeType};
use crate::fields::ExtFields;

struct P<'a> {
    b: &'a [u8],
    s: &'a str,
    i: usize,
}

impl<'a> P<'a> {
    fn ws(&mut self) {
        while self.i < self.b.len() && matches!(self.b[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        self.ws();
        (self.b.get(self.i) == Some(&c)).then(|| self.i += 1)
    }

    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.b.get(self.i).copied()
    }

    fn lit(&mut self, word: &[u8]) -> Option<()> {
        self.b[self.i..]
            .starts_with(word)
            .then(|| self.i += word.len())
    }

    /// A string (the opening quote next), borrowed when it has no escapes.
    fn string(&mut self) -> Option<Cow<'a, str>> {
        self.eat(b'"')?;
        let start = self.i;
        let off = special(&self.b[start..])?;
        let end = start + off;
        match self.b[end] {
            b'"' => {
                self.i = end + 1;
                return Some(Cow::Borrowed(&self.s[start..end]));
            }
            b'\\' => {}
            _ => return None,
        }
        let mut out = String::with_capacity(end - start + 16);
        out.push_str(&self.s[start..end]);
        self.i = end;
        loop {
            let c = *self.b.get(self.i)?;
            match c {
                b'"' => {
                    self.i += 1;
                    return Some(Cow::Owned(out));
                }
                b'\\' => {
                    let e = *self.b.get(self.i + 1)?;
                    self.i += 2;
                    match e {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let hi = self.hex4()?;
                            let ch = if (0xD800..0xDC00).contains(&hi) {
                                self.lit(b"\\u")?;
                                let lo = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&lo) {
                                    return None;
                                }
                                char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00))?
                            } else {
                                char::from_u32(hi)?
                            };
                            out.push(ch);
                        }
                        _ => return None,
                    }
                }
                c if c < 0x20 => return None,
                _ => {
                    // Copy the run up to the next quote, backslash or control character.
                    let off = special(&self.b[self.i..])?;
                    out.push_str(&self.s[self.i..self.i + off]);
                    self.i += off;
                }
            }
        }
    }

    fn hex4(&mut self) -> Option<u32> {
        let h = self.b.get(self.i..self.i + 4)?;
        self.i += 4;
        h.iter().try_fold(0u32, |acc, c| {
            let d = match c {
                b'0'..=b'9' => c - b'0',
                b'a'..=b'f' => c - b'a' + 10,
                b'A'..=b'F' => c - b'A' + 10,
                _ => return None,
            };
            Some(acc << 4 | u32::from(d))
        })
    }

    /// A plain integer that fits an i32.
    fn int(&mut self) -> Option<i32> {
        i32::try_from(self.long()?).ok()
    }

    /// A plain integer: `-?[0-9]+` without leading zeros, not followed by a fraction or exponent,
    /// and not `-0` (which serde reads as a float).
    fn long(&mut self) -> Option<i64> {
        self.ws();
        let start = self.i;
        if self.b.get(self.i) == Some(&b'-') {
            self.i += 1;
        }
        let digits = self.i;
        while self.i < self.b.len() && self.b[self.i].is_ascii_digit() {
            self.i += 1;
        }
        if self.i == digits || (self.b[digits] == b'0' && self.i - digits > 1) {
            return None;
        }
        if matches!(self.b.get(self.i), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        let text = &self.s[start..self.i];
        if text == "-0" {
            return None;
        }
        text.parse().ok()
    }
}

/// The offset of the first quote, backslash or control character (what ends a plain run of a
/// JSON string). A byte loop: header strings are short.
fn special(b: &[u8]) -> Option<usize> {
    b.iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20)
}

/// Decode a JSON header in the common shape, or `None` to let the general decoder decide.
pub(crate) fn decode(text: &str) -> Option<RemotingCommand> {
    let mut p = P {
        b: text.as_bytes(),
        s: text,
        i: 0,
    };
    p.eat(b'{')?;
    let (mut code, mut language, mut version, mut opaque, mut flag) =
        (None, None, None, None, None);
    let mut remark: Option<Option<Cow<'_, str>>> = None;
    let mut ext: Option<Option<ExtFields>> = None;
    let mut ser = false;
    if p.peek()? != b'}' {
        loop {
            let key = p.string()?;
            p.eat(b':')?;
            match &*key {
                "code" if code.is_none() => code = Some(p.int()?),
                "flag" if flag.is_none() => flag = Some(p.int()?),
                "opaque" if opaque.is_none() => opaque = Some(p.int()?),
                "version" if version.is_none() => version = Some(p.int()?),
                "language" if language.is_none() => {
                    let name = p.string()?;
                    language = Some(LanguageCode::from_name(&name).unwrap_or(LanguageCode(7)));
                }
                "remark" if remark.is_none() => {
                    remark = Some(if p.peek()? == b'n' {
                        p.lit(b"null")?;
                        None
                    } else {
                        Some(p.string()?)
                    });
                }
                "serializeTypeCurrentRPC" if !ser => {
                    ser = true;
                    p.string()?;
                }
                "extFields" if ext.is_none() => ext = Some(ext_fields(&mut p)?),
                _ => return None,
            }
            match p.peek()? {
                b',' => p.i += 1,
                b'}' => break,
                _ => return None,
            }
        }
    }
    p.eat(b'}')?;
    p.ws();
    if p.i != p.b.len() {
        return None;
    }
    Some(RemotingCommand {
        code: code?,
        language: language.unwrap_or_default(),
        version: version.unwrap_or(0),
        opaque: opaque.unwrap_or(0),
        flag: flag.unwrap_or(0),
        remark: remark.flatten().map(Cow::into_owned),
        ext_fields: ext.flatten(),
        body: Bytes::new(),
        serialize_type: SerializeType::Json,
    })
}

/// `extFields`: null, or an object of string / integer / boolean / null values.
fn ext_fields(p: &mut P<'_>) -> Option<Option<ExtFields>> {
    if p.peek()? == b'n' {
        p.lit(b"null")?;
        return Some(None);
    }
    p.eat(b'{')?;
    // The rest of the header bounds the fields' text: no reallocation.
    let mut out = ExtFields::with_capacity(16, p.b.len() - p.i);
    if p.peek()? != b'}' {
        loop {
            let key = p.string()?;
            p.eat(b':')?;
            match p.peek()? {
                b'"' => {
                    let v = p.string()?;
                    out.push_unsorted(&key, &v);
                }
                b't' => {
                    p.lit(b"true")?;
                    out.push_unsorted(&key, "true");
                }
                b'f' => {
                    p.lit(b"false")?;
                    out.push_unsorted(&key, "false");
                }
                b'n' => p.lit(b"null")?,
                _ => {
                    // As the general decoder does: the integer's canonical decimal form.
                    let n = p.long()?;
                    out.push_unsorted(&key, &n.to_string());
                }
            }
            match p.peek()? {
                b',' => p.i += 1,
                b'}' => break,
                _ => return None,
            }
        }
    }
    p.eat(b'}')?;
    out.sort_dedup();
    Some(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_shapes_take_the_fast_path() {
        let h = r#"{"code":310,"extFields":{"a":"pg","d":4,"k":false,"z":null,"i":"K\u0001v\u0002"},"flag":0,"language":"JAVA","opaque":7,"remark":null,"serializeTypeCurrentRPC":"JSON","version":479}"#;
        let fast = decode(h).expect("the common shape");
        assert_eq!(
            fast,
            RemotingCommand::decode_json_header_general(h).unwrap()
        );
        assert_eq!(fast.ext("d"), Some("4"));
        assert_eq!(fast.ext("i"), Some("K\u{1}v\u{2}"));
        assert_eq!(fast.ext("z"), None);
    }

    use proptest::prelude::*;

    /// Whenever the fast path answers, the general decoder answers the same.
    fn agrees(text: &str) -> Result<(), TestCaseError> {
        if let Some(fast) = decode(text) {
            let general = RemotingCommand::decode_json_header_general(text);
            prop_assert_eq!(Some(fast), general.ok(), "{}", text);
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn fast_path_agrees_on_encoded_headers(
            code in any::<i32>(), opaque in any::<i32>(), lang in 0u8..14,
            remark in prop::option::of("(?s).{0,8}"),
            ext in prop::option::of(prop::collection::btree_map("(?s).{0,6}", "(?s).{0,10}", 0..5)),
        ) {
            let mut cmd = RemotingCommand::request(code, opaque);
            cmd.language = LanguageCode(lang);
            cmd.remark = remark;
            cmd.ext_fields = ext.map(|m| m.into_iter().collect());
            let mut out = Vec::new();
            cmd.encode_json_header(&mut out);
            let text = String::from_utf8(out).unwrap();
            prop_assert_eq!(decode(&text), Some(cmd));
            agrees(&text)?;
        }

        #[test]
        fn fast_path_agrees_on_lenient_values(
            vals in prop::collection::vec(prop_oneof![
                any::<i64>().prop_map(|n| n.to_string()),
                Just("true".to_string()),
                Just("false".to_string()),
                Just("null".to_string()),
                "[a-z0-9]{0,5}".prop_map(|s| format!("\"{s}\"")),
                Just("-0".to_string()),
                Just("01".to_string()),
                Just("1.5".to_string()),
            ], 0..6),
        ) {
            let fields: Vec<String> = vals.iter().enumerate().map(|(i, v)| format!("\"k{}\":{v}", i % 3)).collect();
            let text = format!("{{\"code\":5,\"extFields\":{{{}}}}}", fields.join(","));
            agrees(&text)?;
        }

        #[test]
        fn fast_path_agrees_on_json_like_text(text in "[{}\\[\\]\":,0-9a-z \\\\-]{0,60}") {
            agrees(&text)?;
        }
    }

    #[test]
    fn whitespace_between_tokens() {
        let h = " {\n  \"code\" : 10 ,\t\"extFields\" : { \"b\" : \"x y\" , \"a\" : 1 } , \"remark\" : \"a : b\" } \n";
        let fast = decode(h).expect("fast");
        assert_eq!(
            fast,
            RemotingCommand::decode_json_header_general(h).unwrap()
        );
        assert_eq!(fast.remark.as_deref(), Some("a : b"));
        assert_eq!(fast.ext("b"), Some("x y"));
    }

    #[test]
    fn unusual_shapes_fall_back() {
        for h in [
            r#"{"code":1,"unknown":2}"#,
            r#"{"code":1,"code":2}"#,
            r#"{"code":1.5}"#,
            r#"{"code":99999999999}"#,
            r#"{"code":1,"language":3}"#,
            r#"{"code":1,"extFields":{"a":[1]}}"#,
            r#"{"code":1} x"#,
            r#"{"code":"1"}"#,
            r#"{"flag":1}"#,
            "{\"code\":1,\"remark\":\"a\u{1}b\"}",
        ] {
            assert_eq!(decode(h), None, "{h}");
        }
    }
}
