//! The embedded local RTMP receiver: where `onair stream` publishes when it
//! is given no URL.
//!
//! Why embed one: "stream" should work out of the box, with the full network
//! path exercised (socket, handshake, chunking, backpressure), and leave
//! something to look at. The receiver accepts any app/key on loopback and
//! records each publish session, as received, to its own FLV file
//! (`<dir>/onair-<unix time>-<n>.flv`) with the timestamps that arrived, so
//! the file shows exactly what a real ingest would have seen.
//!
//! It is deliberately small: rml_rtmp's `ServerSession` does the protocol,
//! one thread per connection does blocking I/O with short read timeouts so
//! that [`LocalReceiver::stop`] is prompt. No playback, no relaying.
//!
//! Why it stays on rml_rtmp while the publishing client moved to our own
//! layer (`output/rtmp/proto`, issue 10): its peer is onair itself (or a
//! tool the user points at their own machine) on loopback, not an arbitrary
//! server on the send path; a server side (S0/S1/S2, answering connect and
//! publish, reading media) is work of its own; and keeping a second,
//! independent RTMP implementation on the other end is what makes our
//! client's tests against it mean something. `input_filter` shields it from
//! the one message shape rml_rtmp panics on.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ServerSession, ServerSessionConfig, ServerSessionEvent, ServerSessionResult, StreamMetadata,
};

use self::input_filter::InputFilter;
use crate::flv::{self, FlvWriter, MetaValue};

/// Where the receiver listens by default (the standard RTMP port on loopback).
pub const DEFAULT_BIND: &str = "127.0.0.1:1935";
/// RTMP application the local URL uses.
pub const LOCAL_APP: &str = "live";
/// Stream key the local URL uses.
pub const LOCAL_KEY: &str = "local";
/// How often idle threads check for `stop`.
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// Bound on the handshake of one incoming connection.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// On stop, how long a connection may keep draining what was already sent.
const STOP_DRAIN: Duration = Duration::from_secs(1);
/// Read buffer size.
const READ_BUF: usize = 64 * 1024;

/// State shared by the accept thread, the connection threads and the handle.
struct Shared {
    stop: AtomicBool,
    record_dir: PathBuf,
    next_session: AtomicU64,
    recordings: Mutex<Vec<PathBuf>>,
}

/// A running local receiver. Stops (and finishes its files) on [`stop`](Self::stop)
/// or drop.
pub struct LocalReceiver {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept_thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for LocalReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalReceiver")
            .field("addr", &self.addr)
            .field("record_dir", &self.shared.record_dir)
            .finish()
    }
}

