//! Live audio capture: the desktop's sound, microphones, any PulseAudio or
//! PipeWire source, ALSA cards; resampled to the engine's rate and mixed.
//!
//! Why this shape:
//! - Every input has a *device thread* of its own that does all the blocking
//!   work: connecting, reading, noticing that the server died or stalled, and
//!   reconnecting every [`RETRY_INTERVAL`]. It hands samples over through a
//!   lock-free `rtrb` ring (a full ring drops the newest samples, counted in
//!   `audio_device_overflow_frames`); each new stream comes with a new ring,
//!   whose consumer reaches the [`DeviceSource`] over a channel.
//! - [`DeviceSource::read`] (called by the AudioEngine every tick) never
//!   blocks: it drains the ring, resamples with `rubato` to the engine rate,
//!   and hands out what is buffered. It is a jitter buffer: after an
//!   underrun it waits until [`JITTER_START_MS`] are buffered before giving
//!   anything (so bursts do not turn into one gap per tick), and it drops the
//!   oldest samples beyond [`JITTER_MAX_MS`] down to [`JITTER_START_MS`]
//!   (counted in `audio_device_jitter_dropped_frames`), so device clock drift
//!   never accumulates into latency. Whatever it cannot give, the engine
//!   fills with silence and counts.
//! - Two backends feed that one path ([`Capture`]): `pulse.rs`, native
//!   libpulse for `desktop`, `mic` and `pulse:NAME` (each stream names its own
//!   source, so any number of them mix, and nothing process-wide is set), and
//!   `alsa.rs`, cpal on ALSA for `default` and card names.
//! - A device that fails or stalls becomes silence and is reopened on its
//!   device thread; each reopen is counted in `audio_device_reopens`.
//!
//! Spec grammar for [`open_audio`]:
//! ```text
//! spec   := input ( "+" input )*          several inputs are mixed
//! input  := name [ "@" volume ]           volume: linear gain, default 1.0 (0..=4)
//! name   := "desktop"                     what the computer plays: the default sink's monitor
//!         | "mic"                         the PulseAudio/PipeWire default source
//!         | "pulse:" SOURCE               any PulseAudio/PipeWire source by name
//!         | "default"                     ALSA's default capture device (cpal)
//!         | DEVICE                        an ALSA card by cpal's name (exact, else substring)
//! ```
//! e.g. `desktop+mic@0.5`, `pulse:alsa_output.pci.monitor+pulse:alsa_input.usb`.

mod alsa;
mod mix;
mod pulse;
#[cfg(test)]
mod pulse_tests;
mod ring;
mod spec;

pub use mix::MixSource;
pub(crate) use pulse::{list_pulse, PulseListing};
use ring::RingWriter;
pub use spec::{
    parse_audio_spec, InputSpec, InputTarget, PulseSource, DEFAULT_MONITOR, DEFAULT_SOURCE,
    DESKTOP, MAX_VOLUME, MIC, PULSE_PREFIX,
};

pub(crate) use alsa::{alsa_cards, quiet_alsa_errors_on_this_thread};

use super::source::AudioSource;
use crate::stats::EngineCounters;
use crate::Error;
use rubato::Resampler;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Reopen a failed or missing device this often.
pub const RETRY_INTERVAL: Duration = Duration::from_secs(2);
/// A stream that delivered nothing (cpal), or a server that answered nothing
/// (PulseAudio), for this long is treated as failed: some backends stop
/// without reporting an error, and a stopped server reports nothing.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(2);
/// How long `open_audio` waits for a device's first open before it starts
/// with silence and lets the device thread keep trying: so a hung sound
/// server cannot hang `Streamer::start`. Longer than the PulseAudio
/// backend's own connect bound (`pulse::CONNECT_TIMEOUT`), so that a server
/// that merely refuses is still reported at start.
pub const FIRST_OPEN_WAIT: Duration = Duration::from_secs(5);
/// Capacity of the device -> reader ring, in ms of device audio. Only
/// reached when nobody reads (the engine reads every 10 ms).
pub const RING_MS: u32 = 500;
/// After an underrun, give nothing until this much is buffered.
pub const JITTER_START_MS: u32 = 40;
/// Never hold more than this; beyond it the oldest samples are dropped down to
/// `JITTER_START_MS` (bounded latency whatever the device clock does).
pub const JITTER_MAX_MS: u32 = 150;
/// Period asked of the device, in ms: small enough that the jitter buffer
/// stays short, large enough not to wake the device thread too often.
pub const DEVICE_PERIOD_MS: u32 = 10;
/// Resampler input chunk, in ms of device audio.
const RESAMPLE_CHUNK_MS: u32 = 10;
/// How often a device thread checks its stream and the stop flag.
const WATCH_PERIOD: Duration = Duration::from_millis(20);

