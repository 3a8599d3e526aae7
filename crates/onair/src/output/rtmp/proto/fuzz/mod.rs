//! Hostile-server proof of the protocol layer: time-bounded property and
//! fuzz tests (proptest) over everything a server can send — the handshake,
//! the chunk reader, AMF0, and the client session on top — with random and
//! mutated inputs: chunk sizes 1 and 2^31-1, interleaved chunk streams,
//! huge message lengths, deep AMF nesting, unknown message types, `_error`
//! and odd onStatus. The properties: no panic, every bound held, and valid
//! input read back exactly.
//!
//! Why proptest and not cargo-fuzz: it runs on stable Rust inside `cargo
//! test`, shrinks a failure to a small case, and is well kept (proptest-rs).
//! Each target runs for [`FUZZ_BUDGET`], one target at a time (set
//! `ONAIR_FUZZ_SECS` for a longer local campaign). The committed corpus
//! (`fuzz/corpus/`, made by the ignored test `write_corpus`) seeds the
//! mutations and is replayed whole on every run; anything a campaign finds
//! becomes an explicit case in `regressions` below.

use std::fmt::Debug;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseResult, TestRunner};

use super::amf0::{self, Value};
use super::chunk::reader::{ChunkReader, MAX_BUFFERED, MAX_CHUNK_STREAMS};
use super::chunk::writer::{Lane, OutMessage};
use super::chunk::{RawMessage, MAX_CHUNK_SIZE};
use super::client::{
    ClientConfig, ClientSession, Event, State, MAX_CONTROL_BACKLOG, MAX_TC_URL_LEN,
    RECONNECT_REQUEST,
};
use super::handshake::{ClientHandshake, HandshakeStep, PACKET_LEN};
use super::message::{self, Message};
use crate::output::rtmp::resolve_tc_url;
use crate::output::url::RtmpUrl;
use proptest::test_runner::TestCaseError;

mod gen;

/// Wall-clock time each fuzz target runs in the test suite.
pub const FUZZ_BUDGET: Duration = Duration::from_secs(2);

fn budget() -> Duration {
    std::env::var("ONAIR_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .map_or(FUZZ_BUDGET, Duration::from_secs_f64)
}

/// One fuzz target at a time: each burns a core for its whole budget, and
/// the test script runs real-time pipeline tests beside the unit tests on a
/// 2-core machine.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Runs `test` on values of `strategy` until the budget is spent; a
/// failure is shrunk and reported with its minimal input.
fn fuzz<S>(name: &str, strategy: S, test: impl Fn(S::Value) -> TestCaseResult)
where
    S: Strategy,
    S::Value: Debug,
{
    fuzz_for(name, budget(), strategy, test);
}

/// [`fuzz`] for `time` (the smaller targets take half a budget, so that
/// all of them stay near 15 s in CI).
fn fuzz_for<S>(name: &str, time: Duration, strategy: S, test: impl Fn(S::Value) -> TestCaseResult)
where
    S: Strategy,
    S::Value: Debug,
{
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let config = Config {
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let start = Instant::now();
    let mut cases = 0u64;
    while start.elapsed() < time {
        let tree = strategy
            .new_tree(&mut runner)
            .unwrap_or_else(|e| panic!("{name}: strategy: {e}"));
        if let Err(e) = runner.run_one(tree, &test) {
            panic!("{name}: {e}");
        }
        cases += 1;
    }
    eprintln!("fuzz {name}: {cases} cases in {:?}", start.elapsed());
}

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/output/rtmp/proto/fuzz/corpus")
}

/// The committed corpus: (file name, bytes).
fn corpus() -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(corpus_dir())
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    files
        .into_iter()
        .filter_map(|p| {
            let name = p.file_name()?.to_string_lossy().into_owned();
            Some((name, std::fs::read(&p).ok()?))
        })
        .collect()
}

// ---- what each target feeds ----

