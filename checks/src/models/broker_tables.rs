//! The broker's consumer-group and lock tables as the consumer models hold them:
//! `sextant-model`'s [`ConsumerGroups`] and [`LockTable`], the code the broker runs, interned.
//!
//! The models have no clock: membership and expiry are events. These tables do keep time, so the
//! models keep every timestamp in them at 0 ("now"), and an expiry event is played on the real
//! code: the clock moves just past the expiry, every entry that is still kept alive is renewed at
//! that instant (live consumers heartbeat and relock; other absent holders went silent later),
//! the table's own scan or prune decides what goes, and what remains is renewed at 0 again. So
//! the decisions — who is a member, who holds a lock, what has expired — are the tables' own, and
//! a table broken in any of them breaks the model.

use std::collections::BTreeMap;

use sextant_model::Millis;
use sextant_model::broker::{ConsumerGroups, LockTable};
use sextant_model::route::MessageQueue;

use super::intern::Interned;

/// The consumer group of the models.
pub const GROUP: &str = "G";

/// The connection (channel) address of consumer `cid`.
pub fn channel_of(cid: &str) -> String {
    format!("{cid}/conn")
}

fn subscription() -> BTreeMap<String, String> {
    BTreeMap::from([("T".to_owned(), "*".to_owned())])
}

/// `cid`'s heartbeat at 0; whether the group's membership changed (the broker then notifies).
pub fn heartbeat(groups: Interned<ConsumerGroups>, cid: &str) -> (Interned<ConsumerGroups>, bool) {
    groups.update(|g| g.register(GROUP, &channel_of(cid), cid, subscription(), 0))
}

/// `cid` unregisters (a clean shutdown); whether it was a member.
pub fn unregister(groups: Interned<ConsumerGroups>, cid: &str) -> (Interned<ConsumerGroups>, bool) {
    groups.update(|g| g.unregister(GROUP, &channel_of(cid)))
}

/// The broker's channel expiry scan runs after `cid` has been silent for `silence` ms, while
/// every other member heartbeats: the table's own scan decides whether it goes.
pub fn expire_channel(
    groups: Interned<ConsumerGroups>,
    cid: &str,
    silence: Millis,
) -> Interned<ConsumerGroups> {
    let at = silence;
    let silent = channel_of(cid);
    groups
        .update(|g| {
            let others: Vec<(String, String)> = g
                .group(GROUP)
                .map(|grp| {
                    grp.channels
                        .iter()
                        .filter(|(addr, _)| **addr != silent)
                        .map(|(addr, c)| (addr.clone(), c.client_id.clone()))
                        .collect()
                })
                .unwrap_or_default();
            for (addr, client) in &others {
                g.register(GROUP, addr, client, subscription(), at);
            }
            g.scan_expired(at);
            for (addr, client) in &others {
                g.register(GROUP, addr, client, subscription(), 0);
            }
        })
        .0
}

/// The group's members, as the broker answers GET_CONSUMER_LIST_BY_GROUP.
pub fn members(groups: &ConsumerGroups) -> Vec<String> {
    groups.client_ids(GROUP)
}

/// `cid` locks `mqs` at 0; the queues it holds of those afterwards.
pub fn lock(
    locks: Interned<LockTable>,
    mqs: &[MessageQueue],
    cid: &str,
) -> (Interned<LockTable>, Vec<MessageQueue>) {
    locks.update(|t| t.try_lock_batch(GROUP, mqs, cid, 0).into_iter().collect())
}

/// `cid` unlocks `mqs`.
pub fn unlock(locks: Interned<LockTable>, mqs: &[MessageQueue], cid: &str) -> Interned<LockTable> {
    locks.update(|t| t.unlock_batch(GROUP, mqs, cid)).0
}

/// Who holds `mq` now.
pub fn holder<'t>(locks: &'t LockTable, mq: &MessageQueue) -> Option<&'t str> {
    locks.holder(GROUP, mq, 0)
}

