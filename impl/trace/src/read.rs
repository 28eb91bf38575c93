//! Reading traces back: lines parsed with a size limit, files merged into one stream.
//!
//! The merge keeps each node's records in the order its file holds them (a node writes them in
//! `seq` order, so its own order is exact) and interleaves nodes by wall time (`ts`). Processes
//! on one machine read one clock, so the order between nodes is as good as the clock's
//! resolution; across machines it is off by their clock skew. [`merge`] states what it assumed:
//! a record whose `ts` is earlier than the one before it in its node is taken in file order
//! anyway and counted in [`Merged::reordered`]; a node whose `seq` starts again at 1 was
//! restarted (appending to the same file) and is counted in [`Merged::restarts`].

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use crate::event::{Record, SCHEMA_VERSION};

/// The longest line a reader takes (a route of many brokers is a few KiB).
pub const MAX_LINE: usize = 4 << 20;

/// Why a trace could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A line is not a record of this schema.
    #[error("line {line}: {why}")]
    Bad {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        why: String,
    },
}

/// Parse the records of `input`, one per line (blank lines skipped). A line longer than
/// [`MAX_LINE`], a line that is not a record, or a record of another schema version is an error.
/// A last line without its newline is parsed like the others, and dropped if it does not parse:
/// a write cut short (a full disk, a process killed inside `write`) leaves at most that.
pub fn parse(input: impl Read) -> Result<Vec<Record>, TraceError> {
    let mut reader = BufReader::new(input);
    let mut out = Vec::new();
    let mut buf = Vec::new();
    let mut line = 0;
    loop {
        buf.clear();
        line += 1;
        let n = (&mut reader)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut buf)
            .map_err(|e| TraceError::Bad {
                line,
                why: e.to_string(),
            })?;
        if n == 0 {
            return Ok(out);
        }
        if buf.len() > MAX_LINE {
            return Err(TraceError::Bad {
                line,
                why: format!("longer than {MAX_LINE} bytes"),
            });
        }
        if buf.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let rec: Record = match serde_json::from_slice(&buf) {
            Ok(r) => r,
            Err(_) if buf.last() != Some(&b'\n') => return Ok(out),
            Err(e) => {
                return Err(TraceError::Bad {
                    line,
                    why: e.to_string(),
                });
            }
        };
        if rec.v != SCHEMA_VERSION {
            return Err(TraceError::Bad {
                line,
                why: format!("schema version {} (this reader: {SCHEMA_VERSION})", rec.v),
            });
        }
        out.push(rec);
    }
}

/// Parse the file at `path`.
pub fn read_file(path: &Path) -> Result<Vec<Record>, TraceError> {
    let f = std::fs::File::open(path).map_err(|source| TraceError::Io {
        path: path.display().to_string(),
        source,
    })?;
    parse(f).map_err(|e| match e {
        TraceError::Bad { line, why } => TraceError::Bad {
            line,
            why: format!("{}: {why}", path.display()),
        },
        e => e,
    })
}

/// One stream made of several traces.
#[derive(Debug, Default)]
pub struct Merged {
    /// The records, each node's in seq order, nodes interleaved by time.
    pub records: Vec<Record>,
    /// Records whose time was earlier than a record before them in their node (taken in seq
    /// order).
    pub reordered: usize,
    /// Gaps in a node's sequence numbers (records missing: a file cut short or a lost write).
    pub gaps: usize,
    /// Times a node's sequence started again at 1 (the process restarted, appending).
    pub restarts: usize,
}

