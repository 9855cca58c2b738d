//! The bytes of the log file: a sequence of *chunks*, each a run of consecutive records of
//! one partition.
//!
//! A chunk is a frame around a segment body:
//!
//! | bytes | field |
//! | --- | --- |
//! | 4 | length of what follows the checksum (little-endian) |
//! | 4 | CRC-32 of what follows the checksum |
//! | 4 | partition |
//! | 8 | offset of the chunk's first record |
//! | 2 | length of the topic's name, then the name |
//! | rest | the records ([`segment`]) |
//!
//! The checksum finds a chunk cut short by a crash, or bytes the disk changed.

use super::corrupt;
use crate::{LogError, Record, TopicPartition};

/// A chunk is closed once its records reach this size; a larger append makes several.
pub(super) const CHUNK_BYTES: usize = 64 * 1024;

/// The frame's fields before the topic's name.
pub(super) const PREFIX: usize = 4 + 4 + 4 + 8 + 2;

/// Appends to `out` the chunk of `tp`'s records from offset `first`, encoded in `body`.
pub(super) fn put(out: &mut Vec<u8>, tp: &TopicPartition, first: u64, body: &[u8]) {
    let topic = tp.topic.as_bytes();
    let topic_len = u16::try_from(topic.len()).expect("topic names are short");
    let start = out.len();
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&tp.partition.to_le_bytes());
    out.extend_from_slice(&first.to_le_bytes());
    out.extend_from_slice(&topic_len.to_le_bytes());
    out.extend_from_slice(topic);
    out.extend_from_slice(body);
    let covered = &out[start + 8..];
    let len = u32::try_from(covered.len()).expect("a chunk is far below 4 GiB");
    let crc = crc32fast::hash(covered);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// What a chunk's frame says, read from its first bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Header {
    pub(super) tp: TopicPartition,
    pub(super) first: u64,
    /// The whole chunk's length, frame included.
    pub(super) len: u64,
    crc: u32,
    /// Where the body starts, from the chunk's start.
    body_at: usize,
}

/// Reads a frame's header from the start of `bytes` (at least [`PREFIX`] bytes plus the
/// topic's name); `None` if they are too few or make no sense.
pub(super) fn header(bytes: &[u8]) -> Option<Header> {
    let field = |at: usize, n: usize| bytes.get(at..at + n);
    let len = u32::from_le_bytes(field(0, 4)?.try_into().ok()?);
    let crc = u32::from_le_bytes(field(4, 4)?.try_into().ok()?);
    let partition = u32::from_le_bytes(field(8, 4)?.try_into().ok()?);
    let first = u64::from_le_bytes(field(12, 8)?.try_into().ok()?);
    let topic_len = usize::from(u16::from_le_bytes(field(20, 2)?.try_into().ok()?));
    let body_at = PREFIX + topic_len;
    if (len as usize) < body_at - 8 {
        return None;
    }
    let topic = std::str::from_utf8(field(PREFIX, topic_len)?).ok()?.to_owned();
    Some(Header { tp: TopicPartition { topic, partition }, first, len: u64::from(len) + 8, crc, body_at })
}

/// The record count of a chunk, from its first bytes (its header's and a few more).
pub(super) fn count(header: &Header, head: &[u8]) -> Option<u64> {
    segment::count(head.get(header.body_at..)?)
}

/// The body of a whole chunk, once its checksum is found right.
pub(super) fn body<'a>(header: &Header, chunk: &'a [u8]) -> Result<&'a [u8], LogError> {
    let bad = || corrupt(&header.tp, &format!("chunk at offset {} fails its checksum", header.first));
    let covered = chunk.get(8..usize::try_from(header.len).map_err(|_| bad())?).ok_or_else(bad)?;
    if crc32fast::hash(covered) != header.crc {
        return Err(bad());
    }
    Ok(&chunk[header.body_at..])
}

/// The encoding of a chunk's records: a format byte (1), the record count, then per
/// record the key, the headers (or 0: the same as the record before), and the payload;
/// lengths and counts are LEB128 varints. The topic is the frame's. (The log kept in sled
/// stored the same bytes as one entry per run.)
pub(super) mod segment {
    use super::{LogError, Record, TopicPartition, corrupt};
    use crate::Polled;

    const FORMAT: u8 = 1;

    #[derive(Default)]
    pub(in super::super) struct Builder {
        body: Vec<u8>,
        count: u64,
        last_headers: Option<Vec<(String, String)>>,
    }

    impl Builder {
        pub(in super::super) fn len(&self) -> u64 {
            self.count
        }

        pub(in super::super) fn full(&self) -> bool {
            self.body.len() >= super::CHUNK_BYTES
        }

