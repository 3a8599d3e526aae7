//! The publisher against scripted hostile servers (`onair_testkit::scripted`):
//! one that never answers `connect`, one that answers a byte at a time, one
//! that sends garbage once live, one that closes at each step of the
//! handshake, one that floods pings. In each case the publisher must not
//! panic, must not wait past its timeouts, and must say what went wrong
//! (a fault, never a rejection, so the reconnect thread retries).

use std::io;
use std::time::{Duration, Instant};

use bytes::Bytes;
use onair_testkit::{ScriptConn, ScriptedServer, SCHEDULING_SLACK};

use super::proto::amf0::Value;
use super::proto::chunk::reader::ChunkReader;
use super::proto::chunk::writer::{ChunkWriter, Lane, OutMessage};
use super::proto::message::{self, Message};
use super::*;
use crate::flv::tests::test_headers;

/// The server's half of the protocol, built from our own chunk layer.
struct ServerSide {
    reader: ChunkReader,
    writer: ChunkWriter,
}

impl ServerSide {
    fn new() -> Self {
        Self {
            reader: ChunkReader::new(),
            writer: ChunkWriter::new(),
        }
    }

    /// Reads until the client sends command `name`; returns its transaction id.
    fn wait_for(&mut self, conn: &mut ScriptConn, name: &str) -> io::Result<f64> {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            let Some(bytes) = conn.read_for(Duration::from_millis(50))? else {
                return Err(io::Error::other("client left"));
            };
            let mut msgs = Vec::new();
            self.reader
                .feed(&bytes, &mut msgs)
                .map_err(io::Error::other)?;
            for m in &msgs {
                if let Ok(Message::Command {
                    name: n,
                    transaction,
                    ..
                }) = Message::parse(m)
                {
                    if n == name {
                        return Ok(transaction);
                    }
                }
            }
        }
        Err(io::Error::other(format!("no {name}")))
    }

    fn command(&mut self, values: &[Value]) -> Bytes {
        self.writer
            .queue(Lane::Command, message::command(0, values), false)
            .map_err(io::Error::other)
            .unwrap_or_default();
        self.writer.take(usize::MAX)
    }
}

fn s(v: &str) -> Value {
    Value::String(v.into())
}

fn status(code: &str) -> Value {
    Value::Object(vec![
        ("level".into(), s("status")),
        ("code".into(), s(code)),
    ])
}

/// Handshake, then accepts connect, createStream and publish, writing each
/// reply with `gap` between bytes.
fn accept_until_live(conn: &mut ScriptConn, gap: Duration) -> io::Result<ServerSide> {
    let c0c1 = conn.read_c0c1()?;
    conn.write_slowly(&ScriptConn::s0s1s2(&c0c1), gap / 10)?;
    conn.read_exact(onair_testkit::scripted::HANDSHAKE_LEN)?;
    let mut srv = ServerSide::new();
    let txn = srv.wait_for(conn, "connect")?;
    let reply = srv.command(&[
        s("_result"),
        Value::Number(txn),
        Value::Null,
        status("NetConnection.Connect.Success"),
    ]);
    conn.write_slowly(&reply, gap)?;
    let txn = srv.wait_for(conn, "createStream")?;
    let reply = srv.command(&[
        s("_result"),
        Value::Number(txn),
        Value::Null,
        Value::Number(1.0),
    ]);
    conn.write_slowly(&reply, gap)?;
    srv.wait_for(conn, "publish")?;
    let reply = srv.command(&[
        s("onStatus"),
        Value::Number(0.0),
        Value::Null,
        status("NetStream.Publish.Start"),
    ]);
    conn.write_slowly(&reply, gap)?;
    Ok(srv)
}

/// Runs `script` as the server of one connection and connects the
/// publisher to it, with `handshake` as the setup's bound: the server (to
/// join), the publisher or its error, and how long `connect` took.
fn connect_to_script<F>(
    script: F,
    handshake: Duration,
) -> (ScriptedServer, Result<RtmpPublisher, RtmpError>, Duration)
where
    F: FnOnce(&mut ScriptConn) -> io::Result<()> + Send + 'static,
{
    let server = ScriptedServer::start(script).unwrap();
    let url = RtmpUrl::parse(&server.rtmp_url("live/hostileKey"), None).unwrap();
    let opts = ConnectOptions {
        handshake_timeout: handshake,
        ..ConnectOptions::default()
    };
    let start = Instant::now();
    let result = RtmpPublisher::connect(&url, &opts, &test_headers());
    (server, result, start.elapsed())
}

