//! Writer -> reader round trips, header compression, interleaving order,
//! chunk size changes, extended timestamps, and the reader's bounds.

use bytes::Bytes;

use super::reader::{ChunkError, ChunkReader, MAX_CHUNK_STREAMS, MAX_MESSAGE_LEN};
use super::writer::{ChunkWriter, Lane, OutMessage, STAGE_TARGET};
use super::RawMessage;
use crate::output::rtmp::proto::message::{AUDIO, SET_CHUNK_SIZE, VIDEO};

fn msg(ts: u32, type_id: u8, len: usize) -> OutMessage {
    OutMessage {
        timestamp: ts,
        type_id,
        stream_id: 1,
        payload: Bytes::from((0..len).map(|i| (i % 251) as u8).collect::<Vec<_>>()),
    }
}

fn read_all(bytes: &[u8]) -> Vec<RawMessage> {
    let mut r = ChunkReader::new();
    let mut out = Vec::new();
    r.feed(bytes, &mut out).unwrap();
    out
}

#[test]
fn round_trip_every_header_form_and_chunk_size() {
    for chunk_size in [1u32, 7, 128, 4096, 1 << 20] {
        let mut w = ChunkWriter::new();
        if chunk_size != 128 {
            w.set_chunk_size(chunk_size).unwrap();
        }
        let sent = vec![
            msg(0, VIDEO, 300),           // fmt 0
            msg(33, VIDEO, 300),          // fmt 2 (same length and type)
            msg(66, VIDEO, 300),          // fmt 3 (same delta)
            msg(100, VIDEO, 10),          // fmt 1 (length differs)
            msg(90, VIDEO, 10),           // fmt 0 (backwards)
            msg(0x0100_0000, VIDEO, 500), // fmt 0, extended
            msg(0x0100_0010, VIDEO, 0),   // empty message
        ];
        for m in &sent {
            w.queue(Lane::Video, m.clone(), false).unwrap();
        }
        let bytes = w.take(usize::MAX);
        let got: Vec<_> = read_all(&bytes)
            .into_iter()
            .filter(|m| m.type_id != SET_CHUNK_SIZE)
            .collect();
        assert_eq!(got.len(), sent.len(), "chunk size {chunk_size}");
        for (g, s) in got.iter().zip(&sent) {
            assert_eq!(
                (g.timestamp, g.type_id, g.stream_id, &g.payload),
                (s.timestamp, s.type_id, s.stream_id, &s.payload),
                "chunk size {chunk_size}"
            );
        }
        // Byte by byte gives the same messages.
        let mut r = ChunkReader::new();
        let mut one = Vec::new();
        for b in bytes.iter() {
            r.feed(&[*b], &mut one).unwrap();
        }
        assert_eq!(one.len(), got.len() + usize::from(chunk_size != 128));
    }
}

#[test]
fn header_compression_bytes() {
    let mut w = ChunkWriter::new();
    let (_, a) = w.queue(Lane::Audio, msg(0, AUDIO, 10), false).unwrap();
    let (_, b) = w.queue(Lane::Audio, msg(21, AUDIO, 10), false).unwrap();
    let (_, c) = w.queue(Lane::Audio, msg(42, AUDIO, 10), false).unwrap();
    let (_, d) = w.queue(Lane::Audio, msg(64, AUDIO, 12), false).unwrap();
    // fmt 0: 1 + 11; fmt 2: 1 + 3; fmt 3: 1; fmt 1: 1 + 7.
    assert_eq!((a, b, c, d), (22, 14, 11, 20));
    let bytes = w.take(usize::MAX);
    assert_eq!(bytes[0], 0x04); // fmt 0, csid 4
    assert_eq!(bytes[22], 0x84); // fmt 2
    assert_eq!(bytes[36], 0xC4); // fmt 3
    assert_eq!(bytes[47], 0x44); // fmt 1
    assert_eq!(w.pending_bytes(), 0);
}

