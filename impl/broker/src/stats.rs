//! The broker's counters (RocketMQ's `StoreStatsService` and `BrokerStats`): messages put and
//! bytes stored, failed puts, pulls that found messages or none, messages pulls transferred; a
//! sample of them every second, the last ten minutes kept, for the TPS that
//! GET_BROKER_RUNTIME_INFO reports over 10 s, 1 min and 10 min; and their values at the last two
//! midnights (UTC: Sextant has no time-zone database; RocketMQ uses the JVM's zone), for the
//! "today" and "yesterday" totals `mqadmin clusterList -m` prints.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// The TPS windows, in samples (one a second): 10 s, 1 min, 10 min.
pub const TPS_WINDOWS: [usize; 3] = [10, 60, 600];

/// Samples kept: enough for the longest window (`MAX_RECORDS_OF_SAMPLING + 1`).
const KEPT: usize = 600 + 1;

const DAY_MS: i64 = 86_400_000;

/// The counters at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// Messages stored.
    pub puts: u64,
    /// Pulls that answered messages.
    pub gets_found: u64,
    /// Pulls that answered none.
    pub gets_missed: u64,
    /// Messages pulls answered.
    pub transferred: u64,
}

/// The counters at a wall-clock time (ms).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample {
    /// When.
    pub at: i64,
    /// What.
    pub totals: Totals,
}

/// The samples of the last ten minutes and the totals at the last two midnights.
#[derive(Clone, Debug, PartialEq)]
pub struct History {
    samples: VecDeque<Sample>,
    /// The day (since the epoch, UTC) of the last sample.
    day: i64,
    /// The totals at the first sample of today and of yesterday (0 until a midnight passed, as
    /// RocketMQ's `BrokerStats` before its first `record()`).
    pub today_morning: Totals,
    /// See `today_morning`.
    pub yesterday_morning: Totals,
}

impl History {
    /// No samples yet; `now` (wall-clock ms) is the broker's start.
    pub fn new(now: i64) -> History {
        History {
            samples: VecDeque::with_capacity(KEPT),
            day: now.div_euclid(DAY_MS),
            today_morning: Totals::default(),
            yesterday_morning: Totals::default(),
        }
    }

    /// Take the sample `totals` at `now`: the oldest past ten minutes is dropped, and the first
    /// sample of a new day makes `totals` this morning's (and this morning's yesterday's).
    pub fn sample(&mut self, now: i64, totals: Totals) {
        let day = now.div_euclid(DAY_MS);
        if day > self.day {
            self.yesterday_morning = self.today_morning;
            self.today_morning = totals;
            self.day = day;
        }
        self.samples.push_back(Sample { at: now, totals });
        while self.samples.len() > KEPT {
            self.samples.pop_front();
        }
    }

    /// The rate of `pick` over the last `window` samples (`CallSnapshot.getTPS` between the
    /// newest sample and the one `window` before it); `None` until there are that many.
    pub fn tps(&self, window: usize, pick: impl Fn(&Totals) -> u64) -> Option<f64> {
        let n = self.samples.len();
        if n <= window {
            return None;
        }
        let (begin, end) = (self.samples[n - 1 - window], self.samples[n - 1]);
        let ms = end.at - begin.at;
        if ms <= 0 {
            return Some(0.0);
        }
        let count = pick(&end.totals).saturating_sub(pick(&begin.totals));
        Some(count as f64 / ms as f64 * 1000.0)
    }