/// Options of [`open_audio_with`] that are not part of the spec.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceOptions {
    /// The PulseAudio server to connect to (`unix:/path` or `tcp:host`);
    /// `None` = libpulse's own choice (`PULSE_SERVER`, client.conf, the
    /// user's runtime dir). Why an option: a program or test that talks to a
    /// particular server must not set `PULSE_SERVER` for the whole process.
    pub pulse_server: Option<String>,
}

/// Opens the inputs named by `spec` (grammar in the module docs), producing
/// interleaved f32 at `sample_rate` Hz with `channels` (1 or 2) channels.
/// Fails when the spec is malformed or a named device does not exist now; a
/// device that fails *later* turns into silence and is retried.
/// Every device counts its drops and reopens into `counters` (they reach
/// Stats as `audio_device_*`).
pub fn open_audio(
    spec: &str,
    sample_rate: u32,
    channels: u32,
    counters: &Arc<EngineCounters>,
) -> Result<Box<dyn AudioSource>, Error> {
    open_audio_with(
        spec,
        sample_rate,
        channels,
        counters,
        &DeviceOptions::default(),
    )
}

/// [`open_audio`] with [`DeviceOptions`]: for callers (tests, embedders)
/// that must choose the sound server without touching the process
/// environment.
pub fn open_audio_with(
    spec: &str,
    sample_rate: u32,
    channels: u32,
    counters: &Arc<EngineCounters>,
    options: &DeviceOptions,
) -> Result<Box<dyn AudioSource>, Error> {
    let inputs = parse_audio_spec(spec)?;
    if !(1..=2).contains(&channels) || sample_rate == 0 {
        return Err(Error::InvalidConfig {
            option: "audio",
            reason: format!("unsupported output {sample_rate} Hz x {channels} channels"),
        });
    }
    // All device threads open at once, and all are waited for until one
    // deadline: a start with several inputs on a hung server is bounded by
    // FIRST_OPEN_WAIT, not by a multiple of it.
    let mut started = Vec::new();
    for input in inputs {
        started.push(DeviceSource::start(
            input,
            sample_rate,
            channels,
            Arc::clone(counters),
            options.clone(),
        )?);
    }
    let deadline = Instant::now() + FIRST_OPEN_WAIT;
    let mut sources: Vec<Box<dyn AudioSource>> = Vec::new();
    for (source, first) in started {
        sources.push(Box::new(source.await_first_open(first, deadline)?));
    }
    if sources.len() == 1 {
        if let Some(s) = sources.pop() {
            return Ok(s);
        }
    }
    Ok(Box::new(MixSource::new(sources, channels)))
}

/// Why an open failed, which decides what happens at start.
#[derive(Debug)]
enum OpenError {
    /// The device or server said no (no such source, connection refused): a
    /// first open fails `open_audio`, so a typo is reported at start.
    Refused(String),
    /// No answer in time (a stopped server): the source starts with silence
    /// and the device thread keeps trying.
    TimedOut(String),
}

impl OpenError {
    fn message(&self) -> &str {
        match self {
            OpenError::Refused(m) | OpenError::TimedOut(m) => m,
        }
    }
}

/// A capture stream opened by a backend and driven by its device thread.
/// Why a trait: the two backends (libpulse, cpal) differ only in how they
/// open and watch a stream; the ring, resampler, jitter buffer and reopen
/// policy are one code path.
trait Capture {
    /// Runs (reading into its ring, or watching the backend's own thread)
    /// until the stream fails or stalls, returning why, or until `stop` is
    /// set, returning `None`. Blocks the device thread only.
    fn run(&mut self, stop: &AtomicBool) -> Option<String>;
}

