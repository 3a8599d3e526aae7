//! BGRA -> I420 colour conversion and scaling, for screen capture.
//!
//! Why here and why these crates: X11 hands out 32-bit BGRX pixels at the
//! screen's size; the encoder wants I420 at the output size. Both steps run on
//! the CaptureThread for every frame, so they use SIMD crates rather than a
//! per-pixel loop: `fast_image_resize` (AVX2/SSE4.1 convolution) scales the
//! BGRA picture, then `yuvutils-rs` converts it to I420. Scaling BGRA *before*
//! converting means the 4:2:0 chroma is computed once, at the output size.
//! `yuvutils-rs` was picked over `dcv-color-primitives` by measurement (see
//! docs/benchmarks.md, "Capture and conversion", and the ignored test
//! `bench_conversion_candidates` below, which reproduces the numbers).
//!
//! Colours are BT.601, video range, like the test pattern, which is what
//! decoders assume for a stream that does not signal its matrix.

use super::frame::{FramePool, I420Frame};
use fast_image_resize as fir;
use std::sync::Arc;
use yuvutils_rs::{
    bgra_to_yuv420, BufferStoreMut, YuvConversionMode, YuvPlanarImageMut, YuvRange,
    YuvStandardMatrix,
};

/// Output frames kept for reuse: the CaptureThread holds the last frame, the
/// hand-off slot and the encoder one each, so four lets the oldest be free
/// again when it is needed (no allocation per frame in steady state).
pub const CONVERT_POOL_SIZE: usize = 4;

/// Scaling filter. Bilinear (a convolution whose support grows with the
/// downscale factor, so it averages instead of skipping pixels) keeps text
/// readable at 1080p -> 720p and is the cheapest filter that does.
pub const SCALE_FILTER: fir::FilterType = fir::FilterType::Bilinear;

/// Why a conversion failed (a bug or a malformed image, never a device state).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConvertError {
    /// The BGRA buffer is shorter than `stride * height`, or the stride is
    /// smaller than `width * 4`.
    #[error("BGRA buffer too small for {width}x{height} (stride {stride}, {len} bytes)")]
    BadInput {
        /// Picture width.
        width: u32,
        /// Picture height.
        height: u32,
        /// Bytes per row.
        stride: usize,
        /// Buffer length.
        len: usize,
    },
    /// The scaler or the converter refused the images.
    #[error("{0}")]
    Library(String),
}

/// Converts BGRA pictures of any size to I420 frames of one output size,
/// reusing its buffers.
pub struct BgraToI420 {
    out_width: u32,
    out_height: u32,
    resizer: fir::Resizer,
    options: fir::ResizeOptions,
    /// The scaled BGRA picture (empty when no scaling is needed).
    scaled: Vec<u8>,
    pool: FramePool,
}

impl BgraToI420 {
    /// A converter producing `out_width x out_height` frames (odd values are
    /// rounded down to even, at least 2).
    pub fn new(out_width: u32, out_height: u32) -> Self {
        let (out_width, out_height) = ((out_width & !1).max(2), (out_height & !1).max(2));
        Self {
            out_width,
            out_height,
            resizer: fir::Resizer::new(),
            options: fir::ResizeOptions::new()
                .resize_alg(fir::ResizeAlg::Convolution(SCALE_FILTER))
                .use_alpha(false),
            scaled: Vec::new(),
            pool: FramePool::new(out_width, out_height, CONVERT_POOL_SIZE),
        }
    }

    /// The size of the frames this converter produces.
    pub fn output_size(&self) -> (u32, u32) {
        (self.out_width, self.out_height)
    }