#[test]
fn extended_timestamp_is_repeated_in_continuations() {
    let mut w = ChunkWriter::new();
    let (_, size) = w
        .queue(Lane::Video, msg(0x0123_4567, VIDEO, 300), false)
        .unwrap();
    // fmt 0 + ext (16), then 2 continuations of 1 + 4.
    assert_eq!(size, 16 + 300 + 2 * 5);
    let bytes = w.take(usize::MAX);
    assert_eq!(&bytes[1..4], &[0xFF, 0xFF, 0xFF]);
    assert_eq!(&bytes[12..16], &0x0123_4567u32.to_be_bytes());
    assert_eq!(
        &bytes[16 + 128..16 + 128 + 5],
        &[0xC6, 0x01, 0x23, 0x45, 0x67]
    );
    assert_eq!(read_all(&bytes)[0].timestamp, 0x0123_4567);
}

#[test]
fn audio_overtakes_a_large_video_message_between_chunks() {
    let mut w = ChunkWriter::new();
    w.set_chunk_size(4096).unwrap();
    let preamble = w.take(usize::MAX);
    let (video_id, video_len) = w.queue(Lane::Video, msg(0, VIDEO, 100_000), true).unwrap();
    assert_eq!(w.pending_bytes(), video_len);
    // The socket takes the first 10 KB of the keyframe.
    let first = w.take(10_000);
    let base = preamble.len() as u64;
    assert!(
        w.pending_bytes_not_started() == 0,
        "only the started keyframe is pending"
    );
    // Audio arrives now.
    let (audio_id, audio_len) = w.queue(Lane::Audio, msg(10, AUDIO, 400), true).unwrap();
    assert_eq!(w.pending_bytes_not_started(), audio_len);
    let rest = w.take(usize::MAX);
    let mut all = preamble.to_vec();
    all.extend_from_slice(&first);
    all.extend_from_slice(&rest);
    let got = read_all(&all);
    assert_eq!(
        got.iter().map(|m| m.type_id).collect::<Vec<_>>(),
        [SET_CHUNK_SIZE, AUDIO, VIDEO]
    );
    // The audio left right after the chunks already staged: at most one
    // staged chunk (and the rest of the one being written) behind.
    let sent: Vec<_> = w.take_sent().collect();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0].0, audio_id, "audio is reported first");
    assert_eq!(sent[1].0, video_id);
    let audio_end = sent[0].1 - base;
    assert!(
        audio_end <= (10_000 + STAGE_TARGET + 4096 + 18 + audio_len) as u64,
        "audio ended at {audio_end}"
    );
    assert!(
        sent[1].1 - base > 90_000,
        "the keyframe ends after the audio"
    );
}

#[test]
fn sent_reports_follow_wire_order() {
    let mut w = ChunkWriter::new();
    let (v, _) = w.queue(Lane::Video, msg(0, VIDEO, 1000), true).unwrap();
    let (a, _) = w.queue(Lane::Audio, msg(0, AUDIO, 100), true).unwrap();
    let total = w.pending_bytes() as u64;
    let _ = w.take(usize::MAX);
    let sent: Vec<_> = w.take_sent().collect();
    // Audio (higher priority) is staged first; the video ends the stream.
    assert_eq!(sent[0].0, a);
    assert_eq!(sent[1], (v, total));
    assert_eq!(w.consumed(), total);
}

#[test]
fn set_chunk_size_takes_effect_after_its_message() {
    let mut w = ChunkWriter::new();
    w.queue(Lane::Command, msg(0, 20, 200), false).unwrap();
    w.set_chunk_size(4096).unwrap();
    w.queue(Lane::Video, msg(0, VIDEO, 5000), false).unwrap();
    let bytes = w.take(usize::MAX);
    let mut r = ChunkReader::new();
    let mut out = Vec::new();
    r.feed(&bytes, &mut out).unwrap();
    assert_eq!(out.len(), 3);
    assert_eq!(r.chunk_size(), 4096);
    assert_eq!(out[2].payload.len(), 5000);
    assert!(w.set_chunk_size(0).is_err());
    assert!(w.set_chunk_size(0x8000_0000).is_err());
}

