//! NetworkSendThread: takes FLV tags from the StreamBuffer and writes them to
//! the current RTMP session.
//!
//! Why it owns what it owns: the session (socket) is handed over by the
//! ReconnectThread through a channel and owned here until the link fails;
//! then it is dropped here and the ReconnectThread is told through another
//! channel. No lock is ever held across a write.
//!
//! ## Moving on a server's request (Enhanced RTMP reconnect request)
//!
//! This thread is the one owner of the decision to leave a live session for
//! another: it reads the server's `NetConnection.Connect.ReconnectRequest`
//! from its own session ([`RtmpPublisher::take_reconnect_request`]), asks
//! the ReconnectThread (which makes every session) for a standby session at
//! the resolved URL through `redirects`, and keeps sending on the old
//! session meanwhile. The standby comes back on `sessions`; the
//! ReconnectThread asks the encoder for a keyframe as it hands it over. The
//! switch happens when the next video keyframe leaves the buffer: that tag
//! and everything after it go to the new session (timestamps from 0 there),
//! everything before it has gone to the old one, so no frame is skipped and
//! none is sent twice; the old session then drains what it still holds for
//! at most [`RETIRE_DRAIN`] and is closed (FCUnpublish, deleteStream). A
//! standby that does not come within [`REDIRECT_TIMEOUT`] is given up and
//! the old session goes on. Audio-only streams switch at once.
//!
//! A dead link often gives no error: writes simply stop completing. So a link
//! is declared down on a write error or EOF, and also when no byte has been
//! accepted for `stall_timeout` while there is something to send, or the
//! kernel holds unsent bytes and the peer has not ACKed for `stall_timeout`.

use super::buffer::QueuedTag;
use super::buffer::StreamBuffer;
use super::congestion::{CongestionController, Observation};
use super::muxer::VIDEO_DROP_HIGH_WATER;
use super::rtmp::{MediaId, RtmpError, RtmpPublisher};
use super::url::RtmpUrl;
use crate::stats::{bump, LinkState, OutputCounters};
use crate::video::bitrate::{BitrateWish, VideoBitrate};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Keep at most this many serialized bytes in the RTMP session's own queue,
/// not counting the rest of messages already started on the wire (a large
/// keyframe being written, which audio overtakes between chunks): enough to
/// keep the socket busy, small enough that drops stay decisions of the muxer
/// and not of an invisible queue.
pub const PENDING_TARGET_BYTES: usize = 16 * 1024;
/// A link whose peer has not ACKed anything for this long while the kernel
/// holds unsent data is dead (TCP retransmits within a few hundred ms on
/// any live path): faster than waiting for the send buffers to fill and
/// then for the stall timeout. Capped by the configured stall timeout.
pub const ACK_SILENCE_TIMEOUT: Duration = Duration::from_secs(3);
/// At most this much media (ms, by timestamps) is handed to the session and
/// the kernel ahead of the link: the kernel's send buffer is sized in bytes
/// for the full bitrate, which is seconds of media when only audio flows or
/// the bitrate was lowered. What waits beyond stays in the StreamBuffer,
/// where the muxer's bounds and drop decisions see it.
pub const MAX_IN_FLIGHT: Duration = Duration::from_millis(1000);
/// If the send thread itself did not run for this long between two rounds
/// (the process was stopped or starved: a suspended laptop, SIGSTOP, a paused
/// VM), the silence it then sees is its own, not the link's: the stall and
/// ACK-silence clocks restart instead of declaring a healthy link dead.
pub const LOCAL_STALL: Duration = Duration::from_secs(1);
/// How long the old session may take to send what it holds after a
/// switch before it is closed anyway.
pub const RETIRE_DRAIN: Duration = Duration::from_secs(2);
/// How long a reconnect request may wait for its standby session.
pub const REDIRECT_TIMEOUT: Duration = Duration::from_secs(15);
/// How long one pump may wait for the socket to accept bytes.
const PUMP_WAIT: Duration = Duration::from_millis(20);
/// How long to wait for a packet when idle.
const IDLE_WAIT: Duration = Duration::from_millis(10);
/// The congestion controller looks at the link this often.
pub const OBSERVE_INTERVAL: Duration = Duration::from_millis(100);

