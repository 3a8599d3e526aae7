//! The Streamer: builds the whole pipeline from a `StreamerConfig`, runs it,
//! and stops it in the right order.
//!
//! Thread map (docs/ARCHITECTURE.md draws it):
//! `onair-capture` -> slot(1) -> `onair-video-enc` -> Fanout -> each output's
//! StreamMuxer -> StreamBuffer -> `onair-send`; `onair-reconnect` per output;
//! `onair-audio` (master clock ticks) -> channel -> `onair-audio-enc` -> Fanout.
//!
//! Recorders (`output/record.rs`) are more sinks on the same Fanout, each
//! with its own queue and `onair-record` thread: one set of encoders feeds
//! every output. Outputs can be added and removed while running
//! (`add_stream_output`, `add_recorder`, `remove_output`).
//!
//! Stop order matters: engines first (they close their channels), encoders
//! drain and exit, then each output drains its buffer and closes its session.

use crate::audio::encoder::{self as aenc, AudioEncoder};
use crate::audio::engine::AudioEngine;
use crate::audio::source::{AudioSource, ToneSource};
use crate::clock::{MasterClock, Rate};
use crate::limits;
use crate::output::muxer::KeyframeRequester;
use crate::output::record::{RecordConfig, Recorder};
use crate::output::stream::{StreamOutput, StreamOutputConfig};
use crate::output::Event;
use crate::packet::{EncodedPacket, PacketSink, StreamHeaders};
use crate::stats::{EngineCounters, LinkState, Stats};
use crate::video::bitrate::{default_floor_bps, VideoBitrate};
use crate::video::capture::CaptureThread;
use crate::video::encoder::{
    self as venc, EncoderSettings, VideoControl, VideoEncoder, VideoEncoderConfig,
};
use crate::video::source::{TestPattern, VideoSource};
use crate::{Error, Result};
use crossbeam_channel::{Receiver, Sender};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;

mod interleave;
pub use interleave::{Interleaver, MAX_AUDIO_HOLD_NS};

/// Frames waiting between the CaptureThread and the VideoEncoder: one. A
/// frame the encoder cannot take is skipped (counted), never queued.
const VIDEO_SLOT: usize = 1;
/// PCM chunks (10 ms each) between the AudioEngine and the AudioEncoder:
/// two seconds of slack before the engine starts counting drops.
const AUDIO_QUEUE_CHUNKS: usize = 200;
/// How long `Streamer::start` waits for a first output to go live before
/// starting the engines anyway (the outputs keep trying in the background).
/// Starting the clock once a session is up means the stream's first frame is
/// frame 0 instead of a frame dropped while connecting.
pub const INITIAL_CONNECT_WAIT: std::time::Duration = std::time::Duration::from_secs(20);
/// Events kept for the API user before new ones are dropped.
const EVENT_QUEUE: usize = 1024;

/// Where pictures come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VideoSourceSpec {
    /// The moving test pattern that carries its frame number.
    TestPattern,
    /// An X11 screen: `[DISPLAY][+X,Y,WxH]` (empty = $DISPLAY), see
    /// `video::screen::ScreenSpec`.
    Screen(String),
    /// One X11 window: `NAME|ID[@DISPLAY]`, see `video::window::WindowSpec`.
    Window(String),
    /// A media file played in real time (GPL build only: `video::file`).
    File(FileSpec),
}

/// Where sound comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AudioSourceSpec {
    /// A 440 Hz tone with a 1 kHz beep at the start of every second.
    Tone,
    /// Capture devices: `default`, `desktop`, `mic`, a device name, or a mix
    /// such as `desktop+mic@0.5` (see `audio::device`).
    Device(String),
    /// The sound of a media file played in real time (GPL build only).
    File(FileSpec),
}

/// A media file as a source: what `file:PATH` and `--loop` say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileSpec {
    /// The file (any container and codecs FFmpeg reads).
    pub path: std::path::PathBuf,
    /// Start again from the beginning at the end, without a gap (else the
    /// input ends, see [`InputState::Ended`]).
    pub looping: bool,
}

/// True when this build has the file source (the GPL build, with libavcodec).
pub const FILE_SOURCE: bool = cfg!(feature = "avcodec");

/// Why a build without libavcodec refuses a file source.
pub const NO_FILE_SOURCE: &str =
    "this build has no file source: it needs the GPL build with libavcodec (see the README's Licences)";