#[test]
fn reader_refuses_oversized_and_headerless_input() {
    // A message length of 16 MiB - 1 is refused before any allocation.
    let huge = [0x03, 0, 0, 0, 0xFF, 0xFF, 0xFF, 20, 0, 0, 0, 0];
    let mut r = ChunkReader::new();
    assert_eq!(
        r.feed(&huge, &mut Vec::new()),
        Err(ChunkError::MessageTooLong(0xFF_FFFF))
    );
    const { assert!(0xFF_FFFF > MAX_MESSAGE_LEN) };
    // fmt 3 on a chunk stream never seen.
    let mut r = ChunkReader::new();
    assert_eq!(
        r.feed(&[0xC5], &mut Vec::new()),
        Err(ChunkError::NoPreviousHeader(5))
    );
    // Too many chunk streams (empty messages, each on a new one).
    let mut r = ChunkReader::new();
    let mut bytes = Vec::new();
    for i in 0..=MAX_CHUNK_STREAMS as u8 {
        bytes.extend_from_slice(&[0x00, i, 0, 0, 0, 0, 0, 0, 20, 0, 0, 0, 0]);
    }
    assert_eq!(
        r.feed(&bytes, &mut Vec::new()),
        Err(ChunkError::TooManyChunkStreams)
    );
    // A new header in the middle of a message.
    let mut r = ChunkReader::new();
    let start = [0x03, 0, 0, 0, 0, 1, 0, 20, 0, 0, 0, 0];
    let mut bytes = start.to_vec();
    bytes.extend_from_slice(&[7; 128]);
    bytes.extend_from_slice(&start);
    assert_eq!(
        r.feed(&bytes, &mut Vec::new()),
        Err(ChunkError::HeaderMidMessage(3))
    );
}

#[test]
fn reader_chunk_size_extremes_and_abort() {
    let mut w = ChunkWriter::new();
    w.set_chunk_size(super::MAX_CHUNK_SIZE).unwrap();
    w.queue(Lane::Video, msg(0, VIDEO, 70_000), false).unwrap();
    let got = read_all(&w.take(usize::MAX));
    assert_eq!(got[1].payload.len(), 70_000);
    // Invalid sizes.
    for size in [0u32, 0x8000_0000] {
        let mut bytes = vec![0x02, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0];
        bytes.extend_from_slice(&size.to_be_bytes());
        let mut r = ChunkReader::new();
        assert_eq!(
            r.feed(&bytes, &mut Vec::new()),
            Err(ChunkError::BadChunkSize)
        );
    }
    // Abort drops a partial message and frees its bytes.
    let mut r = ChunkReader::new();
    let mut out = Vec::new();
    r.feed(&[0x03, 0, 0, 0, 0, 1, 0, 20, 0, 0, 0, 0], &mut out)
        .unwrap();
    r.feed(&[1; 128], &mut out).unwrap();
    assert_eq!(r.buffered(), 256);
    r.feed(
        &[0x02, 0, 0, 0, 0, 0, 4, 2, 0, 0, 0, 0, 0, 0, 0, 3],
        &mut out,
    )
    .unwrap();
    assert_eq!(r.buffered(), 0);
    assert_eq!(out.len(), 1);
}

#[test]
fn interleaved_chunk_streams_reassemble() {
    // Two 300-byte messages on chunk streams 4 and 6, chunks alternating
    // (128 + 128 + 44 each).
    let mut bytes = Vec::new();
    for (csid, fill) in [(4u8, 0xAAu8), (6, 0xBB)] {
        bytes.extend_from_slice(&[csid, 0, 0, 1, 0, 1, 0x2C, 9, 1, 0, 0, 0]);
        bytes.extend_from_slice(&[fill; 128]);
    }
    for n in [128usize, 44] {
        for (csid, fill) in [(4u8, 0xAAu8), (6, 0xBB)] {
            bytes.push(0xC0 | csid);
            bytes.extend_from_slice(&vec![fill; n]);
        }
    }
    let got = read_all(&bytes);
    assert_eq!(got.len(), 2);
    assert!(got.iter().all(|m| m.payload.len() == 300));
    assert!(got[0].payload.iter().all(|b| *b == 0xAA));
    assert!(got[1].payload.iter().all(|b| *b == 0xBB));
}
