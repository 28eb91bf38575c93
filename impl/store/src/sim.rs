//! [`SimFs`]: an in-memory [`Fs`] that loses power (feature `sim`, and the crate's own tests).
//!
//! Every file keeps two states: what is durable (as of its last `sync_data`) and the writes and
//! length changes since, in order. Every directory likewise keeps its durable entries and the
//! creations, renames and removals since its last `sync_dir`. [`SimFs::power_loss`] ends this
//! file system — every later call through it or its open files fails with `EIO`, as a machine
//! that lost power does nothing more — and returns a new one holding what survived:
//!
//! - [`Loss::Unsynced`]: exactly what was made durable;
//! - [`Loss::Prefix`]: per file and per directory, what was durable plus a random prefix of
//!   what followed (a seed picks it); the write after the last kept may be torn: its first
//!   sectors reach the disk ([`SECTOR`], 512 bytes: a sector is written whole, as disks
//!   guarantee, so a 40-byte header at a sector's start is never half new);
//! - [`Loss::Nothing`]: everything, as a `kill -9` (the page cache survives).
//!
//! The rule for names is POSIX's: a created, renamed or removed name is durable once its
//! directory was synced. A rename within one directory is one atomic step (the old name or the
//! new); renames across directories are refused (the store makes none). A directory's own name
//! lives in its parent, so a new directory needs its parent synced too. Open handles do not
//! survive a power loss; files whose names did not survive are gone.
//!
//! [`SimFs::crash_after`] ends the file system after a number of further operations instead, so
//! a test can stop the store in the middle of a put or a flush.

use std::collections::{BTreeMap, HashSet};
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::fs::{DirEntry, Fs, LockGuard, OpenMode, StoreFile};

/// What survives a [`SimFs::power_loss`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loss {
    /// Only what was synced.
    Unsynced,
    /// What was synced and a random prefix of what followed, per file and directory, the last
    /// write kept maybe torn; `seed` picks the prefixes.
    Prefix {
        /// Picks the prefixes.
        seed: u64,
    },
    /// Everything (a process kill, not a power loss).
    Nothing,
}

#[derive(Clone, Debug)]
enum FileOp {
    Write { at: u64, bytes: Vec<u8> },
    SetLen(u64),
}

#[derive(Clone, Debug)]
enum DirOp {
    Insert(String, usize),
    Remove(String),
    Rename { from: String, to: String },
}

#[derive(Clone, Debug, Default)]
struct FileNode {
    data: Vec<u8>,
    durable: Vec<u8>,
    pending: Vec<FileOp>,
}

#[derive(Clone, Debug, Default)]
struct DirNode {
    entries: BTreeMap<String, usize>,
    durable: BTreeMap<String, usize>,
    pending: Vec<DirOp>,
}

#[derive(Clone, Debug)]
enum Node {
    File(FileNode),
    Dir(DirNode),
}

#[derive(Debug)]
struct State {
    /// Inodes; 0 is the root directory.
    nodes: Vec<Node>,
    /// Ended by a power loss (or `crash_after`): every call fails.
    dead: bool,
    /// Operations left before the file system ends by itself.
    ops_left: Option<u64>,
    /// Operations done (every call that changes or syncs something).
    ops: u64,
    locks: HashSet<PathBuf>,
    used_ratio: f64,
}

/// The simulated file system: see the module documentation. Clones share one disk.
#[derive(Clone, Debug)]
pub struct SimFs {
    state: Arc<Mutex<State>>,
}

impl Default for SimFs {
    fn default() -> Self {
        Self::new()
    }
}

fn eio() -> io::Error {
    io::Error::other("simulated power loss: the disk is gone")
}

fn not_found(p: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{}: not found", p.display()),
    )
}

/// A small deterministic generator (splitmix64): the prefixes a seed picks.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..=n`.
    fn upto(&mut self, n: usize) -> usize {
        (self.next() % (n as u64 + 1)) as usize
    }
}

