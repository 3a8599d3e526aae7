//! The default build's AAC backend: fdk-aac through direct FFI (fdk-aac-sys).
//!
//! Why direct FFI instead of the `fdk_aac::enc` wrapper: the wrapper cannot
//! enable the afterburner (fdk's better-quality search, which every serious
//! streamer turns on) nor open a mono-only instance. The unsafe surface is
//! kept to one small handle type. fdk-aac's licence is not GPL-compatible:
//! this file is compiled only without the `avcodec` feature (lib.rs).

use super::AAC_FRAME_SAMPLES;
use crate::Error;
use bytes::Bytes;
use fdk_aac_sys as sys;
use std::os::raw::{c_int, c_void};

/// Name in `onair --version` and errors.
pub(super) const NAME: &str = "fdk-aac";

/// fdk-aac's AOT value for MPEG-4 AAC-LC.
const AOT_AAC_LC: u32 = 2;
/// fdk-aac bitrate mode 0: constant bitrate at `AACENC_BITRATE`.
const BITRATE_MODE_CBR: u32 = 0;
/// fdk-aac transport 0: raw access units (no ADTS/LATM), as FLV carries them.
const TRANSMUX_RAW: u32 = 0;
/// Afterburner on: better quality for some more CPU (still far below real time).
const AFTERBURNER_ON: u32 = 1;

fn aac_error(what: &str, code: sys::AACENC_ERROR) -> Error {
    Error::Encoder {
        codec: "AAC",
        reason: format!("{what} failed (fdk-aac error {code:#x})"),
    }
}

fn check(what: &str, code: sys::AACENC_ERROR) -> Result<(), Error> {
    if code == sys::AACENC_ERROR_AACENC_OK {
        Ok(())
    } else {
        Err(aac_error(what, code))
    }
}

/// Owns one fdk-aac encoder instance; closes it on drop.
struct FdkHandle(sys::HANDLE_AACENCODER);

// SAFETY: an fdk-aac encoder instance has no thread affinity; `FdkHandle` is
// owned by exactly one `AudioEncoder` and only used through `&mut self`, so it
// is never touched from two threads at once.
unsafe impl Send for FdkHandle {}

impl FdkHandle {
    fn open(channels: u32) -> Result<Self, Error> {
        let mut ptr: sys::HANDLE_AACENCODER = std::ptr::null_mut();
        // SAFETY: `ptr` is a valid out-pointer; fdk allocates the instance and
        // writes its handle there (0 = all modules).
        check("aacEncOpen", unsafe {
            sys::aacEncOpen(&mut ptr, 0, channels)
        })?;
        if ptr.is_null() {
            return Err(Error::Encoder {
                codec: "AAC",
                reason: "aacEncOpen returned no instance".into(),
            });
        }
        Ok(Self(ptr))
    }

    fn set(&mut self, what: &str, param: sys::AACENC_PARAM, value: u32) -> Result<(), Error> {
        // SAFETY: `self.0` is a live handle from aacEncOpen (closed only in Drop).
        check(what, unsafe {
            sys::aacEncoder_SetParam(self.0, param, value)
        })
    }

    fn info(&self) -> Result<sys::AACENC_InfoStruct, Error> {
        let mut info = std::mem::MaybeUninit::<sys::AACENC_InfoStruct>::uninit();
        // SAFETY: live handle; `info` is a valid out-pointer that fdk fills
        // completely on success (we only read it after checking the result).
        check("aacEncInfo", unsafe {
            sys::aacEncInfo(self.0, info.as_mut_ptr())
        })?;
        // SAFETY: initialised by the successful aacEncInfo call above.
        Ok(unsafe { info.assume_init() })
    }