/// The error of a setup the server made fail.
fn refused(result: Result<RtmpPublisher, RtmpError>) -> RtmpError {
    match result {
        Ok(_) => panic!("the hostile server's setup succeeded"),
        Err(e) => e,
    }
}

/// The error is a timeout in `stage`, within `bound` (plus scheduling slack).
fn assert_timed_out(err: &RtmpError, stage: Stage, took: Duration, bound: Duration) {
    assert!(
        matches!(err, RtmpError::Timeout { stage: s } if *s == stage),
        "{err}"
    );
    assert!(took < bound + SCHEDULING_SLACK, "{took:?}");
}

fn assert_fault(err: &RtmpError) {
    assert!(!err.is_rejection(), "a hostile server is a fault: {err}");
    let text = format!("{err} {err:?}");
    assert!(!text.contains("hostileKey"), "{text}");
}

#[test]
fn server_that_never_answers_connect_times_out_in_connect_command() {
    let bound = Duration::from_millis(800);
    let (_server, result, took) = connect_to_script(
        |c| {
            c.handshake()?;
            c.swallow_for(Duration::from_secs(3))?;
            Ok(())
        },
        bound,
    );
    let err = refused(result);
    assert_timed_out(&err, Stage::ConnectCommand, took, bound);
    assert_eq!(err.to_string(), "timed out during connect-command");
    assert_fault(&err);
}

#[test]
fn byte_by_byte_server_is_followed_to_publishing() {
    let (server, result, _) = connect_to_script(
        |c| {
            accept_until_live(c, Duration::from_millis(1))?;
            c.swallow_for(Duration::from_millis(500))?;
            Ok(())
        },
        Duration::from_secs(8),
    );
    let mut p = result.unwrap_or_else(|e| panic!("{e}"));
    p.pump(Duration::from_millis(100)).unwrap();
    p.close(Duration::from_millis(200));
    server.join().unwrap();
}

#[test]
fn too_slow_server_times_out_in_handshake() {
    let bound = Duration::from_millis(600);
    let (_server, result, took) = connect_to_script(
        |c| {
            let c0c1 = c.read_c0c1()?;
            // 3073 bytes 2 ms apart: 6 s, far past the client's 600 ms.
            let _ = c.write_slowly(&ScriptConn::s0s1s2(&c0c1), Duration::from_millis(2));
            Ok(())
        },
        bound,
    );
    let err = refused(result);
    assert_timed_out(&err, Stage::Handshake, took, bound);
    assert_fault(&err);
}

#[test]
fn closes_at_each_handshake_step_say_where() {
    // 0: at accept; 1: after reading C0C1; 2: after S0; 3: after S0S1;
    // 4: after S0S1S2 without reading C2; 5: after the whole handshake.
    for step in 0..6 {
        let (server, result, took) = connect_to_script(
            move |c| {
                if step == 0 {
                    return Ok(());
                }
                let c0c1 = c.read_c0c1()?;
                let answer = ScriptConn::s0s1s2(&c0c1);
                match step {
                    1 => {}
                    2 => c.write(&answer[..1])?,
                    3 => c.write(&answer[..1 + 1536])?,
                    4 => c.write(&answer)?,
                    _ => {
                        c.write(&answer)?;
                        c.read_exact(1536)?;
                    }
                }
                Ok(())
            },
            Duration::from_secs(3),
        );
        let err = refused(result);
        // After S2 the client's handshake is complete (C2 is only written).
        let want = if step >= 4 {
            Stage::ConnectCommand
        } else {
            Stage::Handshake
        };
        assert!(
            matches!(&err, RtmpError::Closed { stage } | RtmpError::Io { stage, .. } if *stage == want),
            "step {step}: {err}"
        );
        assert!(took < Duration::from_secs(1), "step {step}: {took:?}");
        assert_fault(&err);
        let _ = server.join();
    }
}

