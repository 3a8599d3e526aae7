//! The ALSA backend: `default` and sound cards, through cpal.
//!
//! Why cpal here: it already runs ALSA's period-sized reads on a thread of
//! its own and calls back with samples; the callback only converts to stereo
//! f32 into the device ring (never locks or allocates). `cpal::Stream` is not
//! `Send`, so the device thread owns it and watches it: an error callback, or
//! no data for [`STALL_TIMEOUT`], ends the stream and the device thread
//! reopens it. PulseAudio/PipeWire sources do not come through here any more
//! (see `pulse.rs`): ALSA's pulse plugin could only be pointed at a source by
//! a process-wide `PULSE_SOURCE`.
//!
//! alsa-lib prints its probing errors ("ALSA lib confmisc.c:... cannot find
//! card '0'", "Unknown PCM pipewire") to stderr through its default error
//! handler. [`quiet_alsa_errors_on_this_thread`] installs alsa-lib's
//! *thread-local* handler (`snd_lib_error_set_local`) on the calling thread
//! instead, forwarding to `tracing` at debug level: nothing process-wide is
//! changed. Listing cards ([`alsa_cards`]) reads each card's control
//! interface only and opens no PCM, so no plugin (jack, pulse, oss) is probed.
//! Opening a card by name still lets cpal open its built-in PCMs first; with
//! the JACK plugin installed, libjack may print its own lines then (libjack's
//! error callback is process-wide, so it is left alone).

use super::{Capture, NewStream, OpenError, RingWriter, STALL_TIMEOUT, WATCH_PERIOD};
use crate::audio::device::InputTarget;
use crate::stats::EngineCounters;
use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use std::ffi::{c_char, c_int, CStr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One cpal input stream and what watches it.
struct CpalCapture {
    /// Kept alive here: dropping it stops the callbacks.
    _stream: cpal::Stream,
    failed: Arc<AtomicBool>,
    /// ms since `started` of the last callback.
    last_data: Arc<AtomicU64>,
    started: Instant,
}

impl Capture for CpalCapture {
    fn run(&mut self, stop: &AtomicBool) -> Option<String> {
        loop {
            std::thread::sleep(WATCH_PERIOD);
            if stop.load(Ordering::Relaxed) {
                return None;
            }
            if self.failed.load(Ordering::Relaxed) {
                return Some("stream error".to_string());
            }
            let last = Duration::from_millis(self.last_data.load(Ordering::Relaxed));
            if self.started.elapsed().saturating_sub(last) > STALL_TIMEOUT {
                return Some(format!("no data for {STALL_TIMEOUT:?}"));
            }
        }
    }
}

/// Finds the cpal device for `target`.
fn find_device(host: &cpal::Host, target: &InputTarget) -> Result<cpal::Device, String> {
    match target {
        InputTarget::Device(wanted) => {
            let devices: Vec<cpal::Device> =
                host.input_devices().map_err(|e| e.to_string())?.collect();
            let names: Vec<String> = devices
                .iter()
                .map(|d| d.name().unwrap_or_default())
                .collect();
            let pos = names
                .iter()
                .position(|n| n == wanted)
                .or_else(|| names.iter().position(|n| n.contains(wanted.as_str())));
            match pos {
                Some(i) => devices
                    .into_iter()
                    .nth(i)
                    .ok_or_else(|| "device vanished".to_string()),
                None => Err(format!(
                    "no input device {wanted:?} (have: {}; `onair devices` lists them)",
                    names.join(", ")
                )),
            }
        }
        _ => host
            .default_input_device()
            .ok_or_else(|| "no default input device".to_string()),
    }
}

/// Opens and starts one cpal input stream for `target`.
pub(super) fn open(
    target: &InputTarget,
    counters: &Arc<EngineCounters>,
) -> Result<(Box<dyn Capture>, NewStream), OpenError> {
    let host = cpal::default_host();
    let device = find_device(&host, target).map_err(OpenError::Refused)?;
    let refused = |e: String| OpenError::Refused(e);
    let config = device
        .default_input_config()
        .map_err(|e| refused(e.to_string()))?;
    let rate = config.sample_rate().0;
    let channels = usize::from(config.channels()).max(1);
    let format = config.sample_format();
    let stream_config: cpal::StreamConfig = config.into();
    let (mut writer, consumer) = RingWriter::new(rate, Arc::clone(counters));
    let failed = Arc::new(AtomicBool::new(false));
    let last_data = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let (cb_last, err_failed) = (Arc::clone(&last_data), Arc::clone(&failed));
    let on_error = move |e: cpal::StreamError| {
        if !err_failed.swap(true, Ordering::Relaxed) {
            tracing::debug!(error = %e, "audio stream error");
        }
    };
    let mut push = move |frames: &mut dyn Iterator<Item = (f32, f32)>, count: usize| {
        cb_last.store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
        writer.push(frames, count);
    };
    let stereo = move |s: &[f32]| -> (f32, f32) {
        match s {
            [l, r, ..] => (*l, *r),
            [m] => (*m, *m),
            [] => (0.0, 0.0),
        }
    };
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
        other => return Err(refused(format!("unsupported sample format {other:?}"))),
    };
    let stream = built
        .map_err(|e| e.to_string())
        .and_then(|s| s.play().map(|()| s).map_err(|e| e.to_string()))
        .map_err(refused)?;
    let capture = CpalCapture {
        _stream: stream,
        failed,
        last_data,
        started,
    };
    Ok((Box::new(capture), NewStream { consumer, rate }))
}

