//! Video sources: what the CaptureThread pulls pictures from.
//!
//! Why a trait with a non-blocking `grab`: the CaptureThread owns the frame
//! cadence (golden rule 1: engines are never blocked). A source only answers
//! "do you have a new picture for slot `index`?"; when it has none the
//! CaptureThread repeats the previous picture, so a slow screen grabber can
//! never stall the stream.
//!
//! `TestPattern` is the built-in source. Besides colour bars and a moving box
//! (so the encoder has real motion to code), it writes its frame index into the
//! picture as a grid of big black/white blocks. Integration tests decode the
//! received stream with FFmpeg to grey frames and call [`decode_frame_index`]
//! to prove which frames made it through (no backlog after a reconnect, drops
//! only before keyframes, ...). The layout is fixed by the pub constants below
//! and [`index_block_size`], so both sides compute the same geometry.

use super::frame::{FramePool, I420Frame};
use std::sync::Arc;

/// A producer of pictures, polled by the CaptureThread once per frame slot.
pub trait VideoSource: Send {
    /// Returns a new picture for frame slot `index` (due at stream time
    /// `pts_ns`), or `None` when the source has nothing new (the CaptureThread
    /// then repeats the last picture). Must return quickly: never block for
    /// more than a small fraction of a frame interval.
    fn grab(&mut self, index: u64, pts_ns: u64) -> Option<Arc<I420Frame>>;

    /// A short human-readable name for logs and errors.
    fn name(&self) -> &str;

    /// The size of the pictures this source produces, if known before the
    /// first one: the CaptureThread sends black at this size when the very
    /// first `grab` has nothing. Default: unknown (that slot is skipped).
    fn size_hint(&self) -> Option<(u32, u32)> {
        None
    }
}

/// Number of bits of the frame index written into each test-pattern frame
/// (the index is taken modulo `2^INDEX_BITS`: 6.4 days at 30 fps).
pub const INDEX_BITS: u32 = 24;
/// Index blocks per row of the grid; bits fill rows left to right, MSB first.
pub const INDEX_COLUMNS: u32 = 12;
/// Rows of index blocks (`INDEX_BITS / INDEX_COLUMNS`).
pub const INDEX_ROWS: u32 = INDEX_BITS / INDEX_COLUMNS;
/// Luma of a block holding a 1 bit (video-range white).
pub const INDEX_WHITE: u8 = 235;
/// Luma of a block holding a 0 bit (video-range black).
pub const INDEX_BLACK: u8 = 16;
/// Luma of the grey pad drawn behind and around the grid (one block wide).
pub const INDEX_PAD_GREY: u8 = 128;
/// Decision threshold between a 0 and a 1 bit when reading a block back.
pub const INDEX_THRESHOLD: u8 = 128;
/// A block whose mean luma lies within this distance of the threshold is not
/// trusted: `decode_frame_index` returns `None` (not our pattern, or ruined).
pub const INDEX_AMBIGUOUS_MARGIN: u8 = 40;
/// Smallest block side in pixels (used for tiny pictures).
pub const INDEX_MIN_BLOCK: u32 = 8;
/// Block side is `width / INDEX_BLOCK_DIVISOR` (40 px at 1280 wide) unless
/// that is below `INDEX_MIN_BLOCK`.
pub const INDEX_BLOCK_DIVISOR: u32 = 32;
/// Smallest supported test-pattern size.
pub const MIN_SIZE: (u32, u32) = (160, 120);
/// Largest supported test-pattern size (openh264's limit too).
pub const MAX_SIZE: (u32, u32) = (3840, 2160);
/// Smallest side `TestPattern::new` accepts (the encoder's minimum too).
pub const MIN_PATTERN_SIDE: u32 = 16;
/// Frame buffers a `TestPattern` keeps for reuse. The CaptureThread keeps the
/// last frame, the hand-off slot and the encoder each hold one, so four lets
/// the oldest be free again by the time it is needed: no allocation (and no
/// page faults) per frame in steady state.
pub const FRAME_POOL_SIZE: usize = 4;

