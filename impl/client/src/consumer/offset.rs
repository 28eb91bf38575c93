//! Where a consumer keeps its offsets (RocketMQ's `OffsetStore`): on the brokers for a
//! clustering group (`RemoteBrokerOffsetStore`), in a local file for a broadcasting one
//! (`LocalFileOffsetStore`). In memory both keep, per queue, the offset the model's process
//! queue says may be committed; `persist_all` writes them every `persistConsumerOffsetInterval`
//! and on shutdown.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use sextant_model::client::CommittedOffset;
use sextant_model::route::{MASTER_ID, MessageQueue};

use crate::error::{Error, Result};
use crate::instance::{ClientInstance, lock};

/// Where the offsets live.
#[derive(Clone, Debug)]
pub enum Backend {
    /// On the queue's master (UPDATE_CONSUMER_OFFSET / QUERY_CONSUMER_OFFSET).
    Remote,
    /// In this JSON file.
    Local(PathBuf),
}

#[derive(Debug, Default)]
struct Table {
    /// The offset to commit, and whether it changed since it was last written.
    offsets: BTreeMap<MessageQueue, (u64, bool)>,
}

/// A group's offsets.
#[derive(Debug)]
pub struct OffsetStore {
    group: String,
    backend: Backend,
    table: std::sync::Mutex<Table>,
}

#[derive(Serialize, Deserialize, Default)]
struct LocalFile {
    #[serde(rename = "offsetTable", default)]
    offset_table: Vec<LocalEntry>,
}

#[derive(Serialize, Deserialize)]
struct LocalEntry {
    topic: String,
    #[serde(rename = "brokerName")]
    broker_name: String,
    #[serde(rename = "queueId")]
    queue_id: u32,
    offset: u64,
}

impl OffsetStore {
    /// The offsets of `group`, kept by `backend`.
    pub fn new(group: &str, backend: Backend) -> Self {
        OffsetStore {
            group: group.to_owned(),
            backend,
            table: std::sync::Mutex::default(),
        }
    }

    /// `updateOffset`: set the offset to commit for `mq`; with `increase_only` it never moves
    /// back (the model's committable offset only grows; a seek or an OFFSET_MOVED may).
    pub fn update(&self, mq: &MessageQueue, offset: u64, increase_only: bool) {
        let mut t = lock(&self.table);
        let e = t.offsets.entry(mq.clone()).or_insert((offset, true));
        if !increase_only || offset > e.0 {
            if e.0 != offset {
                e.1 = true;
            }
            e.0 = offset;
        }
    }

    /// The offset held in memory for `mq`.
    pub fn read_memory(&self, mq: &MessageQueue) -> Option<u64> {
        lock(&self.table).offsets.get(mq).map(|e| e.0)
    }

    /// Forget `mq` (`removeOffset`).
    pub fn remove(&self, mq: &MessageQueue) {
        lock(&self.table).offsets.remove(mq);
    }

    /// `readOffset(READ_FROM_STORE)`: what the broker (or the file) holds for `mq`.
    pub async fn read_store(
        &self,
        instance: &ClientInstance,
        mq: &MessageQueue,
    ) -> CommittedOffset {
        match &self.backend {
            Backend::Local(path) => match load(path) {
                Ok(f) => f
                    .offset_table
                    .iter()
                    .find(|e| {
                        e.topic == *mq.topic
                            && e.broker_name == *mq.broker_name
                            && e.queue_id == mq.queue_id
                    })
                    .map_or(CommittedOffset::NotFound, |e| CommittedOffset::At(e.offset)),
                Err(e) => {
                    // A broken file must not keep the queue from being consumed forever.
                    tracing::warn!(error = %e, "unreadable local offsets, starting as a new group");
                    CommittedOffset::NotFound
                }
            },
            Backend::Remote => {
                let timeout = instance.config().mq_client_api_timeout;
                let addr = match instance.subscribe_addr(&mq.broker_name, MASTER_ID, true) {
                    Some((a, _)) => Some(a),
                    None => {
                        let _ = instance.update_route(&mq.topic).await;
                        instance
                            .subscribe_addr(&mq.broker_name, MASTER_ID, false)
                            .map(|(a, _)| a)
                    }
                };
                let Some(addr) = addr else {
                    return CommittedOffset::Failed;
                };
                let peer = match instance.peer(&addr).await {
                    Ok(p) => p,
                    Err(_) => return CommittedOffset::Failed,
                };
                match peer.query_offset(&self.group, mq, timeout).await {
                    Ok(Some(o)) => {
                        self.update(mq, o, false);
                        lock(&self.table)
                            .offsets
                            .entry(mq.clone())
                            .and_modify(|e| e.1 = false);
                        CommittedOffset::At(o)
                    }
                    Ok(None) => CommittedOffset::NotFound,
                    Err(e) => {
                        tracing::debug!(queue = ?mq, error = %e, "offset query failed");
                        CommittedOffset::Failed
                    }
                }
            }
        }
    }

    /// Write the offset of `mq` now.
    pub async fn persist(&self, instance: &ClientInstance, mq: &MessageQueue) -> Result<()> {
        let mqs = BTreeSet::from([mq.clone()]);
        self.write(instance, &mqs, false).await
    }

