//! ReconnectThread: makes every RTMP session of an output, the first one
//! included, and brings the link back after a failure.
//!
//! Why a thread of its own: connecting can take seconds (DNS, TCP, handshake,
//! publish) and must never hold up the engines or the send thread's
//! bookkeeping. While the link is down the muxer drops everything (counted),
//! the engines keep their cadence, and each new session starts from a clean
//! buffer with timestamps from 0 and an IDR requested at that moment: the
//! stream resumes at the present, with no backlog (golden rules 5 and 7).
//!
//! Policy (OBS-like, minus the 15-minute cap users complain about):
//! exponential backoff with jitter, first retry within 0.5 s, capped at 30 s;
//! unlimited retries by default once the stream has been live; a publish the
//! server *rejects* is not a network fault and ends the output after a few
//! tries.

use super::rtmp::{ConnectOptions, RtmpPublisher};
use super::send::handover::Handover;
use super::send::LinkDown;
use super::url::RtmpUrl;
use super::Event;
use crate::packet::StreamHeaders;
use crate::stats::{bump, LinkState, OutputCounters};
use crossbeam_channel::{select, Receiver, RecvTimeoutError, Sender};
use rand::Rng;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Default delay before the first retry.
pub const DEFAULT_FIRST_DELAY: Duration = Duration::from_millis(500);
/// Default backoff cap.
pub const DEFAULT_MAX_DELAY: Duration = Duration::from_secs(30);
/// Each delay is reduced by up to this fraction at random, so that many
/// streamers cut by the same outage do not come back in lockstep.
pub const JITTER: f64 = 0.3;
/// Default number of rejected publishes before giving up.
pub const DEFAULT_MAX_REJECTIONS: u32 = 3;
/// Default attempts for the very first connection: a server that is not
/// there at start is most likely a typo, so say so instead of waiting.
pub const DEFAULT_INITIAL_ATTEMPTS: u32 = 3;

/// How an output retries.
#[derive(Clone, Debug, PartialEq)]
pub struct ReconnectPolicy {
    /// Delay before the first retry (before jitter).
    pub first_delay: Duration,
    /// Cap of the exponential growth.
    pub max_delay: Duration,
    /// Retries per outage before failing; `None` = unlimited.
    pub max_retries: Option<u32>,
    /// Attempts for the first connection before failing.
    pub initial_attempts: u32,
    /// Rejected publishes (bad key) before failing.
    pub max_rejections: u32,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        Self {
            first_delay: DEFAULT_FIRST_DELAY,
            max_delay: DEFAULT_MAX_DELAY,
            max_retries: None,
            initial_attempts: DEFAULT_INITIAL_ATTEMPTS,
            max_rejections: DEFAULT_MAX_REJECTIONS,
        }
    }
}

/// Exponential backoff with jitter: step n waits in
/// `[(1 - JITTER) * d, d]` with `d = min(max_delay, first_delay * 2^n)`.
#[derive(Debug)]
pub struct Backoff {
    policy: ReconnectPolicy,
    step: u32,
}

impl Backoff {
    /// Starts at the first step.
    pub fn new(policy: ReconnectPolicy) -> Self {
        Self { policy, step: 0 }
    }

    /// The ceiling of the current step, without jitter.
    pub fn ceiling(&self) -> Duration {
        let factor = 2u32.saturating_pow(self.step.min(20));
        self.policy
            .first_delay
            .saturating_mul(factor)
            .min(self.policy.max_delay)
    }

    /// The delay to wait now; advances to the next step.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling();
        self.step = self.step.saturating_add(1);
        let cut = rand::rng().random_range(0.0..=JITTER);
        ceiling.mul_f64(1.0 - cut)
    }
}

/// Requests to the ReconnectThread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Skip the current backoff wait.
    ReconnectNow,
    /// Stop for good.
    Stop,
}

