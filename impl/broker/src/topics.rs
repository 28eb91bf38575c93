//! The broker's topic table (`TopicConfigManager`): topic configs and their data version, kept
//! in `config/topics.json` as RocketMQ names it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use sextant_model::namesrv::{DataVersion, TopicConfig};
use sextant_remoting::body::{decode_topic_table, encode_topic_table};
use std::sync::Arc;

use sextant_store::config::{load_bytes_in, save_bytes_in};
use sextant_store::fs::Fs;

use crate::Error;

/// The topic table and its data version.
pub struct Topics {
    fs: Arc<dyn Fs>,
    path: PathBuf,
    table: BTreeMap<String, TopicConfig>,
    version: DataVersion,
}

impl Topics {
    /// Load `path` (empty if absent).
    #[cfg(test)]
    pub fn load(path: PathBuf) -> Result<Topics, Error> {
        Self::load_in(sextant_store::fs::real(), path)
    }

    /// Load `path` on the file system `fs` (empty if absent); the table is saved there too.
    pub fn load_in(fs: Arc<dyn Fs>, path: PathBuf) -> Result<Topics, Error> {
        let (version, table) = match load_bytes_in(&*fs, &path)? {
            Some(bytes) => decode_topic_table(&bytes).map_err(|e| {
                Error::Store(sextant_store::Error::Corrupt(format!(
                    "{}: {e}",
                    path.display()
                )))
            })?,
            None => Default::default(),
        };
        Ok(Topics {
            fs,
            path,
            table,
            version,
        })
    }

    /// The config of `topic`.
    pub fn get(&self, topic: &str) -> Option<&TopicConfig> {
        self.table.get(topic)
    }

    /// Every topic.
    pub fn all(&self) -> &BTreeMap<String, TopicConfig> {
        &self.table
    }

    /// The data version.
    pub fn version(&self) -> &DataVersion {
        &self.version
    }

    /// Add or replace a topic and bump the data version (`now`: wall-clock ms); persisted.
    pub fn put(&mut self, config: TopicConfig, now: i64) -> Result<(), Error> {
        self.table.insert(config.topic_name.clone(), config);
        self.version.counter += 1;
        self.version.timestamp = now;
        self.save()
    }

    /// Remove a topic and bump the data version (`now`: wall-clock ms); persisted. `None` (and
    /// nothing changed) when there was no such topic (`deleteTopicConfig`).
    pub fn remove(&mut self, topic: &str, now: i64) -> Result<Option<TopicConfig>, Error> {
        let Some(old) = self.table.remove(topic) else {
            return Ok(None);
        };
        self.version.counter += 1;
        self.version.timestamp = now;
        self.save()?;
        Ok(Some(old))
    }

    /// Replace the whole table and its data version (a slave's copy of its master's, as
    /// `slave_sync::sync_topics` decides); persisted.
    pub fn replace(
        &mut self,
        table: BTreeMap<String, TopicConfig>,
        version: DataVersion,
    ) -> Result<(), Error> {
        self.table = table;
        self.version = version;
        self.save()
    }

    /// Write the table to its file (RocketMQ's `TopicConfigSerializeWrapper` JSON).
    pub fn save(&self) -> Result<(), Error> {
        Ok(save_bytes_in(
            &*self.fs,
            &self.path,
            &encode_topic_table(&self.version, &self.table),
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_persist_with_their_version() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config/topics.json");
        let mut t = Topics::load(path.clone()).expect("load");
        assert!(t.all().is_empty());
        t.put(TopicConfig::new("A", 4), 1000).expect("put");
        t.put(TopicConfig::new("B", 2), 2000).expect("put");
        let back = Topics::load(path).expect("reload");
        assert_eq!(back.get("A"), Some(&TopicConfig::new("A", 4)));
        assert_eq!(back.version().counter, 2);
        assert_eq!(back.version().timestamp, 2000);
    }

    #[test]
    fn a_removed_topic_is_gone_from_the_file_with_a_new_version() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config/topics.json");
        let mut t = Topics::load(path.clone()).expect("load");
        t.put(TopicConfig::new("A", 4), 1000).expect("put");
        t.put(TopicConfig::new("B", 2), 2000).expect("put");
        assert_eq!(
            t.remove("A", 3000).expect("remove"),
            Some(TopicConfig::new("A", 4))
        );
        // Removing what is not there changes nothing, not even the version.
        assert_eq!(t.remove("A", 4000).expect("remove"), None);
        let back = Topics::load(path).expect("reload");
        assert!(back.get("A").is_none());
        assert!(back.get("B").is_some());
        assert_eq!(
            (back.version().counter, back.version().timestamp),
            (3, 3000)
        );
    }
}
