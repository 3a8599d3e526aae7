// Compile-only check of lib.d.ts (`npm run typecheck`): correct uses compile,
// and the `@ts-expect-error` lines prove wrong ones are rejected.
import { VideoAudioStreamer, VideoAudioRecorder } from '../lib'
import type { StreamStats, StreamState, OnairError, ReconnectingEvent, RecorderStats, ErrorCode } from '../lib'

async function main(): Promise<void> {
  const s = new VideoAudioStreamer({
    url: 'rtmp://127.0.0.1/live/key',
    video: 'test',
    audio: 'none',
    size: '640x360',
    fps: 30,
    videoBitrate: '2500k',
    audioBitrate: 160_000,
    keyint: 2,
    buffer: { packets: 100, ms: 2000, bytes: 4 << 20 },
    stallTimeoutMs: 5000,
    reconnect: { maxDelayMs: 30_000, maxRetries: 10 },
  })
  s.on('stats', (st: StreamStats) => {
    const n: number = st.video_frames_captured + st.audio_frames_sent + st.capture_late_max_ms + st.redirects
    const state: StreamState = st.state
    void n
    void state
  })
  s.on('state', (state) => {
    const live: boolean = state === 'live'
    void live
  })
  s.on('error', (err: OnairError) => {
    const code: 'ERR_PUBLISH_REJECTED' | string = err.code
    void code
  })
  s.on('reconnecting', (ev: ReconnectingEvent) => void ev.delayMs)
  s.on('reconnected', (ev) => void ev.downtimeMs)
  await s.start()
  s.reconnectNow()
  const final: StreamStats = await s.stop()
  void final

  // @ts-expect-error: unknown event
  s.on('progress', () => {})
  // @ts-expect-error: stats listener gets StreamStats, not string
  s.on('stats', (x: string) => void x)
  // @ts-expect-error: unknown video source
  new VideoAudioStreamer({ url: 'rtmp://h/a/k', video: 'webcam' })
  // @ts-expect-error: url is required
  new VideoAudioStreamer({ fps: 30 })
  // @ts-expect-error: fps is a number
  new VideoAudioStreamer({ url: 'rtmp://h/a/k', fps: '30' })

  const r = new VideoAudioRecorder({ path: 'out.flv', size: '1280x720', overwrite: true, audio: 'none' })
  r.on('stats', (st: RecorderStats) => void (st.t_ms + st.bytes_sent + st.record_packets_dropped))
  r.on('state', (state: StreamState) => void state)
  r.on('error', (err: OnairError) => void err.code)
  await r.start()
  const rfinal: RecorderStats = await r.stop()
  const errors: number = r.stats().record_errors + rfinal.record_errors
  void errors
  const fileExists: ErrorCode = 'ERR_FILE_EXISTS'
  void fileExists
  const certificate: ErrorCode = 'ERR_CERTIFICATE'
  void certificate
  // @ts-expect-error: path is required
  new VideoAudioRecorder({ size: '1280x720' })
  // @ts-expect-error: a recorder has no url
  new VideoAudioRecorder({ path: 'a.mp4', url: 'rtmp://h/a/k' })
  // @ts-expect-error: recorder stats have no reconnects
  r.on('stats', (st) => void st.reconnects)

  // The streamer's `record`: a path or { path, overwrite }.
  new VideoAudioStreamer({ url: 'rtmp://h/a/k', record: 'out.mp4' })
  const s2 = new VideoAudioStreamer({ url: 'rtmp://h/a/k', record: { path: 'out.flv', overwrite: true } })
  s2.on('stats', (st) => {
    const written: number | undefined = st.recording?.bytes_sent
    void written
  })
  // @ts-expect-error: record.path is required
  new VideoAudioStreamer({ url: 'rtmp://h/a/k', record: { overwrite: true } })
}
void main
