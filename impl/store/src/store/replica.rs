//! Replication, both sides (RocketMQ's classic HA; the decisions are `sextant_model::ha`'s).
//!
//! A master streams its CommitLog as its files hold it: [`MessageStore::read_log`] reads by
//! position outside the store's lock, and past a sealed segment's last record it yields the
//! blank record and zeros to the segment's end, as RocketMQ's mapped files hold them (a slave of
//! either implementation then sees the same bytes at the same offsets).
//!
//! A slave appends what its master streams ([`MessageStore::replicate`]): a chunk must start
//! where the slave's log ends (or, for a slave that holds nothing, at a segment boundary); the
//! bytes of a record still incomplete wait in memory (at most one record plus one chunk); each
//! complete record is checked (size, magic, body CRC, its own offset, its queue offset against
//! the queue) before it is written, so a hostile or broken master can make the slave refuse
//! and reconnect, never store garbage. Written records are dispatched to the ConsumeQueues and
//! the index as a put's are; a queue the slave never saw starts at the record's queue offset.

use std::collections::HashMap;

use sextant_model::broker::admit::MAX_TOPIC_QUEUES;
use sextant_model::ha::{MasterLog, accept_chunk};
use sextant_model::store::{dispatched_to_queue, indexed};
use sextant_remoting::message::{BLANK_MAGIC, MAX_RECORD, MessageView, body_crc};

use super::{Inner, MessageStore, lock, tags_code_of};
use crate::{CqEntry, Error};

/// The smallest stored-message record (fixed fields with empty strings and body).
const MIN_RECORD: usize = 8;
/// Bytes of a blank record.
const BLANK_LEN: u64 = 8;

/// A slave's replication state: what it received past its complete records.
#[derive(Default)]
pub(super) struct ReplicaTail {
    /// Where the master's stream stands for this slave (what it reports); `None`: the log's
    /// end.
    received: Option<u64>,
    /// Bytes of an incomplete record, from the log's end.
    pending: Vec<u8>,
    /// The end of a segment a blank record sealed: the stream's bytes below it are padding.
    skip_until: u64,
}

/// What one [`MessageStore::replicate`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplicaAppend {
    /// The offset the slave reports to its master now.
    pub end: u64,
    /// Records written.
    pub records: u64,
    /// The queues that got messages, with their new max offset.
    pub queues: Vec<(String, u32, u64)>,
}

/// One checked record of a chunk, ready to write and dispatch.
struct Checked {
    at: usize,
    len: usize,
    /// Its ConsumeQueue entry (`None`: a transaction half, kept out of the queues).
    queue: Option<QueueEntry>,
    /// Whether the message index takes it.
    indexed: bool,
    store_ms: i64,
}

struct QueueEntry {
    topic: String,
    queue_id: u32,
    queue_offset: u64,
    tags_code: i64,
}

/// The highest queue offset a replicated record may have: its ConsumeQueue byte offset must
/// fit an `i64`, as a file name and a position.
const MAX_QUEUE_OFFSET: u64 = i64::MAX as u64 / crate::ENTRY_SIZE;

impl MessageStore {
    /// The CommitLog's extent, as a master streaming to slaves sees it.
    pub fn master_log(&self) -> MasterLog {
        let inner = lock(&self.shared.inner);
        MasterLog {
            start: inner.log.start(),
            end: inner.log.end(),
            segment_size: inner.log.segment_size(),
        }
    }

    /// Notified with the CommitLog's end whenever records are appended (puts and replication).
    pub fn log_end(&self) -> tokio::sync::watch::Receiver<u64> {
        self.shared.log_end.subscribe()
    }

