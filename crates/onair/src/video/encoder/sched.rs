//! Keeps the scheduling policy of onair's threads what it was when an
//! encoder library changes it while opening.
//!
//! Why: SVT-AV1 (1.4, through FFmpeg 5.1), opened by a process allowed to
//! (root, as in CI and the benchmarks), switches the thread that opens it to
//! `SCHED_FIFO` priority 99 and starts its ~190 worker threads the same way;
//! every thread onair starts afterwards (CaptureThread, file source,
//! recorder, encoder thread) inherits it. Real-time threads of one priority
//! are never preempted by each other, so an SVT-AV1 worker ran 170 ms while
//! the CaptureThread, runnable, waited 110-157 ms at a time (`perf sched
//! timehist`), and the capture skipped those slots (docs/benchmarks.md,
//! "Encoders: quality and CPU"). [`keep_normal_scheduling`] runs the open
//! and puts back the caller's own policy, and the normal one
//! (`SCHED_OTHER`, its nice value kept) on every real-time thread the open
//! started.

use std::collections::BTreeSet;

/// The ids of this process's threads now.
fn threads() -> BTreeSet<i32> {
    std::fs::read_dir("/proc/self/task")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// True for the real-time policies.
fn real_time(policy: i32) -> bool {
    policy == libc::SCHED_FIFO || policy == libc::SCHED_RR
}

/// Runs `open` (an encoder's open) and undoes the real-time scheduling it
/// gave to the calling thread and to the threads it started (module doc).
pub(super) fn keep_normal_scheduling<T>(open: impl FnOnce() -> T) -> T {
    let before = threads();
    // SAFETY: FFI edge: sched_getscheduler/sched_getparam on the calling
    // thread (0) only read its policy into a zeroed plain struct we own.
    let (policy, param) = unsafe {
        let mut param: libc::sched_param = std::mem::zeroed();
        (
            libc::sched_getscheduler(0),
            (libc::sched_getparam(0, &mut param) == 0).then_some(param),
        )
    };
    let out = open();
    let normal = libc::sched_param { sched_priority: 0 };
    let mut demoted = 0;
    for tid in threads().difference(&before) {
        // SAFETY: FFI edge: a thread id of this process (it may have ended
        // since: the call then fails with ESRCH, which is fine); the param
        // is a plain struct that outlives the call.
        unsafe {
            if real_time(libc::sched_getscheduler(*tid))
                && libc::sched_setscheduler(*tid, libc::SCHED_OTHER, &normal) == 0
            {
                demoted += 1;
            }
        }
    }
    // SAFETY: FFI edge: sets the calling thread's policy back to the one it
    // had before `open`, with the parameters read then.
    unsafe {
        if let Some(param) = param {
            if policy >= 0 && libc::sched_getscheduler(0) != policy {
                libc::sched_setscheduler(0, policy, &param);
                demoted += 1;
            }
        }
    }
    if demoted > 0 {
        tracing::debug!(
            threads = demoted,
            "encoder open made threads real-time; set back to normal scheduling"
        );
    }
    out
}
