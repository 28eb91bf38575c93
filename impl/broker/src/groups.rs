//! The subscription group table on disk: `config/subscriptionGroup.json` in RocketMQ's layout
//! (`SubscriptionGroupManager`: `subscriptionGroupTable` keyed by group name), so a RocketMQ
//! broker's file loads here and the reverse. The table itself — what is created when, and its
//! cap — is `sextant_model::broker::tables::SubscriptionGroups`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use sextant_model::broker::tables::{SubscriptionGroup, SubscriptionGroups};
use sextant_model::namesrv::DataVersion;
use std::sync::Arc;

use sextant_store::config::{load_json_in, save_json_in};
use sextant_store::fs::Fs;

use crate::Error;

/// One group as RocketMQ writes it (`SubscriptionGroupConfig`; the fields Sextant does not use
/// are written with RocketMQ's defaults).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct GroupJson {
    group_name: String,
    consume_enable: bool,
    consume_from_min_enable: bool,
    consume_broadcast_enable: bool,
    consume_message_orderly: bool,
    retry_queue_nums: i32,
    retry_max_times: i32,
    broker_id: i64,
    which_broker_when_consume_slowly: i64,
    notify_consumer_ids_changed_enable: bool,
    group_sys_flag: i32,
    consume_timeout_minute: i32,
}

impl Default for GroupJson {
    fn default() -> Self {
        let d = SubscriptionGroup::default();
        GroupJson {
            group_name: String::new(),
            consume_enable: d.consume_enable,
            consume_from_min_enable: true,
            consume_broadcast_enable: true,
            consume_message_orderly: false,
            retry_queue_nums: 1,
            retry_max_times: d.retry_max_times,
            broker_id: java_long(d.broker_id),
            which_broker_when_consume_slowly: java_long(d.which_broker_when_consume_slowly),
            notify_consumer_ids_changed_enable: true,
            group_sys_flag: 0,
            consume_timeout_minute: 15,
        }
    }
}

/// The file, and the body of GET_ALL_SUBSCRIPTIONGROUP_CONFIG (`SubscriptionGroupWrapper`).
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct FileJson {
    subscription_group_table: BTreeMap<String, GroupJson>,
    data_version: VersionJson,
}

#[derive(Debug, Default, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct VersionJson {
    state_version: i64,
    timestamp: i64,
    counter: i64,
}

/// A broker id as a Java `long`.
fn java_long(id: u64) -> i64 {
    i64::try_from(id).unwrap_or(i64::MAX)
}

impl From<&GroupJson> for SubscriptionGroup {
    fn from(g: &GroupJson) -> Self {
        let d = SubscriptionGroup::default();
        SubscriptionGroup {
            consume_enable: g.consume_enable,
            retry_max_times: g.retry_max_times,
            // A negative broker id names no broker: the default instead.
            broker_id: u64::try_from(g.broker_id).unwrap_or(d.broker_id),
            which_broker_when_consume_slowly: u64::try_from(g.which_broker_when_consume_slowly)
                .unwrap_or(d.which_broker_when_consume_slowly),
        }
    }
}

impl From<VersionJson> for DataVersion {
    fn from(v: VersionJson) -> Self {
        DataVersion {
            state_version: v.state_version,
            timestamp: v.timestamp,
            counter: v.counter,
        }
    }
}

impl From<DataVersion> for VersionJson {
    fn from(v: DataVersion) -> Self {
        VersionJson {
            state_version: v.state_version,
            timestamp: v.timestamp,
            counter: v.counter,
        }
    }
}

/// Decode the body of UPDATE_AND_CREATE_SUBSCRIPTIONGROUP (one `SubscriptionGroupConfig`).
pub(crate) fn decode_group(body: &[u8]) -> Result<(String, SubscriptionGroup), String> {
    let g: GroupJson =
        serde_json::from_slice(body).map_err(|e| format!("subscription group: {e}"))?;
    let config = SubscriptionGroup::from(&g);
    Ok((g.group_name, config))
}

/// Decode a GET_ALL_SUBSCRIPTIONGROUP_CONFIG answer (`SubscriptionGroupWrapper`, what
/// [`GroupFile::encode`] writes): the data version and the groups by name.
pub(crate) fn decode_table(
    body: &[u8],
) -> Result<(DataVersion, BTreeMap<String, SubscriptionGroup>), String> {
    let file: FileJson =
        serde_json::from_slice(body).map_err(|e| format!("subscription group table: {e}"))?;
    let groups = file
        .subscription_group_table
        .iter()
        .map(|(name, g)| (name.clone(), SubscriptionGroup::from(g)))
        .collect();
    Ok((file.data_version.into(), groups))
}

/// The table and where it is kept.
pub(crate) struct GroupFile {
    fs: Arc<dyn Fs>,
    path: PathBuf,
    /// The table.
    pub(crate) table: SubscriptionGroups,
    /// Whether it changed since it was written.
    pub(crate) dirty: bool,
    version: VersionJson,
}

impl GroupFile {
    /// Load the table from `path` (empty when absent), with the cap and auto-creation given.
    /// A file holding more groups than the cap is kept whole (an operator's table is not cut);
    /// no group is then created until it is below the cap again.
    #[cfg(test)]
    pub(crate) fn load(path: PathBuf, max: usize, auto_create: bool) -> Result<GroupFile, Error> {
        Self::load_in(sextant_store::fs::real(), path, max, auto_create)
    }

