//! Media time in flight: how much of the stream (by timestamps) the RTMP
//! session and the kernel hold ahead of the peer's acknowledgements.
//!
//! Why by timestamps and not by bytes: see [`BacklogClock`]; the send
//! thread feeds it and the StreamBuffer's bounds read its result.

use super::super::rtmp::MediaId;
use std::collections::VecDeque;

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
pub struct BacklogClock {
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
    pub fn on_tag(&mut self, id: MediaId, dts_ns: u64) {
        self.marks.push_back(Mark {
            id,
            dts_ns,
            end: None,
        });
    }

    /// The publisher placed message `id`'s last byte at `end`. Ids that are
    /// not tags (the sequence headers of the session) are ignored.
    pub fn on_sent(&mut self, id: MediaId, end: u64) {
        if let Ok(i) = self.marks.binary_search_by_key(&id, |m| m.id) {
            self.marks[i].end = Some(end);
        }
    }

    /// Media ms in the tags not acknowledged up to `acked`.
    pub fn media_ms(&mut self, acked: u64) -> u64 {
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
