//! A hostile server under a real pipeline: once live it floods pings, then
//! sends garbage, then goes away. The engines must not notice (golden rules
//! 1 and 5), and the output must say what went wrong and retry. The
//! protocol-level cases (never answers, byte by byte, closes in the
//! handshake) are unit tests in `output/rtmp/hostile.rs`; this one proves
//! the send thread absorbs a hostile peer without touching the engines.

mod common;

use common::*;
use onair::output::rtmp::proto::amf0::Value;
use onair::output::rtmp::proto::chunk::reader::ChunkReader;
use onair::output::rtmp::proto::chunk::writer::{ChunkWriter, Lane, OutMessage};
use onair::output::rtmp::proto::message::{self, Message};
use onair::{LinkState, Streamer};
use onair_testkit::{ScriptConn, ScriptedServer};
use std::io;
use std::time::{Duration, Instant};

const SEC: Duration = Duration::from_secs(1);

/// Reads the client's messages until command `name`; its transaction id.
fn wait_for(conn: &mut ScriptConn, reader: &mut ChunkReader, name: &str) -> io::Result<f64> {
    let deadline = Instant::now() + 10 * SEC;
    while Instant::now() < deadline {
        let Some(bytes) = conn.read_for(Duration::from_millis(50))? else {
            return Err(io::Error::other("client left"));
        };
        let mut msgs = Vec::new();
        reader.feed(&bytes, &mut msgs).map_err(io::Error::other)?;
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

fn reply(conn: &mut ScriptConn, w: &mut ChunkWriter, values: &[Value]) -> io::Result<()> {
    w.queue(Lane::Command, message::command(0, values), false)
        .map_err(io::Error::other)?;
    conn.write(&w.take(usize::MAX))
}

fn status(code: &str) -> Value {
    Value::Object(vec![
        ("level".into(), Value::String("status".into())),
        ("code".into(), Value::String(code.into())),
    ])
}

/// Accepts one publisher, then: pings as fast as it can for 2 s (while
/// reading what the publisher sends), garbage, and a close.
fn hostile_script(conn: &mut ScriptConn) -> io::Result<()> {
    conn.handshake()?;
    let mut reader = ChunkReader::new();
    let mut w = ChunkWriter::new();
    let s = |t: &str| Value::String(t.into());
    let txn = wait_for(conn, &mut reader, "connect")?;
    reply(
        conn,
        &mut w,
        &[
            s("_result"),
            Value::Number(txn),
            Value::Null,
            status("NetConnection.Connect.Success"),
        ],
    )?;
    let txn = wait_for(conn, &mut reader, "createStream")?;
    reply(
        conn,
        &mut w,
        &[
            s("_result"),
            Value::Number(txn),
            Value::Null,
            Value::Number(1.0),
        ],
    )?;
    wait_for(conn, &mut reader, "publish")?;
    reply(
        conn,
        &mut w,
        &[
            s("onStatus"),
            Value::Number(0.0),
            Value::Null,
            status("NetStream.Publish.Start"),
        ],
    )?;
    let mut rx = conn.stream().try_clone()?;
    let swallow = std::thread::spawn(move || {
        let mut buf = vec![0; 64 * 1024];
        let _ = rx.set_read_timeout(Some(10 * SEC));
        while matches!(io::Read::read(&mut rx, &mut buf), Ok(n) if n > 0) {}
    });
    let ping = OutMessage {
        timestamp: 0,
        type_id: message::USER_CONTROL,
        stream_id: 0,
        payload: bytes::Bytes::from_static(&[0, 6, 0, 0, 0, 1]),
    };
    for _ in 0..256 {
        w.queue(Lane::Control, ping.clone(), false)
            .map_err(io::Error::other)?;
    }
    let burst = w.take(usize::MAX);
    let until = Instant::now() + 2 * SEC;
    while Instant::now() < until {
        conn.write(&burst)?;
    }
    // fmt 3 on a chunk stream never used: unreadable.
    conn.write(&[0xFF; 64])?;
    std::thread::sleep(SEC);
    conn.stream().shutdown(std::net::Shutdown::Both)?;
    let _ = swallow.join();
    Ok(())
}

#[test]
fn hostile_server_cannot_touch_the_engines() {
    let _serial = serial();
    let server = ScriptedServer::start(hostile_script).expect("server");
    let url = server.rtmp_url("live/hostile-KEY-7");
    let streamer = Streamer::start(config(&url)).expect("goes live");
    let run = run_script(streamer, 6 * SEC, Vec::new());
    let down = run
        .first_down_after(run.started)
        .expect("the garbage ended the session");
    let live_for = down - run.started;
    let s = &run.final_stats;
    // The first error after going live (reconnect attempts, refused, come later).
    let error = run
        .samples
        .iter()
        .find_map(|x| x.stats.last_error.clone())
        .unwrap_or_default();
    eprintln!(
        "hostile: live {} ms through the ping flood, then down: {error}",
        live_for.as_millis()
    );
    assert!(
        live_for >= SEC * 3 / 2,
        "the ping flood alone ended the session"
    );
    assert!(error.contains("protocol error"), "{error}");
    assert!(!error.contains("KEY-7"), "the key leaked: {error}");
    assert_ne!(s.state, LinkState::Failed.as_str(), "a fault is retried");
    assert!(s.audio_frames_sent > 0 && s.video_packets_sent > 0);
    assert_engines_on_time(&run, SKIPS_FOR_CPU, "hostile");
    server.join().expect("script ran to the end");
}
