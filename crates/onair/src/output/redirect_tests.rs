//! Enhanced RTMP's `NetConnection.Connect.ReconnectRequest`, end to end: a
//! stream published through a StreamOutput to server A (FFmpeg 9's
//! listener) behind an RTMP-aware proxy that, mid-stream, makes A's side say
//! "reconnect to B" (a second FFmpeg 9 listener). The viewer's two
//! recordings together must miss at most one GOP of video, repeat nothing,
//! and decode cleanly; the old connection must be closed; stats count one
//! redirect and no reconnect.
//!
//! The proxy re-frames what the server sends (our chunk reader in, our chunk
//! writer out), so the injected onStatus lands between whole messages
//! whatever the server's chunking; what the client sends passes untouched.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use onair_testkit::ffmpeg9;

use super::enhanced_rtmp_tests::{fixture, NoKeyframes, GOP_FRAMES};
use super::rtmp::proto::amf0::Value;
use super::rtmp::proto::chunk::reader::ChunkReader;
use super::rtmp::proto::chunk::writer::{ChunkWriter, Lane, OutMessage};
use super::rtmp::proto::client::RECONNECT_REQUEST;
use super::rtmp::proto::message;
use super::stream::{StreamOutput, StreamOutputConfig};
use super::url::RtmpUrl;
use crate::packet::VideoCodec;

/// S0 + S1 + S2.
const HANDSHAKE_LEN: usize = 1 + 1536 + 1536;

/// One-connection proxy to `upstream` that injects a reconnect request
/// (with `tc_url`) when [`InjectingProxy::inject`] is called.
struct InjectingProxy {
    port: u16,
    inject: Arc<Mutex<Option<String>>>,
    done: Arc<AtomicBool>,
}

impl InjectingProxy {
    fn start(upstream: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let inject: Arc<Mutex<Option<String>>> = Arc::default();
        let done = Arc::new(AtomicBool::new(false));
        let (inject2, done2) = (inject.clone(), done.clone());
        std::thread::spawn(move || {
            let Ok((client, _)) = listener.accept() else {
                return;
            };
            let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                return;
            };
            let (mut c_read, mut s_write) = (
                client.try_clone().expect("clone"),
                server.try_clone().expect("clone"),
            );
            // Client to server: untouched.
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut c_read, &mut s_write);
                let _ = s_write.shutdown(std::net::Shutdown::Write);
            });
            server_to_client(server, client, &inject2);
            done2.store(true, Ordering::Release);
        });
        Self { port, inject, done }
    }

    fn inject(&self, tc_url: String) {
        *self.inject.lock().expect("lock") = Some(tc_url);
    }
}

/// Re-frames the server's messages to the client; injects on request.
fn server_to_client(mut server: TcpStream, mut client: TcpStream, inject: &Mutex<Option<String>>) {
    let mut handshake = vec![0u8; HANDSHAKE_LEN];
    if server.read_exact(&mut handshake).is_err() || client.write_all(&handshake).is_err() {
        return;
    }
    let _ = server.set_read_timeout(Some(Duration::from_millis(20)));
    let mut reader = ChunkReader::new();
    let mut writer = ChunkWriter::new();
    let mut messages = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match server.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                messages.clear();
                if reader.feed(&buf[..n], &mut messages).is_err() {
                    return;
                }
                for m in messages.drain(..) {
                    if m.type_id == message::SET_CHUNK_SIZE && m.payload.len() >= 4 {
                        let size = u32::from_be_bytes([
                            m.payload[0],
                            m.payload[1],
                            m.payload[2],
                            m.payload[3],
                        ]) & 0x7FFF_FFFF;
                        let _ = writer.set_chunk_size(size);
                        continue;
                    }
                    let lane = if m.type_id <= message::SET_PEER_BANDWIDTH {
                        Lane::Control
                    } else {
                        Lane::Command
                    };
                    let out = OutMessage {
                        timestamp: m.timestamp,
                        type_id: m.type_id,
                        stream_id: m.stream_id,
                        payload: m.payload,
                    };
                    let _ = writer.queue(lane, out, false);
                }
            }
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return,
        }
        if let Some(tc_url) = inject.lock().expect("lock").take() {
            let info = Value::Object(vec![
                ("level".into(), Value::String("status".into())),
                ("code".into(), Value::String(RECONNECT_REQUEST.into())),
                (
                    "description".into(),
                    Value::String("the server is going away".into()),
                ),
                ("tcUrl".into(), Value::String(tc_url)),
            ]);
            let cmd = message::command(
                0,
                &[
                    Value::String("onStatus".into()),
                    Value::Number(0.0),
                    Value::Null,
                    info,
                ],
            );
            let _ = writer.queue(Lane::Command, cmd, false);
        }
        loop {
            let front = writer.front();
            if front.is_empty() {
                break;
            }
            let n = front.len();
            if client.write_all(front).is_err() {
                return;
            }
            writer.advance(n);
        }
    }
}