impl LocalReceiver {
    /// Listens on `bind` (use `127.0.0.1:0` for an ephemeral port; when a
    /// fixed port such as [`DEFAULT_BIND`] is busy, an ephemeral port on the
    /// same address is used instead) and records into `record_dir` (created
    /// if missing).
    pub fn start(bind: SocketAddr, record_dir: PathBuf) -> io::Result<LocalReceiver> {
        std::fs::create_dir_all(&record_dir)?;
        let listener = match TcpListener::bind(bind) {
            Ok(l) => l,
            Err(e) if e.kind() == io::ErrorKind::AddrInUse && bind.port() != 0 => {
                tracing::info!(%bind, "port busy; local receiver uses an ephemeral port");
                TcpListener::bind(SocketAddr::new(bind.ip(), 0))?
            }
            Err(e) => return Err(e),
        };
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            record_dir,
            next_session: AtomicU64::new(1),
            recordings: Mutex::new(Vec::new()),
        });
        let thread_shared = Arc::clone(&shared);
        let accept_thread = std::thread::Builder::new()
            .name("onair-local-rtmp".into())
            .spawn(move || accept_loop(listener, thread_shared))?;
        tracing::info!(%addr, "local RTMP receiver listening");
        Ok(LocalReceiver {
            addr,
            shared,
            accept_thread: Some(accept_thread),
        })
    }

    /// [`start`](Self::start) on [`DEFAULT_BIND`] (ephemeral port if busy).
    pub fn start_default(record_dir: PathBuf) -> io::Result<LocalReceiver> {
        let bind = DEFAULT_BIND
            .parse()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{e}")))?;
        Self::start(bind, record_dir)
    }

    /// Address actually listened on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// URL to publish to: `rtmp://127.0.0.1:PORT/live/local`.
    pub fn url(&self) -> String {
        let host = match self.addr {
            SocketAddr::V4(a) => a.ip().to_string(),
            SocketAddr::V6(a) => format!("[{}]", a.ip()),
        };
        format!("rtmp://{host}:{}/{LOCAL_APP}/{LOCAL_KEY}", self.addr.port())
    }

    /// File of the most recent publish session
    /// (`<dir>/onair-<unix time>-<n>.flv`); the recording directory itself
    /// until a first publish starts.
    pub fn recording_path(&self) -> PathBuf {
        self.recordings()
            .pop()
            .unwrap_or_else(|| self.shared.record_dir.clone())
    }

    /// Files of all publish sessions so far, oldest first.
    pub fn recordings(&self) -> Vec<PathBuf> {
        match self.shared.recordings.lock() {
            Ok(list) => list.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Stops accepting, ends every connection and finishes its file.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.accept_thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for LocalReceiver {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections: Vec<JoinHandle<()>> = Vec::new();
    while !shared.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, peer)) => {
                let conn_shared = Arc::clone(&shared);
                let spawned = std::thread::Builder::new()
                    .name("onair-local-conn".into())
                    .spawn(move || {
                        if let Err(e) = serve(stream, &conn_shared) {
                            tracing::debug!(%peer, error = %e, "local receiver connection ended");
                        }
                    });
                match spawned {
                    Ok(h) => connections.push(h),
                    Err(e) => tracing::warn!(error = %e, "cannot spawn connection thread"),
                }
                connections.retain(|h| !h.is_finished());
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(POLL_INTERVAL),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                tracing::warn!(error = %e, "local receiver accept failed");
                std::thread::sleep(POLL_INTERVAL);
            }
        }
    }
    for h in connections {
        let _ = h.join();
    }
}

fn other(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

/// Reads some bytes; `Ok(None)` on a read timeout (caller checks `stop`).
fn read_some(stream: &mut TcpStream, buf: &mut [u8]) -> io::Result<Option<usize>> {
    match stream.read(buf) {
        Ok(0) => Err(io::Error::new(io::ErrorKind::UnexpectedEof, "peer closed")),
        Ok(n) => Ok(Some(n)),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// One recording in progress.
struct Recording {
    writer: FlvWriter<BufWriter<File>>,
    path: PathBuf,
}

fn serve(mut stream: TcpStream, shared: &Shared) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(POLL_INTERVAL))?;
    let mut buf = vec![0u8; READ_BUF];

    // Handshake.
    let started = std::time::Instant::now();
    let mut hs = Handshake::new(PeerType::Server);
    let leftover = loop {
        if shared.stop.load(Ordering::SeqCst) || started.elapsed() > HANDSHAKE_TIMEOUT {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "handshake"));
        }
        let Some(n) = read_some(&mut stream, &mut buf)? else {
            continue;
        };
        match hs
            .process_bytes(&buf[..n])
            .map_err(|e| other(format!("{e:?}")))?
        {
            HandshakeProcessResult::InProgress { response_bytes } => {
                stream.write_all(&response_bytes)?
            }
            HandshakeProcessResult::Completed {
                response_bytes,
                remaining_bytes,
            } => {
                stream.write_all(&response_bytes)?;
                break remaining_bytes;
            }
        }
    };

    let (mut session, initial) = ServerSession::new(ServerSessionConfig::new()).map_err(other)?;
    let mut recording: Option<Recording> = None;
    let mut filter = InputFilter::new();
    let mut stop_seen: Option<std::time::Instant> = None;
    let mut input = leftover;
    let mut pending = initial;
    let result = loop {
        if !input.is_empty() {
            let safe = match filter.filter(&input) {
                Ok(safe) => safe,
                Err(e) => break Err(other(e)),
            };
            match session.handle_input(&safe) {
                Ok(r) => pending.extend(r),
                Err(e) => break Err(other(e)),
            }
        }
        if let Err(e) = handle_results(&mut stream, &mut session, pending, &mut recording, shared) {
            break Err(e);
        }
        pending = Vec::new();
        // On stop, keep reading what the publisher already sent (so its file
        // is complete) until the socket is quiet, for at most STOP_DRAIN.
        if shared.stop.load(Ordering::SeqCst) {
            let since = *stop_seen.get_or_insert_with(std::time::Instant::now);
            if since.elapsed() > STOP_DRAIN {
                break Ok(());
            }
        }
        input = match read_some(&mut stream, &mut buf) {
            Ok(Some(n)) => buf[..n].to_vec(),
            Ok(None) if stop_seen.is_some() => break Ok(()),
            Ok(None) => Vec::new(),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break Ok(()),
            Err(e) => break Err(e),
        };
    };
    finish(recording);
    result
}

