//! The PulseAudio backend (and PipeWire, which serves the same protocol
//! through pipewire-pulse): `desktop`, `mic` and `pulse:NAME`.
//!
//! Why native libpulse: each record stream names its own source in
//! `pa_stream_connect_record` (`@DEFAULT_MONITOR@`, `@DEFAULT_SOURCE@` or a
//! name, resolved by the server), so any number of sources mix in one process
//! and nothing process-wide is set (ALSA's pulse plugin, used before, could
//! only be pointed at a source by `PULSE_SOURCE`, set with `set_var` while
//! other threads ran).
//!
//! Why `libpulse-binding` (jnqnfe's, the maintained binding: regular releases
//! following libpulse's API versions) and its asynchronous API with the
//! *standard* main loop rather than `libpulse-simple-binding`: the simple API
//! blocks in `pa_simple_new` and `pa_simple_read` with no timeout, so a
//! stopped server would hold the device thread forever, deaf to its stop
//! flag. Here the device thread iterates its own main loop with a bounded
//! poll ([`WATCH_PERIOD`]): connecting has a deadline ([`CONNECT_TIMEOUT`]),
//! reads never wait longer than a poll, and a server that stops answering is
//! noticed ([`STALL_TIMEOUT`] without data or an answer to a timing request
//! sent every [`PING_INTERVAL`]). Everything (main loop, context, stream)
//! lives and dies on that thread; the AudioEngine only sees the ring.
//!
//! The stream asks the server for stereo f32 at the engine's rate (the server
//! converts), with a fragment of `DEVICE_PERIOD_MS` and `ADJUST_LATENCY`, so
//! the source's own latency follows the fragment instead of seconds of
//! buffering.

use super::{
    Capture, NewStream, OpenError, PulseSource, RingWriter, DEVICE_PERIOD_MS, STALL_TIMEOUT,
    WATCH_PERIOD,
};
use crate::stats::EngineCounters;
use libpulse_binding as pa;
use pa::context::{Context, FlagSet as ContextFlags, State as ContextState};
use pa::mainloop::standard::Mainloop;
use pa::operation::State as OperationState;
use pa::proplist::{properties, Proplist};
use pa::stream::{FlagSet as StreamFlags, PeekResult, State as StreamState, Stream};
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Longest a connect (context ready, then stream ready) may take before the
/// attempt counts as timed out: a stopped server accepts the socket and never
/// answers.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How often a running capture asks the server for timing info, as a
/// liveness check that does not depend on the source producing data.
pub const PING_INTERVAL: Duration = Duration::from_millis(500);
/// The application name the server shows (pavucontrol, `pactl list`).
pub const APP_NAME: &str = "onair";
/// What a refused connection usually means, for the error a user reads.
const NO_SERVER_HINT: &str = "is a PulseAudio or PipeWire server running? \
                              PULSE_SERVER names another one";
/// Bytes per frame of the stream's format: stereo f32.
const FRAME_BYTES: usize = 8;

/// A context and the main loop it runs on. Field order is drop order: the
/// context goes before the main loop whose events it holds.
struct Connection {
    context: Context,
    mainloop: Mainloop,
}

impl Connection {
    /// Connects to `server` (or libpulse's default) and waits until the
    /// context is ready, at most until `deadline`.
    fn connect(server: Option<&str>, deadline: Instant) -> Result<Connection, OpenError> {
        let refused = |what: &str| OpenError::Refused(format!("PulseAudio: cannot {what}"));
        let mainloop = Mainloop::new().ok_or_else(|| refused("create a main loop"))?;
        let mut props = Proplist::new().ok_or_else(|| refused("create a property list"))?;
        let _ = props.set_str(properties::APPLICATION_NAME, APP_NAME);
        let context = Context::new_with_proplist(&mainloop, APP_NAME, &props)
            .ok_or_else(|| refused("create a context"))?;
        let mut conn = Connection { context, mainloop };
        let at = server.map(|s| format!(" at {s}")).unwrap_or_default();
        conn.context
            .connect(server, ContextFlags::NOAUTOSPAWN, None)
            .map_err(|e| {
                OpenError::Refused(format!(
                    "cannot connect to PulseAudio{at}: {e} ({NO_SERVER_HINT})"
                ))
            })?;
        conn.wait(deadline, "connecting to PulseAudio", |c| {
            match c.context.get_state() {
                ContextState::Ready => Some(Ok(())),
                ContextState::Failed | ContextState::Terminated => Some(Err(format!(
                    "cannot connect to PulseAudio{at}: {} ({NO_SERVER_HINT})",
                    c.context.errno()
                ))),
                _ => None,
            }
        })?;
        Ok(conn)
    }