/// Everything the ReconnectThread needs.
pub struct ReconnectContext {
    /// Output index, for events.
    pub output: usize,
    /// Where to publish.
    pub url: RtmpUrl,
    /// Socket and timeout settings.
    pub connect: ConnectOptions,
    /// What every session sends first.
    pub headers: StreamHeaders,
    /// Retry policy.
    pub policy: ReconnectPolicy,
    /// The output's counters.
    pub counters: Arc<OutputCounters>,
    /// Hands sessions, and the answers to reconnect requests, to the
    /// NetworkSendThread (which starts each session).
    pub sessions: Sender<Handover<RtmpPublisher>>,
    /// Failures from the NetworkSendThread.
    pub link_down: Receiver<LinkDown>,
    /// Reconnect requests from the NetworkSendThread (a server's Enhanced
    /// RTMP `ReconnectRequest`, resolved): make a standby session there.
    pub redirects: Receiver<RtmpUrl>,
    /// Requests from the API.
    pub control: Receiver<Control>,
    /// Events to the API user.
    pub events: Sender<Event>,
    /// Last error (redacted), for stats; written only here and by the send
    /// thread's reports through this thread.
    pub last_error: Arc<Mutex<Option<String>>>,
}

/// Starts the thread ("onair-reconnect").
pub fn spawn(ctx: ReconnectContext) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("onair-reconnect".into())
        .spawn(move || run(ctx))
}

enum Outcome {
    Live,
    Stop,
    Failed,
}

fn run(mut ctx: ReconnectContext) {
    let mut ever_live = false;
    let mut down_since: Option<Instant> = None;
    loop {
        match connect_until_live(&ctx, ever_live) {
            Outcome::Live => {
                if let Some(since) = down_since.take() {
                    bump(&ctx.counters.reconnects);
                    ctx.emit(Event::Reconnected {
                        output: ctx.output,
                        downtime_ms: since.elapsed().as_millis() as u64,
                    });
                }
                ever_live = true;
                ctx.emit(Event::State {
                    output: ctx.output,
                    state: LinkState::Live,
                });
            }
            Outcome::Stop => return,
            Outcome::Failed => {
                ctx.counters.state.set(LinkState::Failed);
                ctx.emit(Event::State {
                    output: ctx.output,
                    state: LinkState::Failed,
                });
                return;
            }
        }
        // Live: wait for the send thread to report a failure, or a stop.
        loop {
            select! {
                recv(ctx.link_down) -> msg => {
                    let Ok(down) = msg else { return };
                    ctx.set_error(&down.reason);
                    if down.replaced {
                        // The standby of a reconnect request took over
                        // from the lost link: the outage is already over.
                        bump(&ctx.counters.reconnects);
                        ctx.emit(Event::Reconnected {
                            output: ctx.output,
                            downtime_ms: down.at.elapsed().as_millis() as u64,
                        });
                        continue;
                    }
                    down_since = Some(down.at);
                    ctx.counters.state.set(LinkState::Reconnecting);
                    ctx.emit(Event::State { output: ctx.output, state: LinkState::Reconnecting });
                    break;
                }
                recv(ctx.control) -> msg => match msg {
                    Ok(Control::ReconnectNow) => {}
                    Ok(Control::Stop) | Err(_) => return,
                },
                recv(ctx.redirects) -> msg => {
                    let Ok(url) = msg else { return };
                    standby_session(&mut ctx, url);
                }
            }
        }
    }
}