/// `bytes` cut into consecutive pieces of the sizes in `splits` (each at
/// least 1; the last piece takes the rest once `splits` runs out).
fn pieces<'a>(bytes: &'a [u8], splits: &'a [usize]) -> impl Iterator<Item = &'a [u8]> + 'a {
    let mut rest = bytes;
    let mut sizes = splits.iter().copied();
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let n = sizes.next().unwrap_or(rest.len()).clamp(1, rest.len());
        let (piece, tail) = rest.split_at(n);
        rest = tail;
        Some(piece)
    })
}

/// Feeds `bytes` to a chunk reader in pieces of `splits`; checks the bounds
/// after each piece. Returns the messages, or None after an error.
fn read_chunks(bytes: &[u8], splits: &[usize]) -> Option<Vec<RawMessage>> {
    let mut r = ChunkReader::new();
    let mut out = Vec::new();
    for piece in pieces(bytes, splits) {
        let ok = r.feed(piece, &mut out).is_ok();
        assert!(r.buffered() <= MAX_BUFFERED, "buffered {}", r.buffered());
        assert!(r.chunk_streams() <= MAX_CHUNK_STREAMS);
        if !ok {
            return None;
        }
        for m in &out {
            // Whatever the reader let through parses or fails cleanly.
            let _ = Message::parse(m);
        }
    }
    Some(out)
}

fn test_config() -> ClientConfig {
    ClientConfig {
        app: "live".into(),
        tc_url: "rtmp://127.0.0.1/live".into(),
        flash_ver: "FMLE/3.0 (compatible; onair)".into(),
        stream_key: "fuzzkey".into(),
        chunk_size: 4096,
        window_ack_size: 2_500_000,
        extra_connect: Vec::new(),
    }
}

/// Feeds server bytes to a client session that has sent `connect`; checks
/// that what it queues stays bounded. Returns whether it ended in an error.
fn session_on(bytes: &[u8], splits: &[usize]) -> bool {
    let mut c = ClientSession::new(test_config());
    let _ = c.start();
    let base = c.pending_bytes();
    let mut events = Vec::new();
    for piece in pieces(bytes, splits) {
        let result = c.handle_input(piece, &mut events);
        // connect's follow-ups (a few hundred bytes), plus bounded control.
        assert!(
            c.pending_bytes() <= base + 1024 + MAX_CONTROL_BACKLOG + 64,
            "session queued {} bytes",
            c.pending_bytes()
        );
        assert!(events.len() <= 4 * bytes.len() + 4);
        if result.is_err() {
            return true;
        }
        // A client that publishes may queue media whatever the server did.
        let _ = c.queue_media(false, 0, Bytes::from_static(&[0xAF, 1]));
        let _ = c.take(usize::MAX);
    }
    false
}

fn handshake_on(bytes: &[u8], splits: &[usize]) {
    let (mut hs, _) = ClientHandshake::start(1, &[7; 16]);
    let mut rest = bytes;
    let mut fed = 0usize;
    let mut sent = 0usize;
    let mut i = 0;
    while !rest.is_empty() {
        let n = splits
            .get(i)
            .copied()
            .unwrap_or(rest.len())
            .clamp(1, rest.len());
        i += 1;
        let (piece, tail) = rest.split_at(n);
        rest = tail;
        match hs.feed(piece, 0) {
            Err(_) => {
                assert_ne!(bytes[0], 3, "only a bad version fails");
                return;
            }
            Ok(HandshakeStep::InProgress { send }) => {
                sent += send.len();
                fed += piece.len();
                assert!(fed < 1 + 2 * PACKET_LEN);
            }
            Ok(HandshakeStep::Done { send, leftover, .. }) => {
                sent += send.len();
                assert_eq!(fed + piece.len() - leftover.len(), 1 + 2 * PACKET_LEN);
                assert_eq!(sent, PACKET_LEN, "C2 exactly once");
                return;
            }
        }
    }
}

use self::gen::*;

// ---- targets ----

