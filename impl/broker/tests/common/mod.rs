//! What the broker's loopback tests share: a NameServer and a broker configuration on
//! 127.0.0.1 with OS-assigned ports and small files, a raw remoting connection, and a wait.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use sextant_broker::BrokerConfig;
use sextant_model::namesrv::NamesrvConfig;
use sextant_remoting::FrameCodec;
use sextant_remoting::transport::Connection;

/// A NameServer with `config` on a free port.
pub async fn namesrv_with(config: NamesrvConfig) -> sextant_namesrv::Running {
    sextant_namesrv::start("127.0.0.1:0".parse().unwrap(), config)
        .await
        .unwrap()
}

/// A NameServer with the defaults on a free port.
pub async fn namesrv() -> sextant_namesrv::Running {
    namesrv_with(NamesrvConfig::default()).await
}

/// A broker on a free port storing in `dir` (1 MiB CommitLog segments), registering with
/// `namesrv`; the tests set what else they need.
pub fn base_config(dir: &Path, namesrv: SocketAddr) -> BrokerConfig {
    BrokerConfig {
        listen_port: 0,
        namesrv_addr: namesrv.to_string(),
        store_path_root_dir: dir.to_owned(),
        mapped_file_size_commit_log: 1 << 20,
        ..Default::default()
    }
}

/// A raw remoting connection to `addr`.
pub async fn connect(addr: SocketAddr) -> Connection {
    Connection::connect(addr, FrameCodec::default(), None)
        .await
        .unwrap()
}

/// Whether `check` holds within 5 s (polled every 20 ms).
pub async fn eventually(mut check: impl AsyncFnMut() -> bool) -> bool {
    for _ in 0..250 {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}
