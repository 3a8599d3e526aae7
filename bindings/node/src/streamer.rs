//! `NativeStreamer` and `NativeRecorder`: one `onair::Streamer` driven
//! from JS. Both are the same `Core` (a recorder is a Streamer with no
//! stream output and one record); they differ in options, in which stats
//! type JS gets and in how output 0's failure is coded (`ERR_IO` for a file).
//!
//! Why the threads are arranged this way:
//! - `Streamer::start` waits for the first session (up to 20 s) and
//!   `Streamer::stop` drains outputs (up to a few seconds): both run as
//!   `AsyncTask`s on libuv's pool, so the JS thread never blocks on them.
//! - A dispatcher thread (`onair-node-events`) moves engine events and a
//!   stats snapshot per second to JS through a ThreadsafeFunction, always in
//!   non-blocking mode and with a bounded queue: engine threads never wait
//!   for JS. Stats go through a single pending slot, so a busy JS thread sees
//!   the latest snapshot once instead of a growing backlog.
//! - Lifecycle: the phase machine (`Phase`) makes `stop()` idempotent and
//!   `start()` after `stop()` an error; dropping the object (GC) stops the
//!   pipeline on a reaper thread; `shutdown_all` (called by `lib.js` on
//!   `process.on('exit')`) stops every live pipeline before the process dies.

use crate::errors::{scrub, ErrorCode, Failure};
use crate::events::{NativeEvent, RecorderStats, StreamState, StreamStats};
use crate::options::{RecorderOptions, StreamerOptions};
use crossbeam_channel::{Receiver, RecvTimeoutError};
use napi::bindgen_prelude::*;
use napi::threadsafe_function::{
    ThreadsafeCallContext, ThreadsafeFunction, ThreadsafeFunctionCallMode,
};
use onair::{Event, InputState, Stats, Streamer, StreamerConfig};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Stats events are emitted this often.
const STATS_PERIOD: Duration = Duration::from_secs(1);
/// Events waiting for the JS thread before new ones are dropped. Stats never
/// take more than one of these slots.
const EVENT_QUEUE: usize = 256;

/// What the dispatcher hands the ThreadsafeFunction.
enum Payload {
    /// A ready event.
    Event(Box<NativeEvent>),
    /// "The stats slot has a new snapshot": read it on the JS thread.
    Stats,
}

/// The bounded, non-callee-handled ThreadsafeFunction to the JS listener.
type Listener = ThreadsafeFunction<Payload, (), NativeEvent, Status, false, false, EVENT_QUEUE>;

/// Where a streamer is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Constructed, not started (or a start failed: it may be retried).
    Idle,
    /// `start()` in progress.
    Starting,
    /// Streaming.
    Running,
    /// `stop()` in progress.
    Stopping,
    /// Stopped for good.
    Stopped,
}

/// State shared by the JS object, its tasks, the dispatcher and the reaper.
struct Shared {
    phase: Mutex<Phase>,
    phase_changed: Condvar,
    streamer: Mutex<Option<Streamer>>,
    dispatcher: Mutex<Option<JoinHandle<()>>>,
    final_stats: Mutex<Option<Vec<Stats>>>,
    stats_slot: Mutex<Option<Vec<Stats>>>,
    stats_pending: AtomicBool,
    quit: AtomicBool,
    key: Option<String>,
    /// Output names in `Streamer::stats()` order (streams, then records).
    outputs: Vec<String>,
    /// How many of `outputs` are streams.
    n_streams: usize,
    /// A `NativeRecorder` (output 0 is a file).
    recorder: bool,
}

/// Locks, recovering from a poisoned mutex (a panicked holder leaves data
/// that is still consistent for our uses: options and plain snapshots).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Every streamer that may be running, for `shutdown_all`.
static LIVE: Mutex<Vec<Weak<Shared>>> = Mutex::new(Vec::new());

impl Shared {
    fn set_phase(&self, p: Phase) {
        *lock(&self.phase) = p;
        self.phase_changed.notify_all();
    }