    /// Up to `max` bytes of the CommitLog from `from`, within `from`'s segment, for a slave;
    /// empty at the log's end. Read with the store's lock released.
    pub fn read_log(&self, from: u64, max: usize) -> Result<Vec<u8>, Error> {
        let (seg, sealed, segment_size) = {
            let inner = lock(&self.shared.inner);
            if from >= inner.log.end() {
                return Ok(Vec::new());
            }
            let (seg, sealed) = inner.log.segment_for_replica(from)?;
            (seg, sealed, inner.log.segment_size())
        };
        let within = from - seg.start();
        let records = seg.len();
        let stored = if sealed { segment_size } else { records };
        let n = (stored.saturating_sub(within)).min(max as u64) as usize;
        let mut out = Vec::with_capacity(n);
        if within < records {
            seg.read_into(from, n.min((records - within) as usize), &mut out)?;
        }
        if out.len() < n {
            // Past a sealed segment's records: the blank record (when 8 bytes remain), zeros.
            let remaining = segment_size - records;
            let mut blank = [0u8; BLANK_LEN as usize];
            if remaining >= BLANK_LEN {
                blank[..4].copy_from_slice(&(remaining as i32).to_be_bytes());
                blank[4..].copy_from_slice(&BLANK_MAGIC.to_be_bytes());
            }
            let first = within + out.len() as u64 - records;
            let rest = n - out.len();
            out.extend(
                (first..first + rest as u64).map(
                    |i| {
                        if i < BLANK_LEN { blank[i as usize] } else { 0 }
                    },
                ),
            );
        }
        Ok(out)
    }

    /// The offset a slave reports to its master: its log's end, or further into a record or
    /// a segment's padding it is receiving.
    pub fn replica_end(&self) -> u64 {
        let inner = lock(&self.shared.inner);
        inner.replica.received.unwrap_or(inner.log.end())
    }

    /// Forget what was received past the last complete record (a new HA connection starts
    /// from the log's end: at most one record is sent again).
    pub fn replica_restart(&self) {
        lock(&self.shared.inner).forget_tail();
    }

    /// Append a chunk of `data` its master streamed at `start` (a heartbeat when empty): see
    /// the module documentation. A refusal ([`Error::Replica`]) or a bad record
    /// ([`Error::BadReplica`]) leaves the log as it was before the bad part (the records before
    /// it are kept) and forgets the incomplete tail: the slave reconnects and reports its end.
    pub fn replicate(&self, start: u64, data: &[u8]) -> Result<ReplicaAppend, Error> {
        let mut inner = lock(&self.shared.inner);
        let inner = &mut *inner;
        if inner.closed {
            return Err(Error::Closed);
        }
        if let Some(why) = &inner.failed {
            return Err(Error::Failed(why.clone()));
        }
        let received = inner.replica.received.unwrap_or(inner.log.end());
        let holds_nothing = inner.log.holds_nothing() && inner.replica.received.is_none();
        let segment_size = inner.log.segment_size();
        if let Err(refusal) = accept_chunk(
            received,
            holds_nothing,
            start,
            data.len() as u64,
            segment_size,
        ) {
            inner.forget_tail();
            return Err(refusal.into());
        }
        if data.is_empty() {
            return Ok(ReplicaAppend {
                end: received,
                ..ReplicaAppend::default()
            });
        }
        if holds_nothing {
            // The segment the stream starts in (empty, it still counts as holding nothing:
            // a slave whose first chunks are refused follows any master later).
            inner.log.start_at(start)?;
        }
        let mut at = start;
        let mut data = data;
        if at < inner.replica.skip_until {
            let n = ((inner.replica.skip_until - at) as usize).min(data.len());
            if data[..n].iter().any(|b| *b != 0) {
                inner.forget_tail();
                return Err(Error::BadReplica(format!(
                    "non-zero bytes in the padding of a sealed segment at {at}"
                )));
            }
            data = &data[n..];
            at += n as u64;
        }
        inner.replica.pending.extend_from_slice(data);
        let received = at + data.len() as u64;
        inner.replica.received = Some(received);
        if received >= inner.replica.skip_until {
            inner.replica.skip_until = 0;
        }
        let done = inner.dispatch_replica();
        self.shared.publish_log_end(inner.log.end());
        match done {
            Ok(mut report) => {
                report.end = inner.replica.received.unwrap_or(inner.log.end());
                if inner.replica.pending.is_empty() && inner.replica.skip_until == 0 {
                    inner.replica.received = None;
                }
                Ok(report)
            }
            Err(e) => {
                inner.forget_tail();
                Err(e)
            }
        }
    }
}