    /// `persistAll`: write the offsets of `mqs` (the queues held), and forget the others.
    pub async fn persist_all(
        &self,
        instance: &ClientInstance,
        mqs: &BTreeSet<MessageQueue>,
    ) -> Result<()> {
        self.write(instance, mqs, true).await
    }

    async fn write(
        &self,
        instance: &ClientInstance,
        mqs: &BTreeSet<MessageQueue>,
        forget_others: bool,
    ) -> Result<()> {
        let dirty: Vec<(MessageQueue, u64)> = {
            let mut t = lock(&self.table);
            if forget_others {
                t.offsets.retain(|mq, _| mqs.contains(mq));
            }
            t.offsets
                .iter()
                .filter(|(mq, e)| {
                    mqs.contains(*mq) && (e.1 || matches!(self.backend, Backend::Local(_)))
                })
                .map(|(mq, e)| (mq.clone(), e.0))
                .collect()
        };
        match &self.backend {
            Backend::Local(path) => {
                let mut file = load(path).unwrap_or_default();
                for (mq, offset) in &dirty {
                    match file.offset_table.iter_mut().find(|e| {
                        e.topic == *mq.topic
                            && e.broker_name == *mq.broker_name
                            && e.queue_id == mq.queue_id
                    }) {
                        Some(e) => e.offset = *offset,
                        None => file.offset_table.push(LocalEntry {
                            topic: mq.topic.to_string(),
                            broker_name: mq.broker_name.to_string(),
                            queue_id: mq.queue_id,
                            offset: *offset,
                        }),
                    }
                }
                save(path, &file)?;
                self.mark_written(&dirty);
                Ok(())
            }
            Backend::Remote => {
                // All at once: a dead broker costs one timeout, not one per queue.
                let timeout = instance.config().mq_client_api_timeout;
                let errors = std::sync::Mutex::new(Vec::new());
                let writes = dirty.into_iter().map(|(mq, offset)| {
                    let errors = &errors;
                    async move {
                        let Some((addr, _)) =
                            instance.subscribe_addr(&mq.broker_name, MASTER_ID, false)
                        else {
                            return;
                        };
                        let r = match instance.peer(&addr).await {
                            Ok(p) => p.update_offset(&self.group, &mq, offset, timeout).await,
                            Err(e) => Err(e),
                        };
                        match r {
                            Ok(()) => {
                                instance.inner.tracer.emit(|| {
                                    sextant_trace::Event::OffsetCommitted {
                                        group: self.group.clone(),
                                        queue: (&mq).into(),
                                        offset,
                                    }
                                });
                                self.mark_written(&[(mq, offset)]);
                            }
                            Err(e) => {
                                tracing::debug!(queue = ?mq, error = %e, "offset commit failed");
                                lock(errors).push(e);
                            }
                        }
                    }
                });
                crate::instance::futures_join_all(writes).await;
                let first = errors
                    .into_inner()
                    .unwrap_or_else(|p| p.into_inner())
                    .into_iter()
                    .next();
                first.map_or(Ok(()), Err)
            }
        }
    }

    fn mark_written(&self, written: &[(MessageQueue, u64)]) {
        let mut t = lock(&self.table);
        for (mq, offset) in written {
            if let Some(e) = t.offsets.get_mut(mq)
                && e.0 == *offset
            {
                e.1 = false;
            }
        }
    }
}

fn load(path: &PathBuf) -> Result<LocalFile> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| Error::File {
            path: path.display().to_string(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(LocalFile::default()),
        Err(source) => Err(Error::File {
            path: path.display().to_string(),
            source,
        }),
    }
}

/// Write atomically: a temporary file beside it, fsynced, renamed over it.
fn save(path: &PathBuf, file: &LocalFile) -> Result<()> {
    let err = |source| Error::File {
        path: path.display().to_string(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    // A name of its own per write: two writers never share a temporary file.
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = path.with_extension(format!("json.{}.{n}.tmp", std::process::id()));
    let bytes = serde_json::to_vec_pretty(file).expect("plain data serializes");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp).map_err(err)?;
        f.write_all(&bytes).map_err(err)?;
        f.sync_all().map_err(err)?;
    }
    std::fs::rename(&tmp, path).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn updates_only_increase_unless_told() {
        let s = OffsetStore::new("g", Backend::Remote);
        let q = MessageQueue::new("T", "b", 0);
        s.update(&q, 5, true);
        s.update(&q, 3, true);
        assert_eq!(s.read_memory(&q), Some(5));
        s.update(&q, 3, false);
        assert_eq!(s.read_memory(&q), Some(3));
        s.remove(&q);
        assert_eq!(s.read_memory(&q), None);
    }

    #[test]
    fn local_files_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g/offsets.json");
        let mut f = LocalFile::default();
        f.offset_table.push(LocalEntry {
            topic: "T".into(),
            broker_name: "b".into(),
            queue_id: 1,
            offset: 42,
        });
        save(&path, &f).unwrap();
        let back = load(&path).unwrap();
        assert_eq!(back.offset_table[0].offset, 42);
        assert!(
            load(&dir.path().join("missing.json"))
                .unwrap()
                .offset_table
                .is_empty()
        );
        std::fs::write(&path, b"{garbage").unwrap();
        assert!(load(&path).is_err());
    }
}
