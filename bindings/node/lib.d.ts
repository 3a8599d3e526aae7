// Types of the public API (lib.js). The option, stats and code types come
// from index.d.ts, which `napi build` generates from the Rust definitions.
import { EventEmitter } from 'node:events'
import type {
  AudioSource,
  BufferOptions,
  ErrorCode,
  ReconnectOptions,
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
  /** The output gave up (`ERR_PUBLISH_REJECTED`, `ERR_CONNECT`). */
  error: [error: OnairError]
  /** A connection attempt failed; another follows after `delayMs`. */
  reconnecting: [event: ReconnectingEvent]
  /** Publishing again after an outage. */
  reconnected: [event: ReconnectedEvent]
}

/** Publishes video (test pattern) and audio over RTMP; survives bad networks. */
export declare class VideoAudioStreamer extends EventEmitter {
  /** Throws `ERR_INVALID_OPTION` / `ERR_INVALID_URL` naming the option. */
  constructor(options: StreamerOptions)
  /**
   * Starts capture, encoders and the output. Resolves once live (or after
   * 20 s while the output keeps trying); rejects with `ERR_CONNECT`,
   * `ERR_PUBLISH_REJECTED`, `ERR_ENCODER`, ...; rejects with
   * `ERR_INVALID_STATE` when already started or stopped.
   */
  start(): Promise<void>
  /** Drains and closes the output; resolves with the final stats. Idempotent. */
  stop(): Promise<StreamStats>
  /** Skips the current backoff wait while reconnecting. */
  reconnectNow(): void
  /** Changes the H.264 bitrate while running (bit/s, 50k..50M). */
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

/** Options of `new VideoAudioRecorder(options)`; they mirror `onair record FILE`. */
export interface RecorderOptions {
  /** File to write (FLV/MP4 by extension, as `onair record` decides). */
  path: string
  /** Video source (default `'test'`). */
  video?: VideoSource
  /** X11 display for `video: 'screen'`. */
  display?: string
  /** Audio source (default `'test'`). */
  audio?: AudioSource
  /** A capture device by name (overrides `audio`). */
  audioDevice?: string
  /** `'WxH'` (default `'1280x720'`); or `width` and `height`. */
  size?: string
  /** Width in pixels (even, 160..3840). */
  width?: number
  /** Height in pixels (even, 160..3840). */
  height?: number
  /** Frames per second (1..120, default 30). */
  fps?: number
  /** H.264 bitrate: bit/s or `'2500k'`. */
  videoBitrate?: number | string
  /** AAC bitrate: bit/s or `'160k'`. */
  audioBitrate?: number | string
  /** Keyframe interval, seconds (0.1..20, default 2). */
  keyint?: number
}

/** Events of a VideoAudioRecorder. */
export interface RecorderEvents {
  /** `'live'` while writing, then `'stopped'` or `'failed'`. */
  state: [state: StreamState]
  /** Once a second while recording. */
  stats: [stats: StreamStats]
  /** Writing failed (`ERR_IO`). */
  error: [error: OnairError]
}

/**
 * Records to a local file. NOT AVAILABLE YET: the constructor throws
 * `ERR_NOT_IMPLEMENTED` until the library's Recorder lands.
 */
export declare class VideoAudioRecorder extends EventEmitter {
  constructor(options: RecorderOptions)
  start(): Promise<void>
  stop(): Promise<StreamStats>
  stats(): StreamStats
  on<E extends keyof RecorderEvents>(event: E, listener: (...args: RecorderEvents[E]) => void): this
  once<E extends keyof RecorderEvents>(event: E, listener: (...args: RecorderEvents[E]) => void): this
  off<E extends keyof RecorderEvents>(event: E, listener: (...args: RecorderEvents[E]) => void): this
  emit<E extends keyof RecorderEvents>(event: E, ...args: RecorderEvents[E]): boolean
}