/// How the pipeline's inputs are doing. Live capture and the test sources
/// are always `Live`; a file without loop ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InputState {
    /// Producing (or waiting for a device to come back).
    Live,
    /// Every file input played to its end (no loop): a run should stop
    /// cleanly, as `ffmpeg -re -i clip` does.
    Ended,
    /// A file input failed (truncated, corrupt, unreadable): why, naming
    /// the file. A run should stop with this error.
    Failed(String),
}

/// Video settings.
#[derive(Clone, Debug, PartialEq)]
pub struct VideoSettings {
    /// Source.
    pub source: VideoSourceSpec,
    /// Output width (even).
    pub width: u32,
    /// Output height (even).
    pub height: u32,
    /// Frames per second.
    pub fps: u32,
    /// Video bitrate, bit/s.
    pub bitrate_bps: u32,
    /// Keyframe interval, seconds.
    pub keyint_secs: f32,
    /// Adapt the bitrate to each destination's link (`bitrate_bps` is then
    /// the ceiling). On by default.
    pub adaptive_bitrate: bool,
    /// The lowest bitrate adaptation may choose; below it frames are
    /// dropped instead. `None` = `video::bitrate::default_floor_bps`.
    pub min_bitrate_bps: Option<u32>,
    /// Which encoder (`--video-encoder`, `--video-codec`, `--preset`,
    /// `--profile`, `--bframes`); default: this build's H.264 encoder.
    pub encoder: EncoderSettings,
}

impl VideoSettings {
    /// The floor of adaptation for these settings.
    pub fn floor_bps(&self) -> u32 {
        self.min_bitrate_bps
            .unwrap_or_else(|| default_floor_bps(self.width, self.height, self.fps))
    }
}

impl Default for VideoSettings {
    fn default() -> Self {
        Self {
            source: VideoSourceSpec::TestPattern,
            width: 1280,
            height: 720,
            fps: 30,
            bitrate_bps: 2_500_000,
            keyint_secs: 2.0,
            adaptive_bitrate: true,
            min_bitrate_bps: None,
            encoder: EncoderSettings::default(),
        }
    }
}

/// Audio settings.
#[derive(Clone, Debug, PartialEq)]
pub struct AudioSettings {
    /// Source.
    pub source: AudioSourceSpec,
    /// Sample rate (48000).
    pub sample_rate: u32,
    /// Channels (2).
    pub channels: u32,
    /// AAC bitrate, bit/s.
    pub bitrate_bps: u32,
}

impl Default for AudioSettings {
    fn default() -> Self {
        Self {
            source: AudioSourceSpec::Tone,
            sample_rate: 48_000,
            channels: 2,
            bitrate_bps: 160_000,
        }
    }
}

/// Everything a Streamer runs.
#[derive(Clone, Debug)]
pub struct StreamerConfig {
    /// Video, or none.
    pub video: Option<VideoSettings>,
    /// Audio, or none.
    pub audio: Option<AudioSettings>,
    /// Stream destinations.
    pub outputs: Vec<StreamOutputConfig>,
    /// Files to record to (each its own queue and writer thread).
    pub records: Vec<RecordConfig>,
}

impl StreamerConfig {
    /// Checks every value against its range in [`crate::limits`]; the error
    /// names the option as the CLI spells it.
    pub fn validate(&self) -> Result<()> {
        fn check(option: &'static str, r: std::result::Result<(), String>) -> Result<()> {
            r.map_err(|reason| Error::InvalidConfig { option, reason })
        }
        if let Some(v) = &self.video {
            v.encoder.resolve()?;
            check("size", limits::check_size(v.width, v.height))?;
            check("fps", limits::check_fps(v.fps))?;
            check("video-bitrate", limits::check_video_bitrate(v.bitrate_bps))?;
            check("keyint", limits::check_keyint(v.keyint_secs))?;
            if let Some(min) = v.min_bitrate_bps {
                check("min-video-bitrate", limits::check_video_bitrate(min))?;
                if min > v.bitrate_bps {
                    return Err(Error::InvalidConfig {
                        option: "min-video-bitrate",
                        reason: format!(
                            "{min} bit/s is above the video bitrate ({})",
                            v.bitrate_bps
                        ),
                    });
                }
            }
        }
        if let Some(a) = &self.audio {
            check("audio-bitrate", limits::check_audio_bitrate(a.bitrate_bps))?;
        }
        for o in &self.outputs {
            if let Some(l) = &o.limits {
                check(
                    "buffer-packets",
                    limits::check_buffer_packets(l.max_packets),
                )?;
                let ms = u64::try_from(l.max_span.as_millis()).unwrap_or(u64::MAX);
                check("buffer-ms", limits::check_buffer_ms(ms))?;
                check("buffer-bytes", limits::check_buffer_bytes(l.max_bytes))?;
            }
            check(
                "stall-timeout",
                limits::check_stall_timeout(o.stall_timeout),
            )?;
            check(
                "reconnect-max-delay",
                limits::check_reconnect_max_delay(o.reconnect.max_delay),
            )?;
            if let Some(n) = o.reconnect.max_retries {
                check("max-retries", limits::check_max_retries(n))?;
            }
        }
        if self.video.is_none() && self.audio.is_none() {
            return Err(Error::InvalidConfig {
                option: "video",
                reason: "nothing to stream: no video and no audio".into(),
            });
        }
        Ok(())
    }
}