    /// Encodes `input` (interleaved, whole sample frames) into `output`.
    /// Returns (samples consumed, bytes written).
    fn encode(&mut self, input: &[i16], output: &mut [u8]) -> Result<(usize, usize), Error> {
        let in_len = c_int::try_from(input.len()).map_err(|_| aac_error("input too long", 0))?;
        let out_len = c_int::try_from(output.len()).map_err(|_| aac_error("output too long", 0))?;
        let mut in_ptr = input.as_ptr() as *mut c_void;
        let mut in_id = sys::AACENC_BufferIdentifier_IN_AUDIO_DATA as c_int;
        let mut in_size = in_len * std::mem::size_of::<i16>() as c_int;
        let mut in_el = std::mem::size_of::<i16>() as c_int;
        let in_desc = sys::AACENC_BufDesc {
            numBufs: 1,
            bufs: &mut in_ptr,
            bufferIdentifiers: &mut in_id,
            bufSizes: &mut in_size,
            bufElSizes: &mut in_el,
        };
        let mut out_ptr = output.as_mut_ptr() as *mut c_void;
        let mut out_id = sys::AACENC_BufferIdentifier_OUT_BITSTREAM_DATA as c_int;
        let mut out_size = out_len;
        let mut out_el: c_int = 1;
        let out_desc = sys::AACENC_BufDesc {
            numBufs: 1,
            bufs: &mut out_ptr,
            bufferIdentifiers: &mut out_id,
            bufSizes: &mut out_size,
            bufElSizes: &mut out_el,
        };
        let in_args = sys::AACENC_InArgs {
            numInSamples: in_len,
            numAncBytes: 0,
        };
        let mut out_args = sys::AACENC_OutArgs {
            numOutBytes: 0,
            numInSamples: 0,
            numAncBytes: 0,
            bitResState: 0,
        };
        // SAFETY: live handle; every descriptor points at locals that outlive
        // the call; the input buffer is only read (fdk's API takes `void*`
        // without const), sizes are in bytes as documented, and the output
        // buffer is `output.len()` writable bytes (>= maxOutBufBytes).
        check("aacEncEncode", unsafe {
            sys::aacEncEncode(self.0, &in_desc, &out_desc, &in_args, &mut out_args)
        })?;
        let consumed = usize::try_from(out_args.numInSamples).unwrap_or(0);
        let written = usize::try_from(out_args.numOutBytes)
            .unwrap_or(0)
            .min(output.len());
        Ok((consumed, written))
    }
}

impl Drop for FdkHandle {
    fn drop(&mut self) {
        // SAFETY: `self.0` came from aacEncOpen and is closed exactly once here.
        unsafe {
            sys::aacEncClose(&mut self.0);
        }
    }
}

/// An initialised fdk-aac instance and what it told about itself.
pub(super) struct Opened {
    handle: FdkHandle,
    /// AudioSpecificConfig.
    pub(super) asc: Bytes,
    /// Look-ahead (`nDelay`): priming samples before the first input sample.
    pub(super) delay_samples: u32,
    /// Scratch for one encoded frame (at least `maxOutBufBytes`).
    out_buf: Vec<u8>,
}

impl Opened {
    /// Opens AAC-LC, CBR, raw transport, afterburner on.
    pub(super) fn open(sample_rate: u32, channels: u32, bitrate_bps: u32) -> Result<Self, Error> {
        let mut h = FdkHandle::open(channels)?;
        h.set("set AOT", sys::AACENC_PARAM_AACENC_AOT, AOT_AAC_LC)?;
        h.set(
            "set sample rate",
            sys::AACENC_PARAM_AACENC_SAMPLERATE,
            sample_rate,
        )?;
        h.set(
            "set channel mode",
            sys::AACENC_PARAM_AACENC_CHANNELMODE,
            channels,
        )?;
        h.set(
            "set bitrate mode",
            sys::AACENC_PARAM_AACENC_BITRATEMODE,
            BITRATE_MODE_CBR,
        )?;
        h.set("set bitrate", sys::AACENC_PARAM_AACENC_BITRATE, bitrate_bps)?;
        h.set(
            "set transport",
            sys::AACENC_PARAM_AACENC_TRANSMUX,
            TRANSMUX_RAW,
        )?;
        h.set(
            "set afterburner",
            sys::AACENC_PARAM_AACENC_AFTERBURNER,
            AFTERBURNER_ON,
        )?;
        // SAFETY: live handle; an all-null call is fdk's documented way to
        // apply the parameters and initialise the instance.
        check("encoder init", unsafe {
            sys::aacEncEncode(
                h.0,
                std::ptr::null(),
                std::ptr::null(),
                std::ptr::null(),
                std::ptr::null_mut(),
            )
        })?;
        let info = h.info()?;
        if info.frameLength != AAC_FRAME_SAMPLES {
            return Err(Error::Encoder {
                codec: "AAC",
                reason: format!("unexpected frame length {}", info.frameLength),
            });
        }
        let conf_len = (info.confSize as usize).min(info.confBuf.len());
        Ok(Opened {
            asc: Bytes::copy_from_slice(&info.confBuf[..conf_len]),
            delay_samples: info.nDelay,
            out_buf: vec![0; (info.maxOutBufBytes as usize).max(8192)],
            handle: h,
        })
    }

    /// Encodes interleaved PCM (at most one frame). Returns the samples
    /// consumed and the AAC frame completed, if any.
    pub(super) fn encode(&mut self, input: &[i16]) -> Result<(usize, Option<Bytes>), Error> {
        let (consumed, written) = self.handle.encode(input, &mut self.out_buf)?;
        let frame = (written > 0).then(|| Bytes::copy_from_slice(&self.out_buf[..written]));
        Ok((consumed, frame))
    }
}