/// Tries until a session is up, the policy gives up, or stop.
fn connect_until_live(ctx: &ReconnectContext, ever_live: bool) -> Outcome {
    let mut backoff = Backoff::new(ctx.policy.clone());
    let mut attempts = 0u32;
    let mut rejections = 0u32;
    loop {
        attempts += 1;
        match RtmpPublisher::connect(&ctx.url, &ctx.connect, &ctx.headers) {
            Ok(publisher) => {
                go_live(ctx, publisher);
                return Outcome::Live;
            }
            Err(e) => {
                let reason = e.to_string();
                ctx.set_error(&reason);
                bump(&ctx.counters.connect_failures);
                tracing::warn!(output = %ctx.url, attempt = attempts, error = %reason, "connection failed");
                // A rejection before the stream was ever live is a bad key or
                // app: retrying forever would only hide it. After it was
                // live, the usual cause is the server still holding our old
                // session (nginx-rtmp: "Already publishing"), so keep trying.
                // A certificate that fails verification will fail again
                // (and may be a man in the middle): stop at the first one.
                let give_up = if e.is_certificate_failure() {
                    true
                } else if e.is_rejection() && !ever_live {
                    rejections += 1;
                    rejections >= ctx.policy.max_rejections
                } else if !ever_live {
                    attempts >= ctx.policy.initial_attempts
                } else {
                    ctx.policy.max_retries.is_some_and(|max| attempts > max)
                };
                if give_up {
                    ctx.counters
                        .rejected
                        .store(e.is_rejection(), Ordering::Release);
                    ctx.emit(Event::Error {
                        output: ctx.output,
                        rejected: e.is_rejection(),
                        message: reason,
                    });
                    return Outcome::Failed;
                }
                let delay = backoff.next_delay();
                ctx.emit(Event::Reconnecting {
                    output: ctx.output,
                    attempt: attempts,
                    delay_ms: delay.as_millis() as u64,
                    reason,
                });
                match ctx.control.recv_timeout(delay) {
                    Ok(Control::ReconnectNow) | Err(RecvTimeoutError::Timeout) => {}
                    Ok(Control::Stop) | Err(RecvTimeoutError::Disconnected) => {
                        return Outcome::Stop
                    }
                }
            }
        }
    }
}

/// A standby session for a reconnect request, handed to the send thread
/// (which switches to it at the next keyframe, or starts it as a new session
/// if the old link died meanwhile). One attempt: if it fails, the send thread
/// is told and the old session simply goes on. On success the new URL
/// becomes this output's URL for later reconnects too.
fn standby_session(ctx: &mut ReconnectContext, url: RtmpUrl) {
    let answer = match RtmpPublisher::connect(&url, &ctx.connect, &ctx.headers) {
        Ok(publisher) => {
            tracing::info!(output = %url, "session for the reconnect request is live");
            ctx.url = url;
            Handover::Standby(publisher)
        }
        Err(e) => {
            bump(&ctx.counters.connect_failures);
            tracing::warn!(output = %url, error = %e, "reconnect request: the new server failed; staying");
            Handover::StandbyFailed
        }
    };
    // The send thread lives as long as this thread's output.
    let _ = ctx.sessions.send(answer);
}

/// A fresh session: flags up, session handed to the send thread, which
/// starts it (clean buffer, keyframe gate closed, IDR requested now) as it
/// takes it.
fn go_live(ctx: &ReconnectContext, publisher: RtmpPublisher) {
    ctx.counters.state.set(LinkState::Live);
    // The send thread lives as long as this thread's output.
    let _ = ctx.sessions.send(Handover::Session(publisher));
}

impl ReconnectContext {
    fn emit(&self, event: Event) {
        // Events are advisory: if nobody reads them, drop rather than block.
        let _ = self.events.try_send(event);
    }

    fn set_error(&self, reason: &str) {
        if let Ok(mut slot) = self.last_error.lock() {
            *slot = Some(reason.to_owned());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_the_cap_with_bounded_jitter() {
        let mut b = Backoff::new(ReconnectPolicy::default());
        let first = b.next_delay();
        assert!(first <= Duration::from_millis(500), "{first:?}");
        assert!(first >= Duration::from_millis(350), "{first:?}");
        let mut last = first;
        for _ in 0..20 {
            last = b.next_delay();
            assert!(last <= DEFAULT_MAX_DELAY);
        }
        assert!(last >= DEFAULT_MAX_DELAY.mul_f64(1.0 - JITTER));
        assert_eq!(b.ceiling(), DEFAULT_MAX_DELAY);
    }

    #[test]
    fn backoff_ceilings_double() {
        let mut b = Backoff::new(ReconnectPolicy::default());
        let ceilings: Vec<u128> = (0..8)
            .map(|_| {
                let c = b.ceiling().as_millis();
                b.next_delay();
                c
            })
            .collect();
        assert_eq!(ceilings, [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000]);
    }
}
