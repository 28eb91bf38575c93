//! Small JSON files the broker keeps beside its logs — consumer offsets, topic configs, delay
//! offsets — written atomically (a temporary file, fsync, rename, fsync of the directory), so a
//! crash leaves either the old or the new content, never a torn one.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Error;
use crate::files::{ensure_dir, io};
use crate::fs::{Fs, OpenMode, RealFs};

/// Largest config file read (a guard against a wrong path, not a real limit: 64 MiB).
const MAX_CONFIG: u64 = 64 * 1024 * 1024;

/// Read `path`, `None` when it does not exist.
pub fn load_bytes(path: &Path) -> Result<Option<Vec<u8>>, Error> {
    load_bytes_in(&RealFs, path)
}

/// [`load_bytes`] on the file system `fs`.
pub fn load_bytes_in(fs: &dyn Fs, path: &Path) -> Result<Option<Vec<u8>>, Error> {
    let f = match fs.open(path, OpenMode::Existing) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(path)(e)),
    };
    let len = f.len().map_err(io(path))?;
    if len > MAX_CONFIG {
        return Err(Error::Corrupt(format!(
            "{} is {len} bytes, more than a config file holds",
            path.display()
        )));
    }
    let mut bytes = vec![0; len as usize];
    f.read_exact_at(&mut bytes, 0).map_err(io(path))?;
    Ok(Some(bytes))
}

/// Read `path` as JSON, `None` when it does not exist.
pub fn load_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, Error> {
    load_json_in(&RealFs, path)
}

/// [`load_json`] on the file system `fs`.
pub fn load_json_in<T: DeserializeOwned>(fs: &dyn Fs, path: &Path) -> Result<Option<T>, Error> {
    let Some(bytes) = load_bytes_in(fs, path)? else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| Error::Corrupt(format!("{}: {e}", path.display())))
}

/// Write `bytes` to `path`, atomically and durably.
pub fn save_bytes(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    save_bytes_in(&RealFs, path, bytes)
}

/// [`save_bytes`] on the file system `fs`: the bytes go to `<path>.tmp`, which is fsynced and
/// renamed over `path`, and the directory is fsynced — so a crash or a power loss leaves the
/// old content or the new, never a torn file, and once this returns the new content stays.
pub fn save_bytes_in(fs: &dyn Fs, path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    ensure_dir(fs, dir)?;
    let tmp = path.with_extension("tmp");
    let f = fs.open(&tmp, OpenMode::Truncate).map_err(io(&tmp))?;
    f.write_all_at(bytes, 0).map_err(io(&tmp))?;
    f.sync_data().map_err(io(&tmp))?;
    drop(f);
    fs.rename(&tmp, path).map_err(io(path))?;
    fs.sync_dir(dir).map_err(io(dir))?;
    Ok(())
}

/// Write `value` to `path` as JSON, atomically and durably.
pub fn save_json<T: Serialize>(path: &Path, value: &T) -> Result<(), Error> {
    save_json_in(&RealFs, path, value)
}

/// [`save_json`] on the file system `fs`.
pub fn save_json_in<T: Serialize>(fs: &dyn Fs, path: &Path, value: &T) -> Result<(), Error> {
    let bytes = serde_json::to_vec_pretty(value)
        .map_err(|e| Error::Corrupt(format!("{}: {e}", path.display())))?;
    save_bytes_in(fs, path, &bytes)
}

/// Committed consumer offsets (`ConsumerOffsetManager`): `topic@group` → queue → offset, kept
/// in `consumerOffset.json` as RocketMQ names it (with quoted keys: standard JSON).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsumerOffsets {
    /// `topic@group` → queue id → next offset to consume.
    pub offset_table: BTreeMap<String, BTreeMap<u32, u64>>,
}

impl ConsumerOffsets {
    fn key(topic: &str, group: &str) -> String {
        format!("{topic}@{group}")
    }

    /// The committed offset of `group` on `topic` queue `queue_id`.
    pub fn get(&self, topic: &str, group: &str, queue_id: u32) -> Option<u64> {
        self.offset_table
            .get(&Self::key(topic, group))?
            .get(&queue_id)
            .copied()
    }

    /// Commit `offset` (RocketMQ accepts any value, also a lower one).
    pub fn commit(&mut self, topic: &str, group: &str, queue_id: u32, offset: u64) {
        self.offset_table
            .entry(Self::key(topic, group))
            .or_default()
            .insert(queue_id, offset);
    }

    /// The groups with an offset on `topic`.
    pub fn groups_of(&self, topic: &str) -> Vec<&str> {
        self.offset_table
            .keys()
            .filter_map(|k| k.split_once('@'))
            .filter(|(t, _)| *t == topic)
            .map(|(_, g)| g)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn offsets_round_trip_through_a_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config/consumerOffset.json");
        assert_eq!(load_json::<ConsumerOffsets>(&path).expect("load"), None);
        let mut o = ConsumerOffsets::default();
        o.commit("T", "G", 3, 42);
        o.commit("T", "H", 0, 7);
        save_json(&path, &o).expect("save");
        let back: ConsumerOffsets = load_json(&path).expect("load").expect("present");
        assert_eq!(back.get("T", "G", 3), Some(42));
        assert_eq!(back.groups_of("T"), ["G", "H"]);
        fs::write(&path, b"{not json").expect("write");
        assert!(matches!(
            load_json::<ConsumerOffsets>(&path),
            Err(Error::Corrupt(_))
        ));
    }
}