fn apply_file(data: &mut Vec<u8>, op: &FileOp) {
    match op {
        FileOp::Write { at, bytes } => {
            let at = *at as usize;
            if data.len() < at + bytes.len() {
                data.resize(at + bytes.len(), 0);
            }
            data[at..at + bytes.len()].copy_from_slice(bytes);
        }
        FileOp::SetLen(len) => data.resize(*len as usize, 0),
    }
}

fn apply_dir(entries: &mut BTreeMap<String, usize>, op: &DirOp) {
    match op {
        DirOp::Insert(name, ino) => {
            entries.insert(name.clone(), *ino);
        }
        DirOp::Remove(name) => {
            entries.remove(name);
        }
        DirOp::Rename { from, to } => {
            if let Some(ino) = entries.remove(from) {
                entries.insert(to.clone(), ino);
            }
        }
    }
}

/// Bytes a disk writes atomically (a write is torn only between sectors).
pub const SECTOR: u64 = 512;

/// Where a write of `len` bytes at `at` may be torn: a random sector boundary strictly inside
/// it (`None` when it lies within one sector).
fn sector_cut(at: u64, len: usize, rng: &mut Rng) -> Option<usize> {
    let end = at + len as u64;
    let first = (at / SECTOR + 1) * SECTOR;
    if first >= end {
        return None;
    }
    let boundaries = (end - 1 - first) / SECTOR;
    let b = first + rng.upto(boundaries as usize) as u64 * SECTOR;
    Some((b - at) as usize)
}

/// The names of `path`'s components (absolute or relative, both from the root).
fn components(path: &Path) -> io::Result<Vec<String>> {
    let mut out = Vec::new();
    for c in path.components() {
        match c {
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            Component::Normal(n) => out.push(
                n.to_str()
                    .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not UTF-8"))?
                    .to_owned(),
            ),
            Component::ParentDir => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "`..` in a path",
                ));
            }
        }
    }
    Ok(out)
}

impl State {
    /// Count one operation; fail if the file system has ended.
    fn op(&mut self) -> io::Result<()> {
        if self.dead {
            return Err(eio());
        }
        if let Some(left) = &mut self.ops_left {
            if *left == 0 {
                self.dead = true;
                return Err(eio());
            }
            *left -= 1;
        }
        self.ops += 1;
        Ok(())
    }

    fn live(&self) -> io::Result<()> {
        if self.dead { Err(eio()) } else { Ok(()) }
    }

    fn lookup(&self, path: &Path) -> io::Result<Option<usize>> {
        let mut ino = 0;
        for name in components(path)? {
            let Node::Dir(d) = &self.nodes[ino] else {
                return Ok(None);
            };
            match d.entries.get(&name) {
                Some(i) => ino = *i,
                None => return Ok(None),
            }
        }
        Ok(Some(ino))
    }

    /// The parent directory's inode and the last name of `path`.
    fn parent(&self, path: &Path) -> io::Result<(usize, String)> {
        let mut names = components(path)?;
        let name = names
            .pop()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the root"))?;
        let dir: PathBuf = names.iter().collect();
        let ino = self.lookup(&dir)?.ok_or_else(|| not_found(&dir))?;
        match self.nodes[ino] {
            Node::Dir(_) => Ok((ino, name)),
            Node::File(_) => Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                dir.display().to_string(),
            )),
        }
    }

    fn dir_mut(&mut self, ino: usize) -> &mut DirNode {
        match &mut self.nodes[ino] {
            Node::Dir(d) => d,
            Node::File(_) => unreachable!("checked to be a directory"),
        }
    }

    fn file_mut(&mut self, ino: usize) -> io::Result<&mut FileNode> {
        match &mut self.nodes[ino] {
            Node::File(f) => Ok(f),
            Node::Dir(_) => Err(io::Error::new(io::ErrorKind::IsADirectory, "a directory")),
        }
    }

    fn dir_op(&mut self, dir: usize, op: DirOp) {
        let d = self.dir_mut(dir);
        apply_dir(&mut d.entries, &op);
        d.pending.push(op);
    }

    fn new_node(&mut self, node: Node) -> usize {
        self.nodes.push(node);
        self.nodes.len() - 1
    }
}

