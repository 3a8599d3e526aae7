//! NetworkSendThread: takes FLV tags from the StreamBuffer and writes them to
//! the current RTMP session.
//!
//! Why it owns what it owns: the session (socket) is made by the
//! ReconnectThread, handed over through a channel, and owned here until the
//! link fails; then it is dropped here and the ReconnectThread is told
//! through another channel. Which session is live, and starting one (clean
//! buffer, IDR requested), is decided here alone, one transition per event
//! (`handover.rs`). No lock is ever held across a write.
//!
//! ## Moving on a server's request (Enhanced RTMP reconnect request)
//!
//! This thread is the one owner of the decision to leave a live session for
//! another: it reads the server's `NetConnection.Connect.ReconnectRequest`
//! from its own session ([`RtmpPublisher::take_reconnect_request`]), asks
//! the ReconnectThread (which makes every session) for a standby session at
//! the resolved URL through `redirects`, and keeps sending on the old
//! session meanwhile. The standby comes back on `sessions`
//! ([`Handover::Standby`], or [`Handover::StandbyFailed`]); this thread
//! asks the encoder for a keyframe as it takes it, and reads its socket
//! (pings, acks) while it waits. The
//! switch happens when the next video keyframe leaves the buffer: that tag
//! and everything after it go to the new session (timestamps from 0 there),
//! everything before it has gone to the old one, so no frame is skipped and
//! none is sent twice; the old session then drains what it still holds for
//! at most [`RETIRE_DRAIN`] and is closed (FCUnpublish, deleteStream). A
//! standby that does not come within [`REDIRECT_TIMEOUT`] is given up and
//! the old session goes on. Audio-only streams switch at once. If the old
//! link dies first, the standby (when it comes) is started here as a new
//! session in the same step that takes it, and the ReconnectThread is told
//! the outage is over ([`LinkDown::replaced`]).
//!
//! A dead link often gives no error: writes simply stop completing. So a link
//! is declared down on a write error or EOF, and also when no byte has been
//! accepted for `stall_timeout` while there is something to send, or the
//! kernel holds unsent bytes and the peer has not ACKed for `stall_timeout`.

mod adapt;
mod backlog;
pub mod handover;

use self::adapt::{Adaptation, RateMeter};
use self::backlog::BacklogClock;
use self::handover::{Effects, Handover, Sessions};
use super::buffer::QueuedTag;
use super::buffer::StreamBuffer;
use super::muxer::{StreamMuxer, VIDEO_DROP_HIGH_WATER};
use super::rtmp::{RtmpError, RtmpPublisher};
use super::url::RtmpUrl;
use crate::stats::{bump, LinkState, OutputCounters};
use crate::video::bitrate::VideoBitrate;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
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
/// How long to wait for a session when there is none.
const SESSION_WAIT: Duration = Duration::from_millis(50);
/// The congestion controller looks at the link this often.
pub const OBSERVE_INTERVAL: Duration = Duration::from_millis(100);

/// Why the send thread gave up on a session.
#[derive(Debug)]
pub struct LinkDown {
    /// What happened (never contains the stream key).
    pub reason: String,
    /// When it was detected.
    pub at: Instant,
    /// The standby session of a reconnect request took over at once (the
    /// send thread started it on a clean buffer): the outage is over and
    /// the ReconnectThread makes no session.
    pub replaced: bool,
}

