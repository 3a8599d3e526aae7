//! Screen capture on X11: the whole screen or a region, cursor included.
//!
//! Why this shape:
//! - The pipeline runs this source behind a `video::grab::GrabThread`, so
//!   grabs, conversion and reconnects happen off the CaptureThread (golden
//!   rule 1). Each is still bounded, so the grabber itself never hangs: every
//!   X request goes through `video::x11::TimeoutStream`, whose `poll` gives up after
//!   [`X_IO_TIMEOUT`]; a TCP display is resolved and connected within
//!   [`X_CONNECT_TIMEOUT`]. A stalled or dead X server turns into an error,
//!   the connection is dropped, `grab` returns `None` (the CaptureThread
//!   repeats the last frame) and a reconnect is tried at most every
//!   [`RECONNECT_INTERVAL`]. The loss is logged once, not per frame.
//! - MIT-SHM (`ShmGetImage` into a memfd the server maps too, SHM 1.2) avoids
//!   pushing 8 MB per 1080p frame through the socket. When the server has no
//!   SHM (a remote display) or attaching fails, plain `GetImage` is used.
//! - The cursor is not part of the root window's pixels; XFixes
//!   `GetCursorImage` gives it (premultiplied ARGB) and it is blended in
//!   before conversion, when the server has XFixes.
//! - Scaling and BGRA -> I420 are done by [`BgraToI420`] (SIMD crates).
//!
//! Spec grammar (what follows `screen:` in `--video screen:SPEC`):
//! `[DISPLAY][+X,Y,WxH]`, e.g. `` (the `$DISPLAY` whole screen), `:99`,
//! `:99+0,0,640x480`, `+100,50,1280x720` (region of `$DISPLAY`). A region is
//! clipped to the screen and rounded down to even sizes.
//!
//! Not yet: capturing one window, following RandR resolution changes without
//! a reconnect (a size change makes the grab fail, and the reconnect picks up
//! the new size), Wayland (PipeWire through the desktop portal).

use super::convert::{blend_argb_premultiplied, BgraToI420, CursorImage};
use super::frame::I420Frame;
use super::source::VideoSource;
use super::x11::{check_pixel_format, connect, ShmSegment, XConn};
pub use super::x11::{X_CONNECT_TIMEOUT, X_IO_TIMEOUT};
use crate::Error;
use std::sync::Arc;
use std::time::{Duration, Instant};
use x11rb::connection::Connection;
use x11rb::protocol::{shm, xfixes, xproto};

/// After losing the X server, try to reconnect at most this often (each try
/// costs the CaptureThread up to a few `X_IO_TIMEOUT`s when the server is
/// stalled rather than gone).
pub const RECONNECT_INTERVAL: Duration = Duration::from_secs(2);
/// ZPixmap image format (X11 protocol constant).
const Z_PIXMAP: u8 = 2;
/// Ask for every plane.
const ALL_PLANES: u32 = !0;

/// What to capture, parsed from a spec string (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScreenSpec {
    /// X display name (`:99`, `host:0.1`); `None` means `$DISPLAY`.
    pub display: Option<String>,
    /// Region `(x, y, width, height)` in screen pixels; `None` = whole screen.
    pub region: Option<(i32, i32, u32, u32)>,
}

impl ScreenSpec {
    /// Parses `[DISPLAY][+X,Y,WxH]`.
    pub fn parse(spec: &str) -> Result<Self, Error> {
        let bad = |reason: String| Error::InvalidConfig {
            option: "video",
            reason,
        };
        let (display, region) = match spec.split_once('+') {
            Some((d, r)) => (d.trim(), Some(r.trim())),
            None => (spec.trim(), None),
        };
        let region = match region {
            None => None,
            Some(r) => {
                let parsed = (|| {
                    let (xy, wh) = r.split_once(',').and_then(|(x, rest)| {
                        let (y, wh) = rest.split_once(',')?;
                        Some(((x, y), wh))
                    })?;
                    let (w, h) = wh.split_once(['x', 'X'])?;
                    Some((
                        xy.0.trim().parse::<i32>().ok()?,
                        xy.1.trim().parse::<i32>().ok()?,
                        w.trim().parse::<u32>().ok()?,
                        h.trim().parse::<u32>().ok()?,
                    ))
                })();
                match parsed {
                    Some((x, y, w, h)) if w >= 2 && h >= 2 && x >= 0 && y >= 0 => {
                        Some((x, y, w, h))
                    }
                    _ => {
                        return Err(bad(format!(
                            "screen region {r:?}: expected X,Y,WxH (e.g. 0,0,1280x720)"
                        )))
                    }
                }
            }
        };
        Ok(Self {
            display: (!display.is_empty()).then(|| display.to_string()),
            region,
        })
    }
}

