//! The put path: delayed messages through the schedule topic (`admit::delay_rewrite`), the
//! store, held pulls woken, and the acknowledgement `put_verdict` decides.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::net::SocketAddr;

use sextant_model::broker::{SCHEDULE_TOPIC, admit};
use sextant_model::store::{self, FlushDiskType, PutProgress, PutVerdict, put_verdict};
use sextant_remoting::code::response;
use sextant_remoting::message::{self, MessageView, encode_properties, parse_properties, property};
use sextant_store::{Put, PutResult, tags_code_of};

use crate::broker::{Broker, Reply, lock, reply, wall_ms};

/// A message to store, before the store gives it offsets.
pub(crate) struct NewMessage<'a> {
    pub topic: Cow<'a, str>,
    pub queue_id: u32,
    pub flag: i32,
    pub sys_flag: i32,
    pub born_timestamp: i64,
    pub born_host: SocketAddr,
    pub reconsume_times: i32,
    pub body: &'a [u8],
    pub properties: String,
}

impl Broker {
    /// Store `msgs`, sending delayed ones through the schedule topic first; wake waiting pulls.
    pub(crate) fn put_messages(&self, msgs: Vec<NewMessage<'_>>) -> Result<PutResult, Reply> {
        let now = wall_ms();
        let levels = &self.settings.delay_levels;
        let mut owned = Vec::with_capacity(msgs.len());
        for mut m in msgs {
            let level: i32 = message::property_of(&m.properties, property::DELAY)
                .and_then(|l| l.parse().ok())
                .unwrap_or(0);
            if let Some(rewrite) = admit::delay_rewrite(level, levels) {
                let real_q = m.queue_id.to_string();
                let mut props: BTreeMap<&str, &str> = parse_properties(&m.properties);
                props.insert(property::REAL_TOPIC, m.topic.as_ref());
                props.insert(property::REAL_QID, &real_q);
                let clamped = rewrite.level.to_string();
                props.insert(property::DELAY, &clamped);
                let props = encode_properties(props);
                m.properties = props;
                m.topic = Cow::Borrowed(SCHEDULE_TOPIC);
                m.queue_id = rewrite.schedule_queue;
            }
            owned.push(m);
        }
        let mut puts: Vec<Put<'_>> = owned
            .iter()
            .map(|m| {
                let msg = MessageView {
                    queue_id: m.queue_id as i32,
                    flag: m.flag,
                    queue_offset: 0,
                    physical_offset: 0,
                    // The host flags follow the addresses (set by the encoder).
                    sys_flag: m.sys_flag,
                    born_timestamp: m.born_timestamp,
                    born_host: m.born_host,
                    store_timestamp: now,
                    store_host: self.addr,
                    reconsume_times: m.reconsume_times,
                    prepared_transaction_offset: 0,
                    body_crc: 0,
                    body: m.body,
                    topic: &m.topic,
                    properties: &m.properties,
                };
                let tags_code = tags_code_of(&msg, levels);
                Put { msg, tags_code }
            })
            .collect();
        if let Some(why) = store::put_refused(self.settings.role) {
            return Err(reply(response::SERVICE_NOT_AVAILABLE, why));
        }
        let result = self.store.put(&mut puts).map_err(|e| {
            self.stats.put_failed();
            match e {
                // RocketMQ's SERVICE_NOT_AVAILABLE for a full disk; what is stored stays readable.
                sextant_store::Error::DiskFull { .. } => reply(
                    response::SERVICE_NOT_AVAILABLE,
                    format!(
                        "service not available now: the broker's disk is full ({e}); reads go on"
                    ),
                ),
                e => reply(response::SYSTEM_ERROR, format!("put message failed: {e}")),
            }
        })?;
        self.stats.stored(
            result.stored.len() as u64,
            result.stored.iter().map(|s| u64::from(s.size)).sum(),
        );
        if self.tracer.get().is_some_and(|t| t.is_on()) {
            for (p, st) in puts.iter().zip(&result.stored) {
                self.trace(|| sextant_trace::Event::Stored {
                    queue: sextant_trace::Queue {
                        topic: p.msg.topic.to_owned(),
                        broker: self.config.broker_name.clone(),
                        id: p.msg.queue_id as u32,
                    },
                    offset: st.queue_offset,
                    msg_id: message::property_of(p.msg.properties, property::UNIQ_KEY)
                        .map(str::to_owned),
                });
            }
        }
        self.notify_arrivals(
            puts.iter()
                .zip(&result.stored)
                .map(|(p, s)| (p.msg.topic, p.msg.queue_id as u32, s.queue_offset + 1)),
        );
        Ok(result)
    }