    /// Runs the main loop once, waiting at most `timeout` for an event.
    fn iterate(&mut self, timeout: Duration) -> Result<(), String> {
        let micros = pa::time::MicroSeconds(timeout.as_micros() as u64);
        self.mainloop
            .prepare(Some(micros))
            .and_then(|()| self.mainloop.poll())
            .and_then(|_| self.mainloop.dispatch())
            .map(|_| ())
            .map_err(|e| format!("PulseAudio main loop: {e}"))
    }

    /// Iterates until `done` answers or `deadline` passes (a timeout).
    fn wait<T>(
        &mut self,
        deadline: Instant,
        what: &str,
        mut done: impl FnMut(&mut Self) -> Option<Result<T, String>>,
    ) -> Result<T, OpenError> {
        loop {
            if let Some(r) = done(self) {
                return r.map_err(OpenError::Refused);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(OpenError::TimedOut(format!(
                    "{what}: no answer within {CONNECT_TIMEOUT:?}"
                )));
            }
            self.iterate(left.min(WATCH_PERIOD))
                .map_err(OpenError::Refused)?;
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.context.disconnect();
    }
}

/// One record stream, owned by its device thread. Field order is drop
/// order: the stream before its connection.
struct PulseCapture {
    stream: Stream,
    conn: Connection,
    writer: RingWriter,
}

/// Opens a record stream on `source` at `rate` Hz, stereo f32.
pub(super) fn open(
    source: &PulseSource,
    server: Option<&str>,
    rate: u32,
    counters: &Arc<EngineCounters>,
) -> Result<(Box<dyn Capture>, NewStream), OpenError> {
    let deadline = Instant::now() + CONNECT_TIMEOUT;
    let mut conn = Connection::connect(server, deadline)?;
    let spec = pa::sample::Spec {
        format: pa::sample::Format::F32le,
        channels: 2,
        rate,
    };
    if !spec.is_valid() {
        return Err(OpenError::Refused(format!(
            "PulseAudio cannot record at {rate} Hz"
        )));
    }
    let device = source.device_name();
    let mut stream = Stream::new(&mut conn.context, "capture", &spec, None).ok_or_else(|| {
        OpenError::Refused(format!(
            "PulseAudio: cannot create a record stream: {}",
            conn.context.errno()
        ))
    })?;
    let fragment = (rate * DEVICE_PERIOD_MS / 1000).max(1) * FRAME_BYTES as u32;
    let attr = pa::def::BufferAttr {
        maxlength: u32::MAX,
        tlength: u32::MAX,
        prebuf: u32::MAX,
        minreq: u32::MAX,
        fragsize: fragment,
    };
    stream
        .connect_record(Some(device), Some(&attr), StreamFlags::ADJUST_LATENCY)
        .map_err(|e| OpenError::Refused(format!("PulseAudio source {device:?}: {e}")))?;
    conn.wait(
        deadline,
        "opening the PulseAudio source",
        |c| match stream.get_state() {
            StreamState::Ready => Some(Ok(())),
            StreamState::Failed | StreamState::Terminated => Some(Err(format!(
                "PulseAudio source {device:?}: {} (`onair devices` lists the sources)",
                c.context.errno()
            ))),
            _ => None,
        },
    )?;
    tracing::info!(
        source = device,
        resolved = %stream.get_device_name().unwrap_or_default(),
        "recording from PulseAudio"
    );
    let (writer, consumer) = RingWriter::new(rate, Arc::clone(counters));
    let capture = PulseCapture {
        stream,
        conn,
        writer,
    };
    Ok((Box::new(capture), NewStream { consumer, rate }))
}

impl PulseCapture {
    /// Moves everything the server has sent into the ring; true when there
    /// was something.
    fn drain(&mut self) -> Result<bool, String> {
        let mut got = false;
        loop {
            match self.stream.peek().map_err(|e| format!("reading: {e}"))? {
                PeekResult::Empty => return Ok(got),
                PeekResult::Hole(bytes) => {
                    // Data the server lost: its length in silence.
                    let frames = bytes / FRAME_BYTES;
                    self.writer
                        .push(std::iter::repeat_n((0.0, 0.0), frames), frames);
                }
                PeekResult::Data(bytes) => {
                    let frames = bytes.len() / FRAME_BYTES;
                    let samples = bytes.chunks_exact(FRAME_BYTES).map(|b| {
                        (
                            f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
                            f32::from_le_bytes([b[4], b[5], b[6], b[7]]),
                        )
                    });
                    self.writer.push(samples, frames);
                }
            }
            self.stream.discard().map_err(|e| format!("reading: {e}"))?;
            got = true;
        }
    }
}

impl Capture for PulseCapture {
    fn run(&mut self, stop: &AtomicBool) -> Option<String> {
        let mut last_answer = Instant::now();
        let mut next_ping = last_answer + PING_INTERVAL;
        let mut ping: Option<pa::operation::Operation<dyn FnMut(bool)>> = None;
        loop {
            if stop.load(Ordering::Relaxed) {
                return None;
            }
            if let Err(e) = self.conn.iterate(WATCH_PERIOD) {
                return Some(e);
            }
            if self.conn.context.get_state() != ContextState::Ready
                || self.stream.get_state() != StreamState::Ready
            {
                return Some(format!("connection lost: {}", self.conn.context.errno()));
            }
            match self.drain() {
                Ok(true) => last_answer = Instant::now(),
                Ok(false) => {}
                Err(e) => return Some(e),
            }
            let now = Instant::now();
            if let Some(op) = &ping {
                match op.get_state() {
                    OperationState::Running => {}
                    OperationState::Done => {
                        last_answer = now;
                        ping = None;
                    }
                    OperationState::Cancelled => ping = None,
                }
            }
            if ping.is_none() && now >= next_ping {
                ping = Some(self.stream.update_timing_info(None));
                next_ping = now + PING_INTERVAL;
            }
            let silent_for = now.saturating_duration_since(last_answer);
            if silent_for > STALL_TIMEOUT {
                return Some(format!("the server answered nothing for {silent_for:?}"));
            }
        }
    }
}

impl Drop for PulseCapture {
    fn drop(&mut self) {
        let _ = self.stream.disconnect();
    }
}

/// One source or sink of a PulseAudio server, for `onair devices`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PulseDevice {
    /// The server's name for it (`pulse:NAME` for a source).
    pub name: String,
    /// The human description (what pavucontrol shows).
    pub description: String,
    /// A source: the sink it monitors. A sink: its monitor source.
    pub monitor: Option<String>,
}