    /// The three TPS of `pick` as RocketMQ writes them: `"a b c"`, a window without enough
    /// samples yet being empty (`"12.5  "` in the first minute).
    pub fn tps_text(&self, pick: impl Fn(&Totals) -> u64) -> String {
        TPS_WINDOWS
            .iter()
            .map(|w| self.tps(*w, &pick).map(java_double).unwrap_or_default())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// The broker's counters and their history.
pub struct Stats {
    /// When the broker started (wall-clock ms): `bootTimestamp`.
    pub boot: i64,
    puts: AtomicU64,
    put_bytes: AtomicU64,
    put_failures: AtomicU64,
    gets_found: AtomicU64,
    gets_missed: AtomicU64,
    transferred: AtomicU64,
    history: Mutex<History>,
}

impl Stats {
    /// Counters from zero, the broker starting at `boot`.
    pub fn new(boot: i64) -> Stats {
        Stats {
            boot,
            puts: AtomicU64::new(0),
            put_bytes: AtomicU64::new(0),
            put_failures: AtomicU64::new(0),
            gets_found: AtomicU64::new(0),
            gets_missed: AtomicU64::new(0),
            transferred: AtomicU64::new(0),
            history: Mutex::new(History::new(boot)),
        }
    }

    /// `messages` stored, `bytes` in all.
    pub fn stored(&self, messages: u64, bytes: u64) {
        self.puts.fetch_add(messages, Ordering::Relaxed);
        self.put_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// A put the store refused.
    pub fn put_failed(&self) {
        self.put_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// A pull answered `messages` (0: it found none).
    pub fn pulled(&self, messages: u64) {
        if messages > 0 {
            self.gets_found.fetch_add(1, Ordering::Relaxed);
            self.transferred.fetch_add(messages, Ordering::Relaxed);
        } else {
            self.gets_missed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The counters now.
    pub fn totals(&self) -> Totals {
        Totals {
            puts: self.puts.load(Ordering::Relaxed),
            gets_found: self.gets_found.load(Ordering::Relaxed),
            gets_missed: self.gets_missed.load(Ordering::Relaxed),
            transferred: self.transferred.load(Ordering::Relaxed),
        }
    }

    /// Bytes stored.
    pub fn put_bytes(&self) -> u64 {
        self.put_bytes.load(Ordering::Relaxed)
    }

    /// Puts the store refused.
    pub fn put_failures(&self) -> u64 {
        self.put_failures.load(Ordering::Relaxed)
    }

    /// Take a sample at `now` (wall-clock ms); the broker does once a second.
    pub fn sample(&self, now: i64) {
        let totals = self.totals();
        self.history
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .sample(now, totals);
    }

    /// A copy of the history.
    pub fn history(&self) -> History {
        self.history
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// A double as Java's `Double.toString` writes it: `0.0`, `12.5`, and from 10⁷ on or below 10⁻³
/// `1.0E7`, `1.5E-4`.
pub fn java_double(x: f64) -> String {
    if !x.is_finite() {
        return if x.is_nan() {
            "NaN".into()
        } else if x > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        };
    }
    let a = x.abs();
    if a == 0.0 || (1e-3..1e7).contains(&a) {
        return format!("{x:?}");
    }
    let e = format!("{x:e}");
    let (mantissa, exp) = e.split_once('e').expect("exponent form");
    if mantissa.contains('.') {
        format!("{mantissa}E{exp}")
    } else {
        format!("{mantissa}.0E{exp}")
    }
}

/// How long the broker has run, as `StoreStatsService.getFormatRuntime` writes it:
/// `[ 1 days, 2 hours, 3 minutes, 4 seconds ]` (days with Java's thousands separator).
pub fn format_runtime(ms: i64) -> String {
    let ms = ms.max(0);
    let (s, m, h, d) = (1000, 60_000, 3_600_000, DAY_MS);
    let days = (ms / d).to_string();
    let mut grouped = String::new();
    for (i, c) in days.chars().enumerate() {
        if i > 0 && (days.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(c);
    }
    format!(
        "[ {grouped} days, {} hours, {} minutes, {} seconds ]",
        (ms % d) / h,
        (ms % h) / m,
        (ms % m) / s
    )
}

/// A byte count as `MixAll.humanReadableByteCount(bytes, false)` writes it: `512 B`,
/// `1.5 KiB`, `3.0 GiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNIT: f64 = 1024.0;
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let exp = ((bytes as f64).ln() / UNIT.ln()) as i32;
    let exp = exp.clamp(1, 6);
    let prefix = "KMGTPE".as_bytes()[(exp - 1) as usize] as char;
    format!("{:.1} {prefix}iB", bytes as f64 / UNIT.powi(exp))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn totals(puts: u64, transferred: u64) -> Totals {
        Totals {
            puts,
            transferred,
            ..Totals::default()
        }
    }

    #[test]
    fn tps_needs_a_full_window_and_keeps_ten_minutes() {
        let mut h = History::new(0);
        assert_eq!(h.tps_text(|t| t.puts), "  ");
        // 20 puts a second for 11 seconds: the 10 s window is there, the others not yet.
        for i in 0..=10 {
            h.sample(i * 1000, totals(20 * i as u64, 5 * i as u64));
        }
        assert_eq!(h.tps(10, |t| t.puts), Some(20.0));
        assert_eq!(h.tps(60, |t| t.puts), None);
        assert_eq!(h.tps_text(|t| t.puts), "20.0  ");
        assert_eq!(h.tps_text(|t| t.transferred), "5.0  ");
        // After ten minutes all three; the rate only counts the window.
        for i in 11..=700 {
            let puts = if i <= 650 {
                20 * i
            } else {
                20 * 650 + 100 * (i - 650)
            };
            h.sample(i * 1000, totals(puts as u64, 0));
        }
        assert_eq!(h.samples.len(), KEPT);
        // As Java computes it: count / ms * 1000.
        let rate = |count: f64, ms: f64| count / ms * 1000.0;
        assert_eq!(h.tps(10, |t| t.puts), Some(100.0));
        // 50 s at 100/s and 10 s at 20/s; 50 s at 100/s and 550 s at 20/s.
        assert_eq!(h.tps(60, |t| t.puts), Some(rate(5200.0, 60_000.0)));
        assert_eq!(h.tps(600, |t| t.puts), Some(rate(16_000.0, 600_000.0)));
        assert_eq!(h.tps(601, |t| t.puts), None);
        assert_eq!(
            h.tps_text(|t| t.puts),
            format!(
                "100.0 {} {}",
                java_double(rate(5200.0, 60_000.0)),
                java_double(rate(16_000.0, 600_000.0))
            )
        );
        assert!(h.tps_text(|t| t.puts).starts_with("100.0 86.66"));
        // Samples at the same instant: no division by zero.
        let mut same = History::new(0);
        for _ in 0..11 {
            same.sample(5, totals(1, 0));
        }
        assert_eq!(same.tps(10, |t| t.puts), Some(0.0));
    }

    #[test]
    fn midnights_record_the_morning_totals() {
        let day = DAY_MS;
        let mut h = History::new(day + 10);
        h.sample(day + 1000, totals(5, 1));
        assert_eq!(h.today_morning, Totals::default());
        // The first sample after midnight: this morning's totals; yesterday's still 0.
        h.sample(2 * day + 500, totals(7, 2));
        assert_eq!(h.today_morning, totals(7, 2));
        assert_eq!(h.yesterday_morning, Totals::default());
        h.sample(2 * day + 1500, totals(9, 2));
        assert_eq!(h.today_morning, totals(7, 2));
        // Two days on (the broker was stopped in between or the clock jumped): one shift.
        h.sample(4 * day, totals(20, 3));
        assert_eq!(
            (h.yesterday_morning, h.today_morning),
            (totals(7, 2), totals(20, 3))
        );
        // A clock going back does not shift.
        h.sample(3 * day, totals(21, 3));
        assert_eq!(h.today_morning, totals(20, 3));
    }

    #[test]
    fn counters_and_samples() {
        let s = Stats::new(1_000);
        s.stored(3, 300);
        s.stored(1, 50);
        s.put_failed();
        s.pulled(4);
        s.pulled(0);
        s.pulled(0);
        assert_eq!(
            s.totals(),
            Totals {
                puts: 4,
                gets_found: 1,
                gets_missed: 2,
                transferred: 4
            }
        );
        assert_eq!((s.put_bytes(), s.put_failures()), (350, 1));
        s.sample(2_000);
        assert_eq!(s.history().samples.back().map(|x| x.totals.puts), Some(4));
    }

    #[test]
    fn java_formats() {
        for (x, text) in [
            (0.0, "0.0"),
            (12.5, "12.5"),
            (1.0 / 3.0, "0.3333333333333333"),
            (1e7, "1.0E7"),
            (12_345_678.9, "1.23456789E7"),
            (1.5e-4, "1.5E-4"),
            (0.001, "0.001"),
            (-2.0, "-2.0"),
        ] {
            assert_eq!(java_double(x), text, "{x}");
        }
        assert_eq!(
            format_runtime(0),
            "[ 0 days, 0 hours, 0 minutes, 0 seconds ]"
        );
        assert_eq!(
            format_runtime(((2 * 24 + 3) * 3600 + 4 * 60 + 5) * 1000 + 999),
            "[ 2 days, 3 hours, 4 minutes, 5 seconds ]"
        );
        assert_eq!(
            format_runtime(1234 * DAY_MS),
            "[ 1,234 days, 0 hours, 0 minutes, 0 seconds ]"
        );
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1024), "1.0 KiB");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
    }
}
