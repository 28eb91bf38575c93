//! What the process tests share: starting `sextant` as a child process.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

/// Start `sextant <args>` and wait for its "<what> listening on ADDR" line on stderr.
pub fn spawn(args: &[&str], what: &str) -> (Child, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sextant"))
        .args(args)
        .env("RUST_LOG", "warn")
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
