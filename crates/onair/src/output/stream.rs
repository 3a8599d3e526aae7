//! StreamOutput: one RTMP destination with its own muxer, buffer, send and
//! reconnect threads.
//!
//! Why one struct: it is the unit of isolation. A destination that is down
//! or throttled only ever affects its own buffer and counters; the encoders
//! see a `PacketSink` that never blocks.

use super::buffer::{BufferLimits, StreamBuffer};
use super::muxer::{KeyframeRequester, StreamMuxer};
use super::reconnect::{self, Control, ReconnectContext, ReconnectPolicy};
use super::rtmp::tls::TlsClient;
use super::rtmp::ConnectOptions;
use super::send::{self, SendContext};
use super::url::{RtmpUrl, Scheme};
use super::Event;
use crate::packet::{PacketSink, StreamHeaders};
use crate::stats::{EngineCounters, LinkState, OutputCounters, Stats};
use crate::video::bitrate::VideoBitrate;
use crate::{Error, Result};
use crossbeam_channel::Sender;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Default stall timeout: no progress for this long = link down.
pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Default time for TCP connect and for the RTMP handshake + publish.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default time a graceful stop may spend sending what is queued.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(3);
/// The kernel send buffer is capped to this much of the stream's bitrate, so
/// that backpressure shows in our buffer instead of hiding in megabytes of
/// kernel memory (Linux doubles the value we set).
pub const SEND_BUFFER_SECONDS: f64 = 0.15;
/// Floor for the kernel send buffer cap.
pub const MIN_SEND_BUFFER_BYTES: usize = 32 * 1024;

/// Settings of one stream output.
#[derive(Clone, Debug)]
pub struct StreamOutputConfig {
    /// Where to publish.
    pub url: RtmpUrl,
    /// Buffer bounds; `None` = defaults for the stream's bitrate.
    pub limits: Option<BufferLimits>,
    /// Retry policy.
    pub reconnect: ReconnectPolicy,
    /// No forward progress for this long = link down.
    pub stall_timeout: Duration,
    /// TCP connect and RTMP handshake/publish timeout.
    pub connect_timeout: Duration,
    /// Graceful stop drain time.
    pub drain_timeout: Duration,
    /// `rtmps://` only: a PEM file of certificate authorities trusted
    /// besides the system store (CLI `--ca-file`, Node `caFile`).
    pub ca_file: Option<PathBuf>,
}

impl StreamOutputConfig {
    /// Defaults for `url`.
    pub fn new(url: RtmpUrl) -> Self {
        Self {
            url,
            limits: None,
            reconnect: ReconnectPolicy::default(),
            stall_timeout: DEFAULT_STALL_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
            ca_file: None,
        }
    }
}

/// A running stream output.
pub struct StreamOutput {
    name: String,
    muxer: Arc<StreamMuxer>,
    counters: Arc<OutputCounters>,
    last_error: Arc<Mutex<Option<String>>>,
    control: Sender<Control>,
    stop: Arc<AtomicBool>,
    send_thread: Option<JoinHandle<()>>,
    reconnect_thread: Option<JoinHandle<()>>,
}