    /// Scales (when the sizes differ) and converts one BGRA picture whose rows
    /// are `stride` bytes apart. The alpha byte is ignored.
    pub fn convert(
        &mut self,
        bgra: &[u8],
        width: u32,
        height: u32,
        stride: usize,
    ) -> Result<Arc<I420Frame>, ConvertError> {
        let row = width as usize * 4;
        if width == 0
            || height == 0
            || stride < row
            || bgra.len() < stride * (height as usize - 1) + row
        {
            return Err(ConvertError::BadInput {
                width,
                height,
                stride,
                len: bgra.len(),
            });
        }
        let (ow, oh) = (self.out_width, self.out_height);
        let (resizer, options, scaled) = (&mut self.resizer, &self.options, &mut self.scaled);
        self.pool.fill(|target| {
            if (width, height) == (ow, oh) {
                return bgra_into_i420(bgra, stride, target);
            }
            // fast_image_resize wants tightly packed rows.
            let tight: std::borrow::Cow<'_, [u8]> = if stride == row {
                std::borrow::Cow::Borrowed(&bgra[..row * height as usize])
            } else {
                std::borrow::Cow::Owned(
                    bgra.chunks(stride)
                        .take(height as usize)
                        .flat_map(|r| &r[..row])
                        .copied()
                        .collect(),
                )
            };
            let src = fir::images::ImageRef::new(width, height, &tight, fir::PixelType::U8x4)
                .map_err(|e| ConvertError::Library(e.to_string()))?;
            scaled.resize(ow as usize * oh as usize * 4, 0);
            let mut dst = fir::images::Image::from_slice_u8(ow, oh, scaled, fir::PixelType::U8x4)
                .map_err(|e| ConvertError::Library(e.to_string()))?;
            resizer
                .resize(&src, &mut dst, options)
                .map_err(|e| ConvertError::Library(e.to_string()))?;
            bgra_into_i420(scaled, ow as usize * 4, target)
        })
    }
}

/// BGRA at exactly the frame's size -> I420 (BT.601, video range).
fn bgra_into_i420(bgra: &[u8], stride: usize, f: &mut I420Frame) -> Result<(), ConvertError> {
    let (w, h) = (f.width, f.height);
    let mut planar = YuvPlanarImageMut {
        y_plane: BufferStoreMut::Borrowed(&mut f.y),
        y_stride: w,
        u_plane: BufferStoreMut::Borrowed(&mut f.u),
        u_stride: w / 2,
        v_plane: BufferStoreMut::Borrowed(&mut f.v),
        v_stride: w / 2,
        width: w,
        height: h,
    };
    let stride = u32::try_from(stride).map_err(|e| ConvertError::Library(e.to_string()))?;
    bgra_to_yuv420(
        &mut planar,
        bgra,
        stride,
        YuvRange::Limited,
        YuvStandardMatrix::Bt601,
        YuvConversionMode::Balanced,
    )
    .map_err(|e| ConvertError::Library(e.to_string()))
}

/// A cursor picture: premultiplied ARGB (XFixes format, one `u32` per pixel,
/// `0xAARRGGBB`), placed with its top-left corner at `(x, y)`.
#[derive(Debug, Clone, Copy)]
pub struct CursorImage<'a> {
    /// `width * height` pixels, row-major.
    pub pixels: &'a [u32],
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Left edge in picture coordinates (may be negative).
    pub x: i32,
    /// Top edge in picture coordinates (may be negative).
    pub y: i32,
}