#[test]
fn fuzz_chunk_round_trip() {
    fuzz(
        "chunk round trip",
        (chunk_size(), messages(), splits()),
        |(size, msgs, splits)| {
            let (bytes, sent) = write_messages(size, &msgs);
            let got = read_chunks(&bytes, &splits).expect("valid chunks read");
            let got: Vec<_> = got.into_iter().filter(|m| m.type_id != 1).collect();
            prop_assert_eq!(got.len(), sent.len());
            // Per chunk stream, messages arrive in queue order and intact.
            for lane in Lane::ALL {
                let mine: Vec<_> = msgs
                    .iter()
                    .zip(&sent)
                    .filter(|((l, ..), _)| Lane::ALL[*l] == lane)
                    .map(|(_, m)| m)
                    .collect();
                let theirs: Vec<_> = got.iter().filter(|m| m.csid == lane.csid()).collect();
                prop_assert_eq!(mine.len(), theirs.len());
                for (m, g) in mine.iter().zip(theirs) {
                    prop_assert_eq!(
                        (m.timestamp, m.type_id, m.stream_id, &m.payload),
                        (g.timestamp, g.type_id, g.stream_id, &g.payload)
                    );
                }
            }
            Ok(())
        },
    );
}

#[test]
fn fuzz_chunk_reader_mutated_and_random() {
    let corpus = corpus();
    fuzz(
        "chunk reader",
        (
            chunk_size(),
            messages(),
            mutations(),
            splits(),
            vec(any::<u8>(), 0..600),
            0usize..corpus.len().max(1),
        ),
        |(size, msgs, edits, splits, random, pick)| {
            let (bytes, _) = write_messages(size, &msgs);
            read_chunks(&mutate(&bytes, &edits), &splits);
            read_chunks(&random, &splits);
            if let Some((_, seed)) = corpus.get(pick) {
                read_chunks(&mutate(seed, &edits), &splits);
            }
            Ok(())
        },
    );
}

#[test]
fn fuzz_chunk_reader_random_headers() {
    // Headers with every field random (huge lengths, any fmt and csid
    // form, extended timestamps), each followed by some payload.
    let header = (
        0u8..4,
        prop_oneof![Just(0u8), Just(1), 2u8..64],
        any::<[u8; 17]>(),
        0usize..300,
    );
    fuzz(
        "chunk headers",
        (vec(header, 1..40), splits()),
        |(headers, splits)| {
            let mut bytes = Vec::new();
            for (fmt, csid, rest, payload) in headers {
                bytes.push((fmt << 6) | csid);
                bytes.extend_from_slice(&rest);
                bytes.extend(std::iter::repeat_n(0x5A, payload));
            }
            read_chunks(&bytes, &splits);
            Ok(())
        },
    );
}

#[test]
fn fuzz_amf0() {
    fuzz(
        "amf0",
        (
            vec(amf_value(), 0..4),
            mutations(),
            vec(prop_oneof![0u8..=0x11, any::<u8>()], 0..256),
        ),
        |(values, edits, random)| {
            let bytes = amf0::encode_all(&values);
            let back = amf0::decode_all(&bytes);
            prop_assert_eq!(back, Ok(values));
            let _ = amf0::decode_all(&mutate(&bytes, &edits));
            let _ = amf0::decode_all(&random);
            Ok(())
        },
    );
    // Nesting of any depth, of any container kind: refused past the limit.
    fuzz_for(
        "amf0 depth",
        budget() / 2,
        (vec(0u8..3, 0..200), any::<bool>()),
        |(kinds, close)| {
            let mut bytes = Vec::new();
            for k in &kinds {
                match k {
                    0 => bytes.extend_from_slice(&[0x03, 0, 1, b'k']),
                    1 => bytes.extend_from_slice(&[0x08, 0, 0, 0, 1, 0, 1, b'k']),
                    _ => bytes.extend_from_slice(&[0x0A, 0, 0, 0, 1]),
                }
            }
            bytes.push(0x05);
            if close {
                bytes.extend(std::iter::repeat_n([0, 0, 9], kinds.len()).flatten());
            }
            let r = amf0::decode_all(&bytes);
            if kinds.len() > amf0::MAX_DEPTH {
                prop_assert_eq!(r, Err(amf0::Amf0Error::TooDeep));
            }
            Ok(())
        },
    );
}

