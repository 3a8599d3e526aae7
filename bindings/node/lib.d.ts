// Types of the public API (lib.js). The option, stats and code types come
// from index.d.ts, which `napi build` generates from the Rust definitions.
import { EventEmitter } from 'node:events'
import type {
  AudioSource,
  BufferOptions,
  ErrorCode,
  ReconnectOptions,
  RecordOptions,
  RecorderOptions,
  RecorderStats,
  StreamerOptions,
  StreamState,
  StreamStats,
  VideoSource,
} from './index'

export type {
  AudioSource,
  BufferOptions,
  ErrorCode,
  ReconnectOptions,
  RecordOptions,
  RecorderOptions,
  RecorderStats,
  StreamerOptions,
  StreamState,
  StreamStats,
  VideoSource,
}

/** Every error the addon throws, rejects with or emits. The message never contains the stream key. */
export interface OnairError extends Error {
  code: ErrorCode
}

/** Payload of `'reconnecting'`: a connection attempt failed or the link went down. */
export interface ReconnectingEvent {
  /** Attempts so far in this outage. */
  attempt: number
  /** Wait before the next attempt, ms (`reconnectNow()` skips it). */
  delayMs: number
  /** Why (stream key redacted). */
  reason: string
}

/** Payload of `'reconnected'`: publishing again after an outage. */
export interface ReconnectedEvent {
  /** From failure detection to live again, ms. */
  downtimeMs: number
}

/** Events of a VideoAudioStreamer and their listener signatures. */
export interface StreamerEvents {
  /** The link state changed. */
  state: [state: StreamState]
  /** Once a second while running (coalesced if the JS thread is busy). */
  stats: [stats: StreamStats]
  /** The stream output gave up (`ERR_PUBLISH_REJECTED`; `ERR_CERTIFICATE`: the server's TLS
   * certificate failed verification; `ERR_CONNECT`). A failure of the
   * `record` file is not an error event: see `stats.recording.state` / `last_error`. */
  error: [error: OnairError]
  /** A connection attempt failed; another follows after `delayMs`. */
  reconnecting: [event: ReconnectingEvent]
  /** Publishing again after an outage. */
  reconnected: [event: ReconnectedEvent]
  /** The `input` file played to its end (no `loop`): call `stop()`. A file that cannot be
   * read to its end is an `error` event with `ERR_SOURCE` instead. */
  end: []
}

/** Publishes video (test pattern) and audio over RTMP; survives bad networks. */
export declare class VideoAudioStreamer extends EventEmitter {
  /** Throws `ERR_INVALID_OPTION` / `ERR_INVALID_URL` naming the option. */
  constructor(options: StreamerOptions)
  /**
   * Starts capture, encoders and the output. Resolves once live (or after
   * 20 s while the output keeps trying); rejects with `ERR_CONNECT`,
   * `ERR_PUBLISH_REJECTED`, `ERR_CERTIFICATE`, `ERR_ENCODER`, `ERR_FILE_EXISTS` (the `record`
   * file exists and `overwrite` is not set), ...; rejects with
   * `ERR_INVALID_STATE` when already started or stopped.
   */
  start(): Promise<void>
  /** Drains and closes the output; resolves with the final stats. Idempotent. */
  stop(): Promise<StreamStats>
  /** Skips the current backoff wait while reconnecting. */
  reconnectNow(): void
  /**
   * Changes the H.264 bitrate while running (bit/s, 50k..50M). With adaptive
   * bitrate it becomes the new ceiling: onair never goes above it.
   */
  setVideoBitrate(bps: number): void
  /** The current stats snapshot. */
  stats(): StreamStats

  on<E extends keyof StreamerEvents>(event: E, listener: (...args: StreamerEvents[E]) => void): this
  once<E extends keyof StreamerEvents>(event: E, listener: (...args: StreamerEvents[E]) => void): this
  off<E extends keyof StreamerEvents>(event: E, listener: (...args: StreamerEvents[E]) => void): this
  addListener<E extends keyof StreamerEvents>(event: E, listener: (...args: StreamerEvents[E]) => void): this
  removeListener<E extends keyof StreamerEvents>(event: E, listener: (...args: StreamerEvents[E]) => void): this
  emit<E extends keyof StreamerEvents>(event: E, ...args: StreamerEvents[E]): boolean
}

/** Events of a VideoAudioRecorder. */
export interface RecorderEvents {
  /** `'live'` once writing, then `'stopped'`, or `'failed'` after a write error. */
  state: [state: StreamState]
  /** Once a second while recording (coalesced if the JS thread is busy). */
  stats: [stats: RecorderStats]
  /** Writing failed (`ERR_IO`: disk full, I/O error); the recorder stops writing. Also
   * `ERR_SOURCE`: the `input` file cannot be read to its end. */
  error: [error: OnairError]
  /** The `input` file played to its end (no `loop`): call `stop()`. */
  end: []
}

/** Records video (test pattern or screen) and audio to a local `.flv` or `.mp4` file. */
export declare class VideoAudioRecorder extends EventEmitter {
  /**
   * Throws `ERR_INVALID_OPTION` naming the option (`path` must end in
   * `.flv` or `.mp4`). Does not touch the file.
   */
  constructor(options: RecorderOptions)
  /**
   * Creates the file and starts capture and encoders; resolves once writing.
   * Rejects with `ERR_FILE_EXISTS` (file exists and `overwrite` is not set; the
   * file is left untouched and `start()` may be retried), `ERR_IO`,
   * `ERR_ENCODER`, `ERR_SOURCE`; with `ERR_INVALID_STATE` when already started or stopped.
   */
  start(): Promise<void>
  /** Writes what is queued, closes the file; resolves with the final stats. Idempotent. */
  stop(): Promise<RecorderStats>
  /** The current stats snapshot. */
  stats(): RecorderStats

  on<E extends keyof RecorderEvents>(event: E, listener: (...args: RecorderEvents[E]) => void): this
  once<E extends keyof RecorderEvents>(event: E, listener: (...args: RecorderEvents[E]) => void): this
  off<E extends keyof RecorderEvents>(event: E, listener: (...args: RecorderEvents[E]) => void): this
  addListener<E extends keyof RecorderEvents>(event: E, listener: (...args: RecorderEvents[E]) => void): this
  removeListener<E extends keyof RecorderEvents>(event: E, listener: (...args: RecorderEvents[E]) => void): this
  emit<E extends keyof RecorderEvents>(event: E, ...args: RecorderEvents[E]): boolean
}