/// Knobs for [`open_screen_with`]; the defaults are what users get.
#[derive(Debug, Clone, Copy)]
pub struct ScreenOptions {
    /// Never use MIT-SHM, always `GetImage` (what a remote display gets);
    /// tests use it to cover the fallback path.
    pub force_get_image: bool,
    /// Draw the mouse cursor in (when the server has XFixes).
    pub draw_cursor: bool,
}

impl Default for ScreenOptions {
    fn default() -> Self {
        Self {
            force_get_image: false,
            draw_cursor: true,
        }
    }
}

/// Opens an X11 screen source producing `out_width x out_height` I420 frames.
/// `spec` is what follows `screen:` in `--video screen:SPEC` (empty =
/// `$DISPLAY`, whole screen). Fails when the display cannot be reached now
/// (with a Wayland-specific message when only Wayland is there).
pub fn open_screen(spec: &str, out_width: u32, out_height: u32) -> Result<ScreenSource, Error> {
    open_screen_with(spec, out_width, out_height, ScreenOptions::default())
}

/// [`open_screen`] with explicit [`ScreenOptions`].
pub fn open_screen_with(
    spec: &str,
    out_width: u32,
    out_height: u32,
    options: ScreenOptions,
) -> Result<ScreenSource, Error> {
    let parsed = ScreenSpec::parse(spec)?;
    let display_name = parsed
        .display
        .clone()
        .or_else(|| std::env::var("DISPLAY").ok().filter(|d| !d.is_empty()));
    let source_err = |reason: String| Error::Source {
        name: format!("screen:{spec}"),
        reason,
    };
    if display_name.is_none() {
        return Err(source_err(no_display_reason()));
    }
    let state = XState::open(&parsed, options).map_err(|e| {
        let mut reason = e;
        if parsed.display.is_none() && std::env::var_os("WAYLAND_DISPLAY").is_some() {
            reason = format!("{reason}; {}", no_display_reason());
        }
        source_err(reason)
    })?;
    let name = format!(
        "screen {} {}x{}+{},{}{}",
        display_name.as_deref().unwrap_or(""),
        state.width,
        state.height,
        state.x,
        state.y,
        if state.shm.is_some() { " (shm)" } else { "" }
    );
    Ok(ScreenSource {
        spec: parsed,
        options,
        name,
        converter: BgraToI420::new(out_width, out_height),
        state: Some(state),
        last_attempt: Instant::now(),
        down_logged: false,
    })
}

/// Why there is no display to capture, naming what is supported.
fn no_display_reason() -> String {
    no_display_reason_for(std::env::var_os("WAYLAND_DISPLAY").is_some())
}

fn no_display_reason_for(wayland: bool) -> String {
    if wayland {
        "no X11 display found (DISPLAY is unset) but WAYLAND_DISPLAY is set: screen capture \
         supports X11 (including XWayland via DISPLAY); Wayland capture through the PipeWire \
         desktop portal is not supported yet"
            .to_string()
    } else {
        "no X11 display: set DISPLAY or give one, e.g. screen::0".to_string()
    }
}

/// A live X11 screen (or region) as a [`VideoSource`].
pub struct ScreenSource {
    spec: ScreenSpec,
    options: ScreenOptions,
    name: String,
    converter: BgraToI420,
    /// `None` while the X server is lost.
    state: Option<XState>,
    last_attempt: Instant,
    down_logged: bool,
}

impl ScreenSource {
    /// True when frames come through MIT-SHM (false: `GetImage` fallback, or
    /// currently disconnected).
    pub fn uses_shm(&self) -> bool {
        self.state.as_ref().is_some_and(|s| s.shm.is_some())
    }

    /// True while connected to the X server.
    pub fn is_connected(&self) -> bool {
        self.state.is_some()
    }

    /// The captured area `(x, y, width, height)` in screen pixels, while
    /// connected.
    pub fn capture_area(&self) -> Option<(i32, i32, u32, u32)> {
        self.state.as_ref().map(|s| (s.x, s.y, s.width, s.height))
    }

