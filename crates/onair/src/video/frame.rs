//! `I420Frame`: the picture type between sources, the CaptureThread and the
//! VideoEncoder.
//!
//! Why I420 at this boundary: it is what the H.264 encoder eats, so sources
//! convert once (screen capture converts BGRA on its own thread) and the
//! CaptureThread can duplicate a frame by cloning an `Arc`, never pixels.

use std::sync::Arc;

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

/// Recycles the `Arc<I420Frame>`s a source hands out, so a source that
/// makes one picture per frame (screen conversion, the file source) does not
/// allocate, page-fault and free a whole picture every frame.
///
/// Why an `Arc` count and not a free list fed by the consumers: the engines
/// share a picture by cloning its `Arc` (the CaptureThread repeats it, the
/// encoder holds it, libavcodec may keep it past `encode`), and there is no
/// one place where it is "returned". The pool keeps a clone of each picture
/// it made and hands one out again only once that clone is the last one
/// (`Arc::get_mut`): a picture still held anywhere is never written.
#[derive(Debug)]
pub struct FramePool {
    width: u32,
    height: u32,
    capacity: usize,
    frames: Vec<Arc<I420Frame>>,
}

impl FramePool {
    /// A pool of at most `capacity` pictures of `width x height`. Size it to
    /// the pictures that are in flight at once (queued, shown, encoding) plus
    /// one: when all are busy, the oldest is forgotten (its holders keep it)
    /// and a new one is made.
    pub fn new(width: u32, height: u32, capacity: usize) -> Self {
        Self {
            width,
            height,
            capacity: capacity.max(1),
            frames: Vec::with_capacity(capacity.max(1)),
        }
    }

    /// Fills a picture nobody else holds (its previous contents, or black
    /// when new) with `fill` and hands it out; the pool keeps a clone to
    /// reuse it once every other holder let go. When `fill` fails, the
    /// picture goes back to the pool and the error is returned.
    pub fn fill<E>(
        &mut self,
        fill: impl FnOnce(&mut I420Frame) -> Result<(), E>,
    ) -> Result<Arc<I420Frame>, E> {
        let mut frame = self.take();
        // Never a copy: `take` returns a picture whose only holder is
        // `frame` (make_mut clones only a shared one).
        let result = fill(Arc::make_mut(&mut frame));
        self.frames.push(Arc::clone(&frame));
        result.map(|()| frame)
    }

    /// A pooled picture nobody else holds, or a new one.
    fn take(&mut self) -> Arc<I420Frame> {
        if let Some(i) = self
            .frames
            .iter_mut()
            .position(|a| Arc::get_mut(a).is_some())
        {
            return self.frames.swap_remove(i);
        }
        if self.frames.len() >= self.capacity {
            self.frames.remove(0);
        }
        Arc::new(I420Frame::black(self.width, self.height))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_reuses_a_released_picture_and_never_one_in_use() {
        let mut pool = FramePool::new(4, 2, 3);
        let fill = |n: u8| {
            move |f: &mut I420Frame| -> Result<(), ()> {
                f.y.fill(n);
                Ok(())
            }
        };
        // Three held at once: three distinct buffers.
        let held: Vec<_> = (0..3).map(|n| pool.fill(fill(n)).expect("fill")).collect();
        let ptrs: Vec<*const u8> = held.iter().map(|f| f.y.as_ptr()).collect();
        assert_ne!(ptrs[0], ptrs[1]);
        assert_ne!(ptrs[1], ptrs[2]);
        assert_ne!(ptrs[0], ptrs[2]);
        // All in use: a fourth is a new buffer, and the held ones are intact.
        let fourth = pool.fill(fill(9)).expect("fill");
        assert!(!ptrs.contains(&fourth.y.as_ptr()));
        for (n, f) in held.iter().enumerate() {
            assert!(f.y.iter().all(|&b| b == n as u8), "picture {n} was written");
        }
        // Releasing one makes that buffer come back (the oldest, forgotten
        // when the fourth was made, stays with its holder), with the new content.
        let second = held[1].y.as_ptr();
        let fourth_ptr = fourth.y.as_ptr();
        let keep = [Arc::clone(&held[0]), Arc::clone(&held[2])];
        drop(held);
        drop(fourth);
        let again = pool.fill(fill(7)).expect("fill");
        assert!(again.y.iter().all(|&b| b == 7));
        assert_eq!(again.y.as_ptr(), second, "not the released buffer");
        for (k, n) in keep.iter().zip([0u8, 2]) {
            assert!(k.y.iter().all(|&b| b == n), "a held picture was written");
        }
        // Steady state (one out at a time): only the two free buffers, never
        // a new one, never a held one.
        drop(again);
        for n in 0..20 {
            let f = pool.fill(fill(n)).expect("fill");
            let p = f.y.as_ptr();
            assert!(
                p == second || p == fourth_ptr,
                "allocated or reused a held one"
            );
        }
        for (k, n) in keep.iter().zip([0u8, 2]) {
            assert!(k.y.iter().all(|&b| b == n), "a held picture was written");
        }
    }

    #[test]
    fn a_failed_fill_returns_the_picture_to_the_pool() {
        let mut pool = FramePool::new(4, 2, 2);
        let first = pool.fill(|_| Ok::<(), ()>(())).expect("fill");
        let ptr = first.y.as_ptr();
        drop(first);
        assert!(pool.fill(|_| Err::<(), _>("bad")).is_err());
        let next = pool.fill(|_| Ok::<(), ()>(())).expect("fill");
        assert_eq!(next.y.as_ptr(), ptr);
    }
}
