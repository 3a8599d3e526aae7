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
use crate::clock::{MasterClock, Rate};
use crate::output::muxer::KeyframeRequester;
use crate::output::record::{RecordConfig, Recorder};
use crate::output::stream::{StreamOutput, StreamOutputConfig};
use crate::output::Event;
use crate::packet::{PacketSink, StreamHeaders};
use crate::stats::{EngineCounters, LinkState, Stats};
use crate::video::bitrate::VideoBitrate;
use crate::video::capture::CaptureThread;
use crate::video::encoder::{self as venc, VideoControl, VideoEncoder, VideoEncoderConfig};
use crate::{Error, Result};
use crossbeam_channel::{Receiver, Sender};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

mod config;
mod fanout;
mod interleave;
mod outputs;
mod sources;

pub use config::{
    AudioSettings, AudioSourceSpec, FileSpec, InputState, StreamerConfig, VideoSettings,
    VideoSourceSpec, FILE_SOURCE, NO_FILE_SOURCE,
};
use fanout::{Fanout, NoVideo};
pub use interleave::{Interleaver, MAX_AUDIO_HOLD_NS};
use outputs::{wait_for_first_session, OutputKind, OutputSlot};
pub use outputs::{OutputId, INITIAL_CONNECT_WAIT};
use sources::{open_sources, InputProbe, Sources};

/// PCM chunks (10 ms each) between the AudioEngine and the AudioEncoder:
/// two seconds of slack before the engine starts counting drops.
const AUDIO_QUEUE_CHUNKS: usize = 200;
/// Events kept for the API user before new ones are dropped.
const EVENT_QUEUE: usize = 1024;

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
        let Sources {
            video: video_source,
            audio: audio_source,
            files,
        } = open_sources(&config, &engine)?;

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
            // Frames waiting between the CaptureThread and the VideoEncoder:
            // as many as the encoder's bursts need (one for openh264, half a
            // second for the encoders that hold frames). A frame that finds
            // the queue full is skipped (counted); the capture never waits.
            let (tx, rx) = crossbeam_channel::bounded(enc.input_queue_frames());
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