    fn grab_inner(&mut self) -> Result<Arc<I420Frame>, String> {
        let XState {
            conn,
            root,
            x,
            y,
            width: w,
            height: h,
            shm,
            xfixes,
            image,
        } = self.state.as_mut().ok_or("not connected")?;
        let (x, y, w, h) = (*x, *y, *w, *h);
        let stride = w as usize * 4;
        // Sent first, answered while the image request is served.
        let cursor = if self.options.draw_cursor && *xfixes {
            xfixes::get_cursor_image(conn).ok()
        } else {
            None
        };
        let pixels: &mut [u8] = match shm {
            Some(seg) => {
                shm::get_image(
                    conn, *root, x as i16, y as i16, w as u16, h as u16, ALL_PLANES, Z_PIXMAP,
                    seg.seg, 0,
                )
                .map_err(|e| e.to_string())?
                .reply()
                .map_err(|e| e.to_string())?;
                seg.as_mut_slice()
            }
            None => {
                let reply = xproto::get_image(
                    conn,
                    xproto::ImageFormat::Z_PIXMAP,
                    *root,
                    x as i16,
                    y as i16,
                    w as u16,
                    h as u16,
                    ALL_PLANES,
                )
                .map_err(|e| e.to_string())?
                .reply()
                .map_err(|e| e.to_string())?;
                *image = reply.data;
                image
            }
        };
        if let Some(cookie) = cursor {
            // A cursor failure is not worth losing the frame over.
            if let Ok(c) = cookie.reply() {
                let cx = i32::from(c.x) - i32::from(c.xhot) - x;
                let cy = i32::from(c.y) - i32::from(c.yhot) - y;
                let image = CursorImage {
                    pixels: &c.cursor_image,
                    width: u32::from(c.width),
                    height: u32::from(c.height),
                    x: cx,
                    y: cy,
                };
                blend_argb_premultiplied(pixels, w, h, stride, &image);
            }
        }
        self.converter
            .convert(pixels, w, h, stride)
            .map_err(|e| e.to_string())
    }
}

impl VideoSource for ScreenSource {
    fn grab(&mut self, _index: u64, _pts_ns: u64) -> Option<Arc<I420Frame>> {
        if self.state.is_none() {
            if self.last_attempt.elapsed() < RECONNECT_INTERVAL {
                return None;
            }
            self.last_attempt = Instant::now();
            match XState::open(&self.spec, self.options) {
                Ok(s) => {
                    tracing::info!(source = %self.name, "X display is back");
                    self.state = Some(s);
                    self.down_logged = false;
                }
                Err(_) => return None,
            }
        }
        match self.grab_inner() {
            Ok(frame) => Some(frame),
            Err(e) => {
                self.state = None;
                self.last_attempt = Instant::now();
                if !self.down_logged {
                    self.down_logged = true;
                    tracing::warn!(
                        source = %self.name,
                        error = %e,
                        "screen capture lost; repeating the last frame and retrying every {:?}",
                        RECONNECT_INTERVAL
                    );
                }
                None
            }
        }
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn size_hint(&self) -> Option<(u32, u32)> {
        Some(self.converter.output_size())
    }
}

/// One connection to the X server and what was negotiated on it.
struct XState {
    conn: XConn,
    root: xproto::Window,
    x: i32,
    y: i32,
    width: u32,
    height: u32,
    shm: Option<ShmSegment>,
    xfixes: bool,
    /// The last `GetImage` reply (fallback path only).
    image: Vec<u8>,
}

impl XState {
    fn open(spec: &ScreenSpec, options: ScreenOptions) -> Result<Self, String> {
        let (conn, screen_num) = connect(spec.display.as_deref())?;
        let screen = conn
            .setup()
            .roots
            .get(screen_num)
            .ok_or_else(|| format!("X screen {screen_num} does not exist"))?;
        let (root, sw, sh, depth) = (
            screen.root,
            u32::from(screen.width_in_pixels),
            u32::from(screen.height_in_pixels),
            screen.root_depth,
        );
        check_pixel_format(&conn, depth)?;
        let (x, y, w, h) = match spec.region {
            None => (0, 0, sw, sh),
            Some((x, y, w, h)) => {
                if x as u32 >= sw || y as u32 >= sh {
                    return Err(format!("region starts outside the {sw}x{sh} screen"));
                }
                (x, y, w.min(sw - x as u32), h.min(sh - y as u32))
            }
        };
        let (width, height) = (w & !1, h & !1);
        if width < 2 || height < 2 {
            return Err("capture area is empty".to_string());
        }
        let shm = if options.force_get_image {
            None
        } else {
            match ShmSegment::attach(&conn, width as usize * height as usize * 4) {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::info!(error = %e, "MIT-SHM unavailable, using GetImage");
                    None
                }
            }
        };
        let xfixes = options.draw_cursor
            && xfixes::query_version(&conn, 4, 0)
                .ok()
                .and_then(|c| c.reply().ok())
                .is_some();
        Ok(Self {
            conn,
            root,
            x,
            y,
            width,
            height,
            shm,
            xfixes,
            image: Vec::new(),
        })
    }
}

