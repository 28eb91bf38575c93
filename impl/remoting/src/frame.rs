//! Frames: `int32 length | int32 (serializeType << 24 | headerLength) | header | body`, with the
//! length counting everything after itself (protocol.md §1.2). Sans-IO functions, and a
//! `tokio_util::codec` [`FrameCodec`] on top.

use bytes::{Buf, BufMut, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::Error;
use crate::command::{RemotingCommand, SerializeType};

/// RocketMQ's default maximum frame, length prefix included (`com.rocketmq.remoting.frameMaxLength`).
pub const DEFAULT_MAX_FRAME: usize = 16 * 1024 * 1024;

/// Decode one frame from the front of `src`, if a whole one is there. A frame longer than
/// `max_frame` (prefix included) or with an inconsistent header length is an error; nothing is
/// allocated for a length that has not arrived.
pub fn decode_frame(
    src: &mut BytesMut,
    max_frame: usize,
) -> Result<Option<RemotingCommand>, Error> {
    if src.len() < 4 {
        return Ok(None);
    }
    let len = i32::from_be_bytes([src[0], src[1], src[2], src[3]]);
    let len = usize::try_from(len)
        .ok()
        .filter(|l| *l >= 4)
        .ok_or_else(|| Error::Malformed(format!("frame length {len}")))?;
    if len + 4 > max_frame {
        return Err(Error::FrameTooLarge {
            len: len + 4,
            max: max_frame,
        });
    }
    if src.len() < 4 + len {
        return Ok(None);
    }
    src.advance(4);
    let mut frame = src.split_to(len).freeze();
    let word = frame.get_u32();
    let header_len = (word & 0x00FF_FFFF) as usize;
    let serialize_type = SerializeType::from_code((word >> 24) as u8)?;
    if header_len > frame.len() {
        return Err(Error::Malformed(format!(
            "header length {header_len} exceeds the frame's {} bytes",
            frame.len()
        )));
    }
    let header = frame.split_to(header_len);
    RemotingCommand::decode_header(serialize_type, &header, frame).map(Some)
}

/// Append `cmd` as one frame to `dst`. A frame longer than `max_frame` is refused.
pub fn encode_frame(
    cmd: &RemotingCommand,
    dst: &mut BytesMut,
    max_frame: usize,
) -> Result<(), Error> {
    let mut header = Vec::with_capacity(256);
    cmd.encode_header(&mut header)?;
    if header.len() > 0x00FF_FFFF {
        return Err(Error::Malformed(format!(
            "header of {} bytes",
            header.len()
        )));
    }
    let len = 4 + header.len() + cmd.body.len();
    if len + 4 > max_frame {
        return Err(Error::FrameTooLarge {
            len: len + 4,
            max: max_frame,
        });
    }
    dst.reserve(4 + len);
    dst.put_u32(len as u32);
    dst.put_u32((u32::from(cmd.serialize_type.code()) << 24) | header.len() as u32);
    dst.put_slice(&header);
    dst.put_slice(&cmd.body);
    Ok(())
}

/// The frame codec for `tokio_util::codec::Framed`.
#[derive(Clone, Copy, Debug)]
pub struct FrameCodec {
    /// The largest frame accepted or sent, length prefix included.
    pub max_frame: usize,
}

impl Default for FrameCodec {
    fn default() -> Self {
        FrameCodec {
            max_frame: DEFAULT_MAX_FRAME,
        }
    }
}

impl Decoder for FrameCodec {
    type Item = RemotingCommand;
    type Error = Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<RemotingCommand>, Error> {
        decode_frame(src, self.max_frame)
    }
}

impl Encoder<RemotingCommand> for FrameCodec {
    type Error = Error;

    fn encode(&mut self, item: RemotingCommand, dst: &mut BytesMut) -> Result<(), Error> {
        encode_frame(&item, dst, self.max_frame)
    }
}

impl Encoder<&RemotingCommand> for FrameCodec {
    type Error = Error;

    fn encode(&mut self, item: &RemotingCommand, dst: &mut BytesMut) -> Result<(), Error> {
        encode_frame(item, dst, self.max_frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::{ExtFields, LanguageCode};

    #[test]
    fn frame_golden_bytes() {
        // GET_BROKER_CLUSTER_INFO from a Java client: no extFields, empty body.
        let mut cmd = RemotingCommand::request(106, 1);
        cmd.language = LanguageCode::JAVA;
        cmd.version = 401;
        let mut buf = BytesMut::new();
        encode_frame(&cmd, &mut buf, DEFAULT_MAX_FRAME).unwrap();
        let header = br#"{"code":106,"flag":0,"language":"JAVA","opaque":1,"serializeTypeCurrentRPC":"JSON","version":401}"#;
        let mut expected = Vec::new();
        expected.extend_from_slice(&((4 + header.len()) as u32).to_be_bytes());
        expected.extend_from_slice(&(header.len() as u32).to_be_bytes());
        expected.extend_from_slice(header);
        assert_eq!(&buf[..], &expected[..]);
        assert_eq!(
            decode_frame(&mut buf, DEFAULT_MAX_FRAME).unwrap(),
            Some(cmd)
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn binary_frames_carry_the_type_byte() {
        let mut ext = ExtFields::new();
        ext.insert("topic", "T");
        let mut cmd = RemotingCommand::request(105, 9)
            .with_ext(ext)
            .with_body(&b"xyz"[..]);
        cmd.serialize_type = SerializeType::RocketMq;
        let mut buf = BytesMut::new();
        encode_frame(&cmd, &mut buf, DEFAULT_MAX_FRAME).unwrap();
        assert_eq!(buf[4], 1, "serialize type ROCKETMQ in the high byte");
        assert_eq!(
            decode_frame(&mut buf, DEFAULT_MAX_FRAME).unwrap(),
            Some(cmd)
        );
    }

    #[test]
    fn partial_frames_wait_and_bad_ones_fail() {
        let cmd = RemotingCommand::request(34, 2).with_body(&b"body"[..]);
        let mut full = BytesMut::new();
        encode_frame(&cmd, &mut full, DEFAULT_MAX_FRAME).unwrap();
        for cut in 0..full.len() {
            let mut part = BytesMut::from(&full[..cut]);
            assert_eq!(decode_frame(&mut part, DEFAULT_MAX_FRAME).unwrap(), None);
            assert_eq!(part.len(), cut, "nothing consumed from a partial frame");
        }
        // Claims 2 GiB: refused at once, nothing allocated.
        let mut huge = BytesMut::from(&[0x7f, 0xff, 0xff, 0xff, 0, 0][..]);
        assert!(matches!(
            decode_frame(&mut huge, DEFAULT_MAX_FRAME),
            Err(Error::FrameTooLarge { .. })
        ));
        let mut negative = BytesMut::from(&[0xff, 0xff, 0xff, 0xff][..]);
        assert!(decode_frame(&mut negative, DEFAULT_MAX_FRAME).is_err());
        // Header length beyond the frame.
        let mut lying = BytesMut::from(&[0, 0, 0, 4, 0, 0, 0, 9][..]);
        assert!(decode_frame(&mut lying, DEFAULT_MAX_FRAME).is_err());
        // Unknown serialize type.
        let mut typed = BytesMut::from(&[0, 0, 0, 4, 7, 0, 0, 0][..]);
        assert!(decode_frame(&mut typed, DEFAULT_MAX_FRAME).is_err());
        // Encoding past the limit is refused too.
        let big = RemotingCommand::request(10, 1).with_body(vec![0u8; 100]);
        assert!(encode_frame(&big, &mut BytesMut::new(), 64).is_err());
    }
}
