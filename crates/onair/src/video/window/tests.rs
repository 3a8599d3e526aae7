use super::*;
use onair_testkit::{wait_for, TestWindow, Xvfb};
use std::time::Duration;

#[test]
fn parses_specs() {
    let p = |s: &str| WindowSpec::parse(s).expect(s);
    assert_eq!(p("0x1a00003").target, WindowTarget::Id(0x1a0_0003));
    assert_eq!(p("4194307").target, WindowTarget::Id(4_194_307));
    assert_eq!(p("Firefox").target, WindowTarget::Name("Firefox".into()));
    let s = p("My Editor@:99");
    assert_eq!(s.target, WindowTarget::Name("My Editor".into()));
    assert_eq!(s.display.as_deref(), Some(":99"));
    assert!(WindowSpec::parse("").is_err());
    assert!(WindowSpec::parse("0xzz").is_err());
}

/// The colour at the centre of a frame, as (Y, U, V).
fn centre(f: &I420Frame) -> (u8, u8, u8) {
    let (w, h) = (f.width as usize, f.height as usize);
    let (cw, ch) = (w / 2, h / 2);
    (
        f.y[(h / 2) * w + w / 2],
        f.u[(ch / 2) * cw + cw / 2],
        f.v[(ch / 2) * cw + cw / 2],
    )
}

fn is_red((_, u, v): (u8, u8, u8)) -> bool {
    v > 200 && u < 120
}

fn is_green((y, u, v): (u8, u8, u8)) -> bool {
    y > 120 && u < 100 && v < 100
}

/// Grabs until a frame satisfies `ok` (the server draws asynchronously).
fn grab_until(src: &mut WindowSource, ok: impl Fn(&I420Frame) -> bool) -> Option<Arc<I420Frame>> {
    wait_for(Duration::from_secs(3), || src.grab(0, 0).filter(|f| ok(f)))
}

/// The window is followed when it moves (its pixels, not the root's at its
/// old place), scaled when resized, repeated while unmapped, and captured
/// again when mapped; a closed window is looked for again by name.
#[test]
fn follows_a_window_that_moves_resizes_unmaps_and_comes_back() {
    if !onair_testkit::require_tools(&["Xvfb", "xsetroot"]) {
        return;
    }
    let x = Xvfb::start(800, 600).expect("Xvfb");
    x.paint("#0000ff").expect("paint the root blue");
    let win = TestWindow::create(
        &x.display(),
        "onair test window",
        0xff_0000,
        (50, 50, 320, 240),
    )
    .expect("a test window");
    let listed = list_windows(Some(&x.display())).expect("list");
    assert!(
        listed
            .iter()
            .any(|w| w.id == win.id() && w.name == "onair test window"),
        "{listed:?}"
    );
    let spec = format!("test window@{}", x.display());
    let mut src = open_window(&spec, 320, 240).expect("open by name");
    assert_eq!(src.window_id(), Some(win.id()));
    let f = grab_until(&mut src, |f| is_red(centre(f))).expect("the window's red");
    assert_eq!((f.width, f.height), (320, 240));

    // Moved: still its red (a root-rectangle grab would now see blue).
    win.move_to(400, 300);
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        grab_until(&mut src, |f| is_red(centre(f))).is_some(),
        "lost after a move"
    );
    // Resized: scaled to the output size, still red.
    win.resize(200, 100);
    let f = grab_until(&mut src, |f| is_red(centre(f))).expect("red after a resize");
    assert_eq!((f.width, f.height), (320, 240));

    // Unmapped: nothing new (the CaptureThread repeats the last frame).
    win.unmap();
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        src.grab(0, 0).is_none(),
        "an unmapped window gives no new frame"
    );
    win.map();
    assert!(
        grab_until(&mut src, |f| is_red(centre(f))).is_some(),
        "back after a map"
    );

    // Closed, then a new window with the same name: found again.
    drop(win);
    std::thread::sleep(Duration::from_millis(100));
    assert!(src.grab(0, 0).is_none());
    let _again = TestWindow::create(
        &x.display(),
        "onair test window",
        0x00_ff00,
        (10, 10, 160, 120),
    )
    .expect("a test window");
    let back = wait_for(RECONNECT_INTERVAL * 3, || {
        src.grab(0, 0).filter(|f| is_green(centre(f)))
    });
    assert!(
        back.is_some(),
        "a window with the same name was not found again"
    );
}

#[test]
fn an_unknown_window_is_an_error() {
    if !onair_testkit::require_tools(&["Xvfb"]) {
        return;
    }
    let x = Xvfb::start(320, 240).expect("Xvfb");
    let err = open_window(&format!("no such window@{}", x.display()), 64, 64)
        .err()
        .expect("an error");
    assert!(err.to_string().contains("no window named"), "{err}");
}