impl StreamOutput {
    /// Starts the output's threads; the first connection begins at once.
    pub fn start(
        index: usize,
        cfg: StreamOutputConfig,
        headers: &StreamHeaders,
        keyframes: Arc<dyn KeyframeRequester>,
        bitrate: Option<Arc<VideoBitrate>>,
        events: Sender<Event>,
    ) -> Result<Self> {
        // Trust is loaded once per output, and a bad CA file fails the start.
        let tls = match cfg.url.scheme {
            Scheme::Rtmps => Some(TlsClient::new(cfg.ca_file.as_deref())?),
            Scheme::Rtmp => None,
        };
        let total_bps = headers.total_bitrate_bps();
        let limits = cfg
            .limits
            .unwrap_or_else(|| BufferLimits::for_bitrate(total_bps));
        let buffer = Arc::new(StreamBuffer::new(limits));
        let counters = Arc::new(OutputCounters::default());
        let muxer = Arc::new(
            StreamMuxer::new(buffer.clone(), counters.clone(), keyframes)
                .with_video_codec(headers.video.as_ref().map(|v| v.codec).unwrap_or_default()),
        );
        let (session_tx, session_rx) = crossbeam_channel::bounded(1);
        let (down_tx, down_rx) = crossbeam_channel::unbounded();
        let (redirect_tx, redirect_rx) = crossbeam_channel::unbounded();
        let (control_tx, control_rx) = crossbeam_channel::unbounded();
        let stop = Arc::new(AtomicBool::new(false));
        let last_error = Arc::new(Mutex::new(None));
        let send_buffer =
            ((total_bps as f64 / 8.0 * SEND_BUFFER_SECONDS) as usize).max(MIN_SEND_BUFFER_BYTES);
        let connect = ConnectOptions {
            connect_timeout: cfg.connect_timeout,
            handshake_timeout: cfg.connect_timeout,
            write_timeout: cfg.stall_timeout,
            user_timeout: cfg.stall_timeout,
            send_buffer_bytes: Some(send_buffer),
            tls,
        };
        let name = cfg.url.redacted();
        let send_thread = send::spawn(SendContext {
            buffer,
            counters: counters.clone(),
            muxer: muxer.clone(),
            sessions: session_rx,
            link_down: down_tx,
            redirects: redirect_tx,
            stop: stop.clone(),
            stall_timeout: cfg.stall_timeout,
            drain_timeout: cfg.drain_timeout,
            bitrate,
            audio_bps: headers.audio.as_ref().map_or(0, |a| a.bitrate_bps),
            audio_only: headers.video.is_none(),
        })
        .map_err(|e| Error::io("spawning the send thread", e))?;
        let reconnect_thread = reconnect::spawn(ReconnectContext {
            output: index,
            url: cfg.url,
            connect,
            headers: headers.clone(),
            policy: cfg.reconnect,
            counters: counters.clone(),
            sessions: session_tx,
            link_down: down_rx,
            redirects: redirect_rx,
            control: control_rx,
            events,
            last_error: last_error.clone(),
        })
        .map_err(|e| Error::io("spawning the reconnect thread", e))?;
        Ok(Self {
            name,
            muxer,
            counters,
            last_error,
            control: control_tx,
            stop,
            send_thread: Some(send_thread),
            reconnect_thread: Some(reconnect_thread),
        })
    }

    /// The sink the encoders push into.
    pub fn sink(&self) -> Arc<dyn PacketSink> {
        self.muxer.clone()
    }

    /// The destination with its key redacted.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Current link state.
    pub fn state(&self) -> LinkState {
        self.counters.state.get()
    }

    /// True when the output gave up because the server refused the publish.
    pub fn rejected(&self) -> bool {
        self.counters.rejected.load(Ordering::Acquire)
    }

    /// Last connection error, key redacted.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|e| e.clone())
    }

    /// A stats snapshot of this output plus the engines.
    pub fn stats(&self, engine: &EngineCounters, audio_frame_samples: u64) -> Stats {
        let mut s = Stats::default();
        s.fill_engine(engine, audio_frame_samples);
        s.fill_output(&self.counters);
        s.output = self.name.clone();
        s.last_error = self.last_error();
        s
    }

    /// Skips the current backoff wait.
    pub fn reconnect_now(&self) {
        let _ = self.control.send(Control::ReconnectNow);
    }

    /// Drains (up to the drain timeout), closes the session and joins the
    /// threads. Call after the encoders have stopped pushing.
    pub fn stop(&mut self) {
        let _ = self.control.send(Control::Stop);
        self.stop.store(true, Ordering::Release);
        for handle in [self.reconnect_thread.take(), self.send_thread.take()]
            .into_iter()
            .flatten()
        {
            if handle.join().is_err() {
                tracing::error!(output = %self.name, "an output thread panicked");
            }
        }
        if self.counters.state.get() != LinkState::Failed {
            self.counters.state.set(LinkState::Stopped);
        }
    }
}

impl Drop for StreamOutput {
    fn drop(&mut self) {
        self.stop();
    }
}