#[test]
fn fuzz_handshake() {
    let answer = (any::<bool>(), vec(any::<u8>(), 0..3200), splits());
    fuzz("handshake", answer, |(rtmp3, mut bytes, splits)| {
        if rtmp3 && !bytes.is_empty() {
            bytes[0] = 3;
        }
        if !bytes.is_empty() {
            handshake_on(&bytes, &splits);
        }
        Ok(())
    });
}

#[test]
fn fuzz_client_session() {
    let corpus = corpus();
    fuzz(
        "client session",
        (
            server_stream(),
            mutations(),
            any::<bool>(),
            splits(),
            0usize..corpus.len().max(1),
        ),
        |((size, msgs), edits, mutated, splits, pick)| {
            let bytes = serialize(size, &msgs);
            let bytes = if mutated {
                mutate(&bytes, &edits)
            } else {
                bytes
            };
            session_on(&bytes, &splits);
            if let Some((_, seed)) = corpus.get(pick) {
                session_on(&mutate(seed, &edits), &splits);
            }
            Ok(())
        },
    );
}

/// A live session, then an Enhanced RTMP reconnect request whose info
/// object carries any `tcUrl` (any AMF value, strings of any length and
/// shape) and any other properties: the session reports the request, never
/// fails on it, keeps publishing, and the URL resolution never panics and
/// keeps our stream key.
#[test]
fn fuzz_reconnect_request() {
    let tc_url = prop_oneof![
        vec(any::<char>(), 0..40).prop_map(|c| Value::String(String::from_iter(c))),
        "(rtmps?://|//|/)?[a-z0-9.:\\[\\]/?=&%-]{0,40}".prop_map(Value::String),
        (0usize..3000).prop_map(|n| Value::String("/".repeat(n))),
        amf_value(),
    ];
    let extra = vec(
        (
            vec(any::<char>(), 1..6).prop_map(String::from_iter),
            amf_value(),
        ),
        0..3,
    );
    fuzz_for(
        "reconnect request",
        budget() / 2,
        (tc_url, extra, any::<bool>(), splits()),
        |(tc_url, extra, with_url, splits)| {
            let mut c = live_session();
            let mut info = vec![
                ("level".to_string(), Value::String("status".into())),
                ("code".to_string(), Value::String(RECONNECT_REQUEST.into())),
            ];
            if with_url {
                info.push(("tcUrl".to_string(), tc_url.clone()));
            }
            info.extend(extra);
            let msg = message::command(
                0,
                &[
                    Value::String("onStatus".into()),
                    Value::Number(0.0),
                    Value::Null,
                    Value::Object(info),
                ],
            );
            let mut events = Vec::new();
            for piece in pieces(&serialize(4096, &[msg]), &splits) {
                prop_assert!(c.handle_input(piece, &mut events).is_ok());
            }
            prop_assert_eq!(c.state(), State::Live);
            let requests: Vec<_> = events
                .iter()
                .filter_map(|e| match e {
                    Event::ReconnectRequest { tc_url } => Some(tc_url.clone()),
                    _ => None,
                })
                .collect();
            prop_assert_eq!(requests.len(), 1, "{:?}", events);
            if let Some(url) = &requests[0] {
                prop_assert!(url.len() <= MAX_TC_URL_LEN);
            }
            let current = RtmpUrl::parse("rtmp://127.0.0.1:1935/live/fuzzkey", None)
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            if let Ok(to) = resolve_tc_url(&current, requests[0].as_deref()) {
                prop_assert_eq!(to.stream_key.as_str(), "fuzzkey");
            }
            prop_assert!(c
                .queue_media(true, 0, Bytes::from_static(&[0x17, 1]))
                .is_ok());
            Ok(())
        },
    );
}