    /// [`GroupFile::load`] on the file system `fs`; the table is saved there too.
    pub(crate) fn load_in(
        fs: Arc<dyn Fs>,
        path: PathBuf,
        max: usize,
        auto_create: bool,
    ) -> Result<GroupFile, Error> {
        let mut file: FileJson = load_json_in(&*fs, &path)?.unwrap_or_default();
        let groups = std::mem::take(&mut file.subscription_group_table);
        let mut table = SubscriptionGroups::new(max.max(groups.len()), auto_create);
        for (name, g) in groups {
            let config = SubscriptionGroup::from(&g);
            if let Err(e) = table.put(&name, config) {
                tracing::warn!(group = %name, error = %e, "subscription group in the file skipped");
            }
        }
        Ok(GroupFile {
            fs,
            path,
            table,
            dirty: false,
            version: file.data_version,
        })
    }

    /// The table changed (its data version moves on): write it at the next persist.
    pub(crate) fn changed(&mut self, now: i64) {
        self.dirty = true;
        self.version.counter += 1;
        self.version.timestamp = now;
    }

    /// The table's data version.
    pub(crate) fn version(&self) -> DataVersion {
        self.version.into()
    }

    /// Replace the table with `groups` (a slave's copy of its master's, already within the cap
    /// and with valid names: `slave_sync::sync_groups`) at the master's `version`; written at
    /// the next save.
    pub(crate) fn replace(
        &mut self,
        groups: BTreeMap<String, SubscriptionGroup>,
        version: DataVersion,
    ) {
        let gone: Vec<String> = self
            .table
            .iter()
            .map(|(name, _)| name)
            .filter(|name| !groups.contains_key(*name))
            .cloned()
            .collect();
        for name in gone {
            self.table.remove(&name);
        }
        for (name, config) in groups {
            if let Err(e) = self.table.put(&name, config) {
                tracing::warn!(group = %name, error = %e, "subscription group from the master skipped");
            }
        }
        self.version = version.into();
        self.dirty = true;
    }

    fn to_json(&self) -> FileJson {
        FileJson {
            subscription_group_table: self
                .table
                .iter()
                .map(|(name, g)| {
                    (
                        name.clone(),
                        GroupJson {
                            group_name: name.clone(),
                            consume_enable: g.consume_enable,
                            retry_max_times: g.retry_max_times,
                            broker_id: java_long(g.broker_id),
                            which_broker_when_consume_slowly: java_long(
                                g.which_broker_when_consume_slowly,
                            ),
                            ..GroupJson::default()
                        },
                    )
                })
                .collect(),
            data_version: self.version,
        }
    }

    /// The body of GET_ALL_SUBSCRIPTIONGROUP_CONFIG.
    pub(crate) fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(&self.to_json()).unwrap_or_default()
    }

    /// Write the table if it changed.
    pub(crate) fn save(&mut self) -> Result<(), Error> {
        if !self.dirty {
            return Ok(());
        }
        save_json_in(&*self.fs, &self.path, &self.to_json())?;
        self.dirty = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_persists_in_rocketmqs_layout() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("subscriptionGroup.json");
        let mut f = GroupFile::load(path.clone(), 10, true).unwrap();
        f.table.find_or_create("g1").unwrap();
        f.changed(1);
        f.save().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"subscriptionGroupTable\""), "{text}");
        assert!(text.contains("\"groupName\": \"g1\""), "{text}");
        assert!(text.contains("\"retryMaxTimes\": 16"), "{text}");
        let again = GroupFile::load(path, 10, true).unwrap();
        assert!(again.table.contains("g1"));
        assert_eq!(again.table.len(), 1);
    }

    #[test]
    fn a_masters_table_replaces_the_slaves_with_its_version_and_read_settings() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("subscriptionGroup.json");
        let mut master = GroupFile::load(path.clone(), 10, true).unwrap();
        let (name, g) = decode_group(
            br#"{"groupName":"g","brokerId":2,"whichBrokerWhenConsumeSlowly":3,"retryMaxTimes":4}"#,
        )
        .unwrap();
        assert_eq!((g.broker_id, g.which_broker_when_consume_slowly), (2, 3));
        master.table.put(&name, g.clone()).unwrap();
        master.changed(42);
        let (version, table) = decode_table(&master.encode()).unwrap();
        assert_eq!((version.counter, version.timestamp), (1, 42));
        assert_eq!(table["g"], g);
        let slave_path = dir.path().join("slave.json");
        let mut slave = GroupFile::load(slave_path.clone(), 10, true).unwrap();
        slave.table.find_or_create("only_on_slave").unwrap();
        slave.replace(table, version);
        slave.save().unwrap();
        let back = GroupFile::load(slave_path, 10, true).unwrap();
        assert_eq!(back.version(), version);
        assert!(!back.table.contains("only_on_slave"));
        assert_eq!(back.table.get("g"), Some(&g));
        // A negative broker id names none: the defaults.
        let (_, d) =
            decode_group(br#"{"groupName":"h","brokerId":-1,"whichBrokerWhenConsumeSlowly":-2}"#)
                .unwrap();
        assert_eq!(d, SubscriptionGroup::default());
        assert!(decode_table(b"[1]").is_err());
    }
}