impl Inner {
    /// Forget what was received past the complete records: the master streams it again.
    fn forget_tail(&mut self) {
        self.replica.pending.clear();
        self.replica.received = None;
        self.replica.skip_until = 0;
    }

    /// Write and dispatch every complete record of the pending bytes; seal segments at their
    /// blank records.
    fn dispatch_replica(&mut self) -> Result<ReplicaAppend, Error> {
        let mut report = ReplicaAppend::default();
        let mut touched: HashMap<(String, u32), u64> = HashMap::new();
        let segment_size = self.log.segment_size();
        loop {
            let mut pending = std::mem::take(&mut self.replica.pending);
            let pos = self.log.end();
            let seg_left = (segment_size - pos % segment_size) as usize;
            let (checked, used, seal, bad) = self.check_records(&pending, pos, seg_left);
            if used == 0 && !seal && bad.is_none() {
                // An incomplete record: it waits, not copied.
                self.replica.pending = pending;
                break;
            }
            let write = self.write_replica(&pending[..used], &checked, pos, &mut touched);
            report.records += checked.len() as u64;
            let mut consumed = used;
            let mut again = false;
            if write.is_ok() && bad.is_none() && seal {
                self.log.seal_replica()?;
                // The padding after the blank record, as far as received.
                let pad = seg_left - used;
                let n = pad.min(pending.len() - used);
                if pending[used..used + n]
                    .iter()
                    .skip(BLANK_LEN as usize)
                    .any(|b| *b != 0)
                {
                    return Err(Error::BadReplica(format!(
                        "non-zero bytes in the padding of the segment sealed at {}",
                        pos + used as u64
                    )));
                }
                if n < pad {
                    self.replica.skip_until = pos - pos % segment_size + segment_size;
                }
                consumed += n;
                again = consumed < pending.len();
            }
            pending.drain(..consumed);
            self.replica.pending = pending;
            write?;
            if let Some(why) = bad {
                return Err(Error::BadReplica(why));
            }
            if !again {
                break;
            }
        }
        self.index.finish();
        report.queues = touched.into_iter().map(|((t, q), m)| (t, q, m)).collect();
        Ok(report)
    }

    /// The complete records at the front of `pending` (which starts at log offset `pos`, with
    /// `seg_left` bytes left in its segment): the records checked, the bytes they take, whether
    /// a blank record (or a tail too short for one) ends the segment there, and why checking
    /// stopped early, if a record is bad.
    fn check_records(
        &mut self,
        pending: &[u8],
        pos: u64,
        seg_left: usize,
    ) -> (Vec<Checked>, usize, bool, Option<String>) {
        let mut checked = Vec::new();
        let mut used = 0;
        let mut next_offsets: HashMap<(String, u32), u64> = HashMap::new();
        loop {
            let left = seg_left - used;
            let avail = pending.len() - used;
            if left < BLANK_LEN as usize {
                // Too little room for a blank record: the segment ends here (zeros follow).
                return (checked, used, avail > 0, None);
            }
            if avail < 8 {
                return (checked, used, false, None);
            }
            let head = &pending[used..used + 8];
            let total = i32::from_be_bytes([head[0], head[1], head[2], head[3]]);
            let magic = i32::from_be_bytes([head[4], head[5], head[6], head[7]]);
            let at = pos + used as u64;
            if magic == BLANK_MAGIC {
                if total as i64 == left as i64 {
                    return (checked, used, true, None);
                }
                return (
                    checked,
                    used,
                    false,
                    Some(format!(
                        "a blank record at {at} says {total} bytes, {left} are left"
                    )),
                );
            }
            let Some(total) = usize::try_from(total)
                .ok()
                .filter(|t| (MIN_RECORD..=MAX_RECORD).contains(t) && *t <= left)
            else {
                return (
                    checked,
                    used,
                    false,
                    Some(format!("record size {total} at {at}")),
                );
            };
            if avail < total {
                return (checked, used, false, None);
            }
            let record = &pending[used..used + total];
            let why = match MessageView::decode(record) {
                Err(e) => Some(format!("at {at}: {e}")),
                Ok((m, _)) if m.body_crc != body_crc(m.body) => {
                    Some(format!("at {at}: body CRC mismatch"))
                }
                Ok((m, _)) if m.physical_offset != at as i64 => Some(format!(
                    "the record at {at} says offset {}",
                    m.physical_offset
                )),
                Ok((m, _)) if !dispatched_to_queue(m.sys_flag) => {
                    // A transaction half RocketMQ keeps out of its queues: written, not queued.
                    checked.push(Checked {
                        at: used,
                        len: total,
                        queue: None,
                        indexed: indexed(m.sys_flag),
                        store_ms: m.store_timestamp,
                    });
                    None
                }
                Ok((m, _)) => match self.check_queue_offset(&m, &mut next_offsets) {
                    Err(why) => Some(format!("at {at}: {why}")),
                    Ok(()) => {
                        checked.push(Checked {
                            at: used,
                            len: total,
                            queue: Some(QueueEntry {
                                topic: m.topic.to_owned(),
                                queue_id: m.queue_id as u32,
                                queue_offset: m.queue_offset as u64,
                                tags_code: tags_code_of(&m, &self.delay_levels),
                            }),
                            indexed: indexed(m.sys_flag),
                            store_ms: m.store_timestamp,
                        });
                        None
                    }
                },
            };
            if let Some(why) = why {
                return (checked, used, false, Some(why));
            }
            used += total;
        }
    }