/// A session the corpus's `accept-flow` took to `Live`.
fn live_session() -> ClientSession {
    let mut c = ClientSession::new(test_config());
    let _ = c.start();
    let accept = corpus()
        .into_iter()
        .find(|(n, _)| n == "accept-flow.bin")
        .map(|(_, b)| b)
        .unwrap_or_default();
    let mut events = Vec::new();
    let _ = c.handle_input(&accept, &mut events);
    assert_eq!(c.state(), State::Live, "accept-flow did not make it live");
    c
}

/// Every corpus file through every target, whole and byte by byte.
#[test]
fn corpus_replays_cleanly() {
    let corpus = corpus();
    assert!(
        corpus.len() >= 8,
        "corpus missing: {}",
        corpus_dir().display()
    );
    for (name, bytes) in &corpus {
        let ones = vec![1; bytes.len()];
        for splits in [&[][..], &ones[..]] {
            read_chunks(bytes, splits);
            session_on(bytes, splits);
            let _ = amf0::decode_all(bytes);
            if !bytes.is_empty() {
                handshake_on(bytes, splits);
            }
        }
        eprintln!("corpus {name}: {} bytes ok", bytes.len());
    }
}

/// Inputs that once broke something, or that pin a decision.
mod regressions {
    use super::*;

    #[test]
    fn fmt3_header_alone_at_the_end_of_input_is_processed() {
        // An empty message continued by a lone fmt 3 header: the header is
        // complete without payload, and must not wait for more input.
        let mut bytes = vec![0x03, 0, 0, 0, 0, 0, 0, 20, 0, 0, 0, 0];
        bytes.push(0xC3);
        let got = read_chunks(&bytes, &[]).unwrap();
        assert_eq!(got.len(), 2);
    }

    #[test]
    fn reconnect_request_corpus_is_reported_not_fatal() {
        let mut c = live_session();
        let bytes = corpus()
            .into_iter()
            .find(|(n, _)| n == "reconnect-request.bin")
            .map(|(_, b)| b)
            .expect("reconnect-request.bin in the corpus");
        let mut events = Vec::new();
        c.handle_input(&bytes, &mut events).expect("not an error");
        let urls: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                Event::ReconnectRequest { tc_url } => Some(tc_url.clone()),
                _ => None,
            })
            .collect();
        // Absolute, relative, none, too long (dropped), not a string.
        assert_eq!(
            urls,
            [
                Some("rtmp://127.0.0.2:1936/other".to_string()),
                Some("/live2".to_string()),
                None,
                None,
                None
            ]
        );
        assert_eq!(c.state(), State::Live);
        let here = RtmpUrl::parse("rtmps://a.example:443/live/fuzzkey", None).unwrap();
        let to = |u: &str| resolve_tc_url(&here, Some(u)).map(|u| u.to_string());
        assert_eq!(to("/live2").unwrap(), "rtmps://a.example:443/live2/****");
        assert_eq!(
            to("//b.example/x/y").unwrap(),
            "rtmps://b.example:443/x/y/****"
        );
        assert!(to("live2").is_err());
        assert_eq!(
            resolve_tc_url(&here, None).unwrap().to_string(),
            here.to_string()
        );
    }

    #[test]
    fn real_amf3_data_is_set_aside_not_fatal() {
        let raw = RawMessage {
            csid: 5,
            timestamp: 0,
            type_id: message::DATA_AMF3,
            stream_id: 1,
            payload: Bytes::from_static(&[0, 0x11, 0x0A, 0x0B, 0x01]),
        };
        assert_eq!(Message::parse(&raw), Ok(Message::Other(message::DATA_AMF3)));
    }
}

