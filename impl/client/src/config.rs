//! `ClientConfig`: what every producer, consumer and admin of one client instance shares, with
//! RocketMQ's option names and defaults (`ClientConfig.java`, protocol.md §6.1).

use std::net::IpAddr;
use std::time::Duration;

use crate::error::{Error, Result};

/// The NameServer port a bare host means.
pub const DEFAULT_NAMESRV: &str = "127.0.0.1:9876";

/// The settings of a client instance (RocketMQ's `ClientConfig`).
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// `namesrvAddr`: NameServers separated by `;`.
    pub namesrv_addr: String,
    /// `instanceName`: `DEFAULT` becomes `pid#nanos`, so each instance has its own client id.
    pub instance_name: String,
    /// `clientIP`: the address in the client id; by default the address this host reaches the
    /// first NameServer from.
    pub client_ip: Option<IpAddr>,
    /// `unitName`, appended to the client id when set.
    pub unit_name: Option<String>,
    /// `pollNameServerInterval` (30 s): how often every topic's route is polled.
    pub poll_name_server_interval: Duration,
    /// `heartbeatBrokerInterval` (30 s): how often every broker gets a heartbeat.
    pub heartbeat_broker_interval: Duration,
    /// `persistConsumerOffsetInterval` (5 s): how often consumers commit their offsets.
    pub persist_consumer_offset_interval: Duration,
    /// `mqClientApiTimeout` (3 s): the timeout of routes, heartbeats, offsets and admin calls.
    pub mq_client_api_timeout: Duration,
    /// `connectTimeoutMillis` (3 s).
    pub connect_timeout: Duration,
    /// `pullTimeDelayMillsWhenException` (1 s): how long a failed pull waits.
    pub pull_time_delay_when_exception: Duration,
    /// Where the instance records its events (off by default); it records under its client id.
    pub trace: sextant_trace::Tracer,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            namesrv_addr: DEFAULT_NAMESRV.into(),
            instance_name: "DEFAULT".into(),
            client_ip: None,
            unit_name: None,
            poll_name_server_interval: Duration::from_secs(30),
            heartbeat_broker_interval: Duration::from_secs(30),
            persist_consumer_offset_interval: Duration::from_secs(5),
            mq_client_api_timeout: Duration::from_secs(3),
            connect_timeout: Duration::from_secs(3),
            pull_time_delay_when_exception: Duration::from_secs(1),
            trace: sextant_trace::Tracer::off(),
        }
    }
}

impl ClientConfig {
    /// The NameServer addresses, in order.
    pub fn namesrvs(&self) -> Result<Vec<String>> {
        let list: Vec<String> = self
            .namesrv_addr
            .split(';')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_owned)
            .collect();
        if list.is_empty() {
            return Err(Error::Config("namesrvAddr is empty".into()));
        }
        Ok(list)
    }

    /// The instance name, `DEFAULT` replaced by `pid#nanos` (`changeInstanceNameToPID`, 5.x).
    pub fn resolved_instance_name(&self) -> String {
        if self.instance_name == "DEFAULT" {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            format!("{}#{nanos}", std::process::id())
        } else {
            self.instance_name.clone()
        }
    }

    /// `buildMQClientId`: `ip@instance[@unit]`.
    pub fn client_id(ip: IpAddr, instance: &str, unit: Option<&str>) -> String {
        match unit.filter(|u| !u.is_empty()) {
            Some(u) => format!("{ip}@{instance}@{u}"),
            None => format!("{ip}@{instance}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namesrvs_split_on_semicolons() {
        let c = ClientConfig {
            namesrv_addr: " a:1; b:2 ;".into(),
            ..Default::default()
        };
        assert_eq!(c.namesrvs().unwrap(), ["a:1", "b:2"]);
        let empty = ClientConfig {
            namesrv_addr: " ; ".into(),
            ..Default::default()
        };
        assert!(empty.namesrvs().is_err());
    }

    #[test]
    fn client_ids_as_rocketmq_builds_them() {
        let ip: IpAddr = "10.0.0.5".parse().unwrap();
        assert_eq!(ClientConfig::client_id(ip, "inst", None), "10.0.0.5@inst");
        assert_eq!(
            ClientConfig::client_id(ip, "inst", Some("u")),
            "10.0.0.5@inst@u"
        );
        let d = ClientConfig::default().resolved_instance_name();
        assert!(d.starts_with(&format!("{}#", std::process::id())), "{d}");
        let named = ClientConfig {
            instance_name: "x".into(),
            ..Default::default()
        };
        assert_eq!(named.resolved_instance_name(), "x");
    }
}