/// Merge traces (any number of files, each any number of nodes) into one stream.
pub fn merge(traces: impl IntoIterator<Item = Vec<Record>>) -> Merged {
    let mut by_node: BTreeMap<String, Vec<Record>> = BTreeMap::new();
    for t in traces {
        for r in t {
            by_node.entry(r.node.clone()).or_default().push(r);
        }
    }
    let mut merged = Merged::default();
    let mut queues: Vec<VecDeque<Record>> = Vec::new();
    for (_, mut recs) in by_node {
        let mut last_ts = 0;
        let mut last_seq: u64 = 0;
        for r in &mut recs {
            if r.seq == 1 && last_seq > 0 {
                merged.restarts += 1;
            } else if r.seq != last_seq.saturating_add(1) {
                merged.gaps += 1;
            }
            last_seq = r.seq;
            if r.ts < last_ts {
                merged.reordered += 1;
                // Its place in the merge is after its predecessor.
                r.ts = last_ts;
            }
            last_ts = r.ts;
        }
        queues.push(recs.into());
    }
    // Each node's queue is sorted by (adjusted) ts: repeatedly take the earliest head.
    let mut heads: BinaryHeap<Reverse<(u64, usize)>> = queues
        .iter()
        .enumerate()
        .filter_map(|(i, q)| q.front().map(|r| Reverse((r.ts, i))))
        .collect();
    while let Some(Reverse((_, i))) = heads.pop() {
        let r = queues[i].pop_front().expect("a head was queued");
        if let Some(next) = queues[i].front() {
            heads.push(Reverse((next.ts, i)));
        }
        merged.records.push(r);
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Event;

    fn rec(node: &str, seq: u64, ts: u64) -> Record {
        Record {
            v: SCHEMA_VERSION,
            node: node.into(),
            seq,
            ts,
            event: Event::Mark {
                label: format!("{node}{seq}"),
            },
        }
    }

    #[test]
    fn merge_keeps_node_order_and_interleaves_by_time() {
        let a = vec![rec("a", 1, 10), rec("a", 2, 30), rec("a", 3, 25)];
        let b = vec![rec("b", 1, 20), rec("b", 3, 40)];
        let m = merge([a, b]);
        let order: Vec<_> = m.records.iter().map(|r| (r.node.as_str(), r.seq)).collect();
        assert_eq!(order, [("a", 1), ("b", 1), ("a", 2), ("a", 3), ("b", 3)]);
        assert_eq!(m.reordered, 1, "a3 is earlier than a2");
        assert_eq!(m.gaps, 1, "b2 is missing");
        // A node restarted into the same file: both runs kept, in file order.
        let r = vec![
            rec("c", 1, 1),
            rec("c", 2, 2),
            rec("c", 1, 3),
            rec("c", 2, 4),
        ];
        let m = merge([r]);
        assert_eq!(m.records.len(), 4);
        assert_eq!((m.restarts, m.gaps), (1, 0));
    }

    #[test]
    fn bad_lines_are_errors_with_their_number() {
        let good = serde_json::to_string(&rec("a", 1, 1)).unwrap();
        let text = format!("{good}\n\n{{\"v\":1}}\n");
        match parse(text.as_bytes()) {
            Err(TraceError::Bad { line: 3, .. }) => {}
            other => panic!("{other:?}"),
        }
        let v2 = good.replace("\"v\":1", "\"v\":2");
        assert!(parse(v2.as_bytes()).is_err());
        let long = vec![b' '; MAX_LINE + 10];
        assert!(parse(&long[..]).is_err());
        assert_eq!(parse(good.as_bytes()).unwrap().len(), 1, "no final newline");
        // A write cut short at the end is dropped; the same line in the middle is an error.
        let torn = format!("{good}\n{}", &good[..good.len() / 2]);
        assert_eq!(parse(torn.as_bytes()).unwrap().len(), 1);
        let middle = format!("{}\n{good}\n", &good[..good.len() / 2]);
        assert!(parse(middle.as_bytes()).is_err());
    }

    #[test]
    fn every_event_round_trips() {
        use crate::event::*;
        let q = Queue {
            topic: "T".into(),
            broker: "b".into(),
            id: 1,
        };
        let route = Route {
            brokers: vec![RouteBroker {
                cluster: "C".into(),
                name: "b".into(),
                addrs: vec![BrokerAddr {
                    id: 0,
                    addr: "127.0.0.1:1".into(),
                }],
            }],
            queues: vec![RouteQueues {
                broker: "b".into(),
                read: 4,
                write: 4,
                perm: 6,
            }],
            order: None,
        };
        let events = vec![
            Event::SendAttempt {
                group: "g".into(),
                send: 7,
                attempt: 2,
                msg_id: "ID".into(),
                queue: q.clone(),
                addr: "127.0.0.1:1".into(),
                route_version: 3,
                outcome: SendOutcome::Ok,
                offset: Some(9),
                code: None,
                latency_us: 12,
            },
            Event::RouteServed {
                topic: "T".into(),
                route: Some(route.clone()),
                now: 5,
            },
            Event::RouteRefreshed {
                topic: "T".into(),
                route,
                from_default: false,
                version: 1,
            },
            Event::Rebalance {
                group: "g".into(),
                topic: "T".into(),
                strategy: "AVG".into(),
                members: vec!["c1".into()],
                queues: vec![q.clone()],
                allocated: vec![q],
            },
        ];
        for e in events {
            let r = Record {
                v: SCHEMA_VERSION,
                node: "n".into(),
                seq: 1,
                ts: 2,
                event: e,
            };
            let line = serde_json::to_string(&r).unwrap();
            let back = parse(line.as_bytes()).unwrap();
            assert_eq!(back, [r]);
        }
    }

    proptest::proptest! {
        /// Any bytes — garbage, truncated records, records with hostile numbers — give records
        /// or an error, never a panic; a merge of what parsed never panics either.
        #[test]
        fn any_input_parses_or_fails_cleanly(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2048),
            cut in 0usize..400,
        ) {
            let _ = parse(&bytes[..]);
            let good = serde_json::to_string(&rec("a", u64::MAX, u64::MAX)).unwrap();
            let text = format!("{good}\n{}", &good[..cut.min(good.len())]);
            if let Ok(recs) = parse(text.as_bytes()) {
                let _ = merge([recs]);
            }
        }
    }
}
