//! Master/slave replication, RocketMQ's classic HA (protocol.md §8.4), byte-compatible with
//! RocketMQ's: a master ([`master`]) listens on its HA port and streams its CommitLog to every
//! slave that connects; a slave ([`slave`]) connects to its master's HA address, reports how far
//! its log goes and appends what it is sent (`sextant_store::MessageStore::replicate`). Where
//! streaming starts, how it is cut, what a slave appends and when a slave counts as in sync are
//! `sextant_model::ha`'s decisions; a SYNC_MASTER's acknowledgement is `put_verdict`'s, with the
//! slave's acknowledged offset from [`HaState::slave_acked`].

pub(crate) mod master;
pub(crate) mod slave;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use tokio::sync::watch;

use crate::broker::lock;

/// The replication state a broker shares between its HA connections and its put path.
pub(crate) struct HaState {
    /// Where the master takes HA connections (set once it listens).
    pub(crate) listen: OnceLock<SocketAddr>,
    /// The offset each connected slave last reported, by connection.
    slaves: Mutex<HashMap<u64, u64>>,
    /// The highest offset a connected slave reported (`push2SlaveMaxOffset`); `None` while no
    /// slave is connected.
    acked: watch::Sender<Option<u64>>,
    next_id: std::sync::atomic::AtomicU64,
}

impl Default for HaState {
    fn default() -> Self {
        HaState {
            listen: OnceLock::new(),
            slaves: Mutex::default(),
            acked: watch::channel(None).0,
            next_id: Default::default(),
        }
    }
}

impl HaState {
    /// A slave connected: its connection id.
    pub(crate) fn connected(&self, reported: u64) -> u64 {
        let id = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        lock(&self.slaves).insert(id, reported);
        self.publish();
        id
    }

    /// A slave reported `offset`.
    pub(crate) fn reported(&self, id: u64, offset: u64) {
        if let Some(at) = lock(&self.slaves).get_mut(&id) {
            *at = (*at).max(offset);
        }
        self.publish();
    }

    /// A slave's connection ended.
    pub(crate) fn disconnected(&self, id: u64) {
        lock(&self.slaves).remove(&id);
        self.publish();
    }

    fn publish(&self) {
        let best = lock(&self.slaves).values().copied().max();
        self.acked.send_if_modified(|a| {
            let changed = *a != best;
            *a = best;
            changed
        });
    }

    /// Slaves connected now.
    pub(crate) fn slaves(&self) -> usize {
        lock(&self.slaves).len()
    }

    /// What a put ending at `end` counts as its slave's acknowledged offset
    /// (`sextant_model::ha::slave_in_sync`).
    pub(crate) fn slave_acked(&self, end: u64, max_gap: u64) -> Option<u64> {
        sextant_model::ha::slave_in_sync(end, *self.acked.borrow(), max_gap)
    }

    /// Wait until a slave acknowledged `end`, no slave is connected, or `timeout` passed.
    pub(crate) async fn wait_acked(&self, end: u64, timeout: Duration) {
        let mut rx = self.acked.subscribe();
        let _ = tokio::time::timeout(timeout, rx.wait_for(|a| a.is_none_or(|a| a >= end))).await;
    }
}

impl crate::Broker {
    /// Where this master takes its slaves' HA connections (`None` on a slave).
    pub fn ha_addr(&self) -> Option<&SocketAddr> {
        self.ha.listen.get()
    }
}

impl crate::Broker {
    /// How many slaves are connected to this master's HA port now.
    pub fn slaves_connected(&self) -> usize {
        self.ha.slaves()
    }
}