/// Why the send thread gave up on a session.
#[derive(Debug)]
pub struct LinkDown {
    /// What happened (never contains the stream key).
    pub reason: String,
    /// When it was detected.
    pub at: Instant,
}

/// Everything the NetworkSendThread needs.
pub struct SendContext {
    /// The output's queue.
    pub buffer: Arc<StreamBuffer>,
    /// The output's counters.
    pub counters: Arc<OutputCounters>,
    /// New sessions from the ReconnectThread.
    pub sessions: Receiver<RtmpPublisher>,
    /// Failures, to the ReconnectThread.
    pub link_down: Sender<LinkDown>,
    /// Reconnect requests, to the ReconnectThread: make a standby session
    /// there and hand it over on `sessions`.
    pub redirects: Sender<RtmpUrl>,
    /// Set when the output stops: drain, close, exit.
    pub stop: Arc<AtomicBool>,
    /// No forward progress for this long = link down.
    pub stall_timeout: Duration,
    /// How long stop may spend draining the buffer.
    pub drain_timeout: Duration,
    /// The encoder's bitrate (None without video): this output's congestion
    /// controller states its wish there.
    pub bitrate: Option<Arc<VideoBitrate>>,
    /// The audio bitrate (0 without audio), which the link carries too.
    pub audio_bps: u32,
    /// The stream has no video: a session switch need not wait for a keyframe.
    pub audio_only: bool,
}

/// The congestion controller in its place: observes the session every
/// `OBSERVE_INTERVAL` and states the output's wish.
struct Adaptation {
    ctl: CongestionController,
    bitrate: Arc<VideoBitrate>,
    wish: Arc<BitrateWish>,
    origin: Instant,
    next_at: Instant,
}

impl Adaptation {
    fn new(bitrate: Arc<VideoBitrate>) -> Self {
        let wish = bitrate.register();
        Self {
            ctl: CongestionController::new(bitrate.ceiling()),
            bitrate,
            wish,
            origin: Instant::now(),
            next_at: Instant::now(),
        }
    }

    /// A session begins: measurements start over; the last good target is
    /// kept (and stated at once, so the session's first IDR is sized for it).
    fn on_new_session(&mut self) {
        self.ctl.on_new_session();
        self.next_at = Instant::now();
    }

    fn observe(&mut self, ctx: &SendContext, s: &Session) {
        let now = Instant::now();
        if now < self.next_at {
            return;
        }
        self.next_at = now + OBSERVE_INTERVAL;
        // Bytes the peer acknowledged: TCP_INFO, or what left the kernel's
        // send queue where TCP_INFO does not say.
        let acked = s
            .publisher
            .bytes_acked()
            .filter(|b| *b > 0)
            .unwrap_or_else(|| {
                s.written
                    .saturating_sub(s.publisher.kernel_unsent_bytes() as u64)
            });
        let d = self.ctl.observe(Observation {
            now: now - self.origin,
            acked_bytes: acked,
            queue_ms: ctx.buffer.latency_ms(),
            ceiling_bps: self.bitrate.ceiling(),
            floor_bps: self.bitrate.floor(),
            audio_bps: ctx.audio_bps,
        });
        self.wish.set(d.target_bps);
        let c = &ctx.counters;
        c.link_bps.store(d.link_bps, Ordering::Relaxed);
        c.wanted_video_bps
            .store(u64::from(d.target_bps), Ordering::Relaxed);
        c.bitrate_reason.store(d.reason as u8, Ordering::Relaxed);
    }
}

/// Measures the send rate over windows of `RATE_WINDOW`.
const RATE_WINDOW: Duration = Duration::from_secs(1);

struct RateMeter {
    window_start: Instant,
    window_bytes: u64,
}

