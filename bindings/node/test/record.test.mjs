// VideoAudioRecorder and the streamer's `record` option: real files checked
// with FFmpeg (codecs, frame counts, a clean decode).
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import { mkdtempSync, rmSync, writeFileSync, readFileSync, statSync, existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { startNginx, probe, decodeErrors, waitFor, sleep } from './helpers.mjs'

const require = createRequire(import.meta.url)
const { VideoAudioStreamer, VideoAudioRecorder } = require('../lib.js')

const SMALL = { size: '320x240', fps: 30, videoBitrate: '500k', audioBitrate: '96k', keyint: 1 }
const SECONDS = 4
const FPS = 30

let dir
let nginx
before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'onair-node-rec-'))
  nginx = await startNginx()
})
after(async () => {
  await nginx?.stop()
  if (dir) rmSync(dir, { recursive: true, force: true })
})

/** Checks a recording of ~SECONDS s: H.264 + AAC, ~120 frames, clean decode. */
function checkFile(file, final) {
  const frames = probe(file)
  assert.ok(frames.h264 > 0, `no h264 in ${file}: ${JSON.stringify(frames)}`)
  assert.ok(frames.aac > 0, `no aac in ${file}: ${JSON.stringify(frames)}`)
  // Frames the engine skipped under CPU load (2 shared cores) are not in the
  // file; allow for them beyond the ±10 tolerance.
  const skipped = final.video_frames_skipped
  const expected = SECONDS * FPS
  assert.ok(
    frames.h264 >= expected - 10 - skipped && frames.h264 <= expected + 10,
    `h264 frames ${frames.h264}, expected ${expected} ± 10 (skipped ${skipped})`,
  )
  // ~46.9 AAC frames/s at 48 kHz.
  const aacExpected = (SECONDS * 48000) / 1024
  assert.ok(Math.abs(frames.aac - aacExpected) <= 15, `aac frames ${frames.aac}, expected ~${aacExpected}`)
  assert.equal(decodeErrors(file), '', `ffmpeg decode errors in ${file}`)
  return frames
}

for (const ext of ['mp4', 'flv']) {
  test(`records ${SECONDS} s to .${ext}: h264 + aac, ~${SECONDS * FPS} frames, clean decode`, async () => {
    const file = path.join(dir, `rec.${ext}`)
    const r = new VideoAudioRecorder({ path: file, ...SMALL })
    const states = []
    const stats = []
    r.on('state', (s) => states.push(s))
    r.on('stats', (s) => stats.push(s))
    r.on('error', (e) => assert.fail(`unexpected error event: ${e.code} ${e.message}`))
    await r.start()
    const t0 = Date.now()
    await sleep(SECONDS * 1000 - (Date.now() - t0))
    const final = await r.stop()
    assert.deepEqual(await r.stop(), final, 'stop() is idempotent')

    await waitFor(() => states.includes('stopped'), 2000, "the 'stopped' state event")
    assert.deepEqual(states, ['live', 'stopped'])
    assert.ok(stats.length >= 2, `expected >= 2 stats events, got ${stats.length}`)
    assert.equal(stats[0].output, file)
    assert.ok(stats.at(-1).bytes_sent > 0)
    assert.equal(final.state, 'stopped')
    assert.equal(final.output, file)
    assert.equal(final.record_errors, 0)
    assert.equal(final.record_packets_dropped, 0)
    assert.ok(final.bytes_sent > 0 && final.bytes_sent <= statSync(file).size, `${final.bytes_sent} vs ${statSync(file).size}`)
    assert.equal(r.stats().state, 'stopped')
    const frames = checkFile(file, final)
    assert.ok(Math.abs(frames.h264 - final.video_packets_sent) <= 1, `${frames.h264} vs ${final.video_packets_sent}`)
  })
}

test('an existing file is refused with ERR_FILE_EXISTS and left untouched; overwrite replaces it', async () => {
  const file = path.join(dir, 'exists.mp4')
  writeFileSync(file, 'precious')
  const before = statSync(file)
  const r = new VideoAudioRecorder({ path: file, ...SMALL })
  await assert.rejects(r.start(), (err) => {
    assert.equal(err.code, 'ERR_FILE_EXISTS')
    assert.match(err.message, /exists\.mp4 already exists; set overwrite: true/)
    return true
  })
  assert.equal(readFileSync(file, 'utf8'), 'precious')
  assert.equal(statSync(file).mtimeMs, before.mtimeMs)
  await r.stop()

  // The streamer's `record` refuses it too, before connecting anywhere.
  const s = new VideoAudioStreamer({ url: nginx.url('exists'), record: file, ...SMALL })
  await assert.rejects(s.start(), { code: 'ERR_FILE_EXISTS' })
  await s.stop()
  assert.equal(readFileSync(file, 'utf8'), 'precious')

  const w = new VideoAudioRecorder({ path: file, overwrite: true, ...SMALL })
  await w.start()
  await sleep(1500)
  const final = await w.stop()
  assert.equal(final.state, 'stopped')
  assert.notEqual(readFileSync(file).subarray(0, 8).toString(), 'precious')
  assert.equal(decodeErrors(file), '')
})

test('a streamer with `record` publishes to nginx and writes the file; both decode cleanly', async () => {
  const key = 'withrecord'
  const file = path.join(dir, 'stream-copy.flv')
  const s = new VideoAudioStreamer({ url: nginx.url(key), record: { path: file }, ...SMALL })
  const stats = []
  const states = []
  s.on('stats', (st) => stats.push(st))
  s.on('state', (st) => states.push(st))
  s.on('error', (e) => assert.fail(`unexpected error event: ${e.code} ${e.message}`))
  await s.start()
  await sleep(SECONDS * 1000)
  const final = await s.stop()

  await waitFor(() => states.includes('stopped'), 2000, "the 'stopped' state event")
  assert.deepEqual(states.filter((x) => x !== 'connecting'), ['live', 'stopped'], `states: ${states}`)
  // `stats` stays the stream's, with the recorder's alongside.
  assert.ok(stats.length >= 2)
  const last = stats.at(-1)
  assert.match(last.output, /^rtmp:\/\//)
  assert.equal(last.recording.output, file)
  assert.ok(last.recording.bytes_sent > 0)
  assert.equal(final.state, 'stopped')
  assert.equal(final.recording.state, 'stopped')
  assert.equal(final.recording.record_errors, 0)

  await waitFor(() => nginx.recordings(key).length >= 1, 5000, 'the nginx recording')
  await sleep(500)
  const [remote] = nginx.recordings(key)
  const remoteFrames = probe(remote)
  assert.ok(remoteFrames.h264 > 0 && remoteFrames.aac > 0, JSON.stringify(remoteFrames))
  assert.equal(decodeErrors(remote), '', 'nginx recording decodes cleanly')
  checkFile(file, final)
  assert.ok(existsSync(file))
})