/// What a PulseAudio server offers, for `onair devices`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PulseListing {
    /// Server name and version (PipeWire says "PulseAudio (on PipeWire ...)").
    pub server: String,
    /// The default sink (`desktop` records its monitor).
    pub default_sink: Option<String>,
    /// The default source (`mic`).
    pub default_source: Option<String>,
    /// Every source, monitors included.
    pub sources: Vec<PulseDevice>,
    /// Every sink.
    pub sinks: Vec<PulseDevice>,
}

impl PulseListing {
    /// The monitor source of the default sink: what `desktop` records.
    pub fn default_monitor(&self) -> Option<&str> {
        let sink = self.default_sink.as_deref()?;
        self.sinks
            .iter()
            .find(|s| s.name == sink)
            .and_then(|s| s.monitor.as_deref())
    }
}

/// Asks `server` (or libpulse's default) for its sources, sinks and
/// defaults, within [`CONNECT_TIMEOUT`] for the connect and as much again for
/// the answers.
pub(crate) fn list_pulse(server: Option<&str>) -> Result<PulseListing, String> {
    let mut conn = Connection::connect(server, Instant::now() + CONNECT_TIMEOUT)
        .map_err(|e| e.message().to_string())?;
    let listing = Rc::new(RefCell::new(PulseListing::default()));
    let introspect = conn.context.introspect();
    let l = Rc::clone(&listing);
    let server_op = introspect.get_server_info(move |i| {
        let mut l = l.borrow_mut();
        l.server = format!(
            "{} {}",
            i.server_name.as_deref().unwrap_or("PulseAudio"),
            i.server_version.as_deref().unwrap_or("")
        );
        l.default_sink = i.default_sink_name.as_ref().map(|s| s.to_string());
        l.default_source = i.default_source_name.as_ref().map(|s| s.to_string());
    });
    let l = Rc::clone(&listing);
    let sources_op = introspect.get_source_info_list(move |r| {
        if let pa::callbacks::ListResult::Item(s) = r {
            l.borrow_mut().sources.push(PulseDevice {
                name: s.name.as_deref().unwrap_or_default().to_string(),
                description: s.description.as_deref().unwrap_or_default().to_string(),
                monitor: s.monitor_of_sink_name.as_ref().map(|n| n.to_string()),
            });
        }
    });
    let l = Rc::clone(&listing);
    let sinks_op = introspect.get_sink_info_list(move |r| {
        if let pa::callbacks::ListResult::Item(s) = r {
            l.borrow_mut().sinks.push(PulseDevice {
                name: s.name.as_deref().unwrap_or_default().to_string(),
                description: s.description.as_deref().unwrap_or_default().to_string(),
                monitor: s.monitor_source_name.as_ref().map(|n| n.to_string()),
            });
        }
    });
    conn.wait(
        Instant::now() + CONNECT_TIMEOUT,
        "listing PulseAudio devices",
        |_| {
            let running = [
                server_op.get_state(),
                sources_op.get_state(),
                sinks_op.get_state(),
            ]
            .contains(&OperationState::Running);
            (!running).then_some(Ok(()))
        },
    )
    .map_err(|e| e.message().to_string())?;
    let out = std::mem::take(&mut *listing.borrow_mut());
    Ok(out)
}