impl RateMeter {
    fn new() -> Self {
        Self {
            window_start: Instant::now(),
            window_bytes: 0,
        }
    }

    fn add(&mut self, bytes: u64, counters: &OutputCounters) {
        self.window_bytes += bytes;
        let elapsed = self.window_start.elapsed();
        if elapsed >= RATE_WINDOW {
            let bps = self.window_bytes * 8 * 1000 / (elapsed.as_millis() as u64).max(1);
            counters.send_rate_bps.store(bps, Ordering::Relaxed);
            *self = Self::new();
        }
    }
}

struct Session {
    publisher: RtmpPublisher,
    /// dts of the first tag of this session: RTMP timestamps start at 0.
    base_dts_ns: Option<u64>,
    last_progress: Instant,
    /// When the previous round ran (see [`LOCAL_STALL`]).
    last_round: Instant,
    /// Since when the kernel has held unacknowledged bytes without a break:
    /// ACK silence only means a dead link while data is waiting for an ACK.
    unsent_since: Option<Instant>,
    /// Bytes written to the socket in this session.
    written: u64,
    /// Media time of the bytes past the queue.
    backlog: BacklogClock,
}

impl Session {
    fn new(publisher: RtmpPublisher) -> Self {
        Self {
            publisher,
            base_dts_ns: None,
            last_progress: Instant::now(),
            last_round: Instant::now(),
            unsent_since: None,
            written: 0,
            backlog: BacklogClock::default(),
        }
    }
}

/// How much media (ms) the tags handed to the session but not yet
/// acknowledged hold, from their timestamps: exact whatever the bitrate was
/// when they were encoded (adaptive bitrate moves it; converting bytes at
/// today's bitrate would inflate the latency of bytes encoded at
/// yesterday's, just when the bitrate drops).
///
/// What "in flight" means with interleaving: the session writes audio
/// between the chunks of a large video message, so tags do not reach the
/// wire in the order they were queued, and the unacknowledged bytes are not
/// the last tags queued. So each tag is a mark (the publisher's message id,
/// its dts); the publisher reports where each message's last byte lies in
/// its output byte stream (`take_sent`), and a tag is in flight until the
/// peer has acknowledged up to there (`acked_offset`: bytes handed to the
/// kernel minus those it still holds), or while it has no end yet (still in
/// the session's queues). The media time in flight is the newest minus the
/// oldest dts among those tags.
#[derive(Debug, Default)]
struct BacklogClock {
    /// Tags not known to be acknowledged, in queue order (ids increasing).
    marks: VecDeque<Mark>,
}

#[derive(Debug)]
struct Mark {
    id: MediaId,
    dts_ns: u64,
    /// Offset just past the tag's last byte in the session's output.
    end: Option<u64>,
}

impl BacklogClock {
    fn on_tag(&mut self, id: MediaId, dts_ns: u64) {
        self.marks.push_back(Mark {
            id,
            dts_ns,
            end: None,
        });
    }

    /// The publisher placed message `id`'s last byte at `end`. Ids that are
    /// not tags (the sequence headers of the session) are ignored.
    fn on_sent(&mut self, id: MediaId, end: u64) {
        if let Ok(i) = self.marks.binary_search_by_key(&id, |m| m.id) {
            self.marks[i].end = Some(end);
        }
    }

    /// Media ms in the tags not acknowledged up to `acked`.
    fn media_ms(&mut self, acked: u64) -> u64 {
        let done = |m: &Mark| m.end.is_some_and(|e| e <= acked);
        while self.marks.front().is_some_and(done) {
            self.marks.pop_front();
        }
        let mut in_flight = self.marks.iter().filter(|m| !done(m)).map(|m| m.dts_ns);
        let Some(first) = in_flight.next() else {
            return 0;
        };
        let (oldest, newest) = in_flight.fold((first, first), |(lo, hi), d| (lo.min(d), hi.max(d)));
        (newest - oldest) / 1_000_000
    }
}

