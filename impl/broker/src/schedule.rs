//! Delayed delivery (`ScheduleMessageService`): a message sent with a delay level waits in
//! `SCHEDULE_TOPIC_XXXX`, queue `level − 1`, its ConsumeQueue tags code being its delivery time.
//! Each level's cursor moves over due messages and puts each back into its real topic and queue
//! (the `DELAY` property removed); a message with nowhere to go (`admit::redelivery_target`) is
//! logged and skipped. Cursors are kept in `config/delayOffset.json`, written after the store is
//! flushed; after a crash a message may be delivered twice, never lost.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use sextant_model::broker::{SCHEDULE_TOPIC, admit};
use sextant_remoting::message::{MessageView, encode_properties, parse_properties, property};
use sextant_store::config::{load_json_in, save_json_in};
use sextant_store::fs::Fs;
use sextant_store::{Get, MessageStore, tags_code_of};

use crate::Error;
use crate::broker::{Broker, NewMessage, wall_ms};

#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct DelayOffsets {
    /// Delay level → next schedule-queue offset to look at.
    offset_table: BTreeMap<i32, u64>,
}

/// The cursors of the delay levels.
pub struct Schedule {
    fs: Arc<dyn Fs>,
    path: PathBuf,
    cursors: Mutex<DelayOffsets>,
    dirty: Mutex<bool>,
    /// A deliberately broken schedule, for the power-loss test: cursors written without
    /// flushing the store first.
    pub(crate) unflushed: std::sync::atomic::AtomicBool,
}

impl Schedule {
    /// Load the cursors from `path`.
    pub fn load(path: PathBuf) -> Result<Schedule, Error> {
        Self::load_in(sextant_store::fs::real(), path)
    }

    /// Load the cursors from `path` on the file system `fs` (they are saved there too).
    pub fn load_in(fs: Arc<dyn Fs>, path: PathBuf) -> Result<Schedule, Error> {
        let cursors = load_json_in(&*fs, &path)?.unwrap_or_default();
        Ok(Schedule {
            fs,
            path,
            cursors: Mutex::new(cursors),
            dirty: Mutex::new(false),
            unflushed: Default::default(),
        })
    }

    /// Write the cursors if they moved — after flushing the store: a cursor moves past a
    /// message only once its copy was put, and the flush makes those copies durable first, so
    /// after a power loss no delayed message is past its level's cursor without its copy.
    pub fn persist(&self, store: &MessageStore) -> Result<(), Error> {
        let mut dirty = self.dirty.lock().unwrap_or_else(|p| p.into_inner());
        if *dirty {
            let snapshot = self
                .cursors
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            if !self.unflushed.load(std::sync::atomic::Ordering::Relaxed) {
                store.flush()?;
            }
            save_json_in(&*self.fs, &self.path, &snapshot)?;
            *dirty = false;
        }
        Ok(())
    }

    /// Deliver every due message of every level; returns how many were delivered.
    pub fn deliver_due(&self, broker: &Broker) -> usize {
        let levels = broker.delay_levels().clone();
        let now = wall_ms();
        let mut delivered = 0;
        for level in 1..=levels.max_level() {
            let q = (level - 1) as u32;
            let mut cursor = self
                .cursors
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .offset_table
                .get(&level)
                .copied()
                .unwrap_or(0);
            let start = cursor;
            'level: loop {
                let get = Get {
                    topic: SCHEDULE_TOPIC,
                    queue_id: q,
                    offset: cursor,
                    max_msgs: 32,
                    max_bytes: 1 << 20,
                    correct: true,
                };
                let r = match broker.store().get(&get, &|_| true) {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::error!(level, error = %e, "reading the schedule queue failed");
                        break;
                    }
                };
                if r.count == 0 {
                    cursor = r.next_begin;
                    break;
                }
                let mut at = 0;
                while at < r.records.len() {
                    let Ok((m, size)) = MessageView::decode(&r.records[at..]) else {
                        break 'level;
                    };
                    at += size;
                    if tags_code_of(&m, &levels) > now {
                        break 'level;
                    }
                    match redeliver(broker, &m) {
                        Ok(true) => delivered += 1,
                        // Nowhere to deliver it: skipped, never retried.
                        Ok(false) => {}
                        // The store refused it (e.g. the disk is full): try again later.
                        Err(why) => {
                            tracing::error!(level, error = %why, "delayed delivery failed");
                            break 'level;
                        }
                    }
                    cursor = m.queue_offset as u64 + 1;
                }
            }
            if cursor != start {
                self.cursors
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .offset_table
                    .insert(level, cursor);
                *self.dirty.lock().unwrap_or_else(|p| p.into_inner()) = true;
            }
        }
        delivered
    }
}

/// Put a due message back into its real topic and queue, as `admit::redelivery_target` decides.
/// `Ok(false)`: it has nowhere to go (no or a bad `REAL_TOPIC` / `REAL_QID`, a topic that no
/// longer exists) and is skipped, logged.
fn redeliver(broker: &Broker, m: &MessageView<'_>) -> Result<bool, String> {
    let mut props = parse_properties(m.properties);
    let real_topic = props.get(property::REAL_TOPIC).copied();
    let config = real_topic.and_then(|t| broker.topic(t));
    let (topic, queue_id) = match admit::redelivery_target(
        real_topic,
        props.get(property::REAL_QID).copied(),
        config.as_ref(),
    ) {
        Ok(target) => target,
        Err(why) => {
            tracing::warn!(offset = m.queue_offset, %why, "delayed message skipped");
            return Ok(false);
        }
    };
    props.remove(property::DELAY);
    let properties = encode_properties(props);
    broker
        .put_messages(vec![NewMessage {
            topic: topic.into(),
            queue_id,
            flag: m.flag,
            sys_flag: m.sys_flag,
            born_timestamp: m.born_timestamp,
            born_host: m.born_host,
            reconsume_times: m.reconsume_times,
            body: m.body,
            properties,
        }])
        .map(|_| true)
        .map_err(|r| format!("the store refused the message: {}", r.1))
}
