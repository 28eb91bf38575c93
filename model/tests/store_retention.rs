//! Properties of the store's retention decisions (`sextant_model::store`): a clean pass deletes
//! a prefix of the segments, never the one being written, never one still needed, only expired
//! ones unless the disk is above the forcible ratio, no more than the batch, and as many as the
//! rules allow; ConsumeQueue and index files follow the log's start; puts stop above the
//! warning ratio.

use proptest::prelude::*;
use sextant_model::store::{
    CleanInput, Retention, SegmentInfo, files_below, first_at_or_above, put_allowed,
    segments_to_delete,
};

const H: i64 = 3_600_000;

fn segments() -> impl Strategy<Value = Vec<SegmentInfo>> {
    prop::collection::vec(0..200i64, 0..12).prop_map(|ages| {
        ages.iter()
            .enumerate()
            .map(|(i, t)| SegmentInfo {
                start: i as u64 * 1000,
                end: i as u64 * 1000 + 1000,
                last_modified_ms: t * H,
            })
            .collect()
    })
}

fn retention() -> impl Strategy<Value = Retention> {
    (1..100u64, 0..24u32, any::<bool>(), 1..5usize).prop_map(|(hours, when, forcibly, batch)| {
        Retention {
            file_reserved_ms: hours * H as u64,
            delete_when: vec![when],
            clean_file_forcibly: forcibly,
            delete_files_batch_max: batch,
            ..Retention::default()
        }
    })
}

fn input() -> impl Strategy<Value = CleanInput> {
    (
        0..300i64,
        0..24u32,
        -0.1..1.0f64,
        any::<bool>(),
        0..14_000u64,
    )
        .prop_map(|(now, hour, ratio, manual, needed)| CleanInput {
            now_ms: now * H,
            hour_of_day: hour,
            disk_used_ratio: ratio,
            manual,
            min_needed_offset: needed,
        })
}

proptest! {
    #[test]
    fn a_clean_pass_deletes_only_what_the_rules_allow(
        segs in segments(),
        input in input(),
        cfg in retention(),
    ) {
        let plan = segments_to_delete(&segs, input, &cfg);
        let n = plan.delete.len();
        // A prefix, in order.
        prop_assert!(plan.delete.iter().zip(&segs).all(|(d, s)| *d == s.start));
        prop_assert!(n <= cfg.delete_files_batch_max);
        if plan.trigger.is_none() {
            prop_assert_eq!(n, 0);
        }
        let full = input.disk_used_ratio > cfg.disk_clean_forcibly_ratio;
        prop_assert_eq!(plan.forcibly, cfg.clean_file_forcibly && full);
        let expired = |s: &SegmentInfo| input.now_ms >= s.last_modified_ms + cfg.file_reserved_ms as i64;
        for s in &segs[..n] {
            prop_assert!(s.end <= input.min_needed_offset, "a needed segment deleted");
            prop_assert!(expired(s) || plan.forcibly, "an unexpired segment deleted");
        }
        if !segs.is_empty() {
            prop_assert!(n < segs.len(), "the segment being written deleted");
        }
        // As many as allowed: the next one is held back by a rule.
        if plan.trigger.is_some() && n + 1 < segs.len() && n < cfg.delete_files_batch_max {
            let next = &segs[n];
            prop_assert!(next.end > input.min_needed_offset || (!expired(next) && !plan.forcibly));
        }
        // Triggers: the hour, the disk, or an operator.
        let triggered = cfg.delete_when.contains(&input.hour_of_day)
            || input.disk_used_ratio < 0.0
            || input.disk_used_ratio > cfg.disk_max_used_ratio
            || input.manual;
        prop_assert_eq!(plan.trigger.is_some(), triggered);
    }

    #[test]
    fn puts_stop_exactly_above_the_warning_ratio(ratio in 0.0..1.0f64) {
        let cfg = Retention::default();
        prop_assert_eq!(put_allowed(ratio, &cfg).is_err(), ratio > cfg.disk_warning_ratio);
    }

    #[test]
    fn files_follow_the_log_start(mut highest in prop::collection::vec(0..1000u64, 0..10), start in 0..1100u64) {
        highest.sort_unstable();
        let k = files_below(&highest, start);
        prop_assert!(highest[..k].iter().all(|h| *h < start));
        if !highest.is_empty() {
            prop_assert!(k < highest.len(), "the last file deleted");
            prop_assert!(k == highest.len() - 1 || highest[k] >= start);
        }
        let first = first_at_or_above::<()>(highest.len() as u64, start, |i| Ok(highest[i as usize]));
        let linear = highest.iter().position(|h| *h >= start).unwrap_or(highest.len());
        prop_assert_eq!(first, Ok(linear as u64));
    }
}