/// Side in pixels of one index block for a `width x height` picture.
///
/// Layout: the grid has `INDEX_ROWS` rows of `INDEX_COLUMNS` square blocks of
/// this side, its top-left corner at `(block, block)` (one block of margin),
/// surrounded by a grey (`INDEX_PAD_GREY`) pad one block wide. Bit `k`
/// (k = 0 is the MSB) sits at column `k % INDEX_COLUMNS`, row
/// `k / INDEX_COLUMNS`. The side is even, so chroma stays aligned.
pub fn index_block_size(width: u32, height: u32) -> u32 {
    let by_width = width / INDEX_BLOCK_DIVISOR;
    // Tiny pictures: as big as still fits (grid + 2 blocks of pad).
    let fit_w = width / (INDEX_COLUMNS + 2);
    let fit_h = height / (INDEX_ROWS + 2);
    let wanted = by_width.max(INDEX_MIN_BLOCK.min(fit_w));
    (wanted.min(fit_w).min(fit_h) & !1).max(2)
}

/// Reads the frame index back from a decoded luma (or grey) plane of
/// `width x height` bytes, tightly packed. Samples the central half of each
/// block, thresholds its mean at `INDEX_THRESHOLD`. Returns `None` when the
/// plane is too small or any block is ambiguous.
pub fn decode_frame_index(luma: &[u8], width: u32, height: u32) -> Option<u64> {
    decode_frame_index_strided(luma, width, height, width as usize)
}

/// Like [`decode_frame_index`], for a plane whose rows are `stride` bytes apart
/// (decoders often pad rows).
pub fn decode_frame_index_strided(
    luma: &[u8],
    width: u32,
    height: u32,
    stride: usize,
) -> Option<u64> {
    if width < 2 || height < 2 || stride < width as usize {
        return None;
    }
    let needed = stride.checked_mul(height as usize)?;
    if luma.len() < needed.saturating_sub(stride - width as usize) {
        return None;
    }
    let b = index_block_size(width, height) as usize;
    let quarter = (b / 4).max(1);
    let mut value = 0u64;
    for bit in 0..INDEX_BITS as usize {
        let col = bit % INDEX_COLUMNS as usize;
        let row = bit / INDEX_COLUMNS as usize;
        let x0 = b + col * b + quarter;
        let y0 = b + row * b + quarter;
        let side = (b - 2 * quarter).max(1);
        let mut sum = 0u64;
        for y in y0..y0 + side {
            let start = y * stride + x0;
            let line = luma.get(start..start + side)?;
            sum += line.iter().map(|&p| u64::from(p)).sum::<u64>();
        }
        let mean = sum / (side * side) as u64;
        let lo = u64::from(INDEX_THRESHOLD - INDEX_AMBIGUOUS_MARGIN);
        let hi = u64::from(INDEX_THRESHOLD + INDEX_AMBIGUOUS_MARGIN);
        if mean > lo && mean < hi {
            return None;
        }
        value = (value << 1) | u64::from(mean >= u64::from(INDEX_THRESHOLD));
    }
    Some(value)
}