    /// Zeroed snapshots in `state` (before start / after a failed start).
    fn empty_stats(&self, state: &'static str) -> Vec<Stats> {
        self.outputs
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let record = i >= self.n_streams;
                Stats {
                    state,
                    output: name.clone(),
                    record_packets_dropped: record.then_some(0),
                    record_errors: record.then_some(0),
                    ..Stats::default()
                }
            })
            .collect()
    }

    fn current_stats(&self) -> Vec<Stats> {
        if let Some(s) = lock(&self.streamer).as_ref() {
            return s.stats();
        }
        if let Some(f) = lock(&self.final_stats).as_ref() {
            return f.clone();
        }
        let state = match *lock(&self.phase) {
            Phase::Starting => "connecting",
            _ => "stopped",
        };
        self.empty_stats(state)
    }

    /// Stops the pipeline (waiting for a start in progress), joins the
    /// dispatcher, and returns the final stats. Idempotent; blocks.
    fn stop_blocking(&self) -> Vec<Stats> {
        {
            let mut phase = lock(&self.phase);
            loop {
                match *phase {
                    Phase::Starting | Phase::Stopping => {
                        phase = self
                            .phase_changed
                            .wait(phase)
                            .unwrap_or_else(|e| e.into_inner());
                    }
                    Phase::Stopped => {
                        drop(phase);
                        return lock(&self.final_stats)
                            .clone()
                            .unwrap_or_else(|| self.empty_stats("stopped"));
                    }
                    Phase::Idle => {
                        *phase = Phase::Stopped;
                        drop(phase);
                        self.phase_changed.notify_all();
                        return self.empty_stats("stopped");
                    }
                    Phase::Running => {
                        *phase = Phase::Stopping;
                        break;
                    }
                }
            }
        }
        let streamer = lock(&self.streamer).take();
        let last = streamer
            .map(Streamer::stop)
            .unwrap_or_else(|| self.empty_stats("stopped"));
        // Before joining: the dispatcher reads the final state from here.
        *lock(&self.final_stats) = Some(last.clone());
        self.quit.store(true, Ordering::Release);
        if let Some(handle) = lock(&self.dispatcher).take() {
            if handle.join().is_err() {
                tracing::error!("the event dispatcher thread panicked");
            }
        }
        self.set_phase(Phase::Stopped);
        last
    }

    /// The stats event JS gets for `stats` (as `Streamer::stats()` returns them).
    fn stats_event(&self, stats: &[Stats]) -> NativeEvent {
        match self.js_stats(stats) {
            Either::A(s) => NativeEvent::stats(s),
            Either::B(r) => NativeEvent::record_stats(r),
        }
    }

    /// Output 0's stats as its class types them; a streamer's `record`
    /// output (index `n_streams`) rides along as `recording`.
    fn js_stats(&self, stats: &[Stats]) -> Either<StreamStats, RecorderStats> {
        let fallback;
        let stats = if stats.is_empty() {
            fallback = self.empty_stats("stopped");
            &fallback[..]
        } else {
            stats
        };
        if self.recorder {
            return Either::B(RecorderStats::from_stats(&stats[0]));
        }
        let mut s = StreamStats::from_stats(&stats[0], self.key.as_deref());
        s.recording = stats.get(self.n_streams).map(RecorderStats::from_stats);
        Either::A(s)
    }
}