/// Everything the NetworkSendThread needs.
pub struct SendContext {
    /// The output's queue.
    pub buffer: Arc<StreamBuffer>,
    /// The output's counters.
    pub counters: Arc<OutputCounters>,
    /// The output's muxer: the send thread starts each session on it
    /// (`on_new_session`) and asks it for a standby's keyframe.
    pub muxer: Arc<StreamMuxer>,
    /// Sessions from the ReconnectThread, and the answers to reconnect
    /// requests.
    pub sessions: Receiver<Handover<RtmpPublisher>>,
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

/// A session the send thread writes to, with its own clocks.
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
    let mut owner = Sessions::<Session>::default();
    let mut fx = Fx {
        ctx: &ctx,
        adapt: ctx.bitrate.clone().map(Adaptation::new),
    };
    let mut rate = RateMeter::new();
    loop {
        let sent_before = ctx.counters.bytes_sent.load(Ordering::Relaxed);
        if ctx.stop.load(Ordering::Acquire) {
            if let Some(s) = owner.stop(&mut fx) {
                drain_and_close(&ctx, s);
            }
            return;
        }
        // Every message from the ReconnectThread is one transition of the
        // owner, whatever the state: waited for only without a session.
        let wait = if owner.live().is_some() {
            Duration::ZERO
        } else {
            SESSION_WAIT
        };
        match ctx.sessions.recv_timeout(wait) {
            Ok(handover) => owner.on_handover(handover.map(Session::new), &mut fx),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) if owner.live().is_none() => return,
            Err(RecvTimeoutError::Disconnected) => {}
        }
        owner.expire(REDIRECT_TIMEOUT, &mut fx);
        let busy = owner.request_in_progress();
        let switch_at_keyframe = owner.standby().is_some();
        let Some(s) = owner.live() else {
            rate.add(0, &ctx.counters);
            continue;
        };
        if let Some(url) = reconnect_request(s, busy) {
            if ctx.redirects.send(url).is_ok() {
                owner.asked(Instant::now());
            }
        }
        let Some(s) = owner.live() else {
            continue;
        };
        match step(&ctx, s, switch_at_keyframe) {
            Ok(None) => {
                if let Some(a) = fx.adapt.as_mut() {
                    a.observe(&ctx, s);
                }
            }
            Ok(Some(keyframe)) => {
                if let Some(next) = owner.switch(RETIRE_DRAIN, &mut fx) {
                    let queued = queue_tag(&ctx, next, keyframe);
                    bump(&ctx.counters.redirects);
                    tracing::info!("switched to the session the server asked for");
                    match queued {
                        Ok(()) => {
                            if let Some(a) = fx.adapt.as_mut() {
                                a.on_new_session();
                            }
                        }
                        Err(e) => owner.on_link_lost(e.to_string(), &mut fx),
                    }
                }
            }
            Err(reason) => owner.on_link_lost(reason, &mut fx),
        }
        pump_standby(&mut owner, &mut fx);
        pump_retiring(&mut owner, &mut fx);
        let sent = ctx.counters.bytes_sent.load(Ordering::Relaxed) - sent_before;
        rate.add(sent, &ctx.counters);
    }
}

/// The server's reconnect request, read from the live session: the URL to
/// ask the ReconnectThread for, unless one is in progress or it is unusable.
fn reconnect_request(s: &mut Session, in_progress: bool) -> Option<RtmpUrl> {
    match s.publisher.take_reconnect_request()? {
        Ok(url) if !in_progress => {
            tracing::info!(to = %url, "server asks to reconnect: making the new session");
            Some(url)
        }
        Ok(_) => {
            tracing::debug!("reconnect request while one is in progress: ignored");
            None
        }
        Err(reason) => {
            tracing::warn!(%reason, "reconnect request ignored");
            None
        }
    }
}

/// The standby session, while it waits for its keyframe, is read (pings
/// answered, acks sent) like the live one; a failure closes it and the live
/// session goes on.
fn pump_standby(owner: &mut Sessions<Session>, fx: &mut Fx) {
    let Some(standby) = owner.standby() else {
        return;
    };
    if let Err(e) = standby.publisher.pump(Duration::ZERO) {
        tracing::warn!(error = %e, "the standby session failed: staying");
        owner.standby_failed(fx);
    }
}

/// Sends what the session left behind by a switch still holds; closes it
/// when done, failed or late.
fn pump_retiring(owner: &mut Sessions<Session>, fx: &mut Fx) {
    let Some((old, deadline)) = owner.retiring() else {
        return;
    };
    let done = match old.publisher.pump(Duration::ZERO) {
        Ok(_) => old.publisher.pending_bytes() == 0 || Instant::now() >= deadline,
        Err(e) => {
            tracing::debug!(error = %e, "the session left behind failed while draining");
            true
        }
    };
    if done {
        owner.retired(fx);
    }
}

/// The owner's effects in the running output.
struct Fx<'a> {
    ctx: &'a SendContext,
    adapt: Option<Adaptation>,
}

impl Effects<Session> for Fx<'_> {
    fn begin(&mut self, _session: &Session) {
        self.ctx.muxer.on_new_session();
        self.ctx.counters.state.set(LinkState::Live);
        if let Some(a) = self.adapt.as_mut() {
            a.on_new_session();
        }
    }

    fn request_switch_keyframe(&mut self) {
        self.ctx.muxer.request_switch_keyframe();
    }

    fn end(&mut self, reason: &str) {
        tracing::warn!(%reason, "link down");
        let ctx = self.ctx;
        ctx.counters.state.set(LinkState::Reconnecting);
        ctx.muxer.on_session_lost();
        ctx.counters.kernel_unsent_bytes.store(0, Ordering::Relaxed);
        ctx.counters.congestion_milli.store(0, Ordering::Relaxed);
    }

    fn report(&mut self, down: LinkDown) {
        if down.replaced {
            tracing::info!("the reconnect request's session took over from the lost link");
        }
        // The reconnect thread only goes away when the output stops.
        let _ = self.ctx.link_down.send(down);
    }

    fn close(&mut self, session: Session) {
        session.publisher.close(Duration::ZERO);
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
