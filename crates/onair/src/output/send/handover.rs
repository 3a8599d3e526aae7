//! Which RTMP session the send thread writes to, and every change of it: a
//! session handed over by the ReconnectThread, a standby made on a server's
//! reconnect request, a link lost with or without a standby at hand.
//!
//! Why a state machine of its own: the send thread is the one owner of the
//! sessions and of the decision to start one; each message from the
//! ReconnectThread ([`Handover`]) and each loss of the link is one
//! transition here, taken on the send thread with everything it needs in
//! hand, so no decision rests on what another thread saw a moment ago. A
//! standby that arrives after the link it was meant to relieve is gone is
//! started like any new session (clean buffer, IDR requested) in the same
//! step that takes it, and the ReconnectThread learns that the outage is
//! over instead of making a second session. The effects on the buffer, the
//! encoder and the ReconnectThread go through [`Effects`], so the
//! transitions are tested without sockets.

use super::LinkDown;
use std::time::{Duration, Instant};

/// What the ReconnectThread hands the send thread on `sessions`.
#[derive(Debug)]
pub enum Handover<P> {
    /// A session made after the send thread reported the link down (or the
    /// output's first one): the send thread starts it on a clean buffer.
    Session(P),
    /// The answer to a reconnect request: a live session at the new URL.
    Standby(P),
    /// The answer to a reconnect request: the new server could not be
    /// reached; the current session goes on.
    StandbyFailed,
}

impl<P> Handover<P> {
    /// The same message around what `f` makes of its session.
    pub fn map<S>(self, f: impl FnOnce(P) -> S) -> Handover<S> {
        match self {
            Self::Session(p) => Handover::Session(f(p)),
            Self::Standby(p) => Handover::Standby(f(p)),
            Self::StandbyFailed => Handover::StandbyFailed,
        }
    }
}

/// What a transition does outside the state machine (the send thread's
/// context in the running output; a log in the tests).
pub trait Effects<S> {
    /// A session starts: clean buffer, keyframe gate closed, an IDR
    /// requested now (the muxer's `on_new_session`), link live.
    fn begin(&mut self, session: &S);
    /// A standby is ready: ask the encoder for the keyframe to switch on.
    fn request_switch_keyframe(&mut self);
    /// The link is gone (`reason`): what was queued is dropped (counted),
    /// link reconnecting.
    fn end(&mut self, reason: &str);
    /// Tells the ReconnectThread how the link went down.
    fn report(&mut self, down: LinkDown);
    /// A session that will not be used is closed.
    fn close(&mut self, session: S);
}

/// Where a reconnect request stands.
#[derive(Debug)]
enum Request<S> {
    /// None in progress.
    None,
    /// Asked for at this time; the answer has not come.
    Asked(Instant),
    /// The standby session, live, waiting for the next keyframe.
    Ready(S),
}

/// The sessions the send thread owns: the live one, a reconnect request's
/// standby, the one draining after a switch. Held only by the send thread,
/// so every change of them is one step of one owner.
#[derive(Debug)]
pub struct Sessions<S> {
    /// The session being written to.
    live: Option<S>,
    request: Request<S>,
    /// The link went down while a standby was asked for: reported to the
    /// ReconnectThread once the answer says whether the standby takes over.
    lost: Option<LinkDown>,
    /// The session switched away from, draining until its deadline.
    retiring: Option<(S, Instant)>,
}

impl<S> Default for Sessions<S> {
    fn default() -> Self {
        Self {
            live: None,
            request: Request::None,
            lost: None,
            retiring: None,
        }
    }
}

impl<S> Sessions<S> {
    /// The session being written to.
    pub fn live(&mut self) -> Option<&mut S> {
        self.live.as_mut()
    }

    /// The standby session, ready, waiting for its keyframe.
    pub fn standby(&mut self) -> Option<&mut S> {
        match &mut self.request {
            Request::Ready(s) => Some(s),
            _ => None,
        }
    }

    /// The session left behind by a switch, with its deadline.
    pub fn retiring(&mut self) -> Option<(&mut S, Instant)> {
        self.retiring.as_mut().map(|(s, at)| (s, *at))
    }

    /// True while a request is in progress (asked, or its standby ready):
    /// a second one is ignored.
    pub fn request_in_progress(&self) -> bool {
        !matches!(self.request, Request::None)
    }

    /// A reconnect request was sent to the ReconnectThread at `at`.
    pub fn asked(&mut self, at: Instant) {
        if self.live.is_some() && matches!(self.request, Request::None) {
            self.request = Request::Asked(at);
        }
    }