#[test]
fn reconnect_request_moves_the_stream_without_a_gap() {
    let Some(bin) = ffmpeg9::require_ffmpeg9() else {
        return;
    };
    const FRAMES: u32 = 90;
    let dir = tempfile::tempdir().expect("tempdir");
    let (headers, packets) = fixture(&bin, VideoCodec::Hevc, dir.path(), FRAMES);
    let (a_path, b_path) = (dir.path().join("a.mkv"), dir.path().join("b.mkv"));
    let mut a = ffmpeg9::listen(&bin, &a_path, "k").expect("listener A");
    let mut b = ffmpeg9::listen(&bin, &b_path, "k").expect("listener B");
    let proxy = InjectingProxy::start(a.port());
    let url =
        RtmpUrl::parse(&format!("rtmp://127.0.0.1:{}/live/k", proxy.port), None).expect("url");
    let (events, _events_rx) = crossbeam_channel::unbounded();
    let mut output = StreamOutput::start(
        0,
        StreamOutputConfig::new(url),
        &headers,
        Arc::new(NoKeyframes),
        None,
        events,
    )
    .expect("output");
    let live = onair_testkit::wait_for(Duration::from_secs(5), || {
        (output.state() == crate::stats::LinkState::Live).then_some(())
    });
    assert!(live.is_some(), "not live: {:?}", output.last_error());
    let sink = output.sink();
    let start = Instant::now();
    let frame = Duration::from_nanos(1_000_000_000 / 30);
    for (i, p) in packets.into_iter().enumerate() {
        if let Some(wait) = (frame * i as u32).checked_sub(start.elapsed()) {
            std::thread::sleep(wait);
        }
        if i == 25 {
            proxy.inject(format!("rtmp://127.0.0.1:{}/live", b.port()));
        }
        sink.push(p);
    }
    // The old connection is closed after the switch: A's listener ends
    // while the stream still goes on to B.
    let a_exit = a.wait(Duration::from_secs(5)).expect("wait A");
    let stats = output.stats(&Default::default(), 1024);
    output.stop();
    let b_exit = b.wait(Duration::from_secs(10)).expect("wait B");
    assert!(a_exit.is_some(), "the old connection was not closed");
    assert!(b_exit.is_some(), "B did not see the stream end");
    assert!(proxy.done.load(Ordering::Acquire), "proxy still connected");
    assert_eq!(a.unexpected_stderr(), "", "listener A errors");
    assert_eq!(b.unexpected_stderr(), "", "listener B errors");
    let va = ffmpeg9::judge(&bin, &a_path).expect("judge A");
    let vb = ffmpeg9::judge(&bin, &b_path).expect("judge B");
    for (what, v) in [("A", &va), ("B", &vb)] {
        assert_eq!(v.codec, "hevc", "{what}: {v:?}");
        assert_eq!(v.errors, "", "{what}: decode errors");
    }
    let seen = va.frames + vb.frames;
    eprintln!(
        "reconnect request: A {} frames, B {} frames, {} of {FRAMES} missing",
        va.frames,
        vb.frames,
        u64::from(FRAMES) - seen.min(u64::from(FRAMES))
    );
    assert!(va.frames >= 25 && vb.frames > 0, "{va:?} {vb:?}");
    assert!(seen <= u64::from(FRAMES), "frames sent twice: {seen}");
    assert!(
        seen + u64::from(GOP_FRAMES) >= u64::from(FRAMES),
        "more than a GOP missing: {seen} of {FRAMES}"
    );
    assert_eq!((stats.redirects, stats.reconnects), (1, 0), "{stats:?}");
}
