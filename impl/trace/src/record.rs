//! The recorder: a [`Sink`] (a file, or memory for tests) and the [`Tracer`] handles of the nodes
//! writing to it.
//!
//! A [`Tracer`] is off by default ([`Tracer::off`]): [`Tracer::emit`] is then one branch and
//! builds nothing. A sink can be switched off and on at run time ([`Sink::set_enabled`]); while
//! off, `emit` costs one relaxed atomic load. Each record is serialised outside the sink's lock
//! and written whole with one `write` under it, so a process killed at any moment leaves whole
//! lines (the last may be missing, never torn into another), and a node's records appear in the
//! file in `seq` order.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::event::{Event, SCHEMA_VERSION};

enum Out {
    File(File),
    Memory(Vec<u8>),
}

/// Where records go: one file (or buffer) shared by any number of nodes.
pub struct Sink {
    out: Mutex<Out>,
    enabled: AtomicBool,
    /// Records that could not be written (I/O errors); counted, never fatal to the server.
    lost: AtomicU64,
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sink")
            .field("enabled", &self.enabled.load(Ordering::Relaxed))
            .field("lost", &self.lost.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Sink {
    fn new(out: Out) -> Arc<Sink> {
        Arc::new(Sink {
            out: Mutex::new(out),
            enabled: AtomicBool::new(true),
            lost: AtomicU64::new(0),
        })
    }

    /// Append to the file at `path` (created if missing).
    pub fn file(path: &Path) -> io::Result<Arc<Sink>> {
        let f = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Sink::new(Out::File(f)))
    }

    /// Keep records in memory ([`Sink::take`] returns them).
    pub fn memory() -> Arc<Sink> {
        Sink::new(Out::Memory(Vec::new()))
    }

    /// A tracer for `node` writing here.
    pub fn tracer(self: &Arc<Self>, node: impl Into<String>) -> Tracer {
        let node = node.into();
        let prefix = format!(
            "{{\"v\":{SCHEMA_VERSION},\"node\":{},",
            serde_json::to_string(&node).unwrap_or_else(|_| "\"?\"".into())
        );
        Tracer {
            node: Some(Arc::new(Node {
                sink: Arc::clone(self),
                name: node,
                prefix,
                seq: AtomicU64::new(0),
            })),
        }
    }

    /// Record or not (records are dropped while off; sequence numbers do not advance).
    pub fn set_enabled(&self, on: bool) {
        self.enabled.store(on, Ordering::Relaxed);
    }

    /// Whether records are written.
    pub fn is_enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    /// How many records could not be written.
    pub fn lost(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }

    /// The memory sink's bytes so far, leaving it empty (empty for a file sink).
    pub fn take(&self) -> Vec<u8> {
        match &mut *self.out.lock().unwrap_or_else(PoisonError::into_inner) {
            Out::Memory(buf) => std::mem::take(buf),
            Out::File(_) => Vec::new(),
        }
    }

    fn write(&self, node: &Node, body: &[u8]) {
        let mut out = self.out.lock().unwrap_or_else(PoisonError::into_inner);
        // Sequence and time taken under the lock: a node's records are in the file in seq order
        // and a file's records in time order.
        let seq = node.seq.fetch_add(1, Ordering::Relaxed) + 1;
        let ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        let mut line = Vec::with_capacity(node.prefix.len() + body.len() + 40);
        line.extend_from_slice(node.prefix.as_bytes());
        line.extend_from_slice(format!("\"seq\":{seq},\"ts\":{ts},").as_bytes());
        // `body` is the event's object; its opening brace is replaced by the envelope's.
        line.extend_from_slice(&body[1..]);
        line.push(b'\n');
        let ok = match &mut *out {
            Out::File(f) => f.write_all(&line).is_ok(),
            Out::Memory(buf) => {
                buf.extend_from_slice(&line);
                true
            }
        };
        if !ok {
            self.lost.fetch_add(1, Ordering::Relaxed);
        }
    }
}

struct Node {
    sink: Arc<Sink>,
    name: String,
    /// `{"v":1,"node":"…",` — the envelope before `seq`.
    prefix: String,
    seq: AtomicU64,
}

/// One node's handle on a sink, or nothing ([`Tracer::off`], the default). Cheap to clone.
#[derive(Clone, Default)]
pub struct Tracer {
    node: Option<Arc<Node>>,
}

impl std::fmt::Debug for Tracer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.node {
            None => f.write_str("Tracer(off)"),
            Some(n) => write!(f, "Tracer({})", n.name),
        }
    }
}

impl Tracer {
    /// Records nothing.
    pub fn off() -> Tracer {
        Tracer::default()
    }

    /// Whether records would be written now.
    pub fn is_on(&self) -> bool {
        self.node.as_ref().is_some_and(|n| n.sink.is_enabled())
    }

    /// The node's name (`None` when off).
    pub fn node(&self) -> Option<&str> {
        self.node.as_ref().map(|n| n.name.as_str())
    }

    /// A tracer for another node on the same sink (off stays off).
    pub fn for_node(&self, node: impl Into<String>) -> Tracer {
        match &self.node {
            None => Tracer::off(),
            Some(n) => n.sink.tracer(node),
        }
    }

    /// Record the event `f` builds; `f` runs only when the tracer is on.
    #[inline]
    pub fn emit(&self, f: impl FnOnce() -> Event) {
        if let Some(n) = &self.node
            && n.sink.is_enabled()
        {
            match serde_json::to_vec(&f()) {
                Ok(body) => n.sink.write(n, &body),
                Err(_) => {
                    n.sink.lost.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

/// The tracer `SEXTANT_TRACE` asks for: off when unset or empty, else a sink appending to the
/// file it names. Processes that share a file each append whole lines.
pub fn from_env(node: impl Into<String>) -> io::Result<Tracer> {
    match std::env::var_os(crate::ENV_VAR) {
        Some(p) if !p.is_empty() => Ok(Sink::file(Path::new(&p))?.tracer(node)),
        _ => Ok(Tracer::off()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read::parse;

    #[test]
    fn off_builds_nothing_and_on_writes_numbered_lines() {
        let off = Tracer::off();
        off.emit(|| unreachable!("an off tracer must not build its event"));
        assert!(!off.is_on());

        let sink = Sink::memory();
        let a = sink.tracer("a");
        let b = a.for_node("b");
        for label in ["x", "y"] {
            a.emit(|| Event::Mark {
                label: label.into(),
            });
        }
        b.emit(|| Event::Mark { label: "z".into() });
        sink.set_enabled(false);
        a.emit(|| unreachable!("a disabled sink must not build the event"));
        sink.set_enabled(true);
        a.emit(|| Event::Mark { label: "w".into() });
        let recs = parse(&sink.take()[..]).unwrap();
        let seen: Vec<(&str, u64)> = recs.iter().map(|r| (r.node.as_str(), r.seq)).collect();
        assert_eq!(seen, [("a", 1), ("a", 2), ("b", 1), ("a", 3)]);
        assert!(recs.windows(2).all(|w| w[0].ts <= w[1].ts));
        assert_eq!(recs[3].event, Event::Mark { label: "w".into() });
    }

    #[test]
    fn a_file_sink_appends_and_node_names_are_escaped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.jsonl");
        for _ in 0..2 {
            let t = Sink::file(&path).unwrap().tracer("c\"1\n");
            t.emit(|| Event::Mark { label: "m".into() });
        }
        let recs = crate::read::read_file(&path).unwrap();
        assert_eq!(recs.len(), 2);
        assert!(recs.iter().all(|r| r.node == "c\"1\n" && r.seq == 1));
    }
}
