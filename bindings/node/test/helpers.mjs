// Test helpers: a real nginx-rtmp started per test file, a TCP proxy that can
// cut the link, FFmpeg checks of what nginx recorded, and engine-thread counts.
import { spawn, execFileSync } from 'node:child_process'
import { mkdtempSync, writeFileSync, readdirSync, rmSync, readFileSync, existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import net from 'node:net'
import path from 'node:path'

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

/** A free TCP port on 127.0.0.1. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address()
      srv.close(() => resolve(port))
    })
  })
}

/** Resolves once something accepts TCP connections on `port`. */
async function waitListening(port, timeoutMs) {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    const ok = await new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1')
      s.once('connect', () => { s.destroy(); resolve(true) })
      s.once('error', () => resolve(false))
    })
    if (ok) return
    await sleep(50)
  }
  throw new Error(`nothing listening on ${port} after ${timeoutMs} ms`)
}

/**
 * Starts nginx-rtmp in the foreground, recording every publish to its own
 * file. `stop()` kills it by pid (call it from `after()`).
 */
export async function startNginx() {
  const dir = mkdtempSync(path.join(tmpdir(), 'onair-node-nginx-'))
  const recordDir = path.join(dir, 'rec')
  execFileSync('mkdir', ['-p', recordDir, path.join(dir, 'logs')])
  const port = await freePort()
  const conf = path.join(dir, 'nginx.conf')
  writeFileSync(conf, `daemon off;
master_process off;
pid ${dir}/nginx.pid;
error_log ${dir}/err.log info;
load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;
events { worker_connections 64; }
rtmp {
  server {
    listen 127.0.0.1:${port};
    chunk_size 4096;
    application live {
      live on;
      record all;
      record_path ${recordDir};
      record_unique on;
    }
  }
}
`)
  const proc = spawn('nginx', ['-p', dir, '-e', path.join(dir, 'err.log'), '-c', conf], {
    stdio: ['ignore', 'ignore', 'pipe'],
  })
  let stderr = ''
  proc.stderr.on('data', (d) => { stderr += d })
  const exited = new Promise((resolve) => proc.once('exit', resolve))
  try {
    await Promise.race([
      waitListening(port, 10_000),
      exited.then((code) => { throw new Error(`nginx exited (${code}): ${stderr}`) }),
    ])
  } catch (err) {
    proc.kill('SIGKILL')
    throw err
  }
  return {
    port,
    dir,
    recordDir,
    url: (key) => `rtmp://127.0.0.1:${port}/live/${key}`,
    /** Recorded files whose name starts with `key`. */
    recordings: (key) => readdirSync(recordDir).filter((f) => f.startsWith(key)).sort().map((f) => path.join(recordDir, f)),
    errorLog: () => (existsSync(path.join(dir, 'err.log')) ? readFileSync(path.join(dir, 'err.log'), 'utf8') : ''),
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) {
        process.kill(proc.pid, 'SIGKILL')
        await exited
      }
      rmSync(dir, { recursive: true, force: true })
    },
  }
}

/**
 * A TCP proxy to 127.0.0.1:`targetPort` that can cut every live connection
 * and refuse new ones for a while (a link cut, as the streamer sees it).
 */
export async function startProxy(targetPort) {
  const pairs = new Set()
  let refuseUntil = 0
  let accepted = 0
  const server = net.createServer((client) => {
    if (Date.now() < refuseUntil) {
      client.destroy()
      return
    }
    accepted++
    const upstream = net.connect(targetPort, '127.0.0.1')
    const pair = { client, upstream }
    pairs.add(pair)
    const close = () => { client.destroy(); upstream.destroy(); pairs.delete(pair) }
    client.on('error', close).on('close', close)
    upstream.on('error', close).on('close', close)
    client.pipe(upstream)
    upstream.pipe(client)
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address()
  return {
    port,
    url: (key) => `rtmp://127.0.0.1:${port}/live/${key}`,
    get accepted() { return accepted },
    /** Resets every live connection and refuses new ones for `refuseMs`. */
    cut(refuseMs) {
      refuseUntil = Date.now() + refuseMs
      for (const { client, upstream } of pairs) {
        client.resetAndDestroy()
        upstream.destroy()
      }
      pairs.clear()
    },
    close() {
      for (const { client, upstream } of pairs) { client.destroy(); upstream.destroy() }
      return new Promise((resolve) => server.close(resolve))
    },
  }
}

/** Streams of `file` as ffprobe counts them: { h264: frames, aac: frames }. */
export function probe(file) {
  const out = execFileSync('ffprobe', [
    '-v', 'error', '-count_frames', '-show_entries', 'stream=codec_name,nb_read_frames',
    '-of', 'json', file,
  ], { encoding: 'utf8' })
  const frames = {}
  for (const s of JSON.parse(out).streams) frames[s.codec_name] = Number(s.nb_read_frames)
  return frames
}

/** What `ffmpeg -v error` prints while decoding `file` completely ('' = clean). */
export function decodeErrors(file) {
  const r = spawnSyncText('ffmpeg', ['-nostdin', '-v', 'error', '-i', file, '-f', 'null', '-'])
  return r
}

function spawnSyncText(cmd, args) {
  try {
    execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
    return ''
  } catch (err) {
    return `${err.stdout ?? ''}${err.stderr ?? ''}` || String(err)
  }
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
