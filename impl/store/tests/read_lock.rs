//! Pulls read the CommitLog and the ConsumeQueues, and queries the message index, without the
//! store's lock: a put goes through while a pull or a query is stuck in a disk read. A file
//! system whose CommitLog (or ConsumeQueue, or index) reads wait at a gate holds a reader inside
//! its read; a put must finish meanwhile. The old locking
//! (reads under the lock, kept as `bench_reads_under_lock` for the benchmark) fails the same
//! check — the put waits for the pull — which the test asserts too.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use sextant_remoting::message::MessageView;
use sextant_store::fs::{DirEntry, Fs, LockGuard, OpenMode, StoreFile};
use sextant_store::sim::SimFs;
use sextant_store::{Get, MessageStore, Put, StoreConfig};

/// Closed: CommitLog reads wait. Counts the readers waiting.
#[derive(Debug, Default)]
struct Gate {
    state: Mutex<(bool, usize)>,
    changed: Condvar,
}

impl Gate {
    fn set_closed(&self, closed: bool) {
        self.state.lock().expect("gate").0 = closed;
        self.changed.notify_all();
    }

    fn pass(&self) {
        let mut s = self.state.lock().expect("gate");
        s.1 += 1;
        self.changed.notify_all();
        while s.0 {
            s = self.changed.wait(s).expect("gate");
        }
        s.1 -= 1;
    }

    fn wait_for_reader(&self) {
        let mut s = self.state.lock().expect("gate");
        while s.1 == 0 {
            s = self.changed.wait(s).expect("gate");
        }
    }
}

#[derive(Debug)]
struct GateFs {
    fs: Arc<dyn Fs>,
    gate: Arc<Gate>,
    /// Reads of files under a directory named this wait at the gate.
    gated: &'static str,
}

struct GatedFile {
    file: Arc<dyn StoreFile>,
    gate: Arc<Gate>,
}

impl StoreFile for GatedFile {
    fn read_exact_at(&self, buf: &mut [u8], at: u64) -> io::Result<()> {
        self.gate.pass();
        self.file.read_exact_at(buf, at)
    }
    fn write_all_at(&self, buf: &[u8], at: u64) -> io::Result<()> {
        self.file.write_all_at(buf, at)
    }
    fn len(&self) -> io::Result<u64> {
        self.file.len()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.file.sync_data()
    }
}

impl Fs for GateFs {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn StoreFile>> {
        let file = self.fs.open(path, mode)?;
        if path.ancestors().any(|p| p.ends_with(self.gated)) {
            return Ok(Arc::new(GatedFile {
                file,
                gate: Arc::clone(&self.gate),
            }));
        }
        Ok(file)
    }
    fn create_dir(&self, dir: &Path) -> io::Result<()> {
        self.fs.create_dir(dir)
    }
    fn kind(&self, path: &Path) -> io::Result<Option<bool>> {
        self.fs.kind(path)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<DirEntry>> {
        self.fs.list(dir)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.fs.rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.fs.remove_file(path)
    }
    fn remove_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.fs.remove_dir_all(dir)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.fs.sync_dir(dir)
    }
    fn lock(&self, path: &Path) -> io::Result<LockGuard> {
        self.fs.lock(path)
    }
    fn used_ratio(&self, path: &Path) -> io::Result<f64> {
        self.fs.used_ratio(path)
    }
}

fn put_one(store: &MessageStore, n: u8) {
    let host: SocketAddr = "127.0.0.1:10911".parse().expect("addr");
    let body = [n; 64];
    let props = sextant_remoting::message::encode_properties([(
        sextant_remoting::message::property::KEYS,
        "k",
    )]);
    let msg = MessageView {
        queue_id: 0,
        flag: 0,
        queue_offset: 0,
        physical_offset: 0,
        sys_flag: 0,
        born_timestamp: 1,
        born_host: host,
        store_timestamp: 1,
        store_host: host,
        reconsume_times: 0,
        prepared_transaction_offset: 0,
        body_crc: 0,
        body: &body,
        topic: "T",
        properties: &props,
    };
    store.put(&mut [Put { msg, tags_code: 0 }]).expect("put");
}

/// Whether a put finishes within `wait` while a pull (or, `query`, a message-index query) is
/// held inside a gated read.
fn put_during_a_stuck_pull(store: &MessageStore, gate: &Gate, wait: Duration) -> bool {
    put_during_a_stuck_read(store, gate, wait, false)
}

fn put_during_a_stuck_read(store: &MessageStore, gate: &Gate, wait: Duration, query: bool) -> bool {
    std::thread::scope(|s| {
        gate.set_closed(true);
        let read = s.spawn(|| {
            if query {
                return store
                    .query_message("T", "k", 8, 0, i64::MAX)
                    .expect("query")
                    .count;
            }
            let get = Get {
                topic: "T",
                queue_id: 0,
                offset: 0,
                max_msgs: 8,
                max_bytes: 1 << 20,
                correct: true,
            };
            store.get(&get, &|_| true).expect("get").count
        });
        gate.wait_for_reader();
        let (tx, rx) = mpsc::channel();
        s.spawn(move || {
            put_one(store, 9);
            let _ = tx.send(());
        });
        let done = rx.recv_timeout(wait).is_ok();
        gate.set_closed(false);
        assert_eq!(read.join().expect("reader"), 8);
        done
    })
}

fn a_put_goes_through_while_a_pull_waits_for(gated: &'static str) {
    let gate = Arc::new(Gate::default());
    let mut config = StoreConfig::new("/s");
    config.fs = Arc::new(GateFs {
        fs: SimFs::new().shared(),
        gate: Arc::clone(&gate),
        gated,
    });
    let (store, _) = MessageStore::open(config).expect("open");
    for n in 0..8 {
        put_one(&store, n);
    }
    assert!(
        put_during_a_stuck_pull(&store, &gate, Duration::from_secs(10)),
        "the put waited for the pull's read of {gated}"
    );
    // The old locking: the put waits for the pull.
    store.bench_reads_under_lock(true);
    assert!(!put_during_a_stuck_pull(
        &store,
        &gate,
        Duration::from_millis(300)
    ));
    assert_eq!(store.offsets("T", 0), (0, 10));
}

#[test]
fn a_put_goes_through_while_a_pull_waits_for_the_commitlog() {
    a_put_goes_through_while_a_pull_waits_for("commitlog");
}

#[test]
fn a_put_goes_through_while_a_pull_waits_for_a_consumequeue() {
    a_put_goes_through_while_a_pull_waits_for("consumequeue");
}

#[test]
fn a_put_goes_through_while_a_query_waits_for_the_index() {
    let gate = Arc::new(Gate::default());
    let mut config = StoreConfig::new("/s");
    config.fs = Arc::new(GateFs {
        fs: SimFs::new().shared(),
        gate: Arc::clone(&gate),
        gated: "index",
    });
    let (store, _) = MessageStore::open(config).expect("open");
    for n in 0..8 {
        put_one(&store, n);
    }
    assert!(
        put_during_a_stuck_read(&store, &gate, Duration::from_secs(10), true),
        "the put waited for the query's index read"
    );
}