/// 75% colour bars in BT.601 video range: (Y, U, V) for white, yellow, cyan,
/// green, magenta, red, blue.
const BARS: [(u8, u8, u8); 7] = [
    (180, 128, 128),
    (162, 44, 142),
    (131, 156, 44),
    (112, 72, 58),
    (84, 184, 198),
    (65, 100, 212),
    (35, 212, 114),
];
/// Colour of the moving box (bright orange-ish), (Y, U, V).
const BOX_COLOUR: (u8, u8, u8) = (200, 60, 190);
/// The moving box is `width / BOX_DIVISOR` wide and `height / BOX_DIVISOR` high.
const BOX_DIVISOR: u32 = 6;
/// Horizontal speed of the box in pixels per frame, per 1280 px of width.
const BOX_SPEED_PER_1280: u32 = 8;
/// The bottom `1 / NOISE_BAND_DIVISOR` of the picture is fresh luma noise every
/// frame. Why: flat bars and boxes compress to almost nothing (~60 kbit/s at
/// 720p), so a stream of them would never load the network; incompressible
/// noise makes the encoder actually spend its configured bitrate, which the
/// throttling and congestion tests depend on.
pub const NOISE_BAND_DIVISOR: u32 = 4;
/// Noise luma is `NOISE_BASE + (random & NOISE_MASK)`: a low-contrast grey band.
pub const NOISE_BASE: u8 = 96;
/// See [`NOISE_BASE`]; must be `2^k - 1`.
pub const NOISE_MASK: u8 = 0x3f;
const _: () = assert!(NOISE_BASE as u16 + NOISE_MASK as u16 <= 255);

/// The built-in moving test pattern, carrying its frame index in its pixels.
///
/// Cheap: the colour bars are rendered once; each frame copies them (a memcpy
/// per plane), then draws the moving box and the index grid row by row with
/// slice fills. Buffers are recycled when the previous frame is no longer
/// referenced elsewhere.
pub struct TestPattern {
    background: I420Frame,
    noise: bool,
    rng: u64,
    pool: FramePool,
    name: String,
}

impl TestPattern {
    /// A test pattern of exactly `width x height` (odd values rounded down to
    /// even, at least `MIN_PATTERN_SIDE`). The index is guaranteed decodable
    /// from [`MIN_SIZE`] to [`MAX_SIZE`].
    pub fn new(width: u32, height: u32) -> Self {
        let width = width.max(MIN_PATTERN_SIDE) & !1;
        let height = height.max(MIN_PATTERN_SIDE) & !1;
        let mut background = I420Frame::black(width, height);
        draw_bars(&mut background);
        let b = index_block_size(width, height);
        fill_rect(
            &mut background,
            0,
            0,
            b * (INDEX_COLUMNS + 2),
            b * (INDEX_ROWS + 2),
            (INDEX_PAD_GREY, 128, 128),
        );
        Self {
            background,
            noise: true,
            rng: 0x9E37_79B9_7F4A_7C15,
            pool: FramePool::new(width, height, FRAME_POOL_SIZE),
            name: format!("test pattern {width}x{height}"),
        }
    }

    /// Turns the noise band off (it is on by default): a flat pattern that
    /// compresses to almost nothing, for tests that want tiny packets.
    pub fn without_noise(mut self) -> Self {
        self.noise = false;
        self
    }

    /// Renders frame `index` into a fresh or recycled buffer.
    pub fn render(&mut self, index: u64) -> Arc<I420Frame> {
        let (background, noise, rng) = (&self.background, self.noise, &mut self.rng);
        let filled = self.pool.fill(|frame| {
            frame.y.copy_from_slice(&background.y);
            frame.u.copy_from_slice(&background.u);
            frame.v.copy_from_slice(&background.v);
            if noise {
                draw_noise(frame, rng);
            }
            draw_moving_box(frame, index);
            draw_index(frame, index);
            Ok::<(), std::convert::Infallible>(())
        });
        match filled {
            Ok(frame) => frame,
            Err(never) => match never {},
        }
    }
}

