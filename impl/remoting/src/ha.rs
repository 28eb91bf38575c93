//! The classic HA wire (RocketMQ's `DefaultHAConnection` / `DefaultHAClient`, protocol.md §8.4):
//! not remoting frames but two raw streams on the master's HA port. The slave sends its
//! CommitLog end as 8 big-endian bytes ([`ReportCodec`]); the master sends chunks of CommitLog,
//! `int64 startPhyOffset | int32 bodySize | body` ([`ChunkCodec`]), an empty body being a
//! heartbeat. Both decoders refuse what no peer sends (a negative offset, a size past the
//! limit) before allocating for it.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::Error;

/// Bytes of a chunk header.
pub const HEADER_LEN: usize = 12;
/// Bytes of an offset report.
pub const REPORT_LEN: usize = 8;

/// One chunk of a master's CommitLog (or a heartbeat, with an empty body).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chunk {
    /// The CommitLog offset of the body's first byte.
    pub start: u64,
    /// The CommitLog bytes.
    pub body: Bytes,
}

/// The master → slave stream: chunks of at most `max_body` bytes.
#[derive(Clone, Copy, Debug)]
pub struct ChunkCodec {
    /// The largest body accepted or sent.
    pub max_body: usize,
}

impl Decoder for ChunkCodec {
    type Item = Chunk;
    type Error = Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Chunk>, Error> {
        if src.len() < HEADER_LEN {
            return Ok(None);
        }
        let start = i64::from_be_bytes(src[..8].try_into().expect("8 bytes"));
        let size = i32::from_be_bytes(src[8..12].try_into().expect("4 bytes"));
        let start = u64::try_from(start)
            .map_err(|_| Error::Malformed(format!("HA chunk at offset {start}")))?;
        let size = usize::try_from(size)
            .ok()
            .filter(|s| *s <= self.max_body)
            .ok_or_else(|| {
                Error::Malformed(format!(
                    "HA chunk of {size} bytes (the limit is {})",
                    self.max_body
                ))
            })?;
        if src.len() < HEADER_LEN + size {
            src.reserve(HEADER_LEN + size - src.len());
            return Ok(None);
        }
        src.advance(HEADER_LEN);
        Ok(Some(Chunk {
            start,
            body: src.split_to(size).freeze(),
        }))
    }
}

impl Encoder<Chunk> for ChunkCodec {
    type Error = Error;

    fn encode(&mut self, item: Chunk, dst: &mut BytesMut) -> Result<(), Error> {
        if item.body.len() > self.max_body {
            return Err(Error::FrameTooLarge {
                len: item.body.len(),
                max: self.max_body,
            });
        }
        let start = i64::try_from(item.start)
            .map_err(|_| Error::Malformed(format!("HA chunk at offset {}", item.start)))?;
        dst.reserve(HEADER_LEN + item.body.len());
        dst.put_i64(start);
        dst.put_i32(item.body.len() as i32);
        dst.extend_from_slice(&item.body);
        Ok(())
    }
}

/// The slave → master stream: CommitLog offsets the slave holds.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReportCodec;

impl Decoder for ReportCodec {
    type Item = u64;
    type Error = Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<u64>, Error> {
        if src.len() < REPORT_LEN {
            return Ok(None);
        }
        let offset = src.get_i64();
        u64::try_from(offset)
            .map(Some)
            .map_err(|_| Error::Malformed(format!("HA report of offset {offset}")))
    }
}

impl Encoder<u64> for ReportCodec {
    type Error = Error;

    fn encode(&mut self, item: u64, dst: &mut BytesMut) -> Result<(), Error> {
        let offset = i64::try_from(item)
            .map_err(|_| Error::Malformed(format!("HA report of offset {item}")))?;
        dst.put_i64(offset);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_round_trip_and_wait_for_their_body() {
        let mut codec = ChunkCodec { max_body: 16 };
        let mut buf = BytesMut::new();
        let chunk = Chunk {
            start: 1 << 33,
            body: Bytes::from_static(b"hello"),
        };
        codec.encode(chunk.clone(), &mut buf).unwrap();
        codec
            .encode(
                Chunk {
                    start: 7,
                    body: Bytes::new(),
                },
                &mut buf,
            )
            .unwrap();
        assert_eq!(&buf[..12], &[0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 5]);
        let mut part = buf.split_to(14);
        assert_eq!(codec.decode(&mut part).unwrap(), None);
        part.unsplit(buf);
        assert_eq!(codec.decode(&mut part).unwrap(), Some(chunk));
        assert_eq!(codec.decode(&mut part).unwrap().unwrap().body.len(), 0);
        assert!(part.is_empty());
    }

    #[test]
    fn bad_headers_are_refused_before_allocating() {
        let mut codec = ChunkCodec { max_body: 16 };
        let mut big = BytesMut::from(&[0, 0, 0, 0, 0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff][..]);
        assert!(codec.decode(&mut big).is_err());
        assert!(big.capacity() < 1024);
        let mut negative = BytesMut::from(&[0xff; 12][..]);
        assert!(codec.decode(&mut negative).is_err());
        let mut report = BytesMut::from(&[0x80, 0, 0, 0, 0, 0, 0, 0][..]);
        assert!(ReportCodec.decode(&mut report).is_err());
        let mut report = BytesMut::from(&[0, 0, 0, 0, 0, 0, 1, 0, 9][..]);
        assert_eq!(ReportCodec.decode(&mut report).unwrap(), Some(256));
        assert_eq!(report.len(), 1);
    }
}
