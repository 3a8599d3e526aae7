//! `I420Frame`: the picture type between sources, the CaptureThread and the
//! VideoEncoder.
//!
//! Why I420 at this boundary: it is what the H.264 encoder eats, so sources
//! convert once (screen capture converts BGRA on its own thread) and the
//! CaptureThread can duplicate a frame by cloning an `Arc`, never pixels.

/// A planar YUV 4:2:0 picture with tightly packed planes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct I420Frame {
    /// Width in pixels (even).
    pub width: u32,
    /// Height in pixels (even).
    pub height: u32,
    /// Luma, `width * height` bytes.
    pub y: Vec<u8>,
    /// Cb, `(width / 2) * (height / 2)` bytes.
    pub u: Vec<u8>,
    /// Cr, `(width / 2) * (height / 2)` bytes.
    pub v: Vec<u8>,
}

impl I420Frame {
    /// A black picture (Y=16, U=V=128, video range).
    pub fn black(width: u32, height: u32) -> Self {
        let luma = (width as usize) * (height as usize);
        let chroma = (width as usize / 2) * (height as usize / 2);
        Self {
            width,
            height,
            y: vec![16; luma],
            u: vec![128; chroma],
            v: vec![128; chroma],
        }
    }
}
