//! Window capture on X11: one window's own pixels, wherever it is.
//!
//! Why Composite (as OBS's Xcomposite window source): grabbing the window's
//! rectangle out of the root window would capture whatever covers it and
//! lose it when it moves. With the Composite extension the window's contents
//! live in an offscreen pixmap (`RedirectWindow`, automatic: the server still
//! draws it on screen), which `NameWindowPixmap` names and `(Shm)GetImage`
//! reads, so the capture follows the window when it moves, is cropped to it,
//! and is scaled to the output size when it is resized (the pixmap is named
//! again at each size change).
//!
//! States, all without ever blocking the CaptureThread (the pipeline runs
//! this source behind a `GrabThread`): a window that is unmapped or minimised
//! gives `None` (the last frame is repeated) until it is mapped again; a
//! window that was closed, or a lost X server, gives `None` and the window is
//! looked for again (by name, or by id) every [`RECONNECT_INTERVAL`].
//!
//! Spec grammar (what follows `window:` in `--video window:SPEC`):
//! `TARGET[@DISPLAY]`, where TARGET is a window id (`0x1a00003` or decimal)
//! or a name: the window whose `_NET_WM_NAME` or `WM_NAME` is exactly the
//! name, else the first whose name contains it. `onair devices` lists the
//! windows with their ids and names.

use super::convert::BgraToI420;
use super::frame::I420Frame;
use super::screen::RECONNECT_INTERVAL;
use super::source::VideoSource;
use super::x11::{check_pixel_format, connect, ShmSegment, XConn};
use crate::Error;
use std::sync::Arc;
use std::time::Instant;
use x11rb::connection::Connection;
use x11rb::protocol::xproto::{self, ConnectionExt as _};
use x11rb::protocol::{composite, shm};

/// Windows examined at most when looking for one by name (a bound on the
/// tree walk, whatever the desktop holds).
pub const MAX_WINDOWS_SEARCHED: usize = 10_000;
/// ZPixmap image format (X11 protocol constant).
const Z_PIXMAP: u8 = 2;

/// Which window to capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WindowTarget {
    /// An X window id.
    Id(u32),
    /// A window name (exact match first, then substring).
    Name(String),
}

/// A parsed `window:` spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowSpec {
    /// The window.
    pub target: WindowTarget,
    /// X display name; `None` means `$DISPLAY`.
    pub display: Option<String>,
}

impl WindowSpec {
    /// Parses `TARGET[@DISPLAY]` (see the module docs).
    pub fn parse(spec: &str) -> Result<Self, Error> {
        let bad = |reason: &str| Error::InvalidConfig {
            option: "video",
            reason: format!("window:{spec}: {reason}"),
        };
        let (target, display) = match spec.rsplit_once('@') {
            Some((t, d)) if !d.is_empty() => (t, Some(d.to_string())),
            _ => (spec, None),
        };
        if target.is_empty() {
            return Err(bad("name or id missing"));
        }
        let id = match target.strip_prefix("0x") {
            Some(hex) => Some(u32::from_str_radix(hex, 16).map_err(|_| bad("bad hex id"))?),
            None => target.parse::<u32>().ok(),
        };
        Ok(Self {
            target: id.map_or_else(|| WindowTarget::Name(target.to_string()), WindowTarget::Id),
            display,
        })
    }
}

/// One window as `onair devices` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowInfo {
    /// X window id.
    pub id: u32,
    /// Its name (`_NET_WM_NAME`, else `WM_NAME`).
    pub name: String,
    /// Size in pixels.
    pub width: u32,
    /// Size in pixels.
    pub height: u32,
}

/// Lists the named, viewable windows of `display` (`None`: `$DISPLAY`).
pub fn list_windows(display: Option<&str>) -> Result<Vec<WindowInfo>, String> {
    let (conn, screen) = connect(display)?;
    let root = conn
        .setup()
        .roots
        .get(screen)
        .ok_or("no such X screen")?
        .root;
    let atoms = NameAtoms::new(&conn)?;
    let mut out = Vec::new();
    for w in walk(&conn, root)? {
        let Some(name) = atoms.name_of(&conn, w) else {
            continue;
        };
        let viewable = conn
            .get_window_attributes(w)
            .ok()
            .and_then(|c| c.reply().ok())
            .is_some_and(|a| a.map_state == xproto::MapState::VIEWABLE);
        if !viewable {
            continue;
        }
        if let Some(g) = conn.get_geometry(w).ok().and_then(|c| c.reply().ok()) {
            out.push(WindowInfo {
                id: w,
                name,
                width: u32::from(g.width),
                height: u32::from(g.height),
            });
        }
    }
    Ok(out)
}

/// The atoms of a window's name.
struct NameAtoms {
    net_wm_name: xproto::Atom,
    utf8: xproto::Atom,
}