/// One ALSA sound card, as `onair devices` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AlsaCard {
    /// Card index (`hw:N`).
    pub index: i32,
    /// The name cpal gives its device, which `--audio NAME` matches.
    pub name: String,
    /// The card's long name.
    pub long_name: String,
}

/// The sound cards ALSA knows, read from their control interfaces only (no
/// PCM is opened, so no plugin is probed and nothing is printed).
pub(crate) fn alsa_cards() -> Vec<AlsaCard> {
    quiet_alsa_errors_on_this_thread();
    let mut out = Vec::new();
    for card in alsa::card::Iter::new().flatten() {
        let index = card.get_index();
        let Ok(ctl) = alsa::Ctl::new(&format!("hw:{index}"), false) else {
            continue;
        };
        let Ok(info) = ctl.card_info() else {
            continue;
        };
        out.push(AlsaCard {
            index,
            name: info.get_name().unwrap_or_default().to_string(),
            long_name: info.get_longname().unwrap_or_default().to_string(),
        });
    }
    out
}

/// Sends alsa-lib's error messages from the calling thread to `tracing`
/// (debug) instead of stderr, with alsa-lib's thread-local handler. Why:
/// probing prints a dozen lines that are not errors of ours (missing cards,
/// plugins whose server is not running), and would hide what a user needs.
/// Idempotent; affects only the calling thread.
pub(crate) fn quiet_alsa_errors_on_this_thread() {
    // SAFETY: snd_lib_error_set_local only stores the pointer in a
    // thread-local variable of alsa-lib (no other thread is affected, no
    // memory is handed over). The handler is a plain `extern "C"` function
    // with the exact signature of `snd_local_error_handler_t` (va_list
    // passed as a pointer, not variadic), valid for the whole program.
    unsafe {
        alsa_sys::snd_lib_error_set_local(Some(alsa_error_to_tracing));
    }
}

/// alsa-lib's thread-local error handler: logs where the message came from
/// (the va_list is not formatted: the file, line and errno say enough).
unsafe extern "C" fn alsa_error_to_tracing(
    file: *const c_char,
    line: c_int,
    function: *const c_char,
    err: c_int,
    fmt: *const c_char,
    _args: *mut alsa_sys::__va_list_tag,
) {
    let text = |p: *const c_char| -> String {
        if p.is_null() {
            String::new()
        } else {
            // SAFETY: alsa-lib passes NUL-terminated static strings (its
            // __FILE__, __func__ and format literals), valid for this call.
            unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
        }
    };
    tracing::debug!(
        file = %text(file),
        line,
        function = %text(function),
        errno = err,
        format = %text(fmt),
        "alsa-lib"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_cards_prints_nothing_and_returns() {
        let t = Instant::now();
        let cards = alsa_cards();
        assert!(t.elapsed() < Duration::from_secs(5));
        for c in &cards {
            assert!(c.index >= 0, "{c:?}");
        }
    }
}