    /// One message from the ReconnectThread.
    pub fn on_handover(&mut self, handover: Handover<S>, fx: &mut impl Effects<S>) {
        match handover {
            Handover::Session(s) if self.live.is_none() && self.lost.is_none() => {
                self.start(s, fx);
            }
            Handover::Session(s) => {
                tracing::warn!("a new session while one is live or awaited: closed");
                fx.close(s);
            }
            Handover::Standby(s) => match std::mem::replace(&mut self.request, Request::None) {
                Request::Asked(_) if self.lost.is_some() => self.take_over(s, fx),
                Request::Asked(_) if self.live.is_some() => {
                    fx.request_switch_keyframe();
                    self.request = Request::Ready(s);
                }
                other => {
                    tracing::debug!("a standby nobody waits for (given up): closed");
                    self.request = other;
                    fx.close(s);
                }
            },
            Handover::StandbyFailed => {
                if matches!(self.request, Request::Asked(_)) {
                    self.request = Request::None;
                    if let Some(down) = self.lost.take() {
                        fx.report(down);
                    }
                }
            }
        }
    }

    /// The live session failed (`reason`): it is dropped, and so is the
    /// one still draining from a switch. A ready standby takes over at once
    /// as a new session; a standby still being made is waited for;
    /// otherwise the ReconnectThread is told.
    pub fn on_link_lost(&mut self, reason: String, fx: &mut impl Effects<S>) {
        self.live = None;
        self.retired(fx);
        fx.end(&reason);
        let down = LinkDown {
            reason,
            at: Instant::now(),
            replaced: false,
        };
        match std::mem::replace(&mut self.request, Request::None) {
            Request::Ready(s) => {
                self.lost = Some(down);
                self.take_over(s, fx);
            }
            Request::Asked(at) => {
                self.request = Request::Asked(at);
                self.lost = Some(down);
            }
            Request::None => fx.report(down),
        }
    }

    /// The next keyframe left the buffer: the ready standby becomes the
    /// live session (the buffer goes on, no reset) and the old one
    /// retires, draining for at most `drain`. Returns the new live session,
    /// or None without a standby.
    pub fn switch(&mut self, drain: Duration, fx: &mut impl Effects<S>) -> Option<&mut S> {
        let Request::Ready(next) = std::mem::replace(&mut self.request, Request::None) else {
            return None;
        };
        if let Some(old) = self.live.replace(next) {
            if let Some((previous, _)) = self.retiring.take() {
                fx.close(previous);
            }
            self.retiring = Some((old, Instant::now() + drain));
        }
        self.live.as_mut()
    }

    /// A request asked for more than `timeout` ago is given up (a late
    /// answer is then closed); with the link lost meanwhile, that loss is
    /// reported now.
    pub fn expire(&mut self, timeout: Duration, fx: &mut impl Effects<S>) {
        if let Request::Asked(at) = self.request {
            if at.elapsed() > timeout {
                tracing::warn!("no session from the reconnect request in time: staying");
                self.request = Request::None;
                if let Some(down) = self.lost.take() {
                    fx.report(down);
                }
            }
        }
    }

    /// The ready standby failed while waiting for its keyframe: closed, the
    /// live session goes on.
    pub fn standby_failed(&mut self, fx: &mut impl Effects<S>) {
        if let Request::Ready(s) = std::mem::replace(&mut self.request, Request::None) {
            fx.close(s);
        }
    }

    /// The retiring session is done (drained, failed or late): closed.
    pub fn retired(&mut self, fx: &mut impl Effects<S>) {
        if let Some((old, _)) = self.retiring.take() {
            fx.close(old);
        }
    }

    /// Stop: the live session is returned for a graceful close, the others
    /// are closed.
    pub fn stop(&mut self, fx: &mut impl Effects<S>) -> Option<S> {
        self.standby_failed(fx);
        self.retired(fx);
        self.request = Request::None;
        self.lost = None;
        self.live.take()
    }

    /// A standby takes over from a lost link: started as a new session, and
    /// the ReconnectThread told that the outage is over.
    fn take_over(&mut self, s: S, fx: &mut impl Effects<S>) {
        self.start(s, fx);
        if let Some(mut down) = self.lost.take() {
            down.replaced = true;
            fx.report(down);
        }
    }

