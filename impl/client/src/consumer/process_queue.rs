//! The client side of one owned queue (RocketMQ's `ProcessQueue`): the model's
//! [`sextant_model::consumer::ProcessQueue`] (what is in flight, what may be committed) plus what
//! the I/O shell needs around it — the cached bytes for flow control, the messages an orderly
//! consumer still has to take in order, the handlers running, the lock and pull times, and the
//! dropped flag.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

use sextant_model::Millis;
use sextant_model::client::{FlowControl, PullPause};
use sextant_model::consumer::ProcessQueue as ModelQueue;
use sextant_model::route::MessageQueue;
use tokio::sync::Notify;

use crate::message::MessageExt;

/// The mutable part of a process queue.
#[derive(Debug)]
pub(crate) struct State {
    /// The model's offsets: in flight, next pull, committable.
    pub offsets: ModelQueue,
    /// Body bytes of the messages in flight.
    pub cached_bytes: u64,
    /// Orderly: messages pulled and not yet taken, by queue offset.
    pub waiting: BTreeMap<u64, MessageExt>,
    /// Orderly: whether a consume task runs for this queue.
    pub consuming: bool,
    /// Handlers running on messages of this queue.
    pub running: usize,
    /// Orderly: whether the broker lock is held, and when it was last taken or renewed.
    pub locked: bool,
    /// When the lock was last taken or renewed.
    pub last_lock: Millis,
    /// When the last pull answered.
    pub last_pull: Millis,
    /// When a handler last finished.
    pub last_consume: Millis,
    /// Which broker id the last pull suggested (`suggestWhichBrokerId`).
    pub pull_from: u64,
}

/// One owned queue.
#[derive(Debug)]
pub(crate) struct ProcessQueue {
    pub mq: MessageQueue,
    state: Mutex<State>,
    dropped: AtomicBool,
    released: AtomicBool,
    /// Woken when a handler finishes or the queue is dropped.
    pub changed: Notify,
}

impl ProcessQueue {
    /// A queue that starts at `offset`.
    pub fn new(mq: MessageQueue, offset: u64, now: Millis) -> Self {
        ProcessQueue {
            mq,
            state: Mutex::new(State {
                offsets: ModelQueue::starting_at(offset),
                cached_bytes: 0,
                waiting: BTreeMap::new(),
                consuming: false,
                running: 0,
                locked: false,
                last_lock: 0,
                last_pull: now,
                last_consume: now,
                pull_from: 0,
            }),
            dropped: AtomicBool::new(false),
            released: AtomicBool::new(false),
            changed: Notify::new(),
        }
    }

    /// The state, locked.
    pub fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the queue was dropped (by a rebalance, an OFFSET_MOVED or shutdown).
    pub fn is_dropped(&self) -> bool {
        self.dropped.load(Ordering::Acquire)
    }

    /// Drop it (it drains): no more pulls, no more handlers start; what running handlers
    /// consume is still recorded, until [`ProcessQueue::released`].
    pub fn drop_queue(&self) {
        self.dropped.store(true, Ordering::Release);
        self.changed.notify_waiters();
    }

    /// Its offset was committed and it is no longer this member's: later results are not
    /// recorded (the next owner consumes those messages again: at-least-once).
    pub fn released(&self) {
        self.released.store(true, Ordering::Release);
    }

    /// Whether [`ProcessQueue::released`] was called.
    pub fn is_released(&self) -> bool {
        self.released.load(Ordering::Acquire)
    }

    /// Why the next pull must wait, by the model's flow control.
    pub fn pause(&self, flow: &FlowControl, orderly: bool) -> Option<PullPause> {
        let s = self.state();
        flow.pause(
            s.offsets.len() as u64,
            s.cached_bytes,
            s.offsets.span(),
            orderly,
        )
    }

    /// Record messages a pull returned (already filtered), and the offset it continues at.
    pub fn pulled(&self, msgs: &[MessageExt], next_begin: u64, now: Millis) {
        let mut s = self.state();
        s.offsets.pulled(msgs.iter().map(|m| m.queue_offset));
        s.offsets.skipped_to(next_begin);
        s.cached_bytes += msgs.iter().map(|m| m.size() as u64).sum::<u64>();
        s.last_pull = now;
    }

    /// Record that `msgs` are consumed (or sent back); returns the offset now committable.
    pub fn consumed(&self, msgs: &[MessageExt], now: Millis) -> u64 {
        let mut s = self.state();
        for m in msgs {
            if s.offsets.in_flight().any(|o| o == m.queue_offset) {
                s.cached_bytes = s.cached_bytes.saturating_sub(m.size() as u64);
            }
            s.offsets.consumed(m.queue_offset);
        }
        s.last_consume = now;
        s.offsets.commit_offset()
    }

    /// Wait until no handler runs on this queue, at most `timeout`; whether none does.
    pub async fn idle(&self, timeout: std::time::Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.changed.notified();
            if self.state().running == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.state().running == 0;
            }
        }
    }
}
