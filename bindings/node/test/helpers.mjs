// Test helpers. The peers and judges are the project's one test kit
// (crates/onair-testkit), driven through its `testkit-peer` binary: the same
// nginx-rtmp setup, fault proxy and FFmpeg judge as the Rust tests.
import { spawn, execFileSync } from 'node:child_process'
import { existsSync, readdirSync } from 'node:fs'
import { createInterface } from 'node:readline'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..')

/** The test kit's binary: $ONAIR_TESTKIT_PEER, or where cargo builds it. */
function peerBinary() {
  const candidates = [
    process.env.ONAIR_TESTKIT_PEER,
    path.join(ROOT, 'target', 'x86_64-unknown-linux-gnu', 'release', 'testkit-peer'),
    path.join(ROOT, 'target', 'release', 'testkit-peer'),
  ].filter(Boolean)
  const found = candidates.find((p) => existsSync(p))
  if (!found) {
    throw new Error(`testkit-peer not built (cargo build --release -p onair-testkit --bins); looked in ${candidates}`)
  }
  return found
}

/**
 * Starts `testkit-peer ARGS...`, waits for its first JSON line, and gives a
 * `command(line)` that resolves with the JSON line it answers. The peer ends
 * (and kills what it started) when its stdin closes: `stop()`, or this
 * process's death.
 */
async function startPeer(args) {
  const proc = spawn(peerBinary(), args, { stdio: ['pipe', 'pipe', 'pipe'] })
  let stderr = ''
  proc.stderr.on('data', (d) => { stderr += d })
  const exited = new Promise((resolve) => proc.once('exit', resolve))
  const lines = createInterface({ input: proc.stdout })
  const waiting = []
  lines.on('line', (line) => { const w = waiting.shift(); if (w) w(JSON.parse(line)) })
  const next = () => Promise.race([
    new Promise((resolve) => waiting.push(resolve)),
    exited.then((code) => { throw new Error(`testkit-peer ${args.join(' ')} exited (${code}): ${stderr}`) }),
  ])
  const hello = await next()
  return {
    hello,
    async command(line) {
      const answer = next()
      proc.stdin.write(`${line}\n`)
      return answer
    },
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.stdin.end('stop\n')
        await exited
      }
    },
  }
}

/**
 * nginx-rtmp recording every publish to its own file (the test kit's
 * `NginxRtmp`). `stop()` kills it (call it from `after()`).
 */
export async function startNginx() {
  const peer = await startPeer(['nginx'])
  const { port, record_dir: recordDir } = peer.hello
  return {
    port,
    url: (key) => `rtmp://127.0.0.1:${port}/live/${key}`,
    /** Recorded files whose name starts with `key`. */
    recordings: (key) => readdirSync(recordDir).filter((f) => f.startsWith(key)).sort().map((f) => path.join(recordDir, f)),
    stop: () => peer.stop(),
  }
}

/**
 * nginx-rtmp behind RTMPS fronts (nginx's stream module, OpenSSL), one per
 * certificate of a test PKI made for it (the test kit's `TestPki`): `good`
 * (signed by the test CA, for localhost and 127.0.0.1), `self_signed`,
 * `wrong_name`, `expired`. `caFile` is the test CA's PEM.
 */
export async function startNginxTls() {
  const peer = await startPeer(['nginx-tls'])
  const { port, record_dir: recordDir, ca_file: caFile, tls_ports: tlsPorts } = peer.hello
  return {
    port,
    caFile,
    /** `rtmps://127.0.0.1:PORT/live/KEY` through the front with certificate `cert`. */
    url: (cert, key) => `rtmps://127.0.0.1:${tlsPorts[cert]}/live/${key}`,
    recordings: (key) => readdirSync(recordDir).filter((f) => f.startsWith(key)).sort().map((f) => path.join(recordDir, f)),
    stop: () => peer.stop(),
  }
}

/**
 * The test kit's fault proxy to 127.0.0.1:`targetPort`: `cut(ms)` resets
 * every live connection and refuses new ones for `ms` (a link cut, as the
 * streamer sees it).
 */
export async function startProxy(targetPort) {
  const peer = await startPeer(['proxy', String(targetPort)])
  const { port } = peer.hello
  return {
    port,
    url: (key) => `rtmp://127.0.0.1:${port}/live/${key}`,
    cut: (refuseMs) => peer.command(`cut ${refuseMs}`),
    /** Connections accepted so far. */
    accepted: async () => (await peer.command('connections')).connections,
    close: () => peer.stop(),
  }
}

function judge(file) {
  return JSON.parse(execFileSync(peerBinary(), ['judge', file], { encoding: 'utf8' }))
}

/** Streams of `file` as ffprobe counts them: { h264: frames, aac: frames }. */
export function probe(file) {
  return judge(file).frames
}

/** What `ffmpeg -v error` prints while decoding `file` completely ('' = clean). */
export function decodeErrors(file) {
  return judge(file).decode_errors
}

/** Waits until `pred()` is true, polling. */
export async function waitFor(pred, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (await pred()) return
    await sleep(50)
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
}

/** The SPEC's stats fields. */
export const SPEC_STATS_FIELDS = [
  't_ms', 'state', 'bytes_sent', 'kbps', 'buffer_ms', 'buffer_packets', 'video_frames_captured',
  'video_frames_duplicated', 'video_frames_skipped', 'video_packets_sent', 'video_dropped_congestion',
  'video_dropped_disconnected', 'audio_frames_sent', 'audio_frames_dropped', 'audio_silence_frames',
  'reconnects', 'capture_late_max_ms', 'audio_late_max_ms',
]