    fn start(&mut self, s: S, fx: &mut impl Effects<S>) {
        fx.begin(&s);
        self.live = Some(s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the transitions did, in order.
    #[derive(Default)]
    struct Log(Vec<String>);

    impl Effects<&'static str> for Log {
        fn begin(&mut self, s: &&'static str) {
            self.0.push(format!("begin {s}"));
        }
        fn request_switch_keyframe(&mut self) {
            self.0.push("keyframe".into());
        }
        fn end(&mut self, _reason: &str) {
            self.0.push("end".into());
        }
        fn report(&mut self, down: LinkDown) {
            let what = if down.replaced { "replaced" } else { "down" };
            self.0.push(format!("report {what}: {}", down.reason));
        }
        fn close(&mut self, s: &'static str) {
            self.0.push(format!("close {s}"));
        }
    }

    fn live(name: &'static str, log: &mut Log) -> Sessions<&'static str> {
        let mut s = Sessions::default();
        s.on_handover(Handover::Session(name), log);
        s
    }

    #[test]
    fn a_handed_over_session_starts_on_a_clean_buffer() {
        let mut log = Log::default();
        let mut s = live("a", &mut log);
        assert_eq!(s.live().copied(), Some("a"));
        s.on_link_lost("eof".into(), &mut log);
        assert_eq!(s.live(), None);
        s.on_handover(Handover::Session("b"), &mut log);
        assert_eq!(log.0, ["begin a", "end", "report down: eof", "begin b"]);
    }

    /// The race of the two-step hand-over: the old link dies after the
    /// standby was asked for and before it arrives. The standby must start
    /// like any new session (clean buffer, IDR), and the ReconnectThread
    /// must hear that the outage is over, not make another session.
    #[test]
    fn a_standby_arriving_after_the_link_died_starts_as_a_new_session() {
        let mut log = Log::default();
        let mut s = live("a", &mut log);
        s.asked(Instant::now());
        s.on_link_lost("eof".into(), &mut log);
        assert_eq!(s.live(), None);
        assert_eq!(log.0, ["begin a", "end"], "loss not reported yet");
        s.on_handover(Handover::Standby("b"), &mut log);
        assert_eq!(s.live().copied(), Some("b"));
        assert_eq!(
            log.0,
            ["begin a", "end", "begin b", "report replaced: eof"],
            "the standby must start on a clean buffer"
        );
        // No second session is expected: one that came anyway is refused.
        s.on_handover(Handover::Session("c"), &mut log);
        assert_eq!(s.live().copied(), Some("b"));
        assert_eq!(log.0.last().map(String::as_str), Some("close c"));
    }

    #[test]
    fn a_ready_standby_takes_over_a_lost_link_at_once() {
        let mut log = Log::default();
        let mut s = live("a", &mut log);
        s.asked(Instant::now());
        s.on_handover(Handover::Standby("b"), &mut log);
        assert_eq!(s.standby().copied(), Some("b"));
        s.on_link_lost("stall".into(), &mut log);
        assert_eq!(s.live().copied(), Some("b"));
        assert_eq!(
            log.0,
            [
                "begin a",
                "keyframe",
                "end",
                "begin b",
                "report replaced: stall"
            ]
        );
    }

    #[test]
    fn a_standby_switches_at_the_keyframe_without_a_reset() {
        let mut log = Log::default();
        let mut s = live("a", &mut log);
        assert!(s.switch(Duration::ZERO, &mut log).is_none(), "no standby");
        s.asked(Instant::now());
        assert!(s.request_in_progress());
        s.on_handover(Handover::Standby("b"), &mut log);
        assert_eq!(s.switch(Duration::ZERO, &mut log).copied(), Some("b"));
        assert_eq!(s.retiring().map(|(r, _)| *r), Some("a"));
        assert!(!s.request_in_progress());
        s.retired(&mut log);
        assert_eq!(log.0, ["begin a", "keyframe", "close a"]);
        // A session still draining is closed when the live one fails.
        s.asked(Instant::now());
        s.on_handover(Handover::Standby("c"), &mut log);
        s.switch(Duration::from_secs(2), &mut log);
        s.on_link_lost("eof".into(), &mut log);
        assert!(s.retiring().is_none());
        assert_eq!(
            log.0[3..],
            ["keyframe", "close b", "end", "report down: eof"]
        );
    }

    #[test]
    fn a_failed_standby_leaves_the_live_session_or_reports_the_loss() {
        let mut log = Log::default();
        let mut s = live("a", &mut log);
        s.asked(Instant::now());
        s.on_handover(Handover::StandbyFailed, &mut log);
        assert!(!s.request_in_progress());
        assert_eq!(s.live().copied(), Some("a"));
        s.asked(Instant::now());
        s.on_link_lost("eof".into(), &mut log);
        s.on_handover(Handover::StandbyFailed, &mut log);
        assert_eq!(s.live(), None);
        assert_eq!(log.0, ["begin a", "end", "report down: eof"]);
        // Then the ReconnectThread's new session starts.
        s.on_handover(Handover::Session("c"), &mut log);
        assert_eq!(s.live().copied(), Some("c"));
    }

    #[test]
    fn a_late_standby_is_closed_and_the_loss_reported_at_the_timeout() {
        let mut log = Log::default();
        let mut s = live("a", &mut log);
        s.asked(Instant::now());
        s.on_link_lost("eof".into(), &mut log);
        s.expire(Duration::from_secs(60), &mut log);
        assert_eq!(log.0, ["begin a", "end"], "not expired yet");
        s.expire(Duration::ZERO, &mut log);
        assert_eq!(log.0, ["begin a", "end", "report down: eof"]);
        s.on_handover(Handover::Standby("b"), &mut log);
        assert_eq!(s.live(), None, "a late standby is not taken");
        assert_eq!(log.0.last().map(String::as_str), Some("close b"));
    }

    #[test]
    fn stop_closes_all_but_the_live_session() {
        let mut log = Log::default();
        let mut s = live("a", &mut log);
        s.asked(Instant::now());
        s.on_handover(Handover::Standby("b"), &mut log);
        assert_eq!(s.stop(&mut log), Some("a"));
        assert_eq!(log.0, ["begin a", "keyframe", "close b"]);
        assert_eq!(s.stop(&mut log), None);
    }
}
