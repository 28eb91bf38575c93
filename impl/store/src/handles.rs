//! A bound on the ConsumeQueue files held open: the store's queues share one [`FileCache`] of
//! open handles, least recently used first out, so a broker with many queues does not keep a
//! file descriptor per ConsumeQueue file forever. A closed file is opened again by the next
//! read or append of its queue.
//!
//! A handle is closed only when what was written through it is on disk: clean handles go first
//! (the flush took their writes), and only when every open handle is dirty is the oldest one
//! fsynced and closed — under the caller's lock, the rare case of more queues written between
//! two ConsumeQueue flushes than the cap. A failed fsync keeps the handle open and marks the
//! cache failed ([`FileCache::failed`]): the store then never records those entries as durable
//! in its checkpoint (a later fsync may report success for pages the kernel already dropped).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::Error;
use crate::files::io;
use crate::fs::{Fs, OpenMode, StoreFile};

/// RocketMQ keeps every ConsumeQueue file mapped; this is how many Sextant keeps open at most
/// by default.
pub const DEFAULT_MAX_OPEN_CQ_FILES: usize = 1024;

struct Slot {
    file: Arc<dyn StoreFile>,
    path: PathBuf,
    /// Its place in `clean` or `dirty`.
    tick: u64,
    /// Written since the last flush took it.
    dirty: bool,
}

#[derive(Default)]
struct State {
    next_id: u64,
    tick: u64,
    open: HashMap<u64, Slot>,
    /// Clean open handles by last use: tick → id.
    clean: BTreeMap<u64, u64>,
    /// Dirty open handles by last use.
    dirty: BTreeMap<u64, u64>,
    /// Why an fsync of a handle closed for the cap failed, if one did.
    failed: Option<String>,
    /// Files opened again after being closed for the cap.
    reopened: u64,
}

/// Open ConsumeQueue file handles, at most `cap` of them: see the module documentation.
pub(crate) struct FileCache {
    cap: usize,
    state: Mutex<State>,
}

