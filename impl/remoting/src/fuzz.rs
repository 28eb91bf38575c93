//! The bodies of the cargo-fuzz targets (`fuzz/fuzz_targets/`), as plain functions, so that a
//! stable test replays the whole committed corpus in `cargo test`. Each must return without
//! panicking whatever the input.

use bytes::BytesMut;

use crate::frame::{DEFAULT_MAX_FRAME, decode_frame, encode_frame};

/// Decode frames from arbitrary bytes until they run out or one fails; every decoded command
/// must encode again and decode to itself.
pub fn frame_decode(data: &[u8]) {
    let mut buf = BytesMut::from(data);
    while let Ok(Some(cmd)) = decode_frame(&mut buf, DEFAULT_MAX_FRAME) {
        let mut again = BytesMut::new();
        if encode_frame(&cmd, &mut again, DEFAULT_MAX_FRAME).is_ok() {
            let back = decode_frame(&mut again, DEFAULT_MAX_FRAME)
                .expect("an encoded frame decodes")
                .expect("an encoded frame is whole");
            assert_eq!(back, cmd, "frame round trip");
        }
    }
}