impl SimFs {
    /// An empty file system (just the root directory), 0 % used.
    pub fn new() -> SimFs {
        SimFs {
            state: Arc::new(Mutex::new(State {
                nodes: vec![Node::Dir(DirNode::default())],
                dead: false,
                ops_left: None,
                ops: 0,
                locks: HashSet::new(),
                used_ratio: 0.0,
            })),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// This file system as the store takes it.
    pub fn shared(&self) -> Arc<dyn Fs> {
        Arc::new(self.clone())
    }

    /// End the file system after `n` more operations (writes, length changes, syncs, creations,
    /// renames, removals): the `n + 1`-th fails, as do all after it.
    pub fn crash_after(&self, n: u64) {
        self.state().ops_left = Some(n);
    }

    /// Operations done so far.
    pub fn ops(&self) -> u64 {
        self.state().ops
    }

    /// Whether the file system has ended (power loss or `crash_after`).
    pub fn is_dead(&self) -> bool {
        self.state().dead
    }

    /// Set what [`Fs::used_ratio`] answers.
    pub fn set_used_ratio(&self, ratio: f64) {
        self.state().used_ratio = ratio;
    }

    /// Lose power: end this file system (every later call through it fails) and return the
    /// disk as it comes back, with what `loss` keeps (see the module documentation).
    pub fn power_loss(&self, loss: Loss) -> SimFs {
        let mut s = self.state();
        s.dead = true;
        let mut rng = Rng(match loss {
            Loss::Prefix { seed } => seed,
            _ => 0,
        });
        let nodes = s
            .nodes
            .iter()
            .map(|n| match n {
                Node::File(f) => {
                    let mut data = f.durable.clone();
                    match loss {
                        Loss::Unsynced => {}
                        Loss::Nothing => data = f.data.clone(),
                        Loss::Prefix { .. } => {
                            let keep = rng.upto(f.pending.len());
                            for op in &f.pending[..keep] {
                                apply_file(&mut data, op);
                            }
                            // The next write may be torn at a sector boundary: a prefix of
                            // its sectors (a sector itself is written whole, as disks do).
                            if let Some(FileOp::Write { at, bytes }) = f.pending.get(keep)
                                && rng.next().is_multiple_of(2)
                                && let Some(torn) = sector_cut(*at, bytes.len(), &mut rng)
                            {
                                apply_file(
                                    &mut data,
                                    &FileOp::Write {
                                        at: *at,
                                        bytes: bytes[..torn].to_vec(),
                                    },
                                );
                            }
                        }
                    }
                    Node::File(FileNode {
                        durable: data.clone(),
                        data,
                        pending: Vec::new(),
                    })
                }
                Node::Dir(d) => {
                    let mut entries = d.durable.clone();
                    match loss {
                        Loss::Unsynced => {}
                        Loss::Nothing => entries = d.entries.clone(),
                        Loss::Prefix { .. } => {
                            let keep = rng.upto(d.pending.len());
                            for op in &d.pending[..keep] {
                                apply_dir(&mut entries, op);
                            }
                        }
                    }
                    Node::Dir(DirNode {
                        durable: entries.clone(),
                        entries,
                        pending: Vec::new(),
                    })
                }
            })
            .collect();
        let used_ratio = s.used_ratio;
        SimFs {
            state: Arc::new(Mutex::new(State {
                nodes,
                dead: false,
                ops_left: None,
                ops: 0,
                locks: HashSet::new(),
                used_ratio,
            })),
        }
    }

    /// The current content of the file at `path` (a test's look at the disk).
    pub fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let s = self.state();
        let ino = s.lookup(path)?.ok_or_else(|| not_found(path))?;
        match &s.nodes[ino] {
            Node::File(f) => Ok(f.data.clone()),
            Node::Dir(_) => Err(io::Error::new(io::ErrorKind::IsADirectory, "a directory")),
        }
    }

    /// Replace the content of the file at `path`, created if needed, durably (a test's way to
    /// damage the disk).
    pub fn write(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        let mut s = self.state();
        s.live()?;
        let ino = match s.lookup(path)? {
            Some(i) => i,
            None => {
                let (dir, name) = s.parent(path)?;
                let ino = s.new_node(Node::File(FileNode::default()));
                let d = s.dir_mut(dir);
                d.entries.insert(name.clone(), ino);
                d.durable.insert(name, ino);
                ino
            }
        };
        let f = s.file_mut(ino)?;
        f.data = bytes.to_vec();
        f.durable = bytes.to_vec();
        f.pending.clear();
        Ok(())
    }
}

/// An open file of a [`SimFs`].
struct SimFile {
    state: Arc<Mutex<State>>,
    ino: usize,
}

impl SimFile {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl StoreFile for SimFile {
    fn read_exact_at(&self, buf: &mut [u8], at: u64) -> io::Result<()> {
        let mut s = self.state();
        s.live()?;
        let f = s.file_mut(self.ino)?;
        let at = usize::try_from(at).map_err(|_| io::Error::from(io::ErrorKind::UnexpectedEof))?;
        let src = f
            .data
            .get(at..at.saturating_add(buf.len()))
            .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
        buf.copy_from_slice(src);
        Ok(())
    }