/// Opens `target` with the backend that serves it.
fn open_capture(
    target: &InputTarget,
    rate: u32,
    counters: &Arc<EngineCounters>,
    options: &DeviceOptions,
) -> Result<(Box<dyn Capture>, NewStream), OpenError> {
    match target {
        InputTarget::Pulse(source) => {
            pulse::open(source, options.pulse_server.as_deref(), rate, counters)
        }
        InputTarget::Default | InputTarget::Device(_) => alsa::open(target, counters),
    }
}

/// What the device thread hands the reader: a new stream's ring and rate.
struct NewStream {
    consumer: rtrb::Consumer<f32>,
    rate: u32,
}

/// State shared between a [`DeviceSource`] and its device thread.
struct Shared {
    stop: AtomicBool,
    /// The pipeline's counters: `audio_device_overflow_frames` (the ring's
    /// producer), `audio_device_reopens` (the device thread) and
    /// `audio_device_jitter_dropped_frames` (the reader).
    counters: Arc<EngineCounters>,
}

/// Where a device thread reports its first open.
type FirstOpen = crossbeam_channel::Receiver<Result<(), String>>;

/// One live input device, as an [`AudioSource`].
pub struct DeviceSource {
    name: String,
    volume: f32,
    out_rate: u32,
    out_channels: u32,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    new_streams: crossbeam_channel::Receiver<NewStream>,
    consumer: Option<rtrb::Consumer<f32>>,
    in_rate: u32,
    resampler: Option<rubato::FastFixedIn<f32>>,
    /// Device-rate planar input waiting for a full resampler chunk.
    pending: [Vec<f32>; 2],
    resampled: [Vec<f32>; 2],
    /// Engine-rate stereo, interleaved: the jitter buffer.
    fifo: VecDeque<f32>,
    primed: bool,
}

impl DeviceSource {
    /// Opens one input and starts its device thread. Fails when the first
    /// open is refused (so a typo is reported at start, not as silence);
    /// waits at most [`FIRST_OPEN_WAIT`] for it, then starts with silence
    /// while the device thread keeps trying.
    pub fn open(
        input: InputSpec,
        out_rate: u32,
        out_channels: u32,
        counters: Arc<EngineCounters>,
        options: DeviceOptions,
    ) -> Result<Self, Error> {
        let (this, first) = Self::start(input, out_rate, out_channels, counters, options)?;
        this.await_first_open(first, Instant::now() + FIRST_OPEN_WAIT)
    }