        pub(in super::super) fn push(&mut self, record: &Record) {
            put_bytes(&mut self.body, record.key.as_bytes());
            if self.last_headers.as_ref() == Some(&record.headers) {
                put_varint(&mut self.body, 0);
            } else {
                put_varint(&mut self.body, record.headers.len() as u64 + 1);
                for (name, value) in &record.headers {
                    put_bytes(&mut self.body, name.as_bytes());
                    put_bytes(&mut self.body, value.as_bytes());
                }
                self.last_headers = Some(record.headers.clone());
            }
            put_bytes(&mut self.body, &record.payload);
            self.count += 1;
        }

        pub(in super::super) fn finish(self) -> Vec<u8> {
            let mut out = Vec::with_capacity(self.body.len() + 11);
            out.push(FORMAT);
            put_varint(&mut out, self.count);
            out.extend_from_slice(&self.body);
            out
        }
    }

    /// How many records a segment holds.
    pub(in super::super) fn count(bytes: &[u8]) -> Option<u64> {
        let mut rest = bytes.strip_prefix(&[FORMAT])?;
        get_varint(&mut rest)
    }

    /// Appends to `out` the records of the segment starting at offset `first` whose
    /// offsets are in `from..until`; returns the offset after the last one read (`from`
    /// if none was).
    pub(in super::super) fn read(
        tp: &TopicPartition,
        first: u64,
        bytes: &[u8],
        from: u64,
        until: u64,
        out: &mut Vec<Polled>,
    ) -> Result<u64, LogError> {
        let bad = || corrupt(tp, &format!("segment at {first} does not decode"));
        let mut rest = bytes.strip_prefix(&[FORMAT]).ok_or_else(bad)?;
        let count = get_varint(&mut rest).ok_or_else(bad)?;
        let mut headers: Vec<(String, String)> = Vec::new();
        let mut next = from;
        for offset in first..(first + count).min(until) {
            let key = get_bytes(&mut rest).ok_or_else(bad)?;
            let marker = get_varint(&mut rest).ok_or_else(bad)?;
            if marker > 0 {
                headers.clear();
                for _ in 1..marker {
                    let name = get_str(&mut rest).ok_or_else(bad)?;
                    let value = get_str(&mut rest).ok_or_else(bad)?;
                    headers.push((name.to_owned(), value.to_owned()));
                }
            }
            let payload = get_bytes(&mut rest).ok_or_else(bad)?;
            if offset < from {
                continue;
            }
            let key = std::str::from_utf8(key).map_err(|_| bad())?.to_owned();
            let record = Record { topic: tp.topic.clone(), key, headers: headers.clone(), payload: payload.to_vec() };
            out.push(Polled { at: tp.clone(), offset, record });
            next = offset + 1;
        }
        Ok(next)
    }

    fn put_varint(out: &mut Vec<u8>, mut value: u64) {
        while value >= 0x80 {
            out.push((value as u8) | 0x80);
            value >>= 7;
        }
        out.push(value as u8);
    }

    fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
        put_varint(out, bytes.len() as u64);
        out.extend_from_slice(bytes);
    }

    fn get_varint(rest: &mut &[u8]) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, tail) = rest.split_first()?;
            *rest = tail;
            value |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Some(value);
            }
        }
        None
    }

    fn get_bytes<'a>(rest: &mut &'a [u8]) -> Option<&'a [u8]> {
        let len = usize::try_from(get_varint(rest)?).ok()?;
        if rest.len() < len {
            return None;
        }
        let (bytes, tail) = rest.split_at(len);
        *rest = tail;
        Some(bytes)
    }

    fn get_str<'a>(rest: &mut &'a [u8]) -> Option<&'a str> {
        std::str::from_utf8(get_bytes(rest)?).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_reads_back_and_a_changed_byte_fails_its_checksum() {
        let tp = TopicPartition { topic: "health".into(), partition: 7 };
        let mut out = vec![9, 9];
        put(&mut out, &tp, 42, b"body");
        let chunk = &out[2..];
        let header = header(chunk).unwrap();
        assert_eq!((&header.tp, header.first, header.len), (&tp, 42, chunk.len() as u64));
        assert_eq!(body(&header, chunk).unwrap(), b"body");
        let mut changed = chunk.to_vec();
        *changed.last_mut().unwrap() ^= 1;
        let err = body(&header, &changed).unwrap_err();
        assert!(err.to_string().contains("health/7") && err.to_string().contains("checksum"), "{err}");
        assert!(body(&header, &chunk[..chunk.len() - 1]).is_err(), "a chunk cut short");
        assert!(super::header(&chunk[..PREFIX]).is_none(), "a header without its topic");
    }
}
