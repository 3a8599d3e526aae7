//! How a picture enters a libavcodec frame: by reference where the encoder
//! copies it anyway, else copied.
//!
//! Why apart from `avcodec.rs`: the encoder there owns the codec context and
//! its packets; this is the one place that lends an `I420Frame`'s planes to
//! C (each plane an `AVBufferRef` holding a clone of the picture's `Arc`), so
//! its unsafe code and the rules it relies on are read together.

use super::EncoderKind;
use crate::video::frame::I420Frame;
use ffmpeg_next as ff;
use std::ffi::c_void;
use std::sync::Arc;

/// Alignment, in bytes, that plane addresses and line sizes must have for a
/// picture to be handed to the encoder by reference (else it is copied).
/// libx264, libx265 and SVT-AV1 take any stride (libavcodec passes them
/// `data`/`linesize` as they are, e.g. a rawvideo packet's) and copy rows
/// with unaligned loads; 16 (SSE, what `malloc` returns) is kept as a floor
/// so a picture is never slower to read than a copy would have been.
pub const BY_REFERENCE_ALIGN: usize = 16;

/// True for the encoders whose libavcodec wrapper hands `data`/`linesize`
/// to a library that copies the picture before the encode call returns, so
/// borrowing the `I420Frame`'s planes saves a full copy and never lets the
/// library keep pointers into them. Hardware encoders upload (or map) on
/// their own terms: they get a copy.
pub(super) fn takes_pictures_by_reference(kind: EncoderKind) -> bool {
    matches!(
        kind,
        EncoderKind::X264 | EncoderKind::X265 | EncoderKind::SvtAv1
    )
}

/// An AVFrame whose three planes are `picture`'s own, without a copy: each
/// plane is an `AVBufferRef` created over it that owns one clone of the
/// `Arc`, released by [`release_picture`] when libavutil drops the last
/// reference (ours when this frame is dropped, or the encoder's later).
/// `None` when a plane is too short or not aligned to
/// [`BY_REFERENCE_ALIGN`] (the caller copies instead), or on allocation
/// failure.
pub(super) fn borrow_planes(picture: &Arc<I420Frame>) -> Option<ff::frame::Video> {
    let (w, h) = (picture.width as usize, picture.height as usize);
    let planes = [
        (&picture.y, w, h),
        (&picture.u, w / 2, h / 2),
        (&picture.v, w / 2, h / 2),
    ];
    let fits = planes.iter().all(|(data, stride, rows)| {
        data.len() >= stride * rows
            && (data.as_ptr() as usize).is_multiple_of(BY_REFERENCE_ALIGN)
            && stride.is_multiple_of(BY_REFERENCE_ALIGN)
            && i32::try_from(*stride).is_ok()
    });
    if !fits || w == 0 || h == 0 {
        return None;
    }
    let mut frame = ff::frame::Video::empty();
    // SAFETY: FFI edge: the pointer of the AVFrame `frame` owns (null if its
    // allocation failed, checked below).
    let p = unsafe { frame.as_mut_ptr() };
    if p.is_null() {
        return None;
    }
    // SAFETY: FFI edge. `p` is a freshly allocated, empty AVFrame that only
    // this function touches. Each buffer points into a plane of `picture`,
    // which cannot move or change while an `Arc` to it is alive: the buffer
    // owns one (`into_raw`), given back by `release_picture` exactly once
    // when libavutil frees the buffer; on a failed creation it is taken back
    // here. The buffers are read-only (AV_BUFFER_FLAG_READONLY): libavcodec
    // copies before writing. The sizes were checked against the planes above.
    unsafe {
        (*p).format = ff::ffi::AVPixelFormat::AV_PIX_FMT_YUV420P as i32;
        (*p).width = i32::try_from(w).ok()?;
        (*p).height = i32::try_from(h).ok()?;
        for (i, (data, stride, rows)) in planes.into_iter().enumerate() {
            let opaque = Arc::into_raw(Arc::clone(picture)) as *mut c_void;
            let buf = ff::ffi::av_buffer_create(
                data.as_ptr().cast_mut(),
                stride * rows,
                Some(release_picture),
                opaque,
                ff::ffi::AV_BUFFER_FLAG_READONLY,
            );
            if buf.is_null() {
                drop(Arc::from_raw(opaque as *const I420Frame));
                return None; // the frame's drop releases the planes set so far
            }
            (*p).buf[i] = buf;
            (*p).data[i] = data.as_ptr().cast_mut();
            (*p).linesize[i] = stride as i32;
        }
    }
    Some(frame)
}

/// libavutil's free callback for a plane made by [`borrow_planes`]: gives
/// back the `Arc<I420Frame>` the buffer owned.
unsafe extern "C" fn release_picture(opaque: *mut c_void, _data: *mut u8) {
    // SAFETY: FFI edge. `opaque` is the `Arc::into_raw` of this buffer's
    // creation in `borrow_planes`; libavutil calls this once per buffer.
    unsafe { drop(Arc::from_raw(opaque as *const I420Frame)) }
}

/// Copies an I420 frame into an FFmpeg YUV420P frame (whose lines may be padded).
pub(super) fn copy_planes(src: &I420Frame, dst: &mut ff::frame::Video) {
    let (w, h) = (src.width as usize, src.height as usize);
    for (plane, data, pw, ph) in [
        (0, &src.y, w, h),
        (1, &src.u, w / 2, h / 2),
        (2, &src.v, w / 2, h / 2),
    ] {
        let stride = dst.stride(plane);
        let out = dst.data_mut(plane);
        for row in 0..ph {
            let from = &data[row * pw..row * pw + pw];
            out[row * stride..row * stride + pw].copy_from_slice(from);
        }
    }
}