/// Reads the size of the first screen of `display` (for device listings).
pub(crate) fn probe_display(display: &str) -> Option<(u32, u32)> {
    let (conn, n) = connect(Some(display)).ok()?;
    let s = conn.setup().roots.get(n)?;
    Some((u32::from(s.width_in_pixels), u32::from(s.height_in_pixels)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use onair_testkit::{Xvfb, SCHEDULING_SLACK};

    #[test]
    fn parses_specs() {
        assert_eq!(
            ScreenSpec::parse("").unwrap(),
            ScreenSpec {
                display: None,
                region: None
            }
        );
        assert_eq!(
            ScreenSpec::parse(":99+0,0,640x480").unwrap(),
            ScreenSpec {
                display: Some(":99".into()),
                region: Some((0, 0, 640, 480))
            }
        );
        assert_eq!(
            ScreenSpec::parse("+10,20,30x40").unwrap().region,
            Some((10, 20, 30, 40))
        );
        assert_eq!(
            ScreenSpec::parse(":1.0").unwrap().display.as_deref(),
            Some(":1.0")
        );
        for bad in [
            ":0+",
            ":0+1,2",
            ":0+1,2,3",
            ":0+a,b,cxd",
            ":0+-1,0,10x10",
            ":0+0,0,0x10",
        ] {
            assert!(ScreenSpec::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn wayland_only_message_names_what_is_supported() {
        let m = no_display_reason_for(true);
        assert!(m.contains("X11") && m.contains("Wayland") && m.contains("not supported yet"));
        assert!(!no_display_reason_for(false).contains("Wayland"));
    }

    #[test]
    fn unreachable_display_is_an_error_not_a_hang() {
        let t = Instant::now();
        let r = open_screen(":987", 320, 240);
        assert!(r.is_err());
        assert!(t.elapsed() < Duration::from_secs(2));
    }

    /// A remote display (TCP) whose server accepts and never answers the
    /// X11 setup: opening it fails within the bounds, it does not hang.
    #[test]
    fn a_tcp_display_that_never_answers_is_an_error_not_a_hang() {
        // Display N listens on TCP port 6000 + N.
        let Some((listener, n)) = (400..500u16).find_map(|n| {
            std::net::TcpListener::bind(("127.0.0.1", 6000 + n))
                .ok()
                .map(|l| (l, n))
        }) else {
            panic!("no free port for a fake display in 6400..6500");
        };
        // Accept and hold the connections, never writing.
        let held = std::thread::spawn(move || {
            let mut conns = Vec::new();
            for c in listener.incoming().take(4).flatten() {
                conns.push(c);
            }
            std::thread::sleep(Duration::from_secs(10));
        });
        let t = Instant::now();
        let r = open_screen(&format!("127.0.0.1:{n}"), 320, 240);
        let took = t.elapsed();
        eprintln!("silent TCP display: {:?} after {took:?}", r.as_ref().err());
        assert!(r.is_err());
        assert!(
            took < X_CONNECT_TIMEOUT + Duration::from_secs(2),
            "{took:?}"
        );
        drop(held);
    }

    /// A private Xvfb from the test kit, or `None` (skip) when Xvfb or xsetroot is missing.
    fn start_xvfb(w: u32, h: u32) -> Option<Xvfb> {
        if !onair_testkit::require_tools(&["Xvfb", "xsetroot"]) {
            return None;
        }
        Some(Xvfb::start(w, h).expect("Xvfb starts"))
    }

    /// Mean of an 8x8 block at a quarter of the plane (the X server puts its
    /// cursor at the centre, and the cursor is drawn in).
    fn centre(plane: &[u8], w: u32, h: u32) -> u8 {
        let (cx, cy) = (w as usize / 4, h as usize / 4);
        let mut sum = 0usize;
        for y in cy - 4..cy + 4 {
            for x in cx - 4..cx + 4 {
                sum += usize::from(plane[y * w as usize + x]);
            }
        }
        (sum / 64) as u8
    }

    /// Y, U, V at the centre of a frame.
    fn centre_yuv(f: &I420Frame) -> (u8, u8, u8) {
        (
            centre(&f.y, f.width, f.height),
            centre(&f.u, f.width / 2, f.height / 2),
            centre(&f.v, f.width / 2, f.height / 2),
        )
    }

    fn assert_colour(f: &I420Frame, want: (u8, u8, u8), what: &str) {
        let got = centre_yuv(f);
        let ok = got.0.abs_diff(want.0) <= 3
            && got.1.abs_diff(want.1) <= 3
            && got.2.abs_diff(want.2) <= 3;
        assert!(ok, "{what}: got YUV {got:?}, want {want:?}");
    }

    /// BT.601 video range.
    const RED: (u8, u8, u8) = (81, 90, 240);
    const GREEN: (u8, u8, u8) = (145, 54, 34);

    fn check_colours(src: &mut ScreenSource, x: &Xvfb) {
        x.paint("#ff0000").expect("xsetroot");
        let f = src.grab(0, 0).expect("a frame");
        assert_colour(&f, RED, "red");
        x.paint("#00ff00").expect("xsetroot");
        let f = src.grab(1, 0).expect("a frame");
        assert_colour(&f, GREEN, "green");
    }

    #[test]
    fn xvfb_shm_capture_sees_root_colour_changes_scaled() {
        let Some(x) = start_xvfb(1920, 1080) else {
            return;
        };
        let mut src = open_screen(&x.display(), 1280, 720).expect("open");
        assert!(src.uses_shm(), "Xvfb has MIT-SHM 1.2");
        assert_eq!(src.size_hint(), Some((1280, 720)));
        check_colours(&mut src, &x);
        let f = src.grab(2, 0).expect("frame");
        assert_eq!((f.width, f.height), (1280, 720));
        // Per-frame cost, for the record (release: a few ms).
        let t = Instant::now();
        for i in 0..30 {
            std::hint::black_box(src.grab(i, 0));
        }
        eprintln!(
            "Xvfb 1920x1080 -> 1280x720 SHM grab+convert: {:?}/frame",
            t.elapsed() / 30
        );
    }

    #[test]
    fn xvfb_get_image_fallback_and_region() {
        let Some(x) = start_xvfb(800, 600) else {
            return;
        };
        let opts = ScreenOptions {
            force_get_image: true,
            draw_cursor: true,
        };
        let spec = format!("{}+100,50,640x480", x.display());
        let mut src = open_screen_with(&spec, 640, 480, opts).expect("open");
        assert!(!src.uses_shm());
        assert_eq!(src.capture_area(), Some((100, 50, 640, 480)));
        check_colours(&mut src, &x);
        let f = src.grab(3, 0).expect("frame");
        assert_eq!((f.width, f.height), (640, 480));
        // A region that overhangs the screen is clipped (and made even).
        let mut clipped =
            open_screen_with(&format!("{}+700,500,301x301", x.display()), 100, 100, opts)
                .expect("open clipped");
        assert_eq!(clipped.capture_area(), Some((700, 500, 100, 100)));
        assert!(clipped.grab(0, 0).is_some());
        assert!(open_screen(&format!("{}+900,0,10x10", x.display()), 64, 64).is_err());
    }

    #[test]
    fn xvfb_death_gives_none_quickly_then_reconnects() {
        let Some(mut x) = start_xvfb(320, 240) else {
            return;
        };
        let display = x.display();
        let mut src = open_screen(&display, 320, 240).expect("open");
        assert!(src.grab(0, 0).is_some());
        // A stalled server (stopped, socket open): grab gives up after
        // X_IO_TIMEOUT instead of blocking its thread for good.
        x.guard_mut().signal(libc::SIGSTOP).expect("SIGSTOP");
        let t = Instant::now();
        let stalled = src.grab(1, 0);
        let waited = t.elapsed();
        x.guard_mut().signal(libc::SIGCONT).expect("SIGCONT");
        assert!(stalled.is_none(), "a stopped server cannot answer");
        assert!(
            waited < X_IO_TIMEOUT + SCHEDULING_SLACK,
            "grab blocked {waited:?}"
        );
        x.kill();
        let t = Instant::now();
        assert!(src.grab(1, 0).is_none());
        assert!(src.grab(2, 0).is_none(), "no reconnect before the interval");
        // Nothing waits on a dead server: far below a reconnect attempt.
        assert!(t.elapsed() < SCHEDULING_SLACK, "{:?}", t.elapsed());
        assert!(!src.is_connected());
        // Bring a server back on the same display; the source reconnects.
        x.restart().expect("Xvfb restarts");
        let back = onair_testkit::wait_for(RECONNECT_INTERVAL * 4, || src.grab(3, 0));
        assert!(back.is_some(), "source did not reconnect");
    }
}