/// Time passes until `cid`'s lock on `mq` (not renewed since 0) is `silence` ms old, while every
/// other lock is renewed (other holders relock; `cid`'s other queues were locked later — each
/// queue is locked on its own when a rebalance adds it, and each broker has its own table): the
/// table's prune decides what goes. `universe` is every queue the model has.
pub fn expire_lock(
    locks: Interned<LockTable>,
    cid: &str,
    mq: &MessageQueue,
    silence: Millis,
    universe: &[MessageQueue],
) -> Interned<LockTable> {
    let at = silence;
    locks
        .update(|t| {
            let mut kept: BTreeMap<String, Vec<MessageQueue>> = BTreeMap::new();
            for q in universe {
                if let Some(h) = t.holder(GROUP, q, 0)
                    && !(h == cid && q == mq)
                {
                    kept.entry(h.to_owned()).or_default().push(q.clone());
                }
            }
            for (h, mqs) in &kept {
                t.try_lock_batch(GROUP, mqs, h, at);
            }
            t.prune(at);
            for (h, mqs) in &kept {
                t.try_lock_batch(GROUP, mqs, h, 0);
            }
        })
        .0
}

#[cfg(test)]
mod tests {
    use super::*;
    use sextant_model::broker::{CHANNEL_EXPIRED_MS, LOCK_MAX_LIVE_MS};

    fn mq(i: u32) -> MessageQueue {
        MessageQueue::new("T", "b", i)
    }

    #[test]
    fn a_channel_expires_alone_and_the_rest_stays_at_zero() {
        let g = Interned::new(ConsumerGroups::new(CHANNEL_EXPIRED_MS));
        let (g, new) = heartbeat(g, "c0");
        assert!(new);
        let (g, _) = heartbeat(g, "c1");
        let (again, new) = heartbeat(g, "c1");
        assert!(!new, "a heartbeat of a member changes nothing");
        assert_eq!(again, g);
        let only_c1 = expire_channel(g, "c0", CHANNEL_EXPIRED_MS + 1);
        assert_eq!(members(&only_c1), ["c1"]);
        let (direct, _) = heartbeat(Interned::new(ConsumerGroups::new(CHANNEL_EXPIRED_MS)), "c1");
        assert_eq!(
            only_c1, direct,
            "the survivors are back at 0: one state, not two"
        );
        // A silence of exactly the expiry is not past it.
        assert_eq!(
            members(&expire_channel(g, "c0", CHANNEL_EXPIRED_MS)),
            ["c0", "c1"]
        );
        // A table whose channels outlive the silence keeps the silent member.
        let long = Interned::new(ConsumerGroups::new(Millis::MAX / 2));
        let (long, _) = heartbeat(long, "c0");
        assert_eq!(
            members(&expire_channel(long, "c0", CHANNEL_EXPIRED_MS + 1)),
            ["c0"]
        );
    }

    #[test]
    fn locks_of_a_silent_holder_expire_and_the_others_stay() {
        let universe: Vec<MessageQueue> = (0..3).map(mq).collect();
        let t = Interned::new(LockTable::new(LOCK_MAX_LIVE_MS));
        let (t, got) = lock(t, &universe[..2], "c0");
        assert_eq!(got.len(), 2);
        let (t, got) = lock(t, &universe, "c1");
        assert_eq!(got, [mq(2)], "held queues are refused");
        let kept = expire_lock(t, "c0", &mq(0), LOCK_MAX_LIVE_MS, &universe);
        assert_eq!(kept, t, "a lock exactly as old as its expiry is still held");
        let t = expire_lock(t, "c0", &mq(0), LOCK_MAX_LIVE_MS + 1, &universe);
        assert_eq!(holder(&t, &mq(0)), None);
        assert_eq!(holder(&t, &mq(1)), Some("c0"), "renewed later, still held");
        assert_eq!(holder(&t, &mq(2)), Some("c1"));
        let t = expire_lock(t, "c0", &mq(1), LOCK_MAX_LIVE_MS + 1, &universe);
        assert_eq!(holder(&t, &mq(1)), None);
        let never = Interned::new(LockTable::new(Millis::MAX / 2));
        let (never, _) = lock(never, &universe[..1], "c0");
        let kept = expire_lock(never, "c0", &mq(0), LOCK_MAX_LIVE_MS + 1, &universe);
        assert_eq!(kept, never, "a table that never expires keeps the lock");
        let (t, got) = lock(t, &universe[..1], "c1");
        assert_eq!(got, [mq(0)]);
        let t = unlock(t, &universe, "c1");
        assert!(t.is_empty());
    }
}