/// Writes the seed corpus (run with `--ignored` after changing it, and
/// commit the files).
#[test]
#[ignore]
fn write_corpus() {
    let dir = corpus_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let cmd = |values: &[Value]| message::command(0, values);
    let s = |t: &str| Value::String(t.into());
    let status = |code: &str| {
        cmd(&[
            s("onStatus"),
            Value::Number(0.0),
            Value::Null,
            Value::Object(vec![("level".into(), s("error")), ("code".into(), s(code))]),
        ])
    };
    let ping = OutMessage {
        timestamp: 0,
        type_id: message::USER_CONTROL,
        stream_id: 0,
        payload: Bytes::from_static(&[0, 6, 0, 0, 0, 1]),
    };
    let accept_connect = cmd(&[s("_result"), Value::Number(1.0), Value::Null, Value::Null]);
    let mut deep = vec![s("onStatus"), Value::Number(0.0)];
    let mut nested = Value::Null;
    for _ in 0..40 {
        nested = Value::Object(vec![("a".into(), nested)]);
    }
    deep.push(nested);
    let files: Vec<(&str, u32, Vec<OutMessage>)> = vec![
        (
            "accept-flow",
            4096,
            vec![
                message::window_ack_size(5_000_000),
                accept_connect.clone(),
                cmd(&[s("onFCPublish")]),
                cmd(&[
                    s("_result"),
                    Value::Number(4.0),
                    Value::Null,
                    Value::Number(1.0),
                ]),
                status("NetStream.Publish.Start"),
            ],
        ),
        (
            "chunk-size-1",
            1,
            vec![accept_connect.clone(), status("NetStream.Publish.BadName")],
        ),
        (
            "chunk-size-max",
            MAX_CHUNK_SIZE,
            vec![accept_connect.clone(), ping.clone()],
        ),
        ("deep-amf", 128, vec![cmd(&deep)]),
        (
            "error-connect",
            128,
            vec![cmd(&[
                s("_error"),
                Value::Number(1.0),
                Value::Null,
                Value::Null,
            ])],
        ),
        (
            "odd-status",
            128,
            vec![
                status(""),
                status("NetStream.Publish.Failed"),
                cmd(&[s("onStatus")]),
            ],
        ),
        ("ping-flood", 128, vec![ping; 300]),
        (
            "unknown-types",
            128,
            (3u8..=40)
                .map(|t| OutMessage {
                    timestamp: 0,
                    type_id: t,
                    stream_id: 0,
                    payload: Bytes::from(vec![t; 9]),
                })
                .collect(),
        ),
    ];
    for (name, size, msgs) in files {
        std::fs::write(dir.join(format!("{name}.bin")), serialize(size, &msgs)).unwrap();
    }
    let reconnect = |tc_url: Option<Value>| {
        let mut info = vec![
            ("level".into(), s("status")),
            ("code".into(), s(RECONNECT_REQUEST)),
            ("description".into(), s("server maintenance")),
        ];
        info.extend(tc_url.map(|u| ("tcUrl".to_string(), u)));
        cmd(&[
            s("onStatus"),
            Value::Number(0.0),
            Value::Null,
            Value::Object(info),
        ])
    };
    std::fs::write(
        dir.join("reconnect-request.bin"),
        serialize(
            4096,
            &[
                reconnect(Some(s("rtmp://127.0.0.2:1936/other"))),
                reconnect(Some(s("/live2"))),
                reconnect(None),
                reconnect(Some(Value::String("x".repeat(MAX_TC_URL_LEN + 1)))),
                reconnect(Some(Value::Number(7.0))),
            ],
        ),
    )
    .unwrap();
    // Hand-made: a huge message length, and two chunk streams interleaved.
    std::fs::write(
        dir.join("huge-length.bin"),
        [0x03, 0, 0, 0, 0xFF, 0xFF, 0xFF, 20, 0, 0, 0, 0, 2, 0, 4],
    )
    .unwrap();
    let mut inter = Vec::new();
    for csid in [4u8, 6] {
        inter.extend_from_slice(&[csid, 0, 0, 1, 0, 1, 0x2C, 9, 1, 0, 0, 0]);
        inter.extend_from_slice(&[csid; 128]);
    }
    for n in [128usize, 44] {
        for csid in [4u8, 6] {
            inter.push(0xC0 | csid);
            inter.extend(std::iter::repeat_n(csid, n));
        }
    }
    std::fs::write(dir.join("interleaved.bin"), inter).unwrap();
}