impl NameAtoms {
    fn new(conn: &XConn) -> Result<Self, String> {
        let intern = |name: &[u8]| -> Result<xproto::Atom, String> {
            Ok(conn
                .intern_atom(false, name)
                .map_err(|e| e.to_string())?
                .reply()
                .map_err(|e| e.to_string())?
                .atom)
        };
        Ok(Self {
            net_wm_name: intern(b"_NET_WM_NAME")?,
            utf8: intern(b"UTF8_STRING")?,
        })
    }

    /// `_NET_WM_NAME` (UTF-8), else `WM_NAME`; `None` when it has neither.
    fn name_of(&self, conn: &XConn, w: xproto::Window) -> Option<String> {
        let get = |prop: xproto::Atom, ty: xproto::Atom| {
            conn.get_property(false, w, prop, ty, 0, 1024)
                .ok()
                .and_then(|c| c.reply().ok())
                .filter(|r| !r.value.is_empty())
                .map(|r| String::from_utf8_lossy(&r.value).into_owned())
        };
        get(self.net_wm_name, self.utf8).or_else(|| {
            get(
                xproto::AtomEnum::WM_NAME.into(),
                xproto::AtomEnum::STRING.into(),
            )
        })
    }
}

/// Every window below `root`, breadth first, at most [`MAX_WINDOWS_SEARCHED`].
fn walk(conn: &XConn, root: xproto::Window) -> Result<Vec<xproto::Window>, String> {
    let mut out = Vec::new();
    let mut queue = std::collections::VecDeque::from([root]);
    while let Some(w) = queue.pop_front() {
        let tree = conn
            .query_tree(w)
            .map_err(|e| e.to_string())?
            .reply()
            .map_err(|e| e.to_string())?;
        for child in tree.children {
            if out.len() >= MAX_WINDOWS_SEARCHED {
                return Ok(out);
            }
            out.push(child);
            queue.push_back(child);
        }
    }
    Ok(out)
}

/// Finds the window `target` names on `conn`.
fn find(
    conn: &XConn,
    root: xproto::Window,
    target: &WindowTarget,
) -> Result<xproto::Window, String> {
    match target {
        WindowTarget::Id(id) => Ok(*id),
        WindowTarget::Name(name) => {
            let atoms = NameAtoms::new(conn)?;
            let named: Vec<(xproto::Window, String)> = walk(conn, root)?
                .into_iter()
                .filter_map(|w| atoms.name_of(conn, w).map(|n| (w, n)))
                .collect();
            named
                .iter()
                .find(|(_, n)| n == name)
                .or_else(|| named.iter().find(|(_, n)| n.contains(name.as_str())))
                .map(|(w, _)| *w)
                .ok_or_else(|| format!("no window named {name:?}"))
        }
    }
}

/// One grabbed picture of the window, borrowed from the SHM segment or the
/// last GetImage reply.
struct Pixels<'a> {
    bgrx: &'a [u8],
    width: u32,
    height: u32,
}

/// The connection and what is named on it for one window.
struct Captured {
    conn: XConn,
    window: xproto::Window,
    /// The window's pixmap and the size it was named at.
    pixmap: Option<(xproto::Pixmap, u32, u32)>,
    shm: Option<ShmSegment>,
    /// The last `GetImage` reply (no MIT-SHM).
    image: Vec<u8>,
}

impl Captured {
    fn open(spec: &WindowSpec) -> Result<Self, String> {
        let (conn, screen) = connect(spec.display.as_deref())?;
        let root = conn
            .setup()
            .roots
            .get(screen)
            .ok_or("no such X screen")?
            .root;
        composite::query_version(&conn, 0, 2)
            .map_err(|e| e.to_string())?
            .reply()
            .map_err(|e| format!("the X server has no Composite extension: {e}"))?;
        let window = find(&conn, root, &spec.target)?;
        let geometry = conn
            .get_geometry(window)
            .map_err(|e| e.to_string())?
            .reply()
            .map_err(|e| format!("window 0x{window:x}: {e}"))?;
        check_pixel_format(&conn, geometry.depth)?;
        composite::redirect_window(&conn, window, composite::Redirect::AUTOMATIC)
            .map_err(|e| e.to_string())?
            .check()
            .map_err(|e| format!("RedirectWindow: {e}"))?;
        Ok(Self {
            conn,
            window,
            pixmap: None,
            shm: None,
            image: Vec::new(),
        })
    }