    fn write_all_at(&self, buf: &[u8], at: u64) -> io::Result<()> {
        let mut s = self.state();
        s.op()?;
        let f = s.file_mut(self.ino)?;
        let op = FileOp::Write {
            at,
            bytes: buf.to_vec(),
        };
        apply_file(&mut f.data, &op);
        f.pending.push(op);
        Ok(())
    }

    fn len(&self) -> io::Result<u64> {
        let mut s = self.state();
        s.live()?;
        Ok(s.file_mut(self.ino)?.data.len() as u64)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut s = self.state();
        s.op()?;
        let f = s.file_mut(self.ino)?;
        let op = FileOp::SetLen(len);
        apply_file(&mut f.data, &op);
        f.pending.push(op);
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut s = self.state();
        s.op()?;
        let f = s.file_mut(self.ino)?;
        // What was written since the last sync, applied to the durable copy: the same bytes as
        // cloning the file, without copying a whole segment on every sync.
        for op in f.pending.drain(..) {
            apply_file(&mut f.durable, &op);
        }
        Ok(())
    }
}

/// A lock on a path of a [`SimFs`], released on drop.
struct SimLock {
    state: Arc<Mutex<State>>,
    path: PathBuf,
}

impl Drop for SimLock {
    fn drop(&mut self) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.locks.remove(&self.path);
    }
}

impl Fs for SimFs {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn StoreFile>> {
        let mut s = self.state();
        s.live()?;
        let ino = match (s.lookup(path)?, mode) {
            (Some(_), OpenMode::CreateNew) => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    path.display().to_string(),
                ));
            }
            (Some(ino), OpenMode::Existing) => {
                s.file_mut(ino)?;
                ino
            }
            (Some(ino), OpenMode::Truncate) => {
                s.file_mut(ino)?;
                s.op()?;
                let f = s.file_mut(ino)?;
                f.data.clear();
                f.pending.push(FileOp::SetLen(0));
                ino
            }
            (None, OpenMode::Existing) => return Err(not_found(path)),
            (None, OpenMode::CreateNew | OpenMode::Truncate) => {
                let (dir, name) = s.parent(path)?;
                s.op()?;
                let ino = s.new_node(Node::File(FileNode::default()));
                s.dir_op(dir, DirOp::Insert(name, ino));
                ino
            }
        };
        Ok(Arc::new(SimFile {
            state: Arc::clone(&self.state),
            ino,
        }))
    }

    fn create_dir(&self, dir: &Path) -> io::Result<()> {
        let mut s = self.state();
        s.live()?;
        if s.lookup(dir)?.is_some() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                dir.display().to_string(),
            ));
        }
        let (parent, name) = s.parent(dir)?;
        s.op()?;
        let ino = s.new_node(Node::Dir(DirNode::default()));
        s.dir_op(parent, DirOp::Insert(name, ino));
        Ok(())
    }

    fn kind(&self, path: &Path) -> io::Result<Option<bool>> {
        let s = self.state();
        s.live()?;
        Ok(s.lookup(path)?
            .map(|ino| matches!(s.nodes[ino], Node::Dir(_))))
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<DirEntry>> {
        let s = self.state();
        s.live()?;
        let ino = s.lookup(dir)?.ok_or_else(|| not_found(dir))?;
        let Node::Dir(d) = &s.nodes[ino] else {
            return Err(io::Error::new(io::ErrorKind::NotADirectory, "a file"));
        };
        Ok(d.entries
            .iter()
            .map(|(name, i)| DirEntry {
                name: name.clone(),
                is_dir: matches!(s.nodes[*i], Node::Dir(_)),
            })
            .collect())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut s = self.state();
        s.live()?;
        let (a, from_name) = s.parent(from)?;
        let (b, to_name) = s.parent(to)?;
        if a != b {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "SimFs renames only within one directory",
            ));
        }
        if !s.dir_mut(a).entries.contains_key(&from_name) {
            return Err(not_found(from));
        }
        s.op()?;
        s.dir_op(
            a,
            DirOp::Rename {
                from: from_name,
                to: to_name,
            },
        );
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut s = self.state();
        s.live()?;
        let (dir, name) = s.parent(path)?;
        let ino = *s
            .dir_mut(dir)
            .entries
            .get(&name)
            .ok_or_else(|| not_found(path))?;
        s.file_mut(ino)?;
        s.op()?;
        s.dir_op(dir, DirOp::Remove(name));
        Ok(())
    }

    fn remove_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut s = self.state();
        s.live()?;
        let (parent, name) = s.parent(dir)?;
        if !s.dir_mut(parent).entries.contains_key(&name) {
            return Err(not_found(dir));
        }
        s.op()?;
        // The subtree becomes unreachable at once; on disk its name goes with the parent's
        // next sync.
        s.dir_op(parent, DirOp::Remove(name));
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut s = self.state();
        s.live()?;
        let ino = s.lookup(dir)?.ok_or_else(|| not_found(dir))?;
        if !matches!(s.nodes[ino], Node::Dir(_)) {
            return Err(io::Error::new(io::ErrorKind::NotADirectory, "a file"));
        }
        s.op()?;
        let d = s.dir_mut(ino);
        d.durable = d.entries.clone();
        d.pending.clear();
        Ok(())
    }

    fn lock(&self, path: &Path) -> io::Result<LockGuard> {
        let mut s = self.state();
        s.live()?;
        if !s.locks.insert(path.to_owned()) {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(Box::new(SimLock {
            state: Arc::clone(&self.state),
            path: path.to_owned(),
        }))
    }

    fn used_ratio(&self, _path: &Path) -> io::Result<f64> {
        let s = self.state();
        s.live()?;
        Ok(s.used_ratio)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> &Path {
        Path::new(s)
    }

    #[test]
    fn unsynced_data_and_names_are_lost_synced_ones_kept() {
        let fs = SimFs::new();
        fs.create_dir(p("/d")).unwrap();
        fs.sync_dir(p("/")).unwrap();
        let a = fs.open(p("/d/a"), OpenMode::CreateNew).unwrap();
        a.write_all_at(b"hello", 0).unwrap();
        a.sync_data().unwrap();
        a.write_all_at(b" world", 5).unwrap();
        // The file's data is synced, its name is not.
        let back = fs.power_loss(Loss::Unsynced);
        assert!(a.write_all_at(b"x", 0).is_err(), "the old disk is gone");
        assert_eq!(back.kind(p("/d/a")).unwrap(), None);
        assert_eq!(back.kind(p("/d")).unwrap(), Some(true));

        let fs = back;
        let a = fs.open(p("/d/a"), OpenMode::CreateNew).unwrap();
        a.write_all_at(b"hello", 0).unwrap();
        a.sync_data().unwrap();
        fs.sync_dir(p("/d")).unwrap();
        a.write_all_at(b" world", 5).unwrap();
        let back = fs.power_loss(Loss::Unsynced);
        assert_eq!(back.read(p("/d/a")).unwrap(), b"hello");
        let everything = back.clone();
        let f = everything.open(p("/d/a"), OpenMode::Existing).unwrap();
        f.write_all_at(b"!", 5).unwrap();
        assert_eq!(
            everything
                .power_loss(Loss::Nothing)
                .read(p("/d/a"))
                .unwrap(),
            b"hello!"
        );
    }

    #[test]
    fn a_rename_is_atomic_and_durable_with_its_directory() {
        let fs = SimFs::new();
        let t = fs.open(p("/x.tmp"), OpenMode::Truncate).unwrap();
        t.write_all_at(b"new", 0).unwrap();
        t.sync_data().unwrap();
        fs.rename(p("/x.tmp"), p("/x")).unwrap();
        assert_eq!(fs.kind(p("/x.tmp")).unwrap(), None);
        for seed in 0..50 {
            let back = fs.clone().power_loss(Loss::Prefix { seed });
            // Either both names' ops survive as one step or neither.
            let (tmp, x) = (back.kind(p("/x.tmp")).unwrap(), back.kind(p("/x")).unwrap());
            assert!(tmp.is_none() || x.is_none(), "seed {seed}");
            if x.is_some() {
                assert_eq!(back.read(p("/x")).unwrap(), b"new");
            }
        }
    }

    #[test]
    fn prefixes_keep_writes_in_order_and_may_tear_the_next() {
        let mut seen_torn = false;
        for seed in 0..200 {
            let fs = SimFs::new();
            let f = fs.open(p("/f"), OpenMode::CreateNew).unwrap();
            fs.sync_dir(p("/")).unwrap();
            f.write_all_at(&[b'a'; 1000], 0).unwrap();
            f.write_all_at(&[b'b'; 1000], 1000).unwrap();
            let back = fs.power_loss(Loss::Prefix { seed });
            let d = back.read(p("/f")).unwrap();
            assert!(d.len() <= 2000);
            assert!(d.iter().take(1000).all(|b| *b == b'a'));
            assert!(d.iter().skip(1000).all(|b| *b == b'b'));
            // Torn only at sector boundaries.
            assert!(
                matches!(d.len(), 0 | 512 | 1000 | 1024 | 1536 | 2000),
                "{}",
                d.len()
            );
            seen_torn |= !matches!(d.len(), 0 | 1000 | 2000);
        }
        assert!(seen_torn);
    }

    #[test]
    fn crash_after_ends_the_disk_mid_way() {
        let fs = SimFs::new();
        let f = fs.open(p("/f"), OpenMode::CreateNew).unwrap();
        fs.crash_after(1);
        f.write_all_at(b"a", 0).unwrap();
        assert!(f.write_all_at(b"b", 1).is_err());
        assert!(fs.is_dead());
        assert!(fs.list(p("/")).is_err());
        let _lock = fs.power_loss(Loss::Nothing).lock(p("/lock")).unwrap();
    }
}
