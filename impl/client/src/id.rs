//! Message ids as RocketMQ's producer makes them (`MessageClientIDSetter`, protocol.md §4.5): the
//! `UNIQ_KEY` property every message carries.
//!
//! 16 bytes for IPv4, written as 32 uppercase hex digits: the client's IP (4 bytes, 16 for IPv6),
//! the process id (2 bytes), a per-generator random number (4 bytes, Java's class-loader hash),
//! the milliseconds since the start of the current month (4 bytes, UTC here where Java uses the
//! local time zone), and a counter (2 bytes).

use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Makes `UNIQ_KEY`s.
#[derive(Debug)]
pub struct UniqIdGenerator {
    /// The fixed prefix, already in hex.
    prefix: String,
    counter: AtomicU32,
    /// `(start of this month, start of next month)` in ms since the epoch.
    month: Mutex<(i64, i64)>,
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

fn push_hex(out: &mut String, bytes: &[u8]) {
    for b in bytes {
        out.push(HEX[(b >> 4) as usize] as char);
        out.push(HEX[(b & 15) as usize] as char);
    }
}

/// Days since 1970-01-01 → (year, month 1-12) (Howard Hinnant's `civil_from_days`).
fn civil(days: i64) -> (i64, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m)
}

/// (year, month 1-12) → days since 1970-01-01 of its first day (`days_from_civil`).
fn days_of(y: i64, m: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from(if m > 2 { m - 3 } else { m + 9 });
    let doy = (153 * mp + 2) / 5;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The UTC month containing `ms`: `(start, start of the next month)` in ms.
pub fn month_bounds(ms: i64) -> (i64, i64) {
    const DAY: i64 = 86_400_000;
    let (y, m) = civil(ms.div_euclid(DAY));
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    (days_of(y, m) * DAY, days_of(ny, nm) * DAY)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl UniqIdGenerator {
    /// A generator for a client at `ip`; `salt` stands for Java's class-loader hash.
    pub fn new(ip: IpAddr, salt: u32) -> Self {
        let mut fixed = Vec::with_capacity(22);
        match ip {
            IpAddr::V4(v4) => fixed.extend_from_slice(&v4.octets()),
            IpAddr::V6(v6) => fixed.extend_from_slice(&v6.octets()),
        }
        fixed.extend_from_slice(&(std::process::id() as u16).to_be_bytes());
        fixed.extend_from_slice(&salt.to_be_bytes());
        let mut prefix = String::with_capacity(fixed.len() * 2);
        push_hex(&mut prefix, &fixed);
        UniqIdGenerator {
            prefix,
            counter: AtomicU32::new(0),
            month: Mutex::new(month_bounds(now_ms())),
        }
    }

    /// The next id.
    pub fn next_id(&self) -> String {
        let now = now_ms();
        let start = {
            let mut m = self.month.lock().unwrap_or_else(|p| p.into_inner());
            if now >= m.1 || now < m.0 {
                *m = month_bounds(now);
            }
            m.0
        };
        let diff = (now - start) as i32;
        let counter = self.counter.fetch_add(1, Ordering::Relaxed) as u16;
        let mut id = String::with_capacity(self.prefix.len() + 12);
        id.push_str(&self.prefix);
        push_hex(&mut id, &diff.to_be_bytes());
        push_hex(&mut id, &counter.to_be_bytes());
        id
    }

    /// The time encoded in an id made by any RocketMQ producer, given the month it was made in
    /// (`MessageClientIDSetter.getNearlyTimeFromID` for this month).
    pub fn time_in_month(id: &str, month_start: i64) -> Option<i64> {
        let hex = id.get(id.len().checked_sub(12)?..id.len() - 4)?;
        let diff = u32::from_str_radix(hex, 16).ok()? as i32;
        Some(month_start + i64::from(diff))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn month_bounds_are_calendar_months() {
        // 2026-12-01T21:00:00Z → [2026-12-01, 2027-01-01).
        let (a, b) = month_bounds(1_796_158_800_000);
        assert_eq!(a, 1_796_083_200_000);
        assert_eq!(b, 1_798_761_600_000);
        // 2024-02-29 (leap year) → [2024-02-01, 2024-03-01).
        let (a, b) = month_bounds(1_709_164_800_000);
        assert_eq!((a, b), (1_706_745_600_000, 1_709_251_200_000));
        assert_eq!(month_bounds(0), (0, 2_678_400_000));
    }

    #[test]
    fn ids_are_32_hex_digits_unique_and_carry_the_time() {
        let g = UniqIdGenerator::new("10.0.0.5".parse().unwrap(), 0xDEAD_BEEF);
        let a = g.next_id();
        let b = g.next_id();
        assert_eq!(a.len(), 32);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase())
        );
        assert!(a.starts_with("0A000005"));
        assert_eq!(&a[12..20], "DEADBEEF");
        assert_ne!(a, b);
        assert_eq!(&a[..20], &b[..20]);
        let now = now_ms();
        let t = UniqIdGenerator::time_in_month(&a, month_bounds(now).0).unwrap();
        assert!((now - t).abs() < 60_000, "{t} vs {now}");
        let v6 = UniqIdGenerator::new("::1".parse().unwrap(), 1).next_id();
        assert_eq!(v6.len(), 56);
    }
}