fn handle_results(
    stream: &mut TcpStream,
    session: &mut ServerSession,
    results: Vec<ServerSessionResult>,
    recording: &mut Option<Recording>,
    shared: &Shared,
) -> io::Result<()> {
    let mut queue = std::collections::VecDeque::from(results);
    while let Some(result) = queue.pop_front() {
        match result {
            ServerSessionResult::OutboundResponse(p) => stream.write_all(&p.bytes)?,
            ServerSessionResult::UnhandleableMessageReceived(_) => {}
            ServerSessionResult::RaisedEvent(event) => match event {
                ServerSessionEvent::ConnectionRequested { request_id, .. }
                | ServerSessionEvent::ReleaseStreamRequested { request_id, .. } => {
                    queue.extend(session.accept_request(request_id).map_err(other)?);
                }
                ServerSessionEvent::PublishStreamRequested { request_id, .. } => {
                    queue.extend(session.accept_request(request_id).map_err(other)?);
                    finish(recording.take());
                    *recording = Some(open_recording(shared)?);
                }
                ServerSessionEvent::PublishStreamFinished { .. } => finish(recording.take()),
                ServerSessionEvent::StreamMetadataChanged { metadata, .. } => {
                    if let Some(rec) = recording.as_mut() {
                        let body = flv::script_body_from_fields(&metadata_to_fields(&metadata));
                        rec.writer.write_tag(flv::TAG_SCRIPT, 0, &body)?;
                    }
                }
                ServerSessionEvent::VideoDataReceived {
                    data, timestamp, ..
                } => {
                    if let Some(rec) = recording.as_mut() {
                        rec.writer
                            .write_tag(flv::TAG_VIDEO, timestamp.value, &data)?;
                    }
                }
                ServerSessionEvent::AudioDataReceived {
                    data, timestamp, ..
                } => {
                    if let Some(rec) = recording.as_mut() {
                        rec.writer
                            .write_tag(flv::TAG_AUDIO, timestamp.value, &data)?;
                    }
                }
                _ => {}
            },
        }
    }
    Ok(())
}

fn open_recording(shared: &Shared) -> io::Result<Recording> {
    let n = shared.next_session.fetch_add(1, Ordering::SeqCst);
    let unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let path = recording_file(&shared.record_dir, unix, n);
    let file = File::create(&path)?;
    let writer = FlvWriter::new(BufWriter::new(file), true, true)?;
    tracing::info!(path = %path.display(), "local receiver recording");
    match shared.recordings.lock() {
        Ok(mut list) => list.push(path.clone()),
        Err(poisoned) => poisoned.into_inner().push(path.clone()),
    }
    Ok(Recording { writer, path })
}

/// `<dir>/onair-<unix time>-<n>.flv`.
fn recording_file(dir: &Path, unix_secs: u64, n: u64) -> PathBuf {
    dir.join(format!("onair-{unix_secs}-{n}.flv"))
}

fn finish(recording: Option<Recording>) {
    if let Some(mut rec) = recording {
        if let Err(e) = rec.writer.flush() {
            tracing::warn!(path = %rec.path.display(), error = %e, "cannot finish recording");
        }
    }
}

