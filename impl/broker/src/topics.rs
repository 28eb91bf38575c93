//! The broker's topic table (`TopicConfigManager`): topic configs and their data version, kept
//! in `config/topics.json` as RocketMQ names it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use sextant_model::namesrv::{DataVersion, TopicConfig};
use sextant_model::route::Perm;
use sextant_store::config::{load_json, save_json};

use crate::Error;

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct TopicJson {
    topic_name: String,
    read_queue_nums: u32,
    write_queue_nums: u32,
    perm: u32,
    #[serde(default)]
    topic_sys_flag: u32,
    #[serde(default)]
    order: bool,
}

#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct DataVersionJson {
    state_version: i64,
    timestamp: i64,
    counter: i64,
}

#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct TopicsFile {
    topic_config_table: BTreeMap<String, TopicJson>,
    #[serde(default)]
    data_version: DataVersionJson,
}

/// The topic table and its data version.
pub struct Topics {
    path: PathBuf,
    table: BTreeMap<String, TopicConfig>,
    version: DataVersion,
}

impl Topics {
    /// Load `path` (empty if absent).
    pub fn load(path: PathBuf) -> Result<Topics, Error> {
        let file: TopicsFile = load_json(&path)?.unwrap_or_default();
        let table = file
            .topic_config_table
            .into_values()
            .map(|t| {
                (
                    t.topic_name.clone(),
                    TopicConfig {
                        topic_name: t.topic_name,
                        read_queue_nums: t.read_queue_nums,
                        write_queue_nums: t.write_queue_nums,
                        perm: Perm(t.perm),
                        topic_sys_flag: t.topic_sys_flag,
                        order: t.order,
                    },
                )
            })
            .collect();
        let v = file.data_version;
        Ok(Topics {
            path,
            table,
            version: DataVersion {
                state_version: v.state_version,
                timestamp: v.timestamp,
                counter: v.counter,
            },
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

    /// Write the table to its file.
    pub fn save(&self) -> Result<(), Error> {
        let file = TopicsFile {
            topic_config_table: self
                .table
                .iter()
                .map(|(k, t)| {
                    (
                        k.clone(),
                        TopicJson {
                            topic_name: t.topic_name.clone(),
                            read_queue_nums: t.read_queue_nums,
                            write_queue_nums: t.write_queue_nums,
                            perm: t.perm.0,
                            topic_sys_flag: t.topic_sys_flag,
                            order: t.order,
                        },
                    )
                })
                .collect(),
            data_version: DataVersionJson {
                state_version: self.version.state_version,
                timestamp: self.version.timestamp,
                counter: self.version.counter,
            },
        };
        Ok(save_json(&self.path, &file)?)
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
}
