'use strict'
// The public JS API of onair: EventEmitter classes around the native objects.
//
// Why a JS layer: Node users expect `on('stats', cb)` and `Error`s with a
// `code`; napi-rs gives us a class and thread-safe callbacks. This file turns
// one native listener into EventEmitter events, maps option-type errors to
// ERR_INVALID_OPTION, and makes sure that neither garbage collection nor
// `process.exit()` leaves engine threads running:
// - the native listener holds the emitter only through a WeakRef, so an
//   unreferenced streamer can be collected (its native Drop stops the pipeline);
// - `process.on('exit')` stops every live pipeline synchronously.

const { EventEmitter } = require('node:events')
/**
 * Shared libraries the addon links from the system (the rest is inside the
 * .node file), with the Debian/Ubuntu package that provides each: a missing
 * one becomes an Error that says what to install, not a bare dlopen failure.
 */
const SYSTEM_LIBRARIES = [
  ['libasound.so.2', 'libasound2'],
  ['libpulse.so.0', 'libpulse0'],
  ['libstdc++.so.6', 'libstdc++6'],
]

function loadNative() {
  try {
    return require('./index.js')
  } catch (err) {
    // napi-rs's loader wraps the dlopen errors it collected in `cause`.
    const texts = []
    for (let e = err; e; e = e.cause) texts.push(String(e.message))
    const text = texts.join('\n')
    const missing = SYSTEM_LIBRARIES.find(([lib]) => text.includes(lib))
    if (missing) {
      const e = new Error(`@onair/node needs the system library ${missing[0]}: install it (Debian/Ubuntu: apt-get install ${missing[1]})`)
      e.code = 'ERR_MISSING_SYSTEM_LIBRARY'
      e.cause = err
      throw e
    }
    throw err
  }
}

const native = loadNative()

const STREAMER_OPTIONS = new Set([
  'url', 'streamKey', 'video', 'display', 'window', 'audio', 'audioDevice', 'size', 'width', 'height',
  'fps', 'videoBitrate', 'audioBitrate', 'keyint', 'buffer', 'stallTimeoutMs', 'reconnect', 'record',
  'adaptiveBitrate', 'minVideoBitrate', 'caFile', 'videoEncoder', 'videoCodec', 'preset', 'profile', 'bframes', 'input', 'loop',
])
const NESTED_OPTIONS = {
  buffer: new Set(['packets', 'ms', 'bytes']),
  reconnect: new Set(['maxDelayMs', 'maxRetries']),
  // `record` may also be a string (the path).
  record: new Set(['path', 'overwrite']),
}
const RECORDER_OPTIONS = new Set([
  'path', 'overwrite', 'video', 'display', 'window', 'audio', 'audioDevice', 'size', 'width', 'height', 'fps',
  'videoBitrate', 'audioBitrate', 'keyint', 'videoEncoder', 'videoCodec', 'preset', 'profile', 'bframes',
])

/** Builds an `Error` with a `code`, as the native side does. */
function codedError(code, message) {
  const err = new Error(message)
  err.code = code
  return err
}

/** Rejects unknown keys (typos) and non-object options with the option's name. */
function checkKeys(options, allowed, nested) {
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw codedError('ERR_INVALID_OPTION', 'invalid option options: expected an object')
  }
  for (const key of Object.keys(options)) {
    if (!allowed.has(key)) {
      throw codedError('ERR_INVALID_OPTION', `invalid option ${key}: unknown option`)
    }
    const sub = nested[key]
    if (sub !== undefined && options[key] !== undefined && typeof options[key] !== 'string') {
      const value = options[key]
      if (value === null || typeof value !== 'object' || Array.isArray(value)) {
        throw codedError('ERR_INVALID_OPTION', `invalid option ${key}: expected an object`)
      }
      for (const k of Object.keys(value)) {
        if (!sub.has(k)) {
          throw codedError('ERR_INVALID_OPTION', `invalid option ${key}.${k}: unknown option`)
        }
      }
    }
  }
}

/**
 * napi's own conversion errors (wrong JS type for a field) carry napi status
 * codes; give them ours. Their message names the field.
 */
function normalizeError(err) {
  if (err instanceof Error && (typeof err.code !== 'string' || !err.code.startsWith('ERR_'))) {
    const field = /on \w+\.(\w+)/.exec(err.message) || /Missing field `(\w+)`/.exec(err.message)
    const name = field ? field[1] : 'options'
    const wrapped = codedError('ERR_INVALID_OPTION', `invalid option ${name}: ${err.message}`)
    wrapped.cause = err
    return wrapped
  }
  return err
}

const live = new Set()
let exitHookInstalled = false
function installExitHook() {
  if (exitHookInstalled) return
  exitHookInstalled = true
  process.once('exit', () => {
    native.shutdownAll()
  })
}

/** Re-emits one native event on `emitter`. */
function emitNative(emitter, ev) {
  switch (ev.kind) {
    case 'state':
      emitter.emit('state', ev.state)
      break
    case 'stats':
      emitter.emit('stats', ev.stats ?? ev.recordStats)
      break
    case 'error':
      emitter.emit('error', codedError(ev.code, ev.message))
      break
    case 'reconnecting':
      emitter.emit('reconnecting', { attempt: ev.attempt, delayMs: ev.delayMs, reason: ev.reason })
      break
    case 'reconnected':
      emitter.emit('reconnected', { downtimeMs: ev.downtimeMs })
      break
    case 'end':
      emitter.emit('end')
      break
  }
}

/**
 * What both classes share: the native object, and a `start()` whose native
 * listener holds the emitter only through a WeakRef (so GC can collect a
 * running object; its native Drop stops the pipeline).
 */
class NativeBacked extends EventEmitter {
  #native

  /** The native object, for subclasses (not part of the API). */
  static nativeOf(obj) {
    return obj.#native
  }

  constructor(NativeClass, options, allowed, nested) {
    super()
    checkKeys(options, allowed, nested)
    try {
      this.#native = new NativeClass(options)
    } catch (err) {
      throw normalizeError(err)
    }
  }

  start() {
    installExitHook()
    const ref = new WeakRef(this)
    let promise
    try {
      promise = this.#native.start((ev) => {
        const self = ref.deref()
        if (self !== undefined) emitNative(self, ev)
      })
    } catch (err) {
      return Promise.reject(err)
    }
    return promise
  }

  stop() {
    return this.#native.stop()
  }

  stats() {
    return this.#native.stats()
  }
}

/** Publishes a test pattern (or a screen) and audio to an RTMP server. */
class VideoAudioStreamer extends NativeBacked {
  constructor(options) {
    super(native.NativeStreamer, options, STREAMER_OPTIONS, NESTED_OPTIONS)
  }

  reconnectNow() {
    NativeBacked.nativeOf(this).reconnectNow()
  }

  setVideoBitrate(bps) {
    NativeBacked.nativeOf(this).setVideoBitrate(bps)
  }
}

/**
 * Records the test pattern (or a screen) and audio to a local .flv or .mp4
 * file, no network. The file is created by `start()`, which rejects with
 * ERR_FILE_EXISTS when it exists and `overwrite` is not set.
 */
class VideoAudioRecorder extends NativeBacked {
  constructor(options) {
    checkKeys(options, RECORDER_OPTIONS, {})
    if (typeof options.path !== 'string') {
      throw codedError('ERR_INVALID_OPTION', 'invalid option path: expected a file path')
    }
    super(native.NativeRecorder, options, RECORDER_OPTIONS, {})
  }
}

module.exports = { VideoAudioStreamer, VideoAudioRecorder }
