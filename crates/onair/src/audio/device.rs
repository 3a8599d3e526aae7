//! Live audio capture: sound-card inputs, the desktop's sound, a microphone,
//! resampled to the engine's rate and mixed.
//!
//! Why this shape:
//! - `cpal` (ALSA host on Linux) delivers samples on its own callback thread,
//!   in bursts. The callback only converts to stereo f32 and pushes into a
//!   lock-free `rtrb` ring; it never locks or allocates. A full ring drops
//!   the newest samples (counted).
//! - `cpal::Stream` is not `Send`, and a device must be reopened when it
//!   fails, so each device has a small *device thread* that owns the stream,
//!   watches it (error callback, or no data for [`STALL_TIMEOUT`]) and
//!   reopens it every [`RETRY_INTERVAL`]. Each new stream comes with a new
//!   ring, whose consumer is handed to the [`DeviceSource`] over a channel.
//! - [`DeviceSource::read`] (called by the AudioEngine every tick) never
//!   blocks: it drains the ring, resamples with `rubato` to the engine rate,
//!   and hands out what is buffered. It is a jitter buffer: after an
//!   underrun it waits until [`JITTER_START_MS`] are buffered before giving
//!   anything (so bursts do not turn into one gap per tick), and it drops the
//!   oldest samples beyond [`JITTER_MAX_MS`] down to [`JITTER_START_MS`], so
//!   device clock drift never accumulates into latency. Whatever it cannot
//!   give, the engine fills with silence and counts.
//! - PulseAudio/PipeWire are reached through ALSA's `pulse` plugin (Debian:
//!   `libasound2-plugins`), which records the server's default source. A
//!   source by name (`pulse:NAME`, and `desktop` = `pulse:@DEFAULT_MONITOR@`,
//!   the default sink's monitor) is chosen with `PULSE_SOURCE`, which libpulse
//!   honours. Measured here: the plugin reads it again after the open (the
//!   callbacks stop when it is removed right after), so it is set for the
//!   whole process and left set: one named Pulse source per process, and on a
//!   Pulse/PipeWire desktop `desktop+mic` records the monitor twice (the
//!   ALSA default device is the same plugin). Mixing desktop with an ALSA
//!   `hw:` microphone works. A native libpulse path would lift this (tried
//!   libpulse-simple: reads with a 10-40 ms fragment never returned on a null
//!   sink's monitor within 1.5 s; not pursued yet).
//!
//! Spec grammar for [`open_audio`]:
//! ```text
//! spec   := input ( "+" input )*          several inputs are mixed
//! input  := name [ "@" volume ]           volume: linear gain, default 1.0 (0..=4)
//! name   := "default"                     cpal's default input device
//!         | "mic"                         same as default (the default source)
//!         | "desktop"                     what the computer plays (default sink's monitor)
//!         | "pulse:" SOURCE               a PulseAudio/PipeWire source by name
//!         | DEVICE                        a cpal/ALSA input device name (exact, else substring)
//! ```
//! e.g. `desktop+mic@0.5`, `pulse:alsa_output.pci.monitor`, `hw:CARD=USB,DEV=0`.

use super::source::AudioSource;
use crate::stats::EngineCounters;
use crate::Error;
use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use rubato::Resampler;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Reopen a failed or missing device this often.
pub const RETRY_INTERVAL: Duration = Duration::from_secs(2);
/// A stream that delivered nothing for this long is treated as failed (some
/// backends stop calling back without reporting an error).
pub const STALL_TIMEOUT: Duration = Duration::from_secs(2);
/// Capacity of the callback -> reader ring, in ms of device audio. Only
/// reached when nobody reads (the engine reads every 10 ms).
pub const RING_MS: u32 = 500;
/// After an underrun, give nothing until this much is buffered.
pub const JITTER_START_MS: u32 = 40;
/// Never hold more than this; beyond it the oldest samples are dropped down to
/// `JITTER_START_MS` (bounded latency whatever the device clock does).
pub const JITTER_MAX_MS: u32 = 150;
/// Period asked of the device, in ms: small enough that the jitter buffer
/// stays short, large enough not to wake the callback thread too often.
pub const DEVICE_PERIOD_MS: u32 = 10;
/// Resampler input chunk, in ms of device audio.
const RESAMPLE_CHUNK_MS: u32 = 10;
/// Largest per-input volume accepted in a spec.
pub const MAX_VOLUME: f32 = 4.0;
/// How often the device thread checks its stream and the stop flag.
const WATCH_PERIOD: Duration = Duration::from_millis(20);
/// Source name that means the default sink's monitor in PulseAudio/PipeWire.
pub const DEFAULT_MONITOR: &str = "@DEFAULT_MONITOR@";
/// The ALSA device name of the PulseAudio plugin.
pub const PULSE_ALSA_DEVICE: &str = "pulse";