impl KeyframeRequester for VideoControl {
    fn request_keyframe(&self) {
        self.request_idr();
    }
}

/// A keyframe requester for pipelines without video.
struct NoVideo;
impl KeyframeRequester for NoVideo {
    fn request_keyframe(&self) {}
}

/// Hands every encoded packet to every output. Outputs can be added and
/// removed while running; the lock is taken for writing only then. Each
/// sink's `push` is non-blocking, so a dead or slow output never delays
/// another.
#[derive(Default)]
struct Fanout {
    sinks: RwLock<Vec<(OutputId, Arc<dyn PacketSink>)>>,
}

impl Fanout {
    fn add(&self, id: OutputId, sink: Arc<dyn PacketSink>) {
        let mut sinks = self.sinks.write().unwrap_or_else(|e| e.into_inner());
        sinks.push((id, sink));
    }

    fn remove(&self, id: OutputId) {
        let mut sinks = self.sinks.write().unwrap_or_else(|e| e.into_inner());
        sinks.retain(|(i, _)| *i != id);
    }
}

impl PacketSink for Fanout {
    fn push(&self, packet: EncodedPacket) {
        let sinks = self.sinks.read().unwrap_or_else(|e| e.into_inner());
        for (_, sink) in sinks.iter() {
            sink.push(packet.clone());
        }
    }
}

/// Identifies one output of a running [`Streamer`]; its number is the
/// `output` field of the [`Event`]s that output sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OutputId(pub usize);

/// One running output: an RTMP destination or a file.
enum OutputKind {
    Stream(StreamOutput),
    Record(Recorder),
}

struct OutputSlot {
    id: OutputId,
    kind: OutputKind,
}

impl OutputSlot {
    fn state(&self) -> LinkState {
        match &self.kind {
            OutputKind::Stream(o) => o.state(),
            OutputKind::Record(r) => r.state(),
        }
    }

    fn last_error(&self) -> Option<String> {
        match &self.kind {
            OutputKind::Stream(o) => o.last_error(),
            OutputKind::Record(r) => r.last_error(),
        }
    }

    fn stats(&self, engine: &EngineCounters, audio_frame_samples: u64) -> Stats {
        match &self.kind {
            OutputKind::Stream(o) => o.stats(engine, audio_frame_samples),
            OutputKind::Record(r) => r.stats(engine, audio_frame_samples),
        }
    }

    fn stop(&mut self) {
        match &mut self.kind {
            OutputKind::Stream(o) => o.stop(),
            OutputKind::Record(r) => r.stop(),
        }
    }
}