    /// Starts the device thread, which opens the input; the receiver gets
    /// the first open's result.
    fn start(
        input: InputSpec,
        out_rate: u32,
        out_channels: u32,
        counters: Arc<EngineCounters>,
        options: DeviceOptions,
    ) -> Result<(Self, FirstOpen), Error> {
        let name = input.target.display_name();
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            counters,
        });
        let (tx, rx) = crossbeam_channel::unbounded();
        // The device thread reports its first open here, so errors come back
        // to the caller; it keeps the stream and reopens it.
        let (first_tx, first_rx) = crossbeam_channel::bounded(1);
        let thread_shared = Arc::clone(&shared);
        let job = DeviceJob {
            target: input.target.clone(),
            name: name.clone(),
            rate: out_rate,
            options,
        };
        let thread = std::thread::Builder::new()
            .name(format!("onair-audio-{name}"))
            .spawn(move || device_thread(job, thread_shared, tx, first_tx))
            .map_err(|e| Error::io("starting the audio device thread", e))?;
        let this = Self {
            name,
            volume: input.volume,
            out_rate,
            out_channels,
            shared,
            thread: Some(thread),
            new_streams: rx,
            consumer: None,
            in_rate: 0,
            resampler: None,
            pending: [Vec::new(), Vec::new()],
            resampled: [Vec::new(), Vec::new()],
            fifo: VecDeque::new(),
            primed: false,
        };
        Ok((this, first_rx))
    }

    /// Waits until `deadline` for the first open: a refusal is an error, no
    /// answer starts with silence (the device thread keeps trying).
    fn await_first_open(mut self, first_rx: FirstOpen, deadline: Instant) -> Result<Self, Error> {
        let name = self.name.clone();
        let wait = deadline.saturating_duration_since(Instant::now());
        let first: Result<(), String> = match first_rx.recv_timeout(wait) {
            Ok(r) => r,
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                tracing::warn!(
                    source = %name,
                    "audio device did not open in time; starting with silence and retrying"
                );
                Ok(())
            }
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                Err("device thread ended".to_string())
            }
        };
        if let Err(reason) = first {
            self.stop();
            return Err(Error::Source { name, reason });
        }
        Ok(self)
    }

    /// Tells the device thread to end, without waiting for it: a stalled
    /// server can hold it in a blocking read, and whoever drops the source
    /// (the pipeline stopping) must not hang on that. The thread ends at its
    /// next check (within `WATCH_PERIOD`, or when the read returns).
    fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        drop(self.thread.take());
    }

    fn ms_frames(&self, ms: u32) -> usize {
        (u64::from(self.out_rate) * u64::from(ms) / 1000) as usize
    }

    /// Takes a new stream from the device thread, if any.
    fn adopt_new_stream(&mut self) {
        while let Ok(s) = self.new_streams.try_recv() {
            self.consumer = Some(s.consumer);
            if s.rate != self.in_rate || self.resampler.is_none() {
                self.in_rate = s.rate;
                self.resampler = None;
                if s.rate != self.out_rate {
                    let chunk = (s.rate * RESAMPLE_CHUNK_MS / 1000).max(1) as usize;
                    let ratio = f64::from(self.out_rate) / f64::from(s.rate);
                    match rubato::FastFixedIn::<f32>::new(
                        ratio,
                        1.0,
                        rubato::PolynomialDegree::Cubic,
                        chunk,
                        2,
                    ) {
                        Ok(r) => self.resampler = Some(r),
                        Err(e) => {
                            tracing::warn!(source = %self.name, error = %e, "no resampler");
                            self.consumer = None;
                        }
                    }
                }
            }
            self.pending.iter_mut().for_each(Vec::clear);
        }
    }

    /// Moves what the callback produced into the engine-rate fifo.
    fn pump(&mut self) {
        self.adopt_new_stream();
        let Some(consumer) = self.consumer.as_mut() else {
            return;
        };
        let n = consumer.slots() & !1;
        let Ok(chunk) = consumer.read_chunk(n) else {
            return;
        };
        let (a, b) = chunk.as_slices();
        match self.resampler.as_mut() {
            None => {
                self.fifo.extend(a.iter().chain(b.iter()).copied());
            }
            Some(r) => {
                for pair in a.chunks_exact(2).chain(b.chunks_exact(2)) {
                    self.pending[0].push(pair[0]);
                    self.pending[1].push(pair[1]);
                }
                loop {
                    let need = r.input_frames_next();
                    if self.pending[0].len() < need {
                        break;
                    }
                    let max = r.output_frames_max();
                    for ch in &mut self.resampled {
                        ch.resize(max, 0.0);
                    }
                    let input = [&self.pending[0][..need], &self.pending[1][..need]];
                    match r.process_into_buffer(&input, &mut self.resampled, None) {
                        Ok((used, produced)) => {
                            for i in 0..produced {
                                self.fifo.push_back(self.resampled[0][i]);
                                self.fifo.push_back(self.resampled[1][i]);
                            }
                            for ch in &mut self.pending {
                                ch.drain(..used);
                            }
                        }
                        Err(_) => {
                            self.pending.iter_mut().for_each(Vec::clear);
                            break;
                        }
                    }
                }
            }
        }
        chunk.commit_all();
        // Bound the latency: drop the oldest beyond the maximum.
        let frames = self.fifo.len() / 2;
        if frames > self.ms_frames(JITTER_MAX_MS) {
            let drop = frames - self.ms_frames(JITTER_START_MS);
            self.fifo.drain(..drop * 2);
            self.shared
                .counters
                .audio_device_jitter_dropped_frames
                .fetch_add(drop as u64, Ordering::Relaxed);
        }
    }
}