/// One input of a spec.
#[derive(Debug, Clone, PartialEq)]
pub struct InputSpec {
    /// What to open.
    pub target: InputTarget,
    /// Linear gain.
    pub volume: f32,
}

/// What an input names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputTarget {
    /// cpal's default input device.
    Default,
    /// A PulseAudio/PipeWire source by name, through ALSA's pulse plugin.
    Pulse(String),
    /// A cpal input device by name.
    Device(String),
}

/// Parses an audio spec (grammar in the module docs).
pub fn parse_audio_spec(spec: &str) -> Result<Vec<InputSpec>, Error> {
    let bad = |reason: String| Error::InvalidConfig {
        option: "audio",
        reason,
    };
    let mut out = Vec::new();
    for part in spec.split('+') {
        let part = part.trim();
        let (name, volume) = match part.rsplit_once('@') {
            // `@DEFAULT_MONITOR@`-style names end in '@': not a volume.
            Some((n, v)) if !v.is_empty() && !n.ends_with(':') => {
                let vol: f32 = v
                    .trim()
                    .parse()
                    .map_err(|_| bad(format!("{part:?}: volume {v:?} is not a number")))?;
                if !(0.0..=MAX_VOLUME).contains(&vol) {
                    return Err(bad(format!("{part:?}: volume must be 0..={MAX_VOLUME}")));
                }
                (n.trim(), vol)
            }
            _ => (part, 1.0),
        };
        let target = match name {
            "" => return Err(bad(format!("empty input in {spec:?}"))),
            "default" | "mic" => InputTarget::Default,
            "desktop" => InputTarget::Pulse(DEFAULT_MONITOR.to_string()),
            n => match n.strip_prefix("pulse:") {
                Some(src) if !src.is_empty() => InputTarget::Pulse(src.to_string()),
                Some(_) => return Err(bad("pulse: needs a source name".to_string())),
                None => InputTarget::Device(n.to_string()),
            },
        };
        out.push(InputSpec { target, volume });
    }
    Ok(out)
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
    let inputs = parse_audio_spec(spec)?;
    if !(1..=2).contains(&channels) || sample_rate == 0 {
        return Err(Error::InvalidConfig {
            option: "audio",
            reason: format!("unsupported output {sample_rate} Hz x {channels} channels"),
        });
    }
    let mut sources: Vec<Box<dyn AudioSource>> = Vec::new();
    for input in inputs {
        sources.push(Box::new(DeviceSource::open(
            input,
            sample_rate,
            channels,
            Arc::clone(counters),
        )?));
    }
    if sources.len() == 1 {
        if let Some(s) = sources.pop() {
            return Ok(s);
        }
    }
    Ok(Box::new(MixSource::new(sources, channels)))
}

/// What the device thread tells the reader.
struct NewStream {
    consumer: rtrb::Consumer<f32>,
    rate: u32,
}

