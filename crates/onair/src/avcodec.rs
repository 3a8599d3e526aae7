//! What every libavcodec user in the GPL build shares (feature `avcodec`):
//! one-time library set-up, and the raw fields ffmpeg-next does not wrap.
//!
//! Why a module of its own: the video encoders, the AAC encoder and the
//! encoder listing all open codecs, and each must see the library set up the
//! same way, once.

use ffmpeg_next as ff;
use std::sync::Once;

/// FFmpeg's own log level for the whole process. FFmpeg's logging is
/// process-wide by its design (there is no per-codec logger), so it is set
/// once, at the first codec opened: errors only, so libx264's and libx265's
/// informational banners ("using cpu capabilities", "x265 [info]") stay out
/// of the CLI's stderr. What goes wrong reaches the user through onair's own
/// errors, which carry FFmpeg's error text.
const LOG_LEVEL: ff::util::log::Level = ff::util::log::Level::Error;

/// Sets up the library once (idempotent, thread-safe).
pub(crate) fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        // Registers nothing on FFmpeg >= 5 (codecs are static); kept for
        // the error strings it prepares.
        let _ = ff::init();
        ff::util::log::set_level(LOG_LEVEL);
    });
}

/// A copy of the codec context's `extradata` (the global headers that
/// `AV_CODEC_FLAG_GLOBAL_HEADER` asks for), empty if there is none.
pub(crate) fn extradata(ctx: &ff::codec::Context) -> Vec<u8> {
    // SAFETY: FFI edge. `ctx` is a live, opened AVCodecContext; libavcodec
    // owns `extradata` (`extradata_size` bytes, or null) and keeps it until
    // the context is freed, which cannot happen while `ctx` is borrowed.
    unsafe {
        let raw = ctx.as_ptr();
        let (data, size) = ((*raw).extradata, (*raw).extradata_size);
        match usize::try_from(size) {
            Ok(n) if !data.is_null() && n > 0 => std::slice::from_raw_parts(data, n).to_vec(),
            _ => Vec::new(),
        }
    }
}

/// FFmpeg's error as text, with what was being done.
pub(crate) fn describe(what: &str, e: ff::Error) -> String {
    format!("{what}: {e}")
}
