//! [`ExtFields`]: a command's custom header fields, string keys to string values, sorted by key.
//!
//! A send request carries a dozen short fields; a map of owned `String`s costs two allocations
//! per field, more than the rest of decoding together. This map keeps every key and value in one
//! text buffer and a sorted index of ranges into it: two allocations per header.

use std::fmt;

/// Byte range of a key or value in the buffer.
#[derive(Clone, Copy)]
struct Span {
    start: u32,
    end: u32,
}

#[derive(Clone, Copy)]
struct Entry {
    key: Span,
    value: Span,
}

/// Custom header fields, sorted by key; inserting an existing key replaces its value.
#[derive(Clone, Default)]
pub struct ExtFields {
    text: String,
    entries: Vec<Entry>,
}

impl ExtFields {
    /// An empty map.
    pub fn new() -> Self {
        ExtFields::default()
    }

    /// An empty map with room for `fields` fields of `bytes` bytes in all.
    pub fn with_capacity(fields: usize, bytes: usize) -> Self {
        ExtFields {
            text: String::with_capacity(bytes),
            entries: Vec::with_capacity(fields),
        }
    }

    fn str(&self, s: Span) -> &str {
        &self.text[s.start as usize..s.end as usize]
    }

    fn push(&mut self, s: &str) -> Span {
        let start = self.text.len() as u32;
        self.text.push_str(s);
        Span {
            start,
            end: self.text.len() as u32,
        }
    }

    fn bytes(&self, s: Span) -> &[u8] {
        &self.text.as_bytes()[s.start as usize..s.end as usize]
    }

    fn find(&self, key: &str) -> Result<usize, usize> {
        let key = key.as_bytes();
        self.entries
            .binary_search_by(|e| fast_cmp(self.bytes(e.key), key))
    }

    /// A map over `text` whose fields are the given `(key, value)` byte ranges, in any order; a
    /// later duplicate key wins. Every range must lie on character boundaries of `text`.
    pub(crate) fn from_ranges(
        text: String,
        ranges: impl IntoIterator<Item = (std::ops::Range<usize>, std::ops::Range<usize>)>,
    ) -> Self {
        let span = |r: std::ops::Range<usize>| Span {
            start: r.start as u32,
            end: r.end as u32,
        };
        let mut m = ExtFields {
            text,
            entries: ranges
                .into_iter()
                .map(|(k, v)| Entry {
                    key: span(k),
                    value: span(v),
                })
                .collect(),
        };
        m.sort_dedup();
        m
    }

    /// Append a field without keeping the order; call [`ExtFields::sort_dedup`] when done.
    pub(crate) fn push_unsorted(&mut self, key: &str, value: &str) {
        let key = self.push(key);
        let value = self.push(value);
        self.entries.push(Entry { key, value });
    }

    /// Sort by key, keeping the last of equal keys.
    pub(crate) fn sort_dedup(&mut self) {
        let b = self.text.as_bytes();
        let key = |e: &Entry| &b[e.key.start as usize..e.key.end as usize];
        // Stable, so that among equal keys the later stays later.
        self.entries.sort_by(|x, y| fast_cmp(key(x), key(y)));
        let mut w = 0;
        for i in 0..self.entries.len() {
            let e = self.entries[i];
            if w > 0 && key(&self.entries[w - 1]) == key(&e) {
                self.entries[w - 1] = e;
            } else {
                self.entries[w] = e;
                w += 1;
            }
        }
        self.entries.truncate(w);
    }

    /// Set `key` to `value`.
    pub fn insert(&mut self, key: impl AsRef<str>, value: impl AsRef<str>) {
        let (key, value) = (key.as_ref(), value.as_ref());
        match self.find(key) {
            Ok(i) => {
                let v = self.push(value);
                self.entries[i].value = v;
            }
            Err(i) => {
                let k = self.push(key);
                let v = self.push(value);
                self.entries.insert(i, Entry { key: k, value: v });
            }
        }
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.find(key).ok().map(|i| self.str(self.entries[i].value))
    }

    /// Whether `key` is set.
    pub fn contains_key(&self, key: &str) -> bool {
        self.find(key).is_ok()
    }

    /// Remove `key`; returns whether it was set.
    pub fn remove(&mut self, key: &str) -> bool {
        match self.find(key) {
            Ok(i) => {
                self.entries.remove(i);
                true
            }
            Err(_) => false,
        }
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no fields.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The fields in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.entries
            .iter()
            .map(|e| (self.str(e.key), self.str(e.value)))
    }
}

/// Byte-wise order, deciding on the first byte where it can (keys are short and mostly differ
/// there).
fn fast_cmp(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    match (a.first(), b.first()) {
        (Some(x), Some(y)) if x != y => x.cmp(y),
        _ => a.cmp(b),
    }
}

impl PartialEq for ExtFields {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for ExtFields {}

impl fmt::Debug for ExtFields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl std::ops::Index<&str> for ExtFields {
    type Output = str;

    fn index(&self, key: &str) -> &str {
        self.get(key)
            .unwrap_or_else(|| panic!("no extFields key {key:?}"))
    }
}

impl<K: AsRef<str>, V: AsRef<str>> FromIterator<(K, V)> for ExtFields {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut m = ExtFields::new();
        for (k, v) in iter {
            m.insert(k, v);
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_replacing_and_removing() {
        let mut m = ExtFields::new();
        m.insert("b", "2");
        m.insert("a", "1");
        m.insert("c", "3");
        m.insert("b", "two");
        assert_eq!(
            m.iter().collect::<Vec<_>>(),
            [("a", "1"), ("b", "two"), ("c", "3")]
        );
        assert_eq!(m.get("b"), Some("two"));
        assert_eq!(&m["c"], "3");
        assert!(m.remove("a"));
        assert!(!m.remove("a"));
        assert_eq!(m.len(), 2);
        let same: ExtFields = [("c", "3"), ("b", "two")].into_iter().collect();
        assert_eq!(m, same);
        let text = "b1a2b3".to_string();
        let r = ExtFields::from_ranges(text, [(0..1, 1..2), (2..3, 3..4), (4..5, 5..6)]);
        assert_eq!(r.iter().collect::<Vec<_>>(), [("a", "2"), ("b", "3")]);
        assert_eq!(r.get("b"), Some("3"));
        assert_eq!(format!("{m:?}"), r#"{"b": "two", "c": "3"}"#);
    }
}