impl AudioSource for DeviceSource {
    fn read(&mut self, out: &mut [f32]) -> usize {
        self.pump();
        let ch = self.out_channels as usize;
        let buffered = self.fifo.len() / 2;
        if !self.primed {
            if buffered < self.ms_frames(JITTER_START_MS) {
                return 0;
            }
            self.primed = true;
        }
        let n = (out.len() / ch).min(buffered);
        for frame in out.chunks_exact_mut(ch).take(n) {
            let l = self.fifo.pop_front().unwrap_or(0.0) * self.volume;
            let r = self.fifo.pop_front().unwrap_or(0.0) * self.volume;
            if ch == 1 {
                frame[0] = 0.5 * (l + r);
            } else {
                frame[0] = l;
                frame[1] = r;
            }
        }
        if self.fifo.is_empty() {
            self.primed = false;
        }
        n
    }

    fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for DeviceSource {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What a device thread opens, and for whom.
struct DeviceJob {
    target: InputTarget,
    name: String,
    /// The rate asked of backends that can convert (PulseAudio).
    rate: u32,
    options: DeviceOptions,
}

/// Owns the input's stream: opens, runs, reopens until told to stop.
fn device_thread(
    job: DeviceJob,
    shared: Arc<Shared>,
    streams: crossbeam_channel::Sender<NewStream>,
    first: crossbeam_channel::Sender<Result<(), String>>,
) {
    // alsa-lib's probing noise goes to a thread-local handler (tracing), not
    // stderr; it is this thread's own setting.
    quiet_alsa_errors_on_this_thread();
    let name = &job.name;
    let mut first = Some(first);
    let mut down_logged = false;
    while !shared.stop.load(Ordering::Relaxed) {
        match open_capture(&job.target, job.rate, &shared.counters, &job.options) {
            Ok((mut capture, stream)) => {
                if let Some(f) = first.take() {
                    let _ = f.send(Ok(()));
                } else {
                    shared
                        .counters
                        .audio_device_reopens
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::info!(source = %name, "audio device is back");
                }
                if streams.send(stream).is_err() {
                    return;
                }
                let Some(why) = capture.run(&shared.stop) else {
                    return;
                };
                drop(capture);
                tracing::warn!(
                    source = %name,
                    reason = %why,
                    "audio device failed or stalled; silence until it is back (retry every {:?})",
                    RETRY_INTERVAL
                );
                down_logged = true;
            }
            Err(e) => {
                if let Some(f) = first.take() {
                    match &e {
                        // Nobody waits any more (FIRST_OPEN_WAIT passed):
                        // keep trying like after any later failure.
                        OpenError::Refused(m) => {
                            if f.send(Err(m.clone())).is_ok() {
                                return;
                            }
                        }
                        OpenError::TimedOut(_) => {
                            let _ = f.send(Ok(()));
                        }
                    }
                }
                if !down_logged {
                    down_logged = true;
                    tracing::warn!(
                        source = %name,
                        error = %e.message(),
                        "audio device unavailable; silence until it is back"
                    );
                }
            }
        }
        if !wait_retry(&shared) {
            return;
        }
    }
}

/// Sleeps `RETRY_INTERVAL` in small steps; false when told to stop.
fn wait_retry(shared: &Shared) -> bool {
    let until = Instant::now() + RETRY_INTERVAL;
    while Instant::now() < until {
        if shared.stop.load(Ordering::Relaxed) {
            return false;
        }
        std::thread::sleep(WATCH_PERIOD);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_audio_rejects_bad_specs_and_missing_devices() {
        let counters = Arc::new(EngineCounters::default());
        assert!(open_audio("x@loud", 48_000, 2, &counters).is_err());
        assert!(open_audio("default", 48_000, 6, &counters).is_err());
        let t = Instant::now();
        assert!(open_audio("no-such-device-xyz", 48_000, 2, &counters).is_err());
        assert!(t.elapsed() < FIRST_OPEN_WAIT);
    }
}