    /// Whether the record's queue offset continues its queue (an empty queue starts anywhere).
    fn check_queue_offset(
        &mut self,
        m: &MessageView<'_>,
        next: &mut HashMap<(String, u32), u64>,
    ) -> Result<(), String> {
        let qid = u32::try_from(m.queue_id)
            .ok()
            .filter(|q| *q < MAX_TOPIC_QUEUES)
            .ok_or_else(|| {
                format!(
                    "queue id {} (at most {MAX_TOPIC_QUEUES} queues)",
                    m.queue_id
                )
            })?;
        let qo = u64::try_from(m.queue_offset)
            .ok()
            .filter(|o| *o <= MAX_QUEUE_OFFSET)
            .ok_or_else(|| format!("queue offset {}", m.queue_offset))?;
        let key = (m.topic.to_owned(), qid);
        let expected = match next.get(&key) {
            Some(n) => Some(*n),
            None => {
                let q = self.queue(m.topic, qid).map_err(|e| e.to_string())?;
                Some(q.max_offset())
                    .filter(|_| q.max_offset() > q.min_offset())
                    .or_else(|| (qo < q.max_offset()).then_some(q.max_offset()))
            }
        };
        if expected.is_some_and(|e| e != qo) {
            return Err(format!(
                "{}/{qid} continues at {}, the record has queue offset {qo}",
                m.topic,
                expected.unwrap_or(0)
            ));
        }
        next.insert(key, qo + 1);
        Ok(())
    }

    /// Write checked records (`bytes`, at log offset `pos`) and dispatch them.
    fn write_replica(
        &mut self,
        bytes: &[u8],
        checked: &[Checked],
        pos: u64,
        touched: &mut HashMap<(String, u32), u64>,
    ) -> Result<(), Error> {
        if checked.is_empty() {
            return Ok(());
        }
        let newest = checked.iter().map(|c| c.store_ms).max().unwrap_or(0);
        self.log.append_replica(bytes, newest)?;
        for c in checked.iter().filter(|c| c.indexed) {
            if let Ok((m, _)) = MessageView::decode(&bytes[c.at..c.at + c.len]) {
                self.index.dispatch(&m, pos + c.at as u64);
            }
        }
        for c in checked {
            let Some(e) = &c.queue else { continue };
            let entry = CqEntry {
                commitlog_offset: pos + c.at as u64,
                size: c.len as u32,
                tags_code: e.tags_code,
            };
            let q = self.queue(&e.topic, e.queue_id)?;
            if q.max_offset() != e.queue_offset {
                // An empty queue the slave never saw: it starts where the master's is.
                q.restart_at(e.queue_offset)?;
            }
            q.append(e.queue_offset, entry)?;
            touched.insert((e.topic.clone(), e.queue_id), e.queue_offset + 1);
        }
        Ok(())
    }
}