/// Hands the publisher's sent-message reports to the clock, then measures.
fn media_in_flight_ms(s: &mut Session) -> u64 {
    for (id, end) in s.publisher.take_sent() {
        s.backlog.on_sent(id, end);
    }
    s.backlog.media_ms(s.publisher.acked_offset())
}

/// Starts the thread ("onair-send").
pub fn spawn(ctx: SendContext) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("onair-send".into())
        .spawn(move || run(ctx))
}

fn run(ctx: SendContext) {
    let mut session: Option<Session> = None;
    let mut redirect = Redirect::default();
    let mut rate = RateMeter::new();
    let mut adapt = ctx.bitrate.clone().map(Adaptation::new);
    loop {
        let sent_before = ctx.counters.bytes_sent.load(Ordering::Relaxed);
        let Some(s) = session.as_mut() else {
            rate.add(0, &ctx.counters);
            redirect.abandon();
            if ctx.stop.load(Ordering::Acquire) {
                return;
            }
            match ctx.sessions.recv_timeout(Duration::from_millis(50)) {
                Ok(p) => {
                    session = Some(Session::new(p));
                    if let Some(a) = adapt.as_mut() {
                        a.on_new_session();
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            continue;
        };
        if ctx.stop.load(Ordering::Acquire) {
            redirect.abandon();
            if let Some(s) = session.take() {
                drain_and_close(&ctx, s);
            }
            return;
        }
        redirect.poll(&ctx, s);
        match step(&ctx, s, redirect.standby.is_some()) {
            Ok(None) => {
                if let Some(a) = adapt.as_mut() {
                    a.observe(&ctx, s);
                }
            }
            Ok(Some(keyframe)) => {
                if let Some(mut next) = redirect.standby.take() {
                    let queued = queue_tag(&ctx, &mut next, keyframe);
                    if let Some(old) = session.replace(next) {
                        redirect.retire(old);
                    }
                    bump(&ctx.counters.redirects);
                    tracing::info!("switched to the session the server asked for");
                    if let Err(e) = queued {
                        session = None;
                        link_down(&ctx, e.to_string());
                    } else if let Some(a) = adapt.as_mut() {
                        a.on_new_session();
                    }
                }
            }
            Err(reason) => {
                session = None;
                link_down(&ctx, reason);
            }
        }
        redirect.pump_retiring();
        let sent = ctx.counters.bytes_sent.load(Ordering::Relaxed) - sent_before;
        rate.add(sent, &ctx.counters);
    }
}

/// The send thread's side of a reconnect request: waiting for the standby
/// session, holding it until the next keyframe, and draining the session
/// left behind.
#[derive(Default)]
struct Redirect {
    /// When the standby was asked for (None: no request in progress).
    asked_at: Option<Instant>,
    /// The new session, live, waiting for the next keyframe.
    standby: Option<Session>,
    /// The session switched away from, with its deadline.
    retiring: Option<(Session, Instant)>,
}

impl Redirect {
    /// Takes a new reconnect request from the session, or the standby
    /// session once it is made.
    fn poll(&mut self, ctx: &SendContext, s: &mut Session) {
        if let Some(request) = s.publisher.take_reconnect_request() {
            match request {
                Ok(url) if self.asked_at.is_none() => {
                    tracing::info!(to = %url, "server asks to reconnect: making the new session");
                    if ctx.redirects.send(url).is_ok() {
                        self.asked_at = Some(Instant::now());
                    }
                }
                Ok(_) => tracing::debug!("reconnect request while one is in progress: ignored"),
                Err(reason) => tracing::warn!(%reason, "reconnect request ignored"),
            }
        }
        if self.asked_at.is_some() && self.standby.is_none() {
            if let Ok(p) = ctx.sessions.try_recv() {
                self.standby = Some(Session::new(p));
            }
        }
        if let Some(at) = self.asked_at {
            if self.standby.is_none() && at.elapsed() > REDIRECT_TIMEOUT {
                tracing::warn!("no session from the reconnect request in time: staying");
                self.asked_at = None;
            }
        }
    }

    /// The old session leaves: it drains in the background of the rounds.
    fn retire(&mut self, old: Session) {
        self.asked_at = None;
        if let Some((previous, _)) = self.retiring.take() {
            previous.publisher.close(Duration::ZERO);
        }
        self.retiring = Some((old, Instant::now() + RETIRE_DRAIN));
    }

    /// Sends what the old session still holds; closes it when done, failed
    /// or late.
    fn pump_retiring(&mut self) {
        let Some((old, deadline)) = self.retiring.as_mut() else {
            return;
        };
        let done = match old.publisher.pump(Duration::ZERO) {
            Ok(_) => old.publisher.pending_bytes() == 0 || Instant::now() >= *deadline,
            Err(e) => {
                tracing::debug!(error = %e, "the session left behind failed while draining");
                true
            }
        };
        if done {
            if let Some((old, _)) = self.retiring.take() {
                old.publisher.close(Duration::ZERO);
            }
        }
    }

    /// Gives everything up (the link went down, or stop).
    fn abandon(&mut self) {
        self.asked_at = None;
        self.standby = None;
        if let Some((old, _)) = self.retiring.take() {
            old.publisher.close(Duration::ZERO);
        }
    }
}

/// One round: fill the session from the buffer, pump the socket, check for
/// a stall. With `switch_at_keyframe`, the first video keyframe out of the
/// buffer is not queued but returned: the caller switches sessions on it.
fn step(
    ctx: &SendContext,
    s: &mut Session,
    switch_at_keyframe: bool,
) -> Result<Option<QueuedTag>, String> {
    let now = Instant::now();
    let gap = now.saturating_duration_since(s.last_round);
    if gap > LOCAL_STALL {
        tracing::warn!(
            gap_ms = gap.as_millis() as u64,
            "the send thread did not run (process stopped or starved): not a link fault"
        );
        s.last_progress = now;
        s.unsent_since = None;
    }
    s.last_round = now;
    let switch = fill(ctx, s, IDLE_WAIT, switch_at_keyframe).map_err(|e| e.to_string())?;
    let wait = if s.publisher.pending_bytes() > 0 {
        PUMP_WAIT
    } else {
        Duration::ZERO
    };
    let written = s.publisher.pump(wait).map_err(|e| e.to_string())?;
    account(ctx, s, written);
    check_stall(ctx, s)?;
    Ok(switch)
}

/// Moves tags from the buffer into the session until it holds
/// `PENDING_TARGET_BYTES` not yet started on the wire (the rest of a large
/// message being written does not count: audio overtakes it, so audio keeps
/// flowing into the session while a keyframe crosses a slow link). Waits up
/// to `idle_wait` only when it has nothing. With `stop_at_keyframe`, stops
/// at the first video keyframe and returns it unqueued (a session switch);
/// an audio-only stream switches at once.
fn fill(
    ctx: &SendContext,
    s: &mut Session,
    idle_wait: Duration,
    stop_at_keyframe: bool,
) -> Result<Option<QueuedTag>, RtmpError> {
    while s.publisher.pending_bytes_not_started() < PENDING_TARGET_BYTES {
        let in_flight = media_in_flight_ms(s);
        if u128::from(in_flight) >= MAX_IN_FLIGHT.as_millis() {
            break;
        }
        let wait = if s.publisher.pending_bytes() == 0 {
            idle_wait
        } else {
            Duration::ZERO
        };
        let Some(tag) = ctx.buffer.pop(wait) else {
            break;
        };
        let switch_here = match tag.kind {
            crate::packet::MediaKind::Video => tag.keyframe,
            crate::packet::MediaKind::Audio => ctx.audio_only,
        };
        if stop_at_keyframe && switch_here {
            return Ok(Some(tag));
        }
        queue_tag(ctx, s, tag)?;
    }
    Ok(None)
}

/// Queues one tag on a session: timestamps from the session's first tag.
fn queue_tag(ctx: &SendContext, s: &mut Session, tag: QueuedTag) -> Result<(), RtmpError> {
    let base = *s.base_dts_ns.get_or_insert(tag.dts_ns);
    let ts_ms = tag.dts_ns.saturating_sub(base) / 1_000_000;
    // RTMP timestamps are 32-bit and wrap (after 49 days); so do we.
    let id = s
        .publisher
        .queue_media(tag.kind, (ts_ms & 0xFFFF_FFFF) as u32, tag.body)?;
    s.backlog.on_tag(id, tag.dts_ns);
    let counter = match tag.kind {
        crate::packet::MediaKind::Video => &ctx.counters.video_packets_sent,
        crate::packet::MediaKind::Audio => &ctx.counters.audio_frames_sent,
    };
    counter.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

fn account(ctx: &SendContext, s: &mut Session, written: usize) {
    // Progress: bytes accepted, or nothing at all waiting (session and
    // kernel empty). A kernel that keeps its bytes while we hold back
    // (MAX_IN_FLIGHT) is no progress: that is how a frozen link shows.
    let idle = s.publisher.pending_bytes() == 0 && s.publisher.kernel_unsent_bytes() == 0;
    if written > 0 || idle {
        s.last_progress = Instant::now();
    }
    s.written += written as u64;
    ctx.counters
        .bytes_sent
        .fetch_add(written as u64, Ordering::Relaxed);
    let kernel = s.publisher.kernel_unsent_bytes() as u64;
    if kernel == 0 {
        s.unsent_since = None;
    } else if s.unsent_since.is_none() {
        s.unsent_since = Some(Instant::now());
    }
    ctx.counters
        .kernel_unsent_bytes
        .store(kernel, Ordering::Relaxed);
    let backlog_ms = media_in_flight_ms(s);
    ctx.buffer.set_backlog_ms(backlog_ms);
    let congestion = ctx.buffer.pressure().worst() / VIDEO_DROP_HIGH_WATER;
    ctx.counters
        .congestion_milli
        .store((congestion.min(1.0) * 1000.0) as u64, Ordering::Relaxed);
    let (packets, bytes, ms) = ctx.buffer.snapshot();
    ctx.counters
        .buffer_packets
        .store(packets as u64, Ordering::Relaxed);
    ctx.counters
        .buffer_bytes
        .store(bytes as u64, Ordering::Relaxed);
    ctx.counters.buffer_ms.store(ms, Ordering::Relaxed);
}

fn check_stall(ctx: &SendContext, s: &Session) -> Result<(), String> {
    let stalled_for = s.last_progress.elapsed();
    if stalled_for > ctx.stall_timeout {
        return Err(format!(
            "link stalled: no bytes accepted for {} ms",
            stalled_for.as_millis()
        ));
    }
    let limit = ctx.stall_timeout.min(ACK_SILENCE_TIMEOUT);
    // Only while the same data has waited that long: an ACK that is old
    // because nothing was in flight (or because this process was stopped)
    // says nothing about the link.
    let waiting = s.unsent_since.is_some_and(|t| t.elapsed() > limit);
    if waiting && s.publisher.kernel_unsent_bytes() > 0 {
        if let Some(ms) = s.publisher.ms_since_last_ack() {
            if u128::from(ms) > limit.as_millis() {
                return Err(format!("link dead: no ACK from the server for {ms} ms"));
            }
        }
    }
    Ok(())
}

/// Marks the link down, drops what was queued (counted), tells the
/// ReconnectThread.
fn link_down(ctx: &SendContext, reason: String) {
    ctx.counters.state.set(LinkState::Reconnecting);
    let (video, audio) = ctx.buffer.end_session();
    ctx.counters
        .video_dropped_disconnected
        .fetch_add(video, Ordering::Relaxed);
    ctx.counters
        .audio_frames_dropped
        .fetch_add(audio, Ordering::Relaxed);
    ctx.counters.kernel_unsent_bytes.store(0, Ordering::Relaxed);
    ctx.counters.congestion_milli.store(0, Ordering::Relaxed);
    tracing::warn!(%reason, "link down");
    // The reconnect thread only goes away when the output stops.
    let _ = ctx.link_down.send(LinkDown {
        reason,
        at: Instant::now(),
    });
}

/// Graceful stop: send what is queued for up to `drain_timeout`, then close
/// the session (FCUnpublish, deleteStream).
fn drain_and_close(ctx: &SendContext, mut s: Session) {
    let deadline = Instant::now() + ctx.drain_timeout;
    while Instant::now() < deadline {
        if let Err(e) = fill(ctx, &mut s, Duration::ZERO, false) {
            tracing::warn!(error = %e, "drain: session failed");
            return;
        }
        if s.publisher.pending_bytes() == 0 && ctx.buffer.is_empty() {
            break;
        }
        match s.publisher.pump(PUMP_WAIT) {
            Ok(n) => account(ctx, &mut s, n),
            Err(e) => {
                tracing::warn!(error = %e, "drain: session failed");
                return;
            }
        }
    }
    let left = deadline.saturating_duration_since(Instant::now());
    s.publisher.close(left.max(Duration::from_millis(200)));
}

#[cfg(test)]
mod tests {
    use super::BacklogClock;

    #[test]
    fn backlog_is_measured_in_media_time_whatever_the_bitrate() {
        let mut b = BacklogClock::default();
        // 10 frames of 1000 bytes 33 ms apart, then 10 of 250 bytes (the
        // bitrate was divided by 4), on the wire in order.
        let mut end = 0;
        for i in 0..20u64 {
            b.on_tag(i, i * 33_000_000);
            end += if i < 10 { 1000 } else { 250 };
            b.on_sent(i, end);
        }
        // Two big frames and all the small ones unacknowledged: 11 intervals.
        assert_eq!(b.media_ms(end - 2000 - 2500), 11 * 33);
        // Later, the last 5 small frames: 4 intervals (bytes at a quarter
        // of the bitrate count as much media as the big ones).
        assert_eq!(b.media_ms(end - 1250), 4 * 33);
        assert_eq!(b.media_ms(end), 0, "all acknowledged: nothing in flight");
    }

    #[test]
    fn backlog_follows_wire_order_when_audio_overtakes_video() {
        let mut b = BacklogClock::default();
        // A keyframe (id 0, dts 0) of 100 KB, then audio every 21 ms (ids
        // 1..=4) that overtakes it on the wire, then a P-frame (id 5).
        b.on_tag(0, 0);
        for i in 1..=4u64 {
            b.on_tag(i, (i - 1) * 21_000_000);
        }
        b.on_tag(5, 33_000_000);
        // Audio 1 and 2 went out between the keyframe's first chunks.
        b.on_sent(1, 8_500);
        b.on_sent(2, 13_000);
        // Nothing acknowledged yet: everything is in flight, 0..63 ms (the
        // P-frame and audio 4, not yet staged, count too).
        assert_eq!(b.media_ms(0), 63);
        // The peer acknowledged 13 000 bytes: audio 1 and 2 are done, but
        // the keyframe (dts 0) is not, so the oldest in flight is still 0.
        assert_eq!(b.media_ms(13_000), 63);
        // The keyframe ends at 100 000 bytes, audio 3 and 4 after it.
        b.on_sent(0, 100_000);
        b.on_sent(3, 100_500);
        b.on_sent(4, 101_000);
        b.on_sent(5, 111_000);
        // Keyframe acknowledged: the P-frame (33 ms) .. audio 4 (63 ms).
        assert_eq!(b.media_ms(100_000), 30);
        // Ids that are not tags (sequence headers) change nothing.
        b.on_sent(99, 5);
        assert_eq!(b.media_ms(101_000), 0, "only the P-frame is left");
        assert_eq!(b.media_ms(111_000), 0);
        assert!(b.marks.is_empty());
    }
}