    /// Wake the pulls held on queues that now end at the given offsets.
    pub(crate) fn notify_arrivals<'a>(&self, ends: impl IntoIterator<Item = (&'a str, u32, u64)>) {
        let arrivals = lock(&self.arrivals);
        for (topic, queue_id, end) in ends {
            if let Some(tx) = arrivals.get(topic).and_then(|q| q.get(&queue_id)) {
                // Puts finish out of order: a queue's end only moves forward.
                tx.send_if_modified(|at| {
                    let later = end > *at;
                    if later {
                        *at = end;
                    }
                    later
                });
            }
        }
    }

    /// Wait until the put is acknowledged as `put_verdict` decides, and answer its code: the
    /// flush first (SYNC_FLUSH), then a slave (SYNC_MASTER), each within `syncFlushTimeout`, as
    /// RocketMQ's `handleDiskFlush` and `handleHA`. Every put waiting on the slave wakes on its
    /// reports, so a report acknowledges every put it covers at once.
    pub(crate) async fn verdict(&self, end: u64) -> i32 {
        let gap = self.config.ha_max_gap_not_in_sync;
        // The test-only broken broker takes a put as flushed at once.
        let unflushed_ok = self
            .ack_before_flush
            .load(std::sync::atomic::Ordering::Relaxed);
        let flushed = || match unflushed_ok {
            true => end,
            false => self.store.flushed(),
        };
        let progress = |timed_out| PutProgress {
            end,
            flushed: flushed(),
            slave_acked: self.ha.slave_acked(end, gap),
            timed_out,
        };
        let decide =
            |timed_out| put_verdict(self.settings.flush, self.settings.role, progress(timed_out));
        let timeout = self.store.config().sync_flush_timeout;
        let flushing = || self.settings.flush == FlushDiskType::SyncFlush && flushed() < end;
        let mut v = decide(false);
        if v == PutVerdict::Wait && flushing() {
            self.store.wait_flushed(end, timeout).await;
            v = decide(false);
            if v == PutVerdict::Wait && flushing() {
                v = decide(true);
            }
        }
        if v == PutVerdict::Wait {
            self.ha.wait_acked(end, timeout).await;
            v = decide(false);
            if v == PutVerdict::Wait {
                v = decide(true);
            }
        }
        let code = match v {
            PutVerdict::Ok | PutVerdict::Wait => response::SUCCESS,
            PutVerdict::FlushDiskTimeout => response::FLUSH_DISK_TIMEOUT,
            PutVerdict::FlushSlaveTimeout => response::FLUSH_SLAVE_TIMEOUT,
            PutVerdict::SlaveNotAvailable => response::SLAVE_NOT_AVAILABLE,
        };
        // What the store really had when the put was answered (not what a broken broker
        // pretends): the trace checker judges the answer by `put_verdict` on it.
        self.trace(|| sextant_trace::Event::PutAnswered {
            log_end: end,
            flushed: self.store.flushed(),
            slave_acked: self.ha.slave_acked(end, gap),
            flush: self.settings.flush.name().to_owned(),
            role: self.settings.role.name().to_owned(),
            code,
        });
        code
    }
}
