//! Replays the committed cargo-fuzz corpus (`fuzz/corpus/<target>/`) through the same functions
//! the fuzz targets call, on stable Rust, so every input the fuzzer found interesting is checked
//! by `cargo test`. The seeds' expected decodings are asserted too.

use std::path::PathBuf;

use bytes::BytesMut;
use sextant_remoting::frame::{DEFAULT_MAX_FRAME, decode_frame};
use sextant_remoting::message::decode_batch;
use sextant_remoting::route::decode_route;

fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} is empty", dir.display());
    files
        .into_iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect()
}

#[test]
fn route_corpus() {
    for (name, data) in corpus("route_decode") {
        sextant_remoting::fuzz::route_decode(&data);
        if name.ends_with(".json") {
            decode_route(&data).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        let text = String::from_utf8_lossy(&data);
        if name == "consume-stats.txt" {
            let m = sextant_remoting::body::object_key_map(&text, "offsetTable").unwrap();
            assert_eq!(
                (m.len(), m[0].1["pullOffset"].as_u64()),
                (1, Some(95)),
                "{name}"
            );
        }
        if name == "running-info.txt" {
            let m = sextant_remoting::body::object_key_map(&text, "mqTable").unwrap();
            assert_eq!(
                (m.len(), m[0].0["queueId"].as_u64()),
                (1, Some(1)),
                "{name}"
            );
        }
    }
}

#[test]
fn frame_corpus() {
    for (name, data) in corpus("frame_decode") {
        sextant_remoting::fuzz::frame_decode(&data);
        let mut buf = BytesMut::from(&data[..]);
        let first = decode_frame(&mut buf, DEFAULT_MAX_FRAME);
        match name.as_str() {
            "truncated" => assert!(matches!(first, Ok(None)), "{name}"),
            "lenient_send_v2" => {
                let cmd = first.unwrap().unwrap();
                assert_eq!(cmd.ext("d"), Some("4"));
                assert_eq!(cmd.ext("m"), Some("0"));
                assert_eq!(&cmd.body[..], b"hello");
            }
            "two_frames" => {
                assert!(first.unwrap().is_some());
                let second = decode_frame(&mut buf, DEFAULT_MAX_FRAME).unwrap().unwrap();
                assert!(second.is_response());
            }
            _ if !name.starts_with("crash-") && !name.starts_with("found-") => {
                assert!(first.unwrap().is_some(), "{name}")
            }
            _ => {}
        }
    }
}

#[test]
fn message_corpus() {
    for (name, data) in corpus("message_decode") {
        sextant_remoting::fuzz::message_decode(&data);
        if name == "batch_of_two" {
            let (ms, err) = decode_batch(&data);
            assert!(err.is_none());
            assert_eq!(ms.len(), 2);
            assert_eq!(ms[1].body, b"world");
            assert_eq!(ms[1].property("KEYS"), Some("k1 k2"));
        }
    }
}

#[test]
fn ha_corpus() {
    use sextant_remoting::ha::ChunkCodec;
    use tokio_util::codec::Decoder;
    for (name, data) in corpus("ha_decode") {
        sextant_remoting::fuzz::ha_decode(&data);
        let mut codec = ChunkCodec {
            max_body: 64 * 1024,
        };
        let mut buf = BytesMut::from(&data[..]);
        let first = codec.decode(&mut buf);
        match name.as_str() {
            "two_chunks" => {
                assert_eq!(first.unwrap().unwrap().start, 65536);
                let beat = codec.decode(&mut buf).unwrap().unwrap();
                assert_eq!((beat.start, beat.body.len()), (65541, 0));
            }
            "oversized" | "negative_offset" => assert!(first.is_err(), "{name}"),
            "truncated" => assert!(matches!(first, Ok(None)), "{name}"),
            _ => {}
        }
    }
}
