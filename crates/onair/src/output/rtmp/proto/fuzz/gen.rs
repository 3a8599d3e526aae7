//! What the fuzz targets generate: AMF0 value trees, chunked message
//! streams, random server messages, mutations and split points.

use bytes::Bytes;
use proptest::collection::vec;
use proptest::prelude::*;

use super::super::amf0::Value;
use super::super::chunk::writer::{ChunkWriter, Lane, OutMessage};
use super::super::chunk::MAX_CHUNK_SIZE;
use super::super::message;

pub(super) fn amf_value() -> impl Strategy<Value = Value> {
    let text = vec(any::<char>(), 0..12).prop_map(String::from_iter);
    let leaf = prop_oneof![
        any::<f64>()
            .prop_filter("comparable", |f| !f.is_nan())
            .prop_map(Value::Number),
        any::<bool>().prop_map(Value::Boolean),
        text.clone().prop_map(Value::String),
        Just(Value::Null),
        Just(Value::Undefined),
        (-1e13f64..1e13, any::<i16>()).prop_map(|(ms, tz)| Value::Date(ms, tz)),
    ];
    leaf.prop_recursive(8, 64, 6, move |inner| {
        let key = vec(any::<char>(), 1..8).prop_map(String::from_iter);
        prop_oneof![
            vec((key.clone(), inner.clone()), 0..6).prop_map(Value::Object),
            vec((key, inner.clone()), 0..6).prop_map(Value::EcmaArray),
            vec(inner, 0..6).prop_map(Value::StrictArray),
        ]
    })
}

/// Edits applied to valid bytes: (position, kind, byte).
pub(super) fn mutations() -> impl Strategy<Value = Vec<(usize, u8, u8)>> {
    vec((any::<usize>(), 0u8..4, any::<u8>()), 1..8)
}

pub(super) fn mutate(bytes: &[u8], edits: &[(usize, u8, u8)]) -> Vec<u8> {
    let mut b = bytes.to_vec();
    for &(pos, kind, byte) in edits {
        let at = if b.is_empty() { 0 } else { pos % (b.len() + 1) };
        match kind {
            0 if at < b.len() => b[at] = byte,
            1 => b.insert(at, byte),
            2 if at < b.len() => {
                b.remove(at);
            }
            _ => b.truncate(at.max(1)),
        }
    }
    b
}

pub(super) fn chunk_size() -> impl Strategy<Value = u32> {
    prop_oneof![
        Just(1u32),
        Just(MAX_CHUNK_SIZE),
        Just(128),
        Just(4096),
        1u32..600
    ]
}

/// Messages as (lane, timestamp, type id, length); type ids 1 and 2 (chunk
/// control) excluded so the stream reads back as written.
pub(super) fn messages() -> impl Strategy<Value = Vec<(usize, u32, u8, usize)>> {
    let ts = prop_oneof![
        any::<u32>(),
        0u32..100_000,
        Just(0x00FF_FFFF),
        Just(u32::MAX)
    ];
    let type_id = any::<u8>().prop_filter("not chunk control", |t| *t > 2);
    vec((0usize..5, ts, type_id, 0usize..3000), 1..16)
}

pub(super) fn write_messages(
    size: u32,
    msgs: &[(usize, u32, u8, usize)],
) -> (Vec<u8>, Vec<OutMessage>) {
    let mut w = ChunkWriter::new();
    if size != 128 {
        w.set_chunk_size(size).expect("valid size");
    }
    let mut sent = Vec::new();
    for (i, &(lane, timestamp, type_id, len)) in msgs.iter().enumerate() {
        let m = OutMessage {
            timestamp,
            type_id,
            stream_id: (i % 3) as u32,
            payload: Bytes::from(vec![i as u8; len]),
        };
        w.queue(Lane::ALL[lane], m.clone(), false).expect("queued");
        sent.push(m);
        // Interleave: take a little between queueing.
        let _ = w.front();
    }
    (w.take(usize::MAX).to_vec(), sent)
}

/// A random server message, serialized by a writer in a server's role.
pub(super) fn server_message() -> impl Strategy<Value = OutMessage> {
    let name = prop_oneof![
        Just("_result".to_string()),
        Just("_error".to_string()),
        Just("onStatus".to_string()),
        Just("onFCPublish".to_string()),
        Just("onBWDone".to_string()),
        Just("close".to_string()),
        vec(any::<char>(), 0..10).prop_map(String::from_iter),
    ];
    let code = prop_oneof![
        Just("NetStream.Publish.Start"),
        Just("NetStream.Publish.BadName"),
        Just("NetStream.Publish.Failed"),
        Just("NetConnection.Connect.Rejected"),
        Just("NetStream.Unpublish.Success"),
        Just("Odd.Code"),
    ];
    let command = (
        name,
        prop_oneof![0.0f64..8.0, any::<f64>()],
        vec(amf_value(), 0..3),
        code,
        any::<bool>(),
    )
        .prop_map(|(name, txn, mut args, code, with_info)| {
            if with_info {
                args.push(Value::Object(vec![
                    ("level".into(), Value::String("error".into())),
                    ("code".into(), Value::String(code.into())),
                ]));
            }
            let mut values = vec![Value::String(name), Value::Number(txn.trunc())];
            values.extend(args);
            message::command(0, &values)
        });
    let control = (3u8..=6, any::<u32>(), any::<u8>()).prop_map(|(t, v, x)| OutMessage {
        timestamp: 0,
        type_id: t,
        stream_id: 0,
        payload: Bytes::from([&v.to_be_bytes()[..], &[x]].concat()),
    });
    let ping = any::<u32>().prop_map(|t| OutMessage {
        timestamp: 0,
        type_id: message::USER_CONTROL,
        stream_id: 0,
        payload: Bytes::from([&6u16.to_be_bytes()[..], &t.to_be_bytes()].concat()),
    });
    let other = (
        any::<u8>().prop_filter("not chunk control", |t| *t > 2),
        vec(any::<u8>(), 0..64),
    )
        .prop_map(|(t, p)| OutMessage {
            timestamp: 0,
            type_id: t,
            stream_id: 1,
            payload: Bytes::from(p),
        });
    prop_oneof![4 => command, 2 => control, 2 => ping, 1 => other]
}

pub(super) fn server_stream() -> impl Strategy<Value = (u32, Vec<OutMessage>)> {
    (chunk_size(), vec(server_message(), 1..24))
}

pub(super) fn serialize(size: u32, msgs: &[OutMessage]) -> Vec<u8> {
    let mut w = ChunkWriter::new();
    if size != 128 {
        let _ = w.set_chunk_size(size);
    }
    for m in msgs {
        let lane = if m.type_id == message::COMMAND_AMF0 {
            Lane::Command
        } else {
            Lane::Control
        };
        let _ = w.queue(lane, m.clone(), false);
    }
    w.take(usize::MAX).to_vec()
}

pub(super) fn splits() -> impl Strategy<Value = Vec<usize>> {
    vec(prop_oneof![1usize..4, 1usize..5000], 0..32)
}
