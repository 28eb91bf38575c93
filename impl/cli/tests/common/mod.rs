//! What the process tests share: starting `sextant` as a child process.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sextant_remoting::code::{request, response};
use sextant_remoting::ext::CommandHeader;
use sextant_remoting::header::{PullMessageRequestHeader, SendMessageRequestHeaderV2};
use sextant_remoting::message::MessageView;
use sextant_remoting::transport::Connection;
use sextant_remoting::{FrameCodec, RemotingCommand};

const T: Duration = Duration::from_secs(10);

/// A SEND_MESSAGE_V2 of `body` to `topic` queue `queue`.
pub fn send(topic: &str, queue: i32, body: &[u8]) -> RemotingCommand {
    let h = SendMessageRequestHeaderV2::new("pg", topic, queue);
    RemotingCommand::request(request::SEND_MESSAGE_V2, 0)
        .with_ext(h.to_ext())
        .with_body(body.to_vec())
}

/// Every message body of `topic` queue `queue`, pulled from offset 0 until none is left.
pub async fn pull_all(conn: &Connection, topic: &str, queue: i32) -> Vec<String> {
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let h = PullMessageRequestHeader::new("check", topic, queue, offset, 256);
        let r = conn
            .invoke(
                RemotingCommand::request(request::PULL_MESSAGE, 0).with_ext(h.to_ext()),
                T,
            )
            .await
            .expect("pull");
        if r.code != response::SUCCESS {
            return out;
        }
        let mut at = 0;
        while at < r.body.len() {
            let (m, n) = MessageView::decode(&r.body[at..]).expect("record");
            out.push(String::from_utf8(m.body.to_vec()).expect("utf8"));
            offset = m.queue_offset + 1;
            at += n;
        }
    }
}

/// `queues` connections to `addr`, each sending numbered messages (`q<queue>-<n>`) to its own
/// queue of `topic` as fast as answers come, until `stop` or the connection fails. Each task
/// returns the bodies acknowledged (SUCCESS); other answers go to `refused(code, remark)`.
pub fn sustained_sends(
    addr: SocketAddr,
    topic: &'static str,
    queues: i32,
    stop: &Arc<AtomicBool>,
    refused: fn(i32, Option<String>),
) -> Vec<tokio::task::JoinHandle<Vec<String>>> {
    (0..queues)
        .map(|q| {
            let stop = Arc::clone(stop);
            tokio::spawn(async move {
                let conn = Connection::connect(addr, FrameCodec::default(), None)
                    .await
                    .expect("connect");
                let mut acked = Vec::new();
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let body = format!("q{q}-{i}");
                    match conn.invoke(send(topic, q, body.as_bytes()), T).await {
                        Ok(r) if r.code == response::SUCCESS => acked.push(body),
                        Ok(r) => refused(r.code, r.remark),
                        Err(_) => break,
                    }
                    i += 1;
                }
                acked
            })
        })
        .collect()
}

/// Start `sextant <args>` and wait for its "<what> listening on ADDR" line on stderr.
pub fn spawn(args: &[&str], what: &str) -> (Child, SocketAddr) {
    spawn_with(args, what, &[])
}

/// [`spawn`] with `envs` set.
pub fn spawn_with(
    args: &[&str],
    what: &str,
    envs: &[(&str, &std::ffi::OsStr)],
) -> (Child, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sextant"))
        .args(args)
        .env("RUST_LOG", "warn")
        .env_remove("SEXTANT_TRACE")
        .envs(envs.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sextant");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let prefix = format!("{what} listening on ");
    let addr = loop {
        let line = lines
            .next()
            .expect("the process printed its address")
            .expect("stderr line");
        if let Some(a) = line.strip_prefix(&prefix) {
            break a.trim().parse().expect("an address");
        }
    };
    // Keep draining stderr so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, addr)
}

/// Start `sextant standalone` on free ports with data in `dir` and `envs` set; its NameServer's
/// address, once it printed "ready:".
pub fn standalone(dir: &std::path::Path, envs: &[(&str, &std::ffi::OsStr)]) -> (Child, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sextant"))
        .args([
            "standalone",
            "--data-dir",
            dir.to_str().expect("utf8"),
            "--namesrv-listen",
            "127.0.0.1:0",
            "--broker-listen",
            "127.0.0.1:0",
        ])
        .env("RUST_LOG", "warn")
        .env_remove("SEXTANT_TRACE")
        .envs(envs.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let mut ns = None;
    loop {
        let line = lines.next().expect("output").expect("line");
        if let Some(a) = line.strip_prefix("NameServer listening on ") {
            ns = Some(a.trim().parse().expect("addr"));
        }
        if line.starts_with("ready:") {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    (child, ns.expect("the NameServer's address"))
}