impl FileCache {
    /// A cache holding at most `cap` handles (at least one).
    pub(crate) fn new(cap: usize) -> Arc<FileCache> {
        Arc::new(FileCache {
            cap: cap.max(1),
            state: Mutex::default(),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Every step leaves the maps consistent before it can fail.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new file id.
    pub(crate) fn new_id(&self) -> u64 {
        let mut s = self.state();
        s.next_id += 1;
        s.next_id
    }

    /// Keep `file` (just opened or created as `path`) open under `id`.
    pub(crate) fn insert(&self, id: u64, path: &Path, file: Arc<dyn StoreFile>, dirty: bool) {
        let mut s = self.state();
        s.remove(id);
        s.tick += 1;
        let tick = s.tick;
        if dirty {
            s.dirty.insert(tick, id);
        } else {
            s.clean.insert(tick, id);
        }
        s.open.insert(
            id,
            Slot {
                file,
                path: path.to_owned(),
                tick,
                dirty,
            },
        );
        self.evict(&mut s);
    }

    /// The handle of file `id` at `path`, opened again if it was closed; `write` marks it dirty
    /// (before the caller writes: a flush taken meanwhile is under the same outer lock).
    pub(crate) fn get(
        &self,
        fs: &dyn Fs,
        id: u64,
        path: &Path,
        write: bool,
    ) -> Result<Arc<dyn StoreFile>, Error> {
        let mut s = self.state();
        if let Some(slot) = s.open.get(&id) {
            let (old, was_dirty) = (slot.tick, slot.dirty);
            s.tick += 1;
            let tick = s.tick;
            let dirty = was_dirty || write;
            if was_dirty {
                s.dirty.remove(&old);
            } else {
                s.clean.remove(&old);
            }
            if dirty {
                s.dirty.insert(tick, id);
            } else {
                s.clean.insert(tick, id);
            }
            let slot = s.open.get_mut(&id).expect("looked up");
            slot.tick = tick;
            slot.dirty = dirty;
            return Ok(Arc::clone(&slot.file));
        }
        drop(s);
        // Closed only once synced: opening it again finds everything written.
        let file = fs.open(path, OpenMode::Existing).map_err(io(path))?;
        self.insert(id, path, Arc::clone(&file), write);
        self.state().reopened += 1;
        Ok(file)
    }

    /// File `id`'s handle if it was written since the last call, for a flush to fsync; it
    /// counts as clean from now on (the flush's fsync covers what was written so far).
    pub(crate) fn take_dirty(&self, id: u64) -> Option<(PathBuf, Arc<dyn StoreFile>)> {
        let mut s = self.state();
        let slot = s.open.get(&id)?;
        if !slot.dirty {
            return None;
        }
        let (tick, path, file) = (slot.tick, slot.path.clone(), Arc::clone(&slot.file));
        s.dirty.remove(&tick);
        s.clean.insert(tick, id);
        s.open.get_mut(&id).expect("looked up").dirty = false;
        Some((path, file))
    }

    /// Close file `id` without an fsync (it was removed, or its queue dropped).
    pub(crate) fn forget(&self, id: u64) {
        self.state().remove(id);
    }

    /// Mark the cache failed: a ConsumeQueue fsync failed.
    pub(crate) fn fail(&self, why: String) {
        self.state().failed.get_or_insert(why);
    }

    /// Why an fsync of a ConsumeQueue file failed, if one did: entries written since may not
    /// be on disk, so the checkpoint must not move past them.
    pub(crate) fn failed(&self) -> Option<String> {
        self.state().failed.clone()
    }

    /// Handles open now, and files opened again after being closed for the cap.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn stats(&self) -> (usize, u64) {
        let s = self.state();
        (s.open.len(), s.reopened)
    }

    /// Close the least recently used handles over the cap: clean ones first; a dirty one is
    /// fsynced first, and kept (the cache failed) if that fails.
    fn evict(&self, s: &mut State) {
        while s.open.len() > self.cap {
            if let Some((_, id)) = s.clean.pop_first() {
                s.open.remove(&id);
                continue;
            }
            let Some((&tick, &id)) = s.dirty.first_key_value() else {
                return;
            };
            let slot = s.open.get(&id).expect("an open handle");
            if let Err(e) = slot.file.sync_data() {
                let why = format!("{}: {e}", slot.path.display());
                tracing::error!(error = %why, "consume queue fsync failed");
                s.failed.get_or_insert(why);
                return;
            }
            s.dirty.remove(&tick);
            s.open.remove(&id);
        }
    }
}

impl State {
    fn remove(&mut self, id: u64) {
        if let Some(slot) = self.open.remove(&id) {
            if slot.dirty {
                self.dirty.remove(&slot.tick);
            } else {
                self.clean.remove(&slot.tick);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::{Loss, SimFs};

    #[test]
    fn least_recently_used_clean_handles_close_first_dirty_ones_after_an_fsync() {
        let sim = SimFs::new();
        let fs = sim.shared();
        fs.create_dir(Path::new("/d")).unwrap();
        fs.sync_dir(Path::new("/")).unwrap();
        let cache = FileCache::new(2);
        let mut ids = Vec::new();
        for i in 0..3 {
            let path = PathBuf::from(format!("/d/{i}"));
            let f = fs.open(&path, OpenMode::CreateNew).unwrap();
            fs.sync_dir(Path::new("/d")).unwrap();
            f.write_all_at(&[i as u8; 4], 0).unwrap();
            let id = cache.new_id();
            // 0 and 1 dirty, then 0 taken by a flush (clean, and synced): 2 evicts 0, not 1.
            cache.insert(id, &path, f, true);
            if i == 1 {
                let (_, f0) = cache.take_dirty(ids[0]).unwrap();
                f0.sync_data().unwrap();
            }
            ids.push(id);
        }
        assert_eq!(cache.stats(), (2, 0));
        assert!(cache.take_dirty(ids[1]).is_some(), "1 is still open");
        // 0 comes back with what was written; both others are now clean, so 1 (older) goes.
        let f0 = cache.get(&*fs, ids[0], Path::new("/d/0"), false).unwrap();
        let mut b = [0u8; 4];
        f0.read_exact_at(&mut b, 0).unwrap();
        assert_eq!(b, [0; 4]);
        assert_eq!(cache.stats(), (2, 1));
        assert!(cache.take_dirty(ids[1]).is_none(), "1 was closed");
        // All dirty: the oldest is fsynced before it closes, so a power loss keeps it.
        let f0 = cache.get(&*fs, ids[0], Path::new("/d/0"), true).unwrap();
        f0.write_all_at(&[7; 4], 0).unwrap();
        cache.get(&*fs, ids[2], Path::new("/d/2"), true).unwrap();
        let f1 = cache.get(&*fs, ids[1], Path::new("/d/1"), true).unwrap();
        f1.write_all_at(&[9; 4], 0).unwrap();
        let after = sim.power_loss(Loss::Unsynced);
        assert_eq!(after.read(Path::new("/d/0")).unwrap(), [7; 4]);
        assert_eq!(after.read(Path::new("/d/1")).unwrap(), Vec::<u8>::new());
        assert_eq!(after.read(Path::new("/d/2")).unwrap(), Vec::<u8>::new());
    }
}