/// Forwards engine events and per-second stats to JS until the engine's
/// event channel closes (the Streamer was stopped) or `quit` is set.
fn dispatch(shared: Arc<Shared>, events: Receiver<Event>, listener: Listener) {
    let mut next_stats = Instant::now() + STATS_PERIOD;
    let mut last_state = None;
    let mut last_input: Option<InputState> = None;
    let send = |e: NativeEvent| {
        let status = listener.call(
            Payload::Event(Box::new(e)),
            ThreadsafeFunctionCallMode::NonBlocking,
        );
        if status != Status::Ok {
            tracing::debug!("event not delivered to JS: {status}");
        }
    };
    let mut send_state = |state: StreamState| {
        if last_state != Some(state) {
            last_state = Some(state);
            send(NativeEvent::state(state));
        }
    };
    // A file is written from the start; the library sends no state event for it.
    if shared.recorder {
        send_state(StreamState::Live);
    }
    loop {
        let wait = next_stats.saturating_duration_since(Instant::now());
        match events.recv_timeout(wait) {
            // Only output 0 is this object's; a streamer's `record` output
            // reports through `stats.recording` (`state`, `last_error`).
            Ok(e) if event_output(&e) != 0 => {
                tracing::debug!("event of output {}: {e:?}", event_output(&e));
            }
            Ok(e) => {
                let ev = NativeEvent::from_event(&e, shared.key.as_deref(), shared.recorder);
                match ev.state {
                    Some(state) => send_state(state),
                    None => {
                        send(ev);
                        if shared.recorder && matches!(e, Event::Error { .. }) {
                            send_state(StreamState::Failed);
                        }
                    }
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                next_stats += STATS_PERIOD;
                if shared.quit.load(Ordering::Acquire) {
                    break;
                }
                // A file input that ended or failed is told once; the
                // streams go on until JS calls stop().
                let input = lock(&shared.streamer).as_ref().map(Streamer::input_state);
                if input != last_input {
                    match &input {
                        Some(InputState::Ended) => send(NativeEvent::end()),
                        Some(InputState::Failed(why)) => send(NativeEvent::error(
                            ErrorCode::ERR_SOURCE,
                            scrub(why, shared.key.as_deref()),
                        )),
                        _ => {}
                    }
                    last_input = input;
                }
                let stats = lock(&shared.streamer).as_ref().map(Streamer::stats);
                if let Some(stats) = stats.filter(|s| !s.is_empty()) {
                    *lock(&shared.stats_slot) = Some(stats);
                    // One pending stats call at most: if JS has not taken the
                    // previous snapshot yet, it will read this newer one.
                    if !shared.stats_pending.swap(true, Ordering::AcqRel) {
                        let status =
                            listener.call(Payload::Stats, ThreadsafeFunctionCallMode::NonBlocking);
                        if status != Status::Ok {
                            shared.stats_pending.store(false, Ordering::Release);
                        }
                    }
                }
            }
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    // The library marks a stopped output without an event; JS listeners
    // still want to see the last transition.
    let last = lock(&shared.final_stats)
        .as_ref()
        .and_then(|v| v.first().map(|s| StreamState::from_name(s.state)))
        .unwrap_or(StreamState::Stopped);
    send_state(last);
}

/// The output index of a library event.
fn event_output(e: &Event) -> usize {
    match e {
        Event::State { output, .. }
        | Event::Reconnecting { output, .. }
        | Event::Reconnected { output, .. }
        | Event::Error { output, .. } => *output,
    }
}

/// What both native classes are: the shared state and the config to start.
struct Core {
    shared: Arc<Shared>,
    config: StreamerConfig,
}

impl Core {
    fn new(config: StreamerConfig, key: Option<String>, recorder: bool) -> Self {
        let mut outputs: Vec<String> = config.outputs.iter().map(|o| o.url.redacted()).collect();
        let n_streams = outputs.len();
        outputs.extend(config.records.iter().map(|r| r.path.display().to_string()));
        Self {
            shared: Arc::new(Shared {
                phase: Mutex::new(Phase::Idle),
                phase_changed: Condvar::new(),
                streamer: Mutex::new(None),
                dispatcher: Mutex::new(None),
                final_stats: Mutex::new(None),
                stats_slot: Mutex::new(None),
                stats_pending: AtomicBool::new(false),
                quit: AtomicBool::new(false),
                key,
                outputs,
                n_streams,
                recorder,
            }),
            config,
        }
    }

    /// Starts the pipeline; resolves once the first session is live (or the
    /// outputs keep trying in the background after 20 s); rejects with
    /// `ERR_PUBLISH_REJECTED`, `ERR_CONNECT`, `ERR_ENCODER`... Throws
    /// `ERR_INVALID_STATE` if already started or stopped.
    fn start(
        &self,
        listener: Function<NativeEvent, ()>,
    ) -> Result<AsyncTask<StartTask>, ErrorCode> {
        {
            let mut phase = lock(&self.shared.phase);
            match *phase {
                Phase::Idle => *phase = Phase::Starting,
                Phase::Starting | Phase::Running => {
                    return Err(
                        Failure::new(ErrorCode::ERR_INVALID_STATE, "already started").into_napi(),
                    )
                }
                Phase::Stopping | Phase::Stopped => {
                    return Err(Failure::new(
                        ErrorCode::ERR_INVALID_STATE,
                        "stopped: a stopped streamer cannot be restarted; create a new one",
                    )
                    .into_napi())
                }
            }
        }
        let shared = self.shared.clone();
        let tsfn = listener
            .build_threadsafe_function::<Payload>()
            .callee_handled::<false>()
            .max_queue_size::<EVENT_QUEUE>()
            .build_callback(move |ctx: ThreadsafeCallContext<Payload>| {
                Ok(match ctx.value {
                    Payload::Event(e) => *e,
                    Payload::Stats => {
                        shared.stats_pending.store(false, Ordering::Release);
                        let stats = lock(&shared.stats_slot)
                            .clone()
                            .unwrap_or_else(|| shared.empty_stats("connecting"));
                        shared.stats_event(&stats)
                    }
                })
            });
        let tsfn = match tsfn {
            Ok(t) => t,
            Err(e) => {
                self.shared.set_phase(Phase::Idle);
                return Err(Failure::new(ErrorCode::ERR_IO, e.reason).into_napi());
            }
        };
        Ok(AsyncTask::new(StartTask {
            shared: self.shared.clone(),
            config: self.config.clone(),
            listener: Some(tsfn),
            failure: None,
        }))
    }

    fn stop(&self) -> AsyncTask<StopTask> {
        AsyncTask::new(StopTask {
            shared: self.shared.clone(),
        })
    }
}

/// The JS-facing streamer; `lib.js` wraps it as `VideoAudioStreamer`.
#[napi]
pub struct NativeStreamer {
    core: Core,
}

#[napi]
impl NativeStreamer {
    /// Validates `options`; throws `ERR_INVALID_OPTION` / `ERR_INVALID_URL`
    /// naming the option.
    #[napi(constructor)]
    pub fn new(options: StreamerOptions) -> Result<Self, ErrorCode> {
        let v = options.validate().map_err(Failure::into_napi)?;
        Ok(Self {
            core: Core::new(v.config, v.key, false),
        })
    }

    /// Starts the pipeline; resolves once the first session is live (or the
    /// outputs keep trying in the background after 20 s); rejects with
    /// `ERR_PUBLISH_REJECTED`, `ERR_CONNECT`, `ERR_ENCODER`, `ERR_FILE_EXISTS`...
    /// Throws `ERR_INVALID_STATE` if already started or stopped.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn start(
        &self,
        listener: Function<NativeEvent, ()>,
    ) -> Result<AsyncTask<StartTask>, ErrorCode> {
        self.core.start(listener)
    }

    /// Stops (draining outputs) on a worker thread; resolves with the final
    /// stats. Calling it again resolves with the same stats.
    #[napi(ts_return_type = "Promise<StreamStats>")]
    pub fn stop(&self) -> AsyncTask<StopTask> {
        self.core.stop()
    }

    /// Skips the backoff wait of a reconnecting output.
    #[napi]
    pub fn reconnect_now(&self) {
        if let Some(s) = lock(&self.core.shared.streamer).as_ref() {
            s.reconnect_now();
        }
    }

    /// Changes the H.264 bitrate while running (bit/s, 50k..=50M). With
    /// adaptive bitrate it becomes the new ceiling, never fought.
    #[napi]
    pub fn set_video_bitrate(&self, bps: f64) -> Result<(), ErrorCode> {
        if !bps.is_finite() || !(50_000.0..=50_000_000.0).contains(&bps) {
            return Err(Failure::option(
                "videoBitrate",
                format!("{bps} bit/s is outside 50k..50M"),
            )
            .into_napi());
        }
        if let Some(s) = lock(&self.core.shared.streamer).as_ref() {
            s.set_video_bitrate(bps as u32);
        }
        Ok(())
    }

    /// The current stats snapshot (never blocks on the network).
    #[napi]
    pub fn stats(&self) -> StreamStats {
        match self.core.shared.js_stats(&self.core.shared.current_stats()) {
            Either::A(s) => s,
            Either::B(_) => unreachable!("a streamer's stats are StreamStats"),
        }
    }
}

/// The JS-facing recorder; `lib.js` wraps it as `VideoAudioRecorder`.
#[napi]
pub struct NativeRecorder {
    core: Core,
}

#[napi]
impl NativeRecorder {
    /// Validates `options`; throws `ERR_INVALID_OPTION` naming the option.
    /// The file is not touched until `start()`.
    #[napi(constructor)]
    pub fn new(options: RecorderOptions) -> Result<Self, ErrorCode> {
        let v = options.validate().map_err(Failure::into_napi)?;
        Ok(Self {
            core: Core::new(v.config, None, true),
        })
    }

    /// Creates the file and starts capture and encoders; resolves once
    /// writing; rejects with `ERR_FILE_EXISTS`, `ERR_IO`, `ERR_ENCODER`,
    /// `ERR_SOURCE`. Throws `ERR_INVALID_STATE` if already started or stopped.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn start(
        &self,
        listener: Function<NativeEvent, ()>,
    ) -> Result<AsyncTask<StartTask>, ErrorCode> {
        self.core.start(listener)
    }

    /// Stops, writes what is queued and closes the file; resolves with the
    /// final stats. Calling it again resolves with the same stats.
    #[napi(ts_return_type = "Promise<RecorderStats>")]
    pub fn stop(&self) -> AsyncTask<StopTask> {
        self.core.stop()
    }

    /// The current stats snapshot.
    #[napi]
    pub fn stats(&self) -> RecorderStats {
        match self.core.shared.js_stats(&self.core.shared.current_stats()) {
            Either::B(r) => r,
            Either::A(_) => unreachable!("a recorder's stats are RecorderStats"),
        }
    }
}

impl Drop for Core {
    /// The JS object was collected: stop what it started, on a reaper thread
    /// so the GC (on the JS thread) never waits for a drain.
    fn drop(&mut self) {
        let phase = *lock(&self.shared.phase);
        if matches!(phase, Phase::Idle | Phase::Stopped) {
            return;
        }
        let shared = self.shared.clone();
        let spawned = std::thread::Builder::new()
            .name("onair-node-reaper".into())
            .spawn(move || {
                shared.stop_blocking();
            });
        if let Err(e) = spawned {
            tracing::error!("cannot spawn the reaper thread ({e}); stopping inline");
            self.shared.stop_blocking();
        }
    }
}

/// Stops every streamer still running, synchronously. `lib.js` calls it from
/// `process.on('exit')`, so `process.exit()` never leaves engine threads
/// running while the process tears down.
#[napi]
pub fn shutdown_all() {
    let live: Vec<Arc<Shared>> = lock(&LIVE).drain(..).filter_map(|w| w.upgrade()).collect();
    for shared in live {
        shared.stop_blocking();
    }
}

/// `start()`'s worker: runs the blocking `Streamer::start`.
pub struct StartTask {
    shared: Arc<Shared>,
    config: StreamerConfig,
    listener: Option<Listener>,
    failure: Option<Failure>,
}

impl Task for StartTask {
    type Output = ();
    type JsValue = ();

    fn compute(&mut self) -> Result<()> {
        match Streamer::start(self.config.clone()) {
            Ok(streamer) => {
                let events = streamer.events().clone();
                *lock(&self.shared.streamer) = Some(streamer);
                if let Some(listener) = self.listener.take() {
                    let shared = self.shared.clone();
                    match std::thread::Builder::new()
                        .name("onair-node-events".into())
                        .spawn(move || dispatch(shared, events, listener))
                    {
                        Ok(h) => *lock(&self.shared.dispatcher) = Some(h),
                        Err(e) => tracing::error!("cannot spawn the event thread: {e}"),
                    }
                }
                {
                    let mut live = lock(&LIVE);
                    live.retain(|w| w.strong_count() > 0);
                    live.push(Arc::downgrade(&self.shared));
                }
                self.shared.set_phase(Phase::Running);
                Ok(())
            }
            Err(e) => {
                let f = Failure::from_engine(&e, self.shared.key.as_deref());
                let reason = f.message.clone();
                self.failure = Some(f);
                self.listener = None;
                // A failed start leaves nothing running: it may be retried.
                self.shared.set_phase(Phase::Idle);
                Err(Error::new(Status::GenericFailure, reason))
            }
        }
    }

    fn resolve(&mut self, _env: Env, _output: ()) -> Result<()> {
        Ok(())
    }

    fn reject(&mut self, env: Env, err: Error) -> Result<()> {
        match self.failure.take() {
            Some(f) => Err(f.into_js_error(&env)),
            None => Err(err),
        }
    }
}

/// `stop()`'s worker: runs the blocking stop and drain.
pub struct StopTask {
    shared: Arc<Shared>,
}

impl Task for StopTask {
    type Output = Vec<Stats>;
    type JsValue = Either<StreamStats, RecorderStats>;

    fn compute(&mut self) -> Result<Vec<Stats>> {
        Ok(self.shared.stop_blocking())
    }

    fn resolve(&mut self, _env: Env, output: Vec<Stats>) -> Result<Self::JsValue> {
        Ok(self.shared.js_stats(&output))
    }
}
