//! The registration body checksum rule ([`check_body_crc`]) against a bitwise CRC-32 (IEEE, as
//! `java.util.zip.CRC32`): a body passes with its own masked CRC, fails with any one bit flipped
//! in it, and a zero claim is never computed.

use std::cell::Cell;

use proptest::prelude::*;
use sextant_model::namesrv::check_body_crc;

/// CRC-32/ISO-HDLC, one bit at a time: slow and obviously right.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// RocketMQ's `UtilAll.crc32`: the CRC with the sign bit cleared.
fn claim(data: &[u8]) -> i32 {
    (crc32(data) & 0x7FFF_FFFF) as i32
}

#[test]
fn reference_crc_matches_the_check_value() {
    assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    assert_eq!(crc32(b""), 0);
}

proptest! {
    #[test]
    fn own_crc_passes_and_one_flipped_bit_fails(
        body in prop::collection::vec(any::<u8>(), 0..512),
        bit in any::<prop::sample::Index>(),
    ) {
        let claimed = claim(&body);
        // An empty body's CRC is 0, which means "not checked".
        prop_assert!(check_body_crc(claimed, || crc32(&body)).is_ok());
        if !body.is_empty() {
            let mut broken = body.clone();
            let i = bit.index(body.len() * 8);
            broken[i / 8] ^= 1 << (i % 8);
            if claimed != 0 {
                let err = check_body_crc(claimed, || crc32(&broken)).unwrap_err();
                prop_assert_eq!(err.claimed, claimed);
                prop_assert_eq!(err.actual, claim(&broken));
            }
        }
    }

    #[test]
    fn zero_is_unchecked_and_the_crc_is_computed_at_most_once(
        body in prop::collection::vec(any::<u8>(), 0..64),
        claimed in any::<i32>(),
    ) {
        let calls = Cell::new(0);
        let result = check_body_crc(claimed, || {
            calls.set(calls.get() + 1);
            crc32(&body)
        });
        prop_assert_eq!(calls.get(), u32::from(claimed != 0));
        prop_assert_eq!(result.is_ok(), claimed == 0 || claimed == claim(&body));
    }
}