/// Waits until one stream output is live (Ok), every stream output failed
/// (Err with the first failure), or `INITIAL_CONNECT_WAIT` passed (Ok: they
/// keep trying). Without stream outputs (record only) it returns at once.
fn wait_for_first_session(slots: &[OutputSlot]) -> Result<()> {
    let outputs: Vec<&StreamOutput> = slots
        .iter()
        .filter_map(|s| match &s.kind {
            OutputKind::Stream(o) => Some(o),
            OutputKind::Record(_) => None,
        })
        .collect();
    let deadline = std::time::Instant::now() + INITIAL_CONNECT_WAIT;
    while !outputs.is_empty() && std::time::Instant::now() < deadline {
        if outputs.iter().any(|o| o.state() == LinkState::Live) {
            return Ok(());
        }
        if let Some(failed) = outputs.iter().find(|o| o.state() == LinkState::Failed) {
            if outputs.iter().all(|o| o.state() == LinkState::Failed) {
                return Err(Error::Publish {
                    output: failed.name().to_owned(),
                    reason: failed.last_error().unwrap_or_else(|| "failed".into()),
                    rejected: failed.rejected(),
                });
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    Ok(())
}

/// A running pipeline: engines, encoders and outputs.
pub struct Streamer {
    clock: MasterClock,
    engine: Arc<EngineCounters>,
    audio_frame_samples: u64,
    outputs: Mutex<Vec<OutputSlot>>,
    next_output: AtomicUsize,
    fanout: Arc<Fanout>,
    headers: StreamHeaders,
    keyframes: Arc<dyn KeyframeRequester>,
    events_tx: Sender<Event>,
    events: Receiver<Event>,
    video_control: Option<VideoControl>,
    stop: Arc<AtomicBool>,
    capture: Option<CaptureThread>,
    audio_engine: Option<AudioEngine>,
    video_encoder_thread: Option<JoinHandle<()>>,
    audio_encoder_thread: Option<JoinHandle<()>>,
    interleaver: Option<Arc<Interleaver>>,
    stopped: bool,
    /// The file inputs' states (the demuxer threads own everything else).
    files: Vec<InputProbe>,
}

impl Streamer {
    /// Builds and starts everything. Fails before any thread starts if the
    /// config is invalid or an encoder or source cannot be opened.
    pub fn start(config: StreamerConfig) -> Result<Self> {
        config.validate()?;
        if !crate::BUILT_WITH_NASM {
            tracing::warn!(
                "onair was built WITHOUT nasm: H.264 encoding is ~3x slower. Install nasm and rebuild."
            );
        }
        let video_encoder = config
            .video
            .as_ref()
            .map(|v| {
                VideoEncoder::new(VideoEncoderConfig {
                    width: v.width,
                    height: v.height,
                    fps: v.fps,
                    bitrate_bps: v.bitrate_bps,
                    keyint_secs: v.keyint_secs,
                    encoder: v.encoder.clone(),
                })
            })
            .transpose()?;
        let audio_encoder = config
            .audio
            .as_ref()
            .map(|a| AudioEncoder::new(a.sample_rate, a.channels, a.bitrate_bps))
            .transpose()?;
        let headers = StreamHeaders {
            video: video_encoder.as_ref().map(|e| e.params().clone()),
            audio: audio_encoder.as_ref().map(|e| e.params().clone()),
            encoder_name: format!("onair {}", env!("CARGO_PKG_VERSION")),
        };
        // The engines' counters: the audio devices count into them too.
        let engine = Arc::new(EngineCounters::default());
        let (mut file_video, mut file_audio, files) = open_files(&config)?;
        let video_source: Option<Box<dyn VideoSource>> = match &config.video {
            None => None,
            Some(v) => Some(match &v.source {
                VideoSourceSpec::TestPattern => Box::new(TestPattern::new(v.width, v.height)),
                VideoSourceSpec::Screen(spec) => {
                    // Grabbed and converted on its own thread: an X server
                    // that stalls never reaches the CaptureThread.
                    let screen = crate::video::screen::open_screen(spec, v.width, v.height)?;
                    grab_thread(Box::new(screen), v.fps)?
                }
                VideoSourceSpec::Window(spec) => {
                    let window = crate::video::window::open_window(spec, v.width, v.height)?;
                    grab_thread(Box::new(window), v.fps)?
                }
                // Decoded on the file's own demuxer thread (video::file).
                VideoSourceSpec::File(f) => file_video.take().ok_or_else(|| no_file_source(f))?,
            }),
        };
        let audio_source: Option<Box<dyn AudioSource>> = match &config.audio {
            None => None,
            Some(a) => Some(match &a.source {
                AudioSourceSpec::Tone => Box::new(ToneSource::new(a.sample_rate, a.channels)),
                AudioSourceSpec::Device(spec) => {
                    crate::audio::device::open_audio(spec, a.sample_rate, a.channels, &engine)?
                }
                AudioSourceSpec::File(f) => file_audio.take().ok_or_else(|| no_file_source(f))?,
            }),
        };

        let video_bitrate = config.video.as_ref().map(|v| {
            Arc::new(VideoBitrate::new(
                v.bitrate_bps,
                v.floor_bps(),
                v.adaptive_bitrate,
            ))
        });
        let video_control = video_bitrate.clone().map(VideoControl::new);
        let keyframes: Arc<dyn KeyframeRequester> = match &video_control {
            Some(c) => Arc::new(c.clone()),
            None => Arc::new(NoVideo),
        };
        let (events_tx, events) = crossbeam_channel::bounded(EVENT_QUEUE);
        let fanout = Arc::new(Fanout::default());
        // Encoders that hold frames need audio on their timeline and in
        // decode order (interleave.rs); openh264 returns each frame at once.
        let interleaver = video_encoder
            .as_ref()
            .filter(|e| e.holds_frames())
            .map(|e| Arc::new(Interleaver::new(fanout.clone(), e.timeline_offset_ns())));
        let encoders_sink: Arc<dyn PacketSink> = match &interleaver {
            Some(i) => i.clone(),
            None => fanout.clone(),
        };
        // Stream outputs come first in the list (the first is the primary
        // output of the stats line); files are opened first so that a bad
        // path fails before any connection starts.
        let n_streams = config.outputs.len();
        let mut records = Vec::with_capacity(config.records.len());
        for (i, rec) in config.records.into_iter().enumerate() {
            let id = OutputId(n_streams + i);
            let r = Recorder::start(id.0, rec, &headers, None, events_tx.clone())?;
            records.push(OutputSlot {
                id,
                kind: OutputKind::Record(r),
            });
        }
        let mut outputs = Vec::with_capacity(n_streams + records.len());
        for (i, out) in config.outputs.into_iter().enumerate() {
            let o = StreamOutput::start(
                i,
                out,
                &headers,
                keyframes.clone(),
                video_bitrate.clone(),
                events_tx.clone(),
            )?;
            outputs.push(OutputSlot {
                id: OutputId(i),
                kind: OutputKind::Stream(o),
            });
        }
        outputs.extend(records);
        for slot in &outputs {
            let sink = match &slot.kind {
                OutputKind::Stream(o) => o.sink(),
                OutputKind::Record(r) => r.sink(),
            };
            fanout.add(slot.id, sink);
        }

        if let Err(e) = wait_for_first_session(&outputs) {
            // A recording does not depend on the network: with a recorder
            // the pipeline runs even if every stream output gave up.
            if !outputs
                .iter()
                .any(|o| matches!(o.kind, OutputKind::Record(_)))
            {
                return Err(e);
            }
            tracing::error!("{e}; recording anyway");
        }

        let clock = MasterClock::start();
        let stop = Arc::new(AtomicBool::new(false));
        let mut video_encoder_thread = None;
        let mut audio_encoder_thread = None;
        let mut capture = None;
        if let (Some(enc), Some(source), Some(control), Some(v)) =
            (video_encoder, video_source, &video_control, &config.video)
        {
            let (tx, rx) = crossbeam_channel::bounded(VIDEO_SLOT);
            video_encoder_thread = Some(
                venc::spawn_encoder_thread(
                    enc,
                    rx,
                    control.clone(),
                    encoders_sink.clone(),
                    engine.clone(),
                )
                .map_err(|e| Error::io("spawning the video encoder thread", e))?,
            );
            capture = Some(
                CaptureThread::spawn(
                    clock,
                    Rate::per_second(v.fps),
                    source,
                    tx,
                    engine.clone(),
                    stop.clone(),
                )
                .map_err(|e| Error::io("spawning the capture thread", e))?,
            );
        }
        let mut audio_engine = None;
        let mut audio_frame_samples = 1024;
        if let (Some(enc), Some(source), Some(a)) = (audio_encoder, audio_source, &config.audio) {
            audio_frame_samples = u64::from(enc.params().frame_samples);
            let (tx, rx) = crossbeam_channel::bounded(AUDIO_QUEUE_CHUNKS);
            audio_encoder_thread = Some(
                aenc::spawn_encoder_thread(enc, rx, encoders_sink.clone(), engine.clone())
                    .map_err(|e| Error::io("spawning the audio encoder thread", e))?,
            );
            audio_engine = Some(
                AudioEngine::spawn(
                    clock,
                    a.sample_rate,
                    a.channels,
                    source,
                    tx,
                    engine.clone(),
                    stop.clone(),
                )
                .map_err(|e| Error::io("spawning the audio engine", e))?,
            );
        }
        let next_output = AtomicUsize::new(outputs.len());
        Ok(Self {
            clock,
            engine,
            audio_frame_samples,
            outputs: Mutex::new(outputs),
            next_output,
            fanout,
            headers,
            keyframes,
            events_tx,
            events,
            video_control,
            stop,
            capture,
            audio_engine,
            video_encoder_thread,
            audio_encoder_thread,
            interleaver,
            stopped: false,
            files,
        })
    }

    /// Milliseconds since the pipeline started.
    pub fn t_ms(&self) -> u64 {
        self.clock.now_ns() / 1_000_000
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, Vec<OutputSlot>> {
        self.outputs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One stats object per output, in order (stream outputs of the config,
    /// then its recorders, then outputs added later); the engine fields are
    /// shared. Recorders report `output` = file path, `bytes_sent` = bytes
    /// written, and `record_packets_dropped` / `record_errors`.
    pub fn stats(&self) -> Vec<Stats> {
        let t_ms = self.t_ms();
        self.slots()
            .iter()
            .map(|o| {
                let mut s = o.stats(&self.engine, self.audio_frame_samples);
                s.t_ms = t_ms;
                self.fill_bitrate(&mut s);
                s
            })
            .collect()
    }

    /// The ids of the running outputs, in `stats()` order.
    pub fn output_ids(&self) -> Vec<OutputId> {
        self.slots().iter().map(|s| s.id).collect()
    }

    /// Starts one more RTMP destination while running; it gets every packet
    /// from its first keyframe on (an IDR is requested when it goes live).
    pub fn add_stream_output(&self, cfg: StreamOutputConfig) -> Result<OutputId> {
        let id = OutputId(self.next_output.fetch_add(1, Ordering::Relaxed));
        let o = StreamOutput::start(
            id.0,
            cfg,
            &self.headers,
            self.keyframes.clone(),
            self.video_control.as_ref().map(|c| c.bitrate().clone()),
            self.events_tx.clone(),
        )?;
        let sink = o.sink();
        self.slots().push(OutputSlot {
            id,
            kind: OutputKind::Stream(o),
        });
        self.fanout.add(id, sink);
        Ok(id)
    }

    /// Starts recording to one more file while running. The file starts at
    /// the next keyframe (one is requested at once).
    pub fn add_recorder(&self, cfg: RecordConfig) -> Result<OutputId> {
        let id = OutputId(self.next_output.fetch_add(1, Ordering::Relaxed));
        let r = Recorder::start(
            id.0,
            cfg,
            &self.headers,
            Some(self.keyframes.clone()),
            self.events_tx.clone(),
        )?;
        let sink = r.sink();
        self.slots().push(OutputSlot {
            id,
            kind: OutputKind::Record(r),
        });
        self.fanout.add(id, sink);
        Ok(id)
    }

    /// Stops one output while the others run: it stops receiving packets,
    /// drains (stream: up to its drain timeout; file: everything queued) and
    /// closes. Returns its final stats.
    pub fn remove_output(&self, id: OutputId) -> Result<Stats> {
        self.fanout.remove(id);
        let slot = {
            let mut slots = self.slots();
            let pos = slots.iter().position(|s| s.id == id);
            pos.map(|p| slots.remove(p))
        };
        let Some(mut slot) = slot else {
            return Err(Error::InvalidConfig {
                option: "output",
                reason: format!("no running output has id {}", id.0),
            });
        };
        slot.stop();
        let mut s = slot.stats(&self.engine, self.audio_frame_samples);
        s.t_ms = self.t_ms();
        self.fill_bitrate(&mut s);
        Ok(s)
    }

    /// Engine counters (frames, silence, lateness), shared by every output.
    pub fn engine_counters(&self) -> &EngineCounters {
        &self.engine
    }

    /// Events from the outputs (state changes, reconnects, errors).
    pub fn events(&self) -> &Receiver<Event> {
        &self.events
    }

    /// Skips the backoff wait of every output that is reconnecting.
    pub fn reconnect_now(&self) {
        for o in self.slots().iter() {
            if let OutputKind::Stream(s) = &o.kind {
                s.reconnect_now();
            }
        }
    }

    /// Changes the video bitrate while running. It becomes the new ceiling
    /// of adaptive bitrate, which never goes above it (and never fights it).
    pub fn set_video_bitrate(&self, bps: u32) {
        if let Some(c) = &self.video_control {
            c.bitrate().set_ceiling(bps);
        }
    }

    fn fill_bitrate(&self, s: &mut Stats) {
        if let Some(c) = &self.video_control {
            s.fill_bitrate(c.bitrate());
        }
    }

    /// True when every output (streams and recorders) has failed for good:
    /// nothing left to do.
    pub fn all_outputs_failed(&self) -> bool {
        let slots = self.slots();
        !slots.is_empty() && slots.iter().all(|o| o.state() == LinkState::Failed)
    }

    /// The first error of a failed output (key redacted).
    pub fn failure(&self) -> Option<String> {
        self.slots()
            .iter()
            .find(|o| o.state() == LinkState::Failed)
            .and_then(OutputSlot::last_error)
    }

    /// How the inputs are doing: `Failed` as soon as a file input failed,
    /// `Ended` once every file input played to its end (no loop), else
    /// `Live` (always, without file inputs).
    pub fn input_state(&self) -> InputState {
        let states: Vec<InputState> = self.files.iter().map(|f| f()).collect();
        if let Some(failed) = states.iter().find(|s| matches!(s, InputState::Failed(_))) {
            return failed.clone();
        }
        if !states.is_empty() && states.iter().all(|s| *s == InputState::Ended) {
            return InputState::Ended;
        }
        InputState::Live
    }

    /// Stops engines, encoders and outputs (draining them), and returns the
    /// final stats of each output.
    pub fn stop(mut self) -> Vec<Stats> {
        self.shutdown();
        self.stats()
    }

    fn shutdown(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        self.stop.store(true, Ordering::Release);
        if let Some(c) = self.capture.take() {
            c.join();
        }
        if let Some(a) = self.audio_engine.take() {
            a.join();
        }
        // Video first: it drains what its encoder held, then the audio the
        // interleaver kept for it is released.
        if let Some(handle) = self.video_encoder_thread.take() {
            if handle.join().is_err() {
                tracing::error!("the video encoder thread panicked");
            }
        }
        if let Some(i) = &self.interleaver {
            i.video_ended();
        }
        if let Some(handle) = self.audio_encoder_thread.take() {
            if handle.join().is_err() {
                tracing::error!("the audio encoder thread panicked");
            }
        }
        let mut slots = self.outputs.lock().unwrap_or_else(|e| e.into_inner());
        for o in slots.iter_mut() {
            o.stop();
        }
    }
}

impl Drop for Streamer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Asks one file input how it is doing.
type InputProbe = Box<dyn Fn() -> InputState + Send + Sync>;

/// Sources a file input gave, and its probes.
type OpenedFiles = (
    Option<Box<dyn VideoSource>>,
    Option<Box<dyn AudioSource>>,
    Vec<InputProbe>,
);

/// Opens the files `config` names (one demuxer thread per file, see
/// `video::file`): the GPL build only.
#[cfg(feature = "avcodec")]
fn open_files(config: &StreamerConfig) -> Result<OpenedFiles> {
    let opened = crate::video::file::open_file_sources(
        config.video.as_ref().and_then(|v| match &v.source {
            VideoSourceSpec::File(f) => Some((f, v.width, v.height)),
            _ => None,
        }),
        config.audio.as_ref().and_then(|a| match &a.source {
            AudioSourceSpec::File(f) => Some((f, a.sample_rate, a.channels)),
            _ => None,
        }),
    )?;
    let probes = opened
        .statuses
        .into_iter()
        .map(|s| Box::new(move || s.state()) as InputProbe)
        .collect();
    Ok((opened.video, opened.audio, probes))
}

/// Without libavcodec there is no file to open: a `File` source is refused
/// by the caller ([`no_file_source`]).
#[cfg(not(feature = "avcodec"))]
fn open_files(_config: &StreamerConfig) -> Result<OpenedFiles> {
    Ok((None, None, Vec::new()))
}

/// The error for a file source this build cannot open (the feature is off).
fn no_file_source(f: &FileSpec) -> Error {
    Error::Source {
        name: format!("file:{}", f.path.display()),
        reason: NO_FILE_SOURCE.into(),
    }
}

/// Runs a source that does I/O (a screen, a window) on its own grab thread.
fn grab_thread(source: Box<dyn VideoSource>, fps: u32) -> Result<Box<dyn VideoSource>, Error> {
    crate::video::grab::GrabThread::spawn(source, Rate::per_second(fps))
        .map(|g| Box::new(g) as Box<dyn VideoSource>)
        .map_err(|e| Error::io("starting the video grab thread", e))
}
