//! The CommitLog on a temporary directory: append and read back, segment rolls with blank
//! records, recovery after reopening, a torn tail and a corrupt record truncated.

use std::fs::OpenOptions;
use std::io::Write;

use sextant_remoting::message::{MessageView, body_crc};
use sextant_store::{CommitLog, Error};

fn record(i: usize, body_len: usize) -> Vec<u8> {
    let body = vec![(i % 251) as u8; body_len];
    let topic = "TopicTest";
    let mut out = Vec::new();
    MessageView {
        queue_id: (i % 4) as i32,
        flag: 0,
        queue_offset: i as i64,
        physical_offset: 0,
        sys_flag: 0,
        born_timestamp: 1_700_000_000_000 + i as i64,
        born_host: "10.0.0.5:54321".parse().unwrap(),
        store_timestamp: 1_700_000_000_001,
        store_host: "127.0.0.1:10911".parse().unwrap(),
        reconsume_times: 0,
        prepared_transaction_offset: 0,
        body_crc: body_crc(&body),
        body: &body,
        topic,
        properties: "",
    }
    .encode(&mut out)
    .unwrap();
    out
}

#[test]
fn append_read_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, rec) = CommitLog::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(rec.records, 0);
    let mut offsets = Vec::new();
    for i in 0..100 {
        let mut r = record(i, 10 + i * 7);
        offsets.push((log.append(&mut r).unwrap(), r));
    }
    log.flush().unwrap();
    for (off, r) in &offsets {
        let back = log.read_record(*off).unwrap();
        assert_eq!(&back, r);
        let (m, _) = MessageView::decode(&back).unwrap();
        assert_eq!(m.physical_offset as u64, *off);
    }
    let end = log.end();
    drop(log);
    let (mut log, rec) = CommitLog::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(rec.records, 100);
    assert_eq!(rec.end, end);
    assert_eq!(rec.truncated, None);
    let mut r = record(100, 5);
    assert_eq!(log.append(&mut r).unwrap(), end);
}

#[test]
fn segments_roll_with_blank_records_and_recover() {
    let dir = tempfile::tempdir().unwrap();
    let size = 4096;
    let (mut log, _) = CommitLog::open(dir.path(), size).unwrap();
    let mut offsets = Vec::new();
    for i in 0..60 {
        let mut r = record(i, 300);
        offsets.push(log.append(&mut r).unwrap());
    }
    log.flush().unwrap();
    let names: Vec<String> = {
        let mut v: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names[0], "00000000000000000000");
    assert_eq!(names[1], "00000000000000004096");
    assert!(names.len() > 5);
    // No record spans two segments.
    for w in offsets.windows(2) {
        assert_eq!(w[0] / size, (w[0] + 393 - 1) / size, "{w:?}");
    }
    let end = log.end();
    drop(log);
    let (log, rec) = CommitLog::open(dir.path(), size).unwrap();
    assert_eq!(rec.records, 60);
    assert_eq!(rec.end, end);
    assert_eq!(rec.truncated, None);
    for (i, off) in offsets.iter().enumerate() {
        let bytes = log.read_record(*off).unwrap();
        let (m, _) = MessageView::decode(&bytes).unwrap();
        assert_eq!(m.queue_offset, i as i64);
    }
}

#[test]
fn a_torn_tail_is_cut_and_appending_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = CommitLog::open(dir.path(), 1 << 20).unwrap();
    for i in 0..10 {
        log.append(&mut record(i, 100)).unwrap();
    }
    log.flush().unwrap();
    let end = log.end();
    drop(log);
    // A crash in the middle of a write: half a record at the end.
    let half = record(10, 100);
    let mut f = OpenOptions::new()
        .append(true)
        .open(dir.path().join("00000000000000000000"))
        .unwrap();
    f.write_all(&half[..half.len() / 2]).unwrap();
    drop(f);
    let (mut log, rec) = CommitLog::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(rec.records, 10);
    assert_eq!(rec.end, end);
    assert!(rec.truncated.is_some());
    assert_eq!(log.append(&mut record(10, 100)).unwrap(), end);
}

#[test]
fn a_corrupt_record_cuts_the_log_there() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = CommitLog::open(dir.path(), 1 << 20).unwrap();
    let mut offsets = Vec::new();
    for i in 0..10 {
        offsets.push(log.append(&mut record(i, 100)).unwrap());
    }
    log.flush().unwrap();
    drop(log);
    // Flip a body byte of record 5: its CRC no longer matches.
    let path = dir.path().join("00000000000000000000");
    let mut bytes = std::fs::read(&path).unwrap();
    let at = offsets[5] as usize + 100;
    bytes[at] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    let (log, rec) = CommitLog::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(rec.records, 5);
    let (cut_at, why) = rec.truncated.unwrap();
    assert_eq!(cut_at, offsets[5]);
    assert!(why.contains("CRC"), "{why}");
    assert_eq!(log.end(), offsets[5]);
    assert!(log.read_record(offsets[4]).is_ok());
    assert!(log.read_record(offsets[5]).is_err());
}

#[test]
fn bad_input_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = CommitLog::open(dir.path(), 4096).unwrap();
    assert!(matches!(
        log.append(&mut [0u8; 40]),
        Err(Error::BadRecord(_))
    ));
    assert!(matches!(
        log.append(&mut record(0, 5000)),
        Err(Error::TooLarge { .. })
    ));
    assert!(log.read(1 << 40, 4).is_err());
    assert!(CommitLog::open(dir.path(), 100).is_err());
}