#[test]
fn garbage_after_publish_is_a_protocol_fault() {
    let garbage: [&[u8]; 3] = [
        &[0xFF; 64],                                        // fmt 3 on an unknown chunk stream
        &[0x07, 0, 0, 0, 0xFF, 0xFF, 0xFF, 20, 0, 0, 0, 0], // 16 MiB message
        &[0x03, 0, 0, 0, 0, 0, 4, 20, 1, 0, 0, 0, 0x11, 1, 2, 3], // AMF3 marker in an AMF0 command
    ];
    for bytes in garbage {
        let junk = bytes.to_vec();
        let (_server, result, _) = connect_to_script(
            move |c| {
                accept_until_live(c, Duration::ZERO)?;
                std::thread::sleep(Duration::from_millis(100));
                c.write(&junk)?;
                c.swallow_for(Duration::from_secs(2))?;
                Ok(())
            },
            Duration::from_secs(3),
        );
        let mut p = result.unwrap();
        let start = Instant::now();
        let err = loop {
            match p.pump(Duration::from_millis(20)) {
                Err(e) => break e,
                Ok(_) => assert!(
                    start.elapsed() < Duration::from_secs(2),
                    "garbage not noticed"
                ),
            }
        };
        assert!(matches!(err, RtmpError::Protocol(_)), "{err}");
        assert!(
            err.to_string().starts_with("RTMP protocol error: send:"),
            "{err}"
        );
        assert_fault(&err);
    }
}

#[test]
fn ping_flood_is_answered_without_stalling_the_sender() {
    let (server, result, _) = connect_to_script(
        |c| {
            let srv = accept_until_live(c, Duration::ZERO)?;
            // A reader that counts our PingResponses while the script floods.
            let mut rx = c.stream().try_clone()?;
            let mut reader = srv.reader;
            let counter = std::thread::spawn(move || {
                let mut pongs = 0u64;
                let mut buf = vec![0; 64 * 1024];
                let _ = rx.set_read_timeout(Some(Duration::from_secs(5)));
                while let Ok(n) = io::Read::read(&mut rx, &mut buf) {
                    if n == 0 {
                        break;
                    }
                    let mut msgs = Vec::new();
                    if reader.feed(&buf[..n], &mut msgs).is_err() {
                        break;
                    }
                    pongs += msgs
                        .iter()
                        .filter(|m| {
                            matches!(
                                Message::parse(m),
                                Ok(Message::UserControl(message::UC_PING_RESPONSE, _))
                            )
                        })
                        .count() as u64;
                }
                pongs
            });
            let mut w = srv.writer;
            let ping = OutMessage {
                timestamp: 0,
                type_id: message::USER_CONTROL,
                stream_id: 0,
                payload: Bytes::from_static(&[0, 6, 0, 0, 0, 1]),
            };
            for _ in 0..256 {
                w.queue(Lane::Control, ping.clone(), false)
                    .map_err(io::Error::other)?;
            }
            let burst = w.take(usize::MAX);
            let until = Instant::now() + Duration::from_millis(1500);
            while Instant::now() < until {
                c.write(&burst)?;
            }
            c.stream().shutdown(std::net::Shutdown::Write)?;
            let pongs = counter.join().map_err(|_| io::Error::other("counter"))?;
            if pongs == 0 {
                return Err(io::Error::other("no ping answered"));
            }
            Ok(())
        },
        Duration::from_secs(3),
    );
    let mut p = result.unwrap();
    let start = Instant::now();
    let mut ts = 0;
    let mut worst = Duration::ZERO;
    let end = loop {
        p.queue_media(MediaKind::Audio, ts, Bytes::from_static(&[0xAF, 1, 0, 0]))
            .unwrap();
        ts += 21;
        let t = Instant::now();
        let r = p.pump(Duration::from_millis(20));
        worst = worst.max(t.elapsed());
        assert!(
            p.pending_bytes() < 64 * 1024,
            "queue grew to {}",
            p.pending_bytes()
        );
        if let Err(e) = r {
            break e;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "flood never ended"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    // The flood ends with the server closing its side.
    assert!(
        matches!(end, RtmpError::Closed { stage: Stage::Send }),
        "{end}"
    );
    assert!(
        worst < Duration::from_millis(20) + SCHEDULING_SLACK,
        "a pump took {worst:?}"
    );
    server.join().unwrap();
}