    /// The window's pixels as BGRX; `Ok(None)` while it is not viewable
    /// (unmapped, minimised).
    fn grab(&mut self) -> Result<Option<Pixels<'_>>, String> {
        let attrs = self
            .conn
            .get_window_attributes(self.window)
            .map_err(|e| e.to_string())?
            .reply()
            .map_err(|e| format!("window gone: {e}"))?;
        if attrs.map_state != xproto::MapState::VIEWABLE {
            self.release_pixmap();
            return Ok(None);
        }
        let g = self
            .conn
            .get_geometry(self.window)
            .map_err(|e| e.to_string())?
            .reply()
            .map_err(|e| format!("window gone: {e}"))?;
        let (w, h) = (u32::from(g.width) & !1, u32::from(g.height) & !1);
        if w < 2 || h < 2 {
            return Ok(None);
        }
        let pixmap = match self.pixmap {
            Some((p, pw, ph)) if (pw, ph) == (w, h) => p,
            _ => self.name_pixmap(w, h)?,
        };
        let len = w as usize * h as usize * 4;
        if self.shm.as_ref().is_none_or(|s| s.len() < len) {
            // A larger window (or none yet): a new segment; GetImage if SHM fails.
            self.shm = ShmSegment::attach(&self.conn, len).ok();
        }
        let pixels: &[u8] = match self.shm.as_mut() {
            Some(seg) => {
                shm::get_image(
                    &self.conn, pixmap, 0, 0, w as u16, h as u16, !0, Z_PIXMAP, seg.seg, 0,
                )
                .map_err(|e| e.to_string())?
                .reply()
                .map_err(|e| e.to_string())?;
                &seg.as_mut_slice()[..len]
            }
            None => {
                self.image = self
                    .conn
                    .get_image(
                        xproto::ImageFormat::Z_PIXMAP,
                        pixmap,
                        0,
                        0,
                        w as u16,
                        h as u16,
                        !0,
                    )
                    .map_err(|e| e.to_string())?
                    .reply()
                    .map_err(|e| e.to_string())?
                    .data;
                &self.image
            }
        };
        Ok(Some(Pixels {
            bgrx: pixels,
            width: w,
            height: h,
        }))
    }

    /// Names the window's current pixmap (after a map or a resize).
    fn name_pixmap(&mut self, w: u32, h: u32) -> Result<xproto::Pixmap, String> {
        self.release_pixmap();
        let p = self.conn.generate_id().map_err(|e| e.to_string())?;
        composite::name_window_pixmap(&self.conn, self.window, p)
            .map_err(|e| e.to_string())?
            .check()
            .map_err(|e| format!("NameWindowPixmap: {e}"))?;
        self.pixmap = Some((p, w, h));
        Ok(p)
    }

    fn release_pixmap(&mut self) {
        if let Some((p, _, _)) = self.pixmap.take() {
            // Best effort: a failure here only leaks a pixmap until the
            // connection closes.
            let _ = self.conn.free_pixmap(p);
        }
    }
}

/// A live X11 window as a [`VideoSource`].
pub struct WindowSource {
    spec: WindowSpec,
    name: String,
    converter: BgraToI420,
    /// `None` while the window or the X server is lost.
    captured: Option<Captured>,
    last_attempt: Instant,
    /// What was last said about the window's state (logged on changes only).
    state_logged: Option<&'static str>,
}

/// Opens the window `spec` names (what follows `window:`), producing
/// `out_width x out_height` I420 frames. Fails when it cannot be found now.
pub fn open_window(spec: &str, out_width: u32, out_height: u32) -> Result<WindowSource, Error> {
    let parsed = WindowSpec::parse(spec)?;
    let captured = Captured::open(&parsed).map_err(|reason| Error::Source {
        name: format!("window:{spec}"),
        reason,
    })?;
    Ok(WindowSource {
        name: format!("window 0x{:x} ({spec})", captured.window),
        spec: parsed,
        converter: BgraToI420::new(out_width, out_height),
        captured: Some(captured),
        last_attempt: Instant::now(),
        state_logged: None,
    })
}

impl WindowSource {
    /// The X id of the captured window, while it is there.
    pub fn window_id(&self) -> Option<u32> {
        self.captured.as_ref().map(|c| c.window)
    }

    fn note(&mut self, state: &'static str) {
        if self.state_logged != Some(state) {
            self.state_logged = Some(state);
            tracing::info!(source = %self.name, state, "window capture");
        }
    }
}

impl VideoSource for WindowSource {
    fn grab(&mut self, _index: u64, _pts_ns: u64) -> Option<Arc<I420Frame>> {
        if self.captured.is_none() {
            if self.last_attempt.elapsed() < RECONNECT_INTERVAL {
                return None;
            }
            self.last_attempt = Instant::now();
            self.captured = Some(Captured::open(&self.spec).ok()?);
        }
        let result = self.captured.as_mut().map(Captured::grab);
        match result {
            Some(Ok(Some(p))) => {
                let stride = p.width as usize * 4;
                let frame = self
                    .converter
                    .convert(p.bgrx, p.width, p.height, stride)
                    .ok();
                self.note("capturing");
                frame
            }
            Some(Ok(None)) => {
                self.note("not viewable (unmapped or minimised): repeating the last frame");
                None
            }
            Some(Err(e)) => {
                tracing::debug!(source = %self.name, error = %e, "window grab failed");
                self.captured = None;
                self.last_attempt = Instant::now();
                self.note("lost (closed, or the X server went away): looking for it again");
                None
            }
            None => None,
        }
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn size_hint(&self) -> Option<(u32, u32)> {
        Some(self.converter.output_size())
    }
}

#[cfg(test)]
mod tests;