/// Alpha-blends `cursor` onto a BGRA picture, clipped. Only the cursor's
/// pixels are touched (a few hundred), so a scalar loop is fine here.
pub fn blend_argb_premultiplied(
    bgra: &mut [u8],
    width: u32,
    height: u32,
    stride: usize,
    cursor: &CursorImage<'_>,
) {
    let CursorImage {
        pixels: cursor,
        width: cursor_width,
        height: cursor_height,
        x,
        y,
    } = *cursor;
    for cy in 0..cursor_height as i32 {
        let py = y + cy;
        if py < 0 || py >= height as i32 {
            continue;
        }
        for cx in 0..cursor_width as i32 {
            let px = x + cx;
            if px < 0 || px >= width as i32 {
                continue;
            }
            let Some(&argb) = cursor.get((cy as u32 * cursor_width + cx as u32) as usize) else {
                return;
            };
            let a = argb >> 24;
            if a == 0 {
                continue;
            }
            let at = py as usize * stride + px as usize * 4;
            let Some(dst) = bgra.get_mut(at..at + 3) else {
                continue;
            };
            let inv = 255 - a;
            let src = [argb & 0xff, (argb >> 8) & 0xff, (argb >> 16) & 0xff];
            for (d, s) in dst.iter_mut().zip(src) {
                *d = (s + (u32::from(*d) * inv + 127) / 255).min(255) as u8;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn solid(w: u32, h: u32, b: u8, g: u8, r: u8) -> Vec<u8> {
        [b, g, r, 255].repeat((w * h) as usize)
    }

    fn near(a: u8, b: u8) -> bool {
        a.abs_diff(b) <= 2
    }

    #[test]
    fn red_and_green_convert_to_bt601_video_range() {
        let mut c = BgraToI420::new(64, 48);
        // Red: Y 81, U 90, V 240. Green: Y 145, U 54, V 34.
        for ((b, g, r), (y, u, v)) in [((0, 0, 255), (81, 90, 240)), ((0, 255, 0), (145, 54, 34))] {
            for (w, h) in [(64, 48), (128, 96), (100, 70)] {
                let f = c
                    .convert(&solid(w, h, b, g, r), w, h, w as usize * 4)
                    .unwrap();
                assert_eq!((f.width, f.height), (64, 48));
                let mid = f.y.len() / 2 + 32;
                assert!(near(f.y[mid], y), "{w}x{h} y {}", f.y[mid]);
                assert!(near(f.u[f.u.len() / 2], u), "u {}", f.u[f.u.len() / 2]);
                assert!(near(f.v[f.v.len() / 2], v), "v {}", f.v[f.v.len() / 2]);
            }
        }
    }

    #[test]
    fn padded_rows_and_bad_input() {
        let mut c = BgraToI420::new(32, 32);
        let (w, h, stride) = (40u32, 40u32, 40 * 4 + 64);
        let mut buf = vec![0u8; stride * h as usize];
        for row in buf.chunks_mut(stride) {
            row[..w as usize * 4].copy_from_slice(&solid(w, 1, 255, 0, 0));
        }
        let f = c.convert(&buf, w, h, stride).unwrap();
        // Blue: Y 41.
        assert!(near(f.y[100], 41), "{}", f.y[100]);
        assert!(c.convert(&buf[..100], w, h, stride).is_err());
        assert!(c.convert(&buf, w, h, 10).is_err());
    }

    #[test]
    fn frames_are_recycled() {
        let mut c = BgraToI420::new(32, 32);
        let img = solid(32, 32, 0, 0, 0);
        let a = c.convert(&img, 32, 32, 128).unwrap();
        let p = a.y.as_ptr();
        drop(a);
        let b = c.convert(&img, 32, 32, 128).unwrap();
        assert_eq!(b.y.as_ptr(), p);
        let held: Vec<_> = (0..10)
            .map(|_| c.convert(&img, 32, 32, 128).unwrap())
            .collect();
        assert_eq!(held.len(), 10);
        // Ten held at once: the pool handed out ten distinct pictures.
        let mut ptrs: Vec<_> = held.iter().map(|f| f.y.as_ptr()).collect();
        ptrs.sort_unstable();
        ptrs.dedup();
        assert_eq!(ptrs.len(), 10);
    }

    #[test]
    fn cursor_blend_clips_and_blends() {
        let mut img = solid(4, 4, 0, 0, 0);
        // Opaque white 2x2 cursor at (3, 3): only one pixel lands.
        let c = CursorImage {
            pixels: &[0xffff_ffff; 4],
            width: 2,
            height: 2,
            x: 3,
            y: 3,
        };
        blend_argb_premultiplied(&mut img, 4, 4, 16, &c);
        assert_eq!(&img[15 * 4..15 * 4 + 3], &[255, 255, 255]);
        assert_eq!(&img[14 * 4..14 * 4 + 3], &[0, 0, 0]);
        // Half-transparent premultiplied red over white.
        let mut img = solid(1, 1, 255, 255, 255);
        let c = CursorImage {
            pixels: &[0x8080_0000],
            width: 1,
            height: 1,
            x: 0,
            y: 0,
        };
        blend_argb_premultiplied(&mut img, 1, 1, 4, &c);
        assert!(img[2] >= 254 && (126..=128).contains(&img[0]), "{img:?}");
        let c = CursorImage {
            pixels: &[0xffff_ffff],
            width: 1,
            height: 1,
            x: -5,
            y: 9,
        };
        blend_argb_premultiplied(&mut img, 1, 1, 4, &c);
    }

    /// A screen-like BGRA picture: gradients plus some noise, so neither
    /// candidate gets a flat-colour shortcut.
    fn screenish(w: u32, h: u32) -> Vec<u8> {
        let mut v = Vec::with_capacity((w * h * 4) as usize);
        let mut x = 0x1234_5678u32;
        for yy in 0..h {
            for xx in 0..w {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                v.extend_from_slice(&[(xx % 256) as u8, (yy % 256) as u8, (x & 0xff) as u8, 255]);
            }
        }
        v
    }

    /// Median per-call time of `f` over `n` runs (after a warm-up run).
    fn time_it(n: usize, mut f: impl FnMut()) -> Duration {
        f();
        let mut t: Vec<Duration> = (0..n)
            .map(|_| {
                let s = Instant::now();
                f();
                s.elapsed()
            })
            .collect();
        t.sort();
        t[n / 2]
    }

    /// Candidate B: the same scaler, then dcv-color-primitives for BGRA -> I420.
    fn dcv_convert(bgra: &[u8], w: u32, h: u32, out: &mut I420Frame) {
        use dcv_color_primitives as dcp;
        let src = dcp::ImageFormat {
            pixel_format: dcp::PixelFormat::Bgra,
            color_space: dcp::ColorSpace::Rgb,
            num_planes: 1,
        };
        let dst = dcp::ImageFormat {
            pixel_format: dcp::PixelFormat::I420,
            color_space: dcp::ColorSpace::Bt601,
            num_planes: 3,
        };
        let (y, u, v) = (&mut out.y, &mut out.u, &mut out.v);
        dcp::convert_image(w, h, &src, None, &[bgra], &dst, None, &mut [y, u, v]).unwrap();
    }

    /// Reproduces the numbers in docs/benchmarks.md ("Capture and conversion"):
    /// `cargo test -p onair --release --lib bench_conversion_candidates -- --ignored --nocapture`
    #[test]
    #[ignore = "benchmark: run in release with --ignored --nocapture"]
    fn bench_conversion_candidates() {
        const RUNS: usize = 60;
        for (iw, ih) in [(1920u32, 1080u32), (1280, 720)] {
            let img = screenish(iw, ih);
            let (ow, oh) = (1280u32, 720u32);
            // A: fast_image_resize + yuvutils-rs (what BgraToI420 does).
            let mut conv = BgraToI420::new(ow, oh);
            let a = time_it(RUNS, || {
                std::hint::black_box(conv.convert(&img, iw, ih, iw as usize * 4).unwrap());
            });
            // Scale alone, to split the cost.
            let mut resizer = fir::Resizer::new();
            let opts = fir::ResizeOptions::new()
                .resize_alg(fir::ResizeAlg::Convolution(SCALE_FILTER))
                .use_alpha(false);
            let mut scaled = vec![0u8; (ow * oh * 4) as usize];
            let scale = time_it(RUNS, || {
                if (iw, ih) == (ow, oh) {
                    return;
                }
                let src = fir::images::ImageRef::new(iw, ih, &img, fir::PixelType::U8x4).unwrap();
                let mut dst =
                    fir::images::Image::from_slice_u8(ow, oh, &mut scaled, fir::PixelType::U8x4)
                        .unwrap();
                resizer.resize(&src, &mut dst, &opts).unwrap();
            });
            let ready = if (iw, ih) == (ow, oh) { &img } else { &scaled };
            // Colour conversion alone: yuvutils-rs vs dcv-color-primitives.
            let mut f = I420Frame::black(ow, oh);
            let yuv = time_it(RUNS, || {
                bgra_into_i420(ready, ow as usize * 4, &mut f).unwrap()
            });
            let dcv = time_it(RUNS, || dcv_convert(ready, ow, oh, &mut f));
            // Other order: convert at the input size, then scale the planes
            // (1.5 bytes per pixel to scale instead of 4).
            let mut full = I420Frame::black(iw, ih);
            let mut out = I420Frame::black(ow, oh);
            let planes_first = time_it(RUNS, || {
                bgra_into_i420(&img, iw as usize * 4, &mut full).unwrap();
                if (iw, ih) == (ow, oh) {
                    return;
                }
                for (src, dst, w, h, dw, dh) in [
                    (&full.y, &mut out.y, iw, ih, ow, oh),
                    (&full.u, &mut out.u, iw / 2, ih / 2, ow / 2, oh / 2),
                    (&full.v, &mut out.v, iw / 2, ih / 2, ow / 2, oh / 2),
                ] {
                    let s = fir::images::ImageRef::new(w, h, src, fir::PixelType::U8).unwrap();
                    let mut d =
                        fir::images::Image::from_slice_u8(dw, dh, dst, fir::PixelType::U8).unwrap();
                    resizer.resize(&s, &mut d, &opts).unwrap();
                }
            });
            eprintln!(
                "{iw}x{ih} -> {ow}x{oh}: scale+yuvutils {a:?} | scale {scale:?} | \
                 yuvutils-rs {yuv:?} | dcv-color-primitives {dcv:?} | \
                 convert-then-scale-planes {planes_first:?}"
            );
        }
    }
}