/// State shared between a [`DeviceSource`] and its device thread.
struct Shared {
    stop: AtomicBool,
    /// The pipeline's counters: `audio_device_overflow_frames` (the
    /// callback), `audio_device_reopens` (the device thread) and
    /// `audio_device_jitter_dropped_frames` (the reader).
    counters: Arc<EngineCounters>,
}

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
    /// Opens one input and starts its device thread. Fails only when the
    /// first open fails (so a typo is reported at start, not as silence).
    pub fn open(
        input: InputSpec,
        out_rate: u32,
        out_channels: u32,
        counters: Arc<EngineCounters>,
    ) -> Result<Self, Error> {
        let name = match &input.target {
            InputTarget::Default => "default".to_string(),
            InputTarget::Pulse(s) => format!("pulse:{s}"),
            InputTarget::Device(d) => d.clone(),
        };
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            counters,
        });
        let (tx, rx) = crossbeam_channel::unbounded();
        // First open on the caller's thread to report errors synchronously:
        // the device thread gets the stream's config only, and reopens.
        let (first_tx, first_rx) = crossbeam_channel::bounded(1);
        let target = input.target.clone();
        let thread_shared = Arc::clone(&shared);
        let thread_name = name.clone();
        let thread = std::thread::Builder::new()
            .name(format!("onair-audio-{name}"))
            .spawn(move || device_thread(target, thread_name, thread_shared, tx, first_tx))
            .map_err(|e| Error::io("starting the audio device thread", e))?;
        let first: Result<(), String> = first_rx
            .recv()
            .unwrap_or_else(|_| Err("device thread ended".to_string()));
        let mut this = Self {
            name: name.clone(),
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
        if let Err(reason) = first {
            this.stop();
            return Err(Error::Source { name, reason });
        }
        Ok(this)
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

/// Sums several inputs, each with its own volume (applied by the input).
/// The result has as many frames as the input that had the most; inputs with
/// fewer contribute silence for the rest. The sum is clipped to -1..=1.
pub struct MixSource {
    inputs: Vec<Box<dyn AudioSource>>,
    scratch: Vec<f32>,
    name: String,
    channels: usize,
}

impl MixSource {
    /// Mixes `inputs` (all at the same rate and `channels`).
    pub fn new(inputs: Vec<Box<dyn AudioSource>>, channels: u32) -> Self {
        let name = inputs
            .iter()
            .map(|i| i.name().to_string())
            .collect::<Vec<_>>()
            .join("+");
        Self {
            inputs,
            scratch: Vec::new(),
            name,
            channels: channels.max(1) as usize,
        }
    }
}

impl AudioSource for MixSource {
    fn read(&mut self, out: &mut [f32]) -> usize {
        out.fill(0.0);
        self.scratch.resize(out.len(), 0.0);
        let mut most = 0;
        for input in &mut self.inputs {
            let got = input.read(&mut self.scratch);
            for (o, s) in out.iter_mut().zip(&self.scratch[..got * self.channels]) {
                *o += *s;
            }
            most = most.max(got);
        }
        for s in &mut out[..most * self.channels] {
            *s = s.clamp(-1.0, 1.0);
        }
        most
    }

    fn name(&self) -> &str {
        &self.name
    }
}

/// Owns the cpal stream: opens, watches, reopens until told to stop.
fn device_thread(
    target: InputTarget,
    name: String,
    shared: Arc<Shared>,
    streams: crossbeam_channel::Sender<NewStream>,
    first: crossbeam_channel::Sender<Result<(), String>>,
) {
    let mut first = Some(first);
    let mut down_logged = false;
    while !shared.stop.load(Ordering::Relaxed) {
        match open_stream(&target, &shared) {
            Ok((stream, consumer, rate, failed, last_data)) => {
                if let Some(f) = first.take() {
                    let _ = f.send(Ok(()));
                } else {
                    shared
                        .counters
                        .audio_device_reopens
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::info!(source = %name, "audio device is back");
                }
                if streams.send(NewStream { consumer, rate }).is_err() {
                    return;
                }
                let started = Instant::now();
                loop {
                    std::thread::sleep(WATCH_PERIOD);
                    if shared.stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let last = Duration::from_millis(last_data.load(Ordering::Relaxed));
                    let stalled = started.elapsed().saturating_sub(last) > STALL_TIMEOUT;
                    if failed.load(Ordering::Relaxed) || stalled {
                        break;
                    }
                }
                drop(stream);
                tracing::warn!(
                    source = %name,
                    "audio device failed or stalled; silence until it is back (retry every {:?})",
                    RETRY_INTERVAL
                );
                down_logged = true;
            }
            Err(e) => {
                if let Some(f) = first.take() {
                    let _ = f.send(Err(e));
                    return;
                }
                if !down_logged {
                    down_logged = true;
                    tracing::warn!(source = %name, error = %e, "audio device unavailable");
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

type OpenedStream = (
    cpal::Stream,
    rtrb::Consumer<f32>,
    u32,
    Arc<AtomicBool>,
    Arc<AtomicU64>,
);

/// Finds the cpal device for `target`.
fn find_device(host: &cpal::Host, target: &InputTarget) -> Result<cpal::Device, String> {
    let by_name = |wanted: &str| -> Result<cpal::Device, String> {
        let devices: Vec<cpal::Device> = host.input_devices().map_err(|e| e.to_string())?.collect();
        let names: Vec<String> = devices
            .iter()
            .map(|d| d.name().unwrap_or_default())
            .collect();
        let pos = names
            .iter()
            .position(|n| n == wanted)
            .or_else(|| names.iter().position(|n| n.contains(wanted)));
        match pos {
            Some(i) => devices
                .into_iter()
                .nth(i)
                .ok_or_else(|| "device vanished".to_string()),
            None => Err(format!(
                "no input device {wanted:?} (have: {})",
                names.join(", ")
            )),
        }
    };
    match target {
        InputTarget::Default => host
            .default_input_device()
            .ok_or_else(|| "no default input device".to_string()),
        InputTarget::Pulse(_) => by_name(PULSE_ALSA_DEVICE).map_err(|e| {
            format!(
                "{e}; PulseAudio/PipeWire is reached through ALSA's pulse plugin \
                 (Debian: libasound2-plugins)"
            )
        }),
        InputTarget::Device(n) => by_name(n),
    }
}

/// The Pulse source this process records through the ALSA pulse plugin.
static PULSE_SOURCE_SET: Mutex<Option<String>> = Mutex::new(None);

/// Points the ALSA pulse plugin at `source` by setting `PULSE_SOURCE` for the
/// whole process, and leaves it set: the plugin reads it again after the
/// open (measured: callbacks stop when it is removed). Hence one named Pulse
/// source per process; asking for a second, different one is an error.
fn select_pulse_source(source: &str) -> Result<(), String> {
    let mut set = PULSE_SOURCE_SET.lock().unwrap_or_else(|p| p.into_inner());
    match set.as_deref() {
        Some(s) if s != source => Err(format!(
            "only one PulseAudio source by name per process (already recording {s:?})"
        )),
        Some(_) => Ok(()),
        None => {
            std::env::set_var("PULSE_SOURCE", source);
            *set = Some(source.to_string());
            Ok(())
        }
    }
}

/// Opens and starts one input stream.
fn open_stream(target: &InputTarget, shared: &Arc<Shared>) -> Result<OpenedStream, String> {
    let host = cpal::default_host();
    let device = find_device(&host, target)?;
    let config = device.default_input_config().map_err(|e| e.to_string())?;
    let rate = config.sample_rate().0;
    let channels = usize::from(config.channels()).max(1);
    let format = config.sample_format();
    let stream_config: cpal::StreamConfig = config.into();
    let (mut producer, consumer) =
        rtrb::RingBuffer::<f32>::new((rate * RING_MS / 1000) as usize * 2);
    let failed = Arc::new(AtomicBool::new(false));
    let last_data = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let overflow_shared = Arc::clone(shared);
    let (cb_last, err_failed) = (Arc::clone(&last_data), Arc::clone(&failed));
    let on_error = move |e: cpal::StreamError| {
        if !err_failed.swap(true, Ordering::Relaxed) {
            tracing::debug!(error = %e, "audio stream error");
        }
    };
    // Converts one callback's interleaved samples to stereo f32 in the ring.
    let mut push = move |frames: &mut dyn Iterator<Item = (f32, f32)>, count: usize| {
        cb_last.store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
        let room = producer.slots() / 2;
        let take = count.min(room);
        if let Ok(chunk) = producer.write_chunk_uninit(take * 2) {
            chunk.fill_from_iter(frames.take(take).flat_map(|(l, r)| [l, r]));
        }
        if count > take {
            overflow_shared
                .counters
                .audio_device_overflow_frames
                .fetch_add((count - take) as u64, Ordering::Relaxed);
        }
    };
    let stereo = move |s: &[f32]| -> (f32, f32) {
        match s {
            [l, r, ..] => (*l, *r),
            [m] => (*m, *m),
            [] => (0.0, 0.0),
        }
    };
    if let InputTarget::Pulse(src) = target {
        select_pulse_source(src)?;
    }
    let built = match format {
        cpal::SampleFormat::F32 => device.build_input_stream(
            &stream_config,
            move |data: &[f32], _: &cpal::InputCallbackInfo| {
                let n = data.len() / channels;
                push(&mut data.chunks_exact(channels).map(stereo), n);
            },
            on_error,
            None,
        ),
        cpal::SampleFormat::I16 => {
            let mut tmp = Vec::new();
            device.build_input_stream(
                &stream_config,
                move |data: &[i16], _: &cpal::InputCallbackInfo| {
                    tmp.clear();
                    tmp.extend(data.iter().map(|&s| f32::from(s) / 32768.0));
                    let n = tmp.len() / channels;
                    push(&mut tmp.chunks_exact(channels).map(stereo), n);
                },
                on_error,
                None,
            )
        }
        other => {
            return Err(format!("unsupported sample format {other:?}"));
        }
    };
    let started_stream = built
        .map_err(|e| e.to_string())
        .and_then(|s| s.play().map(|()| s).map_err(|e| e.to_string()));
    let stream = started_stream?;
    Ok((stream, consumer, rate, failed, last_data))
}

/// Input device names cpal sees (for `onair devices`).
pub(crate) fn input_device_names() -> Vec<String> {
    let host = cpal::default_host();
    host.input_devices()
        .map(|it| it.filter_map(|d| d.name().ok()).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use onair_testkit::{require_tools, wait_for, PulseServer, SCHEDULING_SLACK};

    #[test]
    fn parses_specs() {
        let s = parse_audio_spec("desktop+mic@0.5").unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].target, InputTarget::Pulse(DEFAULT_MONITOR.into()));
        assert_eq!(
            (s[1].target.clone(), s[1].volume),
            (InputTarget::Default, 0.5)
        );
        let s = parse_audio_spec("pulse:@DEFAULT_MONITOR@").unwrap();
        assert_eq!(s[0].target, InputTarget::Pulse(DEFAULT_MONITOR.into()));
        assert_eq!(s[0].volume, 1.0);
        let s = parse_audio_spec("hw:CARD=USB,DEV=0@2").unwrap();
        assert_eq!(s[0].target, InputTarget::Device("hw:CARD=USB,DEV=0".into()));
        assert_eq!(s[0].volume, 2.0);
        for bad in ["", "a+", "x@loud", "x@9", "pulse:"] {
            assert!(parse_audio_spec(bad).is_err(), "{bad}");
        }
    }

    /// Gives `left` frames of a constant, then nothing.
    struct Fixed {
        value: f32,
        left: usize,
    }

    impl AudioSource for Fixed {
        fn read(&mut self, out: &mut [f32]) -> usize {
            let n = (out.len() / 2).min(self.left);
            out[..2 * n].fill(self.value);
            self.left -= n;
            n
        }
        fn name(&self) -> &str {
            "fixed"
        }
    }

    #[test]
    fn mix_sums_pads_and_clips() {
        let a = Box::new(Fixed {
            value: 0.25,
            left: 10,
        });
        let b = Box::new(Fixed {
            value: 0.5,
            left: 4,
        });
        let mut m = MixSource::new(vec![a, b], 2);
        assert_eq!(m.name(), "fixed+fixed");
        let mut out = vec![9.0f32; 2 * 16];
        assert_eq!(m.read(&mut out), 10);
        assert!(out[..8].iter().all(|&v| (v - 0.75).abs() < 1e-6));
        assert!(out[8..20].iter().all(|&v| (v - 0.25).abs() < 1e-6));
        assert_eq!(m.read(&mut out), 0);
        let loud = Box::new(Fixed {
            value: 0.8,
            left: 2,
        });
        let loud2 = Box::new(Fixed {
            value: 0.8,
            left: 2,
        });
        let mut m = MixSource::new(vec![loud, loud2], 2);
        assert_eq!(m.read(&mut out), 2);
        assert_eq!(out[0], 1.0);
    }

    fn counters() -> Arc<EngineCounters> {
        Arc::new(EngineCounters::default())
    }

    #[test]
    fn open_audio_rejects_bad_specs_and_missing_devices() {
        assert!(open_audio("x@loud", 48_000, 2, &counters()).is_err());
        assert!(open_audio("default", 48_000, 6, &counters()).is_err());
        let t = Instant::now();
        assert!(open_audio("no-such-device-xyz", 48_000, 2, &counters()).is_err());
        assert!(t.elapsed() < Duration::from_secs(5));
    }

    /// Reads like the AudioEngine (every 10 ms) for `dur`, returning the
    /// left channel and how long each read took.
    fn capture(src: &mut dyn AudioSource, dur: Duration) -> (Vec<f32>, Vec<Duration>) {
        let mut left = Vec::new();
        let mut buf = vec![0.0f32; 480 * 2];
        let mut reads = Vec::new();
        let end = Instant::now() + dur;
        while Instant::now() < end {
            let t = Instant::now();
            let n = src.read(&mut buf);
            reads.push(t.elapsed());
            left.extend(buf[..2 * n].chunks_exact(2).map(|f| f[0]));
            std::thread::sleep(Duration::from_millis(10));
        }
        (left, reads)
    }

    /// Reads never wait for the device: a read that blocked until the next
    /// device callback (~10 ms) would make most reads slow. A few slow ones
    /// are a busy machine's preemptions, not blocking.
    fn assert_reads_never_wait(reads: &[Duration]) {
        let slow = reads.iter().filter(|d| **d > FAST_READ).count();
        let slowest = reads.iter().max().copied().unwrap_or_default();
        assert!(
            slow * 20 <= reads.len() && slowest < SCHEDULING_SLACK,
            "{slow} of {} reads over {FAST_READ:?}, slowest {slowest:?}",
            reads.len()
        );
    }

    /// What a read that does not wait for the device takes, at most.
    const FAST_READ: Duration = Duration::from_millis(5);

    fn dominant_hz(x: &[f32], rate: f32) -> f32 {
        let crossings = x
            .windows(2)
            .filter(|w| (w[0] < 0.0) != (w[1] < 0.0))
            .count();
        crossings as f32 / 2.0 / (x.len() as f32 / rate)
    }

    #[test]
    fn pulse_monitor_tone_then_server_death_then_recovery() {
        if !require_tools(&["pulseaudio", "pacat", "pactl"]) {
            return;
        }
        let mut pulse = PulseServer::start().expect("pulseaudio starts");
        // The ALSA pulse plugin (in this process) finds the server here.
        std::env::set_var("PULSE_SERVER", pulse.server());
        let mut tone = pulse.play_tone(1000.0).expect("pacat");
        let counters = counters();
        let mut src = open_audio("desktop", 48_000, 2, &counters).expect("open desktop monitor");
        // Wait for audio to flow. Measured: a cpal stream on the ALSA pulse
        // plugin sometimes stops calling back right after it starts; the
        // device thread's stall watchdog reopens it after STALL_TIMEOUT.
        let flowing = wait_for(STALL_TIMEOUT + RETRY_INTERVAL * 2, || {
            let (got, _) = capture(src.as_mut(), Duration::from_millis(100));
            (got.len() > 1000).then_some(())
        });
        assert!(flowing.is_some(), "no audio from the monitor");
        let (left, reads) = capture(src.as_mut(), Duration::from_millis(1200));
        // Skip the start (priming, resampler warm-up).
        let loud: Vec<f32> = left.iter().copied().skip(4800).collect();
        assert!(loud.len() > 24_000, "captured only {} frames", left.len());
        eprintln!("captured {} frames in 1.2 s", left.len());
        let peak = loud.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert!(peak > 0.2, "tone too quiet: peak {peak}");
        let hz = dominant_hz(&loud, 48_000.0);
        assert!((950.0..=1050.0).contains(&hz), "dominant {hz} Hz");
        assert_reads_never_wait(&reads);

        // Kill the server mid-capture: reads stay fast and turn to 0.
        pulse.kill();
        tone.kill();
        let (after, reads) = capture(src.as_mut(), Duration::from_millis(1500));
        assert_reads_never_wait(&reads);
        assert!(
            after.len() < 48_000 * JITTER_MAX_MS as usize / 1000 + 4800,
            "{} frames after death",
            after.len()
        );
        let mut buf = vec![0.0f32; 960];
        assert_eq!(src.read(&mut buf), 0, "silence while the server is gone");

        // Restart it: the device thread reopens and audio flows again.
        pulse.restart().expect("pulseaudio restarts");
        let _tone2 = pulse.play_tone(1000.0).expect("pacat");
        let back = wait_for(RETRY_INTERVAL * 5 + STALL_TIMEOUT, || {
            let (got, _) = capture(src.as_mut(), Duration::from_millis(200));
            (got.len() > 1000).then_some(got)
        });
        let back = back.expect("audio did not come back after the server restarted");
        eprintln!("recovered: {} frames in 200 ms", back.len());
        // The reopen reached the counters that Stats reports.
        let reopens = counters.audio_device_reopens.load(Ordering::Relaxed);
        assert!(reopens >= 1, "{reopens} reopens counted");
    }
}