impl VideoSource for TestPattern {
    fn grab(&mut self, index: u64, _pts_ns: u64) -> Option<Arc<I420Frame>> {
        Some(self.render(index))
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn size_hint(&self) -> Option<(u32, u32)> {
        Some((self.background.width, self.background.height))
    }
}

/// Vertical colour bars over the whole picture (done once).
fn draw_bars(f: &mut I420Frame) {
    let n = BARS.len() as u32;
    for (i, &c) in BARS.iter().enumerate() {
        let i = i as u32;
        let x0 = (f.width * i / n) & !1;
        let x1 = (f.width * (i + 1) / n) & !1;
        fill_rect(f, x0, 0, x1 - x0, f.height, c);
    }
}

/// Fills an even-aligned rectangle (clipped to the picture) with one colour,
/// one slice fill per row.
fn fill_rect(f: &mut I420Frame, x: u32, y: u32, w: u32, h: u32, (cy, cu, cv): (u8, u8, u8)) {
    let x0 = (x & !1).min(f.width) as usize;
    let y0 = (y & !1).min(f.height) as usize;
    let x1 = (x.saturating_add(w) & !1).min(f.width) as usize;
    let y1 = (y.saturating_add(h) & !1).min(f.height) as usize;
    if x1 <= x0 || y1 <= y0 {
        return;
    }
    let stride = f.width as usize;
    for row in y0..y1 {
        let s = row * stride;
        f.y[s + x0..s + x1].fill(cy);
    }
    let cstride = stride / 2;
    for row in y0 / 2..y1 / 2 {
        let s = row * cstride;
        f.u[s + x0 / 2..s + x1 / 2].fill(cu);
        f.v[s + x0 / 2..s + x1 / 2].fill(cv);
    }
}

/// A box bouncing left-right in the lower half, plus a thin bar sweeping down
/// the right-hand side: enough motion to exercise P-frames.
fn draw_moving_box(f: &mut I420Frame, index: u64) {
    let bw = (f.width / BOX_DIVISOR).max(2);
    let bh = (f.height / BOX_DIVISOR).max(2);
    let travel = u64::from(f.width - bw).max(1);
    let speed = u64::from((f.width * BOX_SPEED_PER_1280 / 1280).max(1));
    let pos = (index * speed) % (2 * travel);
    let x = if pos < travel { pos } else { 2 * travel - pos };
    let y = f.height / 2 + (f.height / 2 - bh) / 2;
    fill_rect(f, x as u32, y, bw, bh, BOX_COLOUR);
    let sweep_h = (f.height / 60).max(2);
    let sy = (index * 2 % u64::from(f.height.max(1))) as u32;
    fill_rect(
        f,
        f.width - f.width / 8,
        sy,
        f.width / 8,
        sweep_h,
        (235, 128, 128),
    );
}

/// Fresh pseudo-random luma over the bottom band (xorshift64, 8 px per step).
fn draw_noise(f: &mut I420Frame, rng: &mut u64) {
    let band = (f.height / NOISE_BAND_DIVISOR) & !1;
    let start = ((f.height - band) * f.width) as usize;
    let base = u64::from_ne_bytes([NOISE_BASE; 8]);
    let mask = u64::from_ne_bytes([NOISE_MASK; 8]);
    let mut x = *rng;
    let mut chunks = f.y[start..].chunks_exact_mut(8);
    for chunk in &mut chunks {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        // Per-byte add cannot carry: NOISE_BASE + NOISE_MASK <= 255.
        chunk.copy_from_slice(&(base + (x & mask)).to_ne_bytes());
    }
    chunks.into_remainder().fill(NOISE_BASE);
    *rng = x;
}

/// The frame-index grid (see [`index_block_size`] for the layout).
fn draw_index(f: &mut I420Frame, index: u64) {
    let b = index_block_size(f.width, f.height);
    for bit in 0..INDEX_BITS {
        let set = (index >> (INDEX_BITS - 1 - bit)) & 1 == 1;
        let col = bit % INDEX_COLUMNS;
        let row = bit / INDEX_COLUMNS;
        let luma = if set { INDEX_WHITE } else { INDEX_BLACK };
        fill_rect(f, b + col * b, b + row * b, b, b, (luma, 128, 128));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIZES: [(u32, u32); 6] = [
        (160, 120),
        (320, 240),
        (640, 360),
        (1280, 720),
        (1920, 1080),
        (3840, 2160),
    ];

    #[test]
    fn index_round_trips_for_sizes_and_indices() {
        for (w, h) in SIZES {
            let mut p = TestPattern::new(w, h);
            for idx in [0u64, 1, 2, 3, 255, 4096, 123_456, (1 << INDEX_BITS) - 1] {
                let f = p.grab(idx, 0).expect("test pattern always has a frame");
                assert_eq!((f.width, f.height), (w, h));
                assert_eq!(
                    decode_frame_index(&f.y, w, h),
                    Some(idx),
                    "{w}x{h} idx {idx}"
                );
            }
        }
    }

    #[test]
    fn index_wraps_modulo_index_bits() {
        let mut p = TestPattern::new(640, 360);
        let f = p.render((1 << INDEX_BITS) + 7);
        assert_eq!(decode_frame_index(&f.y, 640, 360), Some(7));
    }

    #[test]
    fn blocks_are_big_enough() {
        assert!(index_block_size(1280, 720) >= 32);
        assert!(index_block_size(1920, 1080) >= 32);
        for (w, h) in SIZES {
            let b = index_block_size(w, h);
            assert!(b >= 8, "{w}x{h}: {b}");
            assert!(b * (INDEX_COLUMNS + 2) <= w && b * (INDEX_ROWS + 2) <= h);
        }
    }

    #[test]
    fn decode_rejects_non_pattern_pictures() {
        let grey = vec![128u8; 640 * 360];
        assert_eq!(decode_frame_index(&grey, 640, 360), None);
        assert_eq!(decode_frame_index(&grey[..10], 640, 360), None);
    }

    #[test]
    fn strided_decode_matches() {
        let (w, h) = (320u32, 240u32);
        let mut p = TestPattern::new(w, h);
        let f = p.render(4242);
        let stride = w as usize + 32;
        let mut padded = vec![0u8; stride * h as usize];
        for row in 0..h as usize {
            padded[row * stride..row * stride + w as usize]
                .copy_from_slice(&f.y[row * w as usize..(row + 1) * w as usize]);
        }
        assert_eq!(
            decode_frame_index_strided(&padded, w, h, stride),
            Some(4242)
        );
    }

    #[test]
    fn pattern_moves_and_recycles_buffers() {
        let mut p = TestPattern::new(640, 360);
        let a = p.render(0);
        let a_y = a.y.clone();
        let a_ptr = a.y.as_ptr();
        drop(a);
        let b = p.render(10);
        assert_ne!(a_y, b.y);
        // The free buffer was reused.
        assert_eq!(b.y.as_ptr(), a_ptr);
        // While frames are held elsewhere, new buffers are used and held
        // frames are never touched.
        let b_y = b.y.clone();
        let held: Vec<_> = (11..20).map(|i| p.render(i)).collect();
        assert_eq!(b.y, b_y);
        for (k, f) in held.iter().enumerate() {
            assert_eq!(decode_frame_index(&f.y, 640, 360), Some(11 + k as u64));
        }
    }

    #[test]
    fn odd_and_tiny_sizes_are_honoured() {
        let mut p = TestPattern::new(101, 63);
        let f = p.render(3);
        assert_eq!((f.width, f.height), (100, 62));
        assert_eq!(p.size_hint(), Some((100, 62)));
        let f = TestPattern::new(16, 16).render(1);
        assert_eq!((f.width, f.height, f.y.len(), f.u.len()), (16, 16, 256, 64));
    }

    #[test]
    fn generation_is_cheap() {
        let mut p = TestPattern::new(1280, 720);
        let n = 200u64;
        let t = std::time::Instant::now();
        for i in 0..n {
            let f = p.render(i);
            std::hint::black_box(&f);
        }
        let per_frame = t.elapsed() / n as u32;
        eprintln!("test pattern 1280x720: {per_frame:?} per frame");
        // Loose bound: debug builds and a busy box; release measures far less.
        assert!(per_frame < std::time::Duration::from_millis(20));
    }
}