/// onMetaData fields from what rml_rtmp parsed out of `@setDataFrame`.
fn metadata_to_fields(m: &StreamMetadata) -> Vec<(&'static str, MetaValue)> {
    let mut f = Vec::new();
    let mut num = |k: &'static str, v: Option<f64>| {
        if let Some(v) = v {
            f.push((k, MetaValue::Number(v)));
        }
    };
    num("width", m.video_width.map(f64::from));
    num("height", m.video_height.map(f64::from));
    num("framerate", m.video_frame_rate.map(f64::from));
    num("videocodecid", m.video_codec_id.map(f64::from));
    num("videodatarate", m.video_bitrate_kbps.map(f64::from));
    num("audiocodecid", m.audio_codec_id.map(f64::from));
    num("audiodatarate", m.audio_bitrate_kbps.map(f64::from));
    num("audiosamplerate", m.audio_sample_rate.map(f64::from));
    num("audiochannels", m.audio_channels.map(f64::from));
    if let Some(s) = m.audio_is_stereo {
        f.push(("stereo", MetaValue::Bool(s)));
    }
    if let Some(e) = &m.encoder {
        f.push(("encoder", MetaValue::Str(e.clone())));
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flv::tests::{ffprobe_streams, test_headers};
    use crate::output::rtmp::tests::{publish_synthetic, read_flv_tags};
    use crate::output::rtmp::{ConnectOptions, RtmpPublisher};
    use crate::output::url::RtmpUrl;

    #[test]
    fn file_names() {
        assert_eq!(
            recording_file(Path::new("/r"), 1700000000, 3),
            PathBuf::from("/r/onair-1700000000-3.flv")
        );
    }

    #[test]
    fn busy_port_falls_back_to_ephemeral() {
        let dir = tempfile::tempdir().unwrap();
        let busy = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = busy.local_addr().unwrap();
        let rx = LocalReceiver::start(addr, dir.path().to_path_buf()).unwrap();
        assert_ne!(rx.local_addr().port(), addr.port());
        assert!(rx.url().starts_with("rtmp://127.0.0.1:"));
        assert!(rx.url().ends_with("/live/local"));
        assert_eq!(rx.recording_path(), dir.path());
        rx.stop();
    }

    #[test]
    fn publisher_to_local_receiver_records_flv() {
        let dir = tempfile::tempdir().unwrap();
        let rx = LocalReceiver::start("127.0.0.1:0".parse().unwrap(), dir.path().into()).unwrap();
        let url = RtmpUrl::parse(&rx.url(), None).unwrap();
        let headers = test_headers();
        let publisher = RtmpPublisher::connect(&url, &ConnectOptions::default(), &headers).unwrap();
        let sent = publish_synthetic(publisher, 30);
        // Let the connection thread see the close before stopping.
        let path = rx.recording_path();
        let deadline = std::time::Instant::now() + Duration::from_secs(3);
        while read_flv_tags(&path).len() < sent && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        rx.stop();
        assert!(path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("onair-"));
        let tags = read_flv_tags(&path);
        // metadata + 2 sequence headers + media
        assert_eq!(tags.len(), sent, "{tags:?}");
        assert_eq!(tags[0].0, flv::TAG_SCRIPT);
        let meta = String::from_utf8_lossy(&tags[0].2).to_string();
        assert!(
            meta.contains("onMetaData") && meta.contains("onair-test"),
            "{meta}"
        );
        assert_eq!(
            tags.iter().filter(|t| t.0 == flv::TAG_VIDEO).count(),
            1 + 30
        );
        assert_eq!(tags.last().unwrap().1, 29 * 33);
        if onair_testkit::require_tools(&["ffprobe"]) {
            let out = ffprobe_streams(&path);
            assert!(out.contains("codec_name=h264"), "{out}");
            assert!(out.contains("codec_name=aac"), "{out}");
        }
    }
}

#[cfg(test)]
mod session_tests {
    use super::*;
    use crate::flv::tests::test_headers;
    use crate::output::rtmp::{ConnectOptions, RtmpPublisher};
    use crate::output::url::RtmpUrl;

    /// Each publish session gets its own numbered file.
    #[test]
    fn one_file_per_publish_session() {
        let dir = tempfile::tempdir().unwrap();
        let rx = LocalReceiver::start("127.0.0.1:0".parse().unwrap(), dir.path().into()).unwrap();
        let url = RtmpUrl::parse(&rx.url(), None).unwrap();
        for _ in 0..2 {
            let mut p =
                RtmpPublisher::connect(&url, &ConnectOptions::default(), &test_headers()).unwrap();
            p.pump(Duration::from_millis(200)).unwrap();
            p.close(Duration::from_millis(500));
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while rx.recordings().len() < 2 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let files = rx.recordings();
        rx.stop();
        assert_eq!(files.len(), 2);
        assert!(files[0].to_string_lossy().ends_with("-1.flv"), "{files:?}");
        assert!(files[1].to_string_lossy().ends_with("-2.flv"), "{files:?}");
        for f in files {
            assert!(std::fs::metadata(&f).unwrap().len() > 13);
        }
    }
}
mod input_filter;
