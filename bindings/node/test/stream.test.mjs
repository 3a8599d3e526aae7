// Streams to a real nginx-rtmp and checks events, stats and the recording.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import { startNginx, startProxy, probe, decodeErrors, waitFor, sleep, SPEC_STATS_FIELDS } from './helpers.mjs'

const require = createRequire(import.meta.url)
const { VideoAudioStreamer } = require('../lib.js')

let nginx
before(async () => { nginx = await startNginx() })
after(async () => { await nginx?.stop() })

const SMALL = { size: '320x240', fps: 30, videoBitrate: '500k', audioBitrate: '96k', keyint: 1 }

/** Waits until nginx has closed every recording of `key` (flv ends cleanly). */
async function settledRecordings(key, count) {
  await waitFor(() => nginx.recordings(key).length >= count, 5000, `${count} recording(s) of ${key}`)
  await sleep(500)
  return nginx.recordings(key)
}

test('streams, emits stats with every SPEC field, stops, and nginx records a clean file', async () => {
  const key = 'basic'
  const s = new VideoAudioStreamer({ url: nginx.url(key), ...SMALL })
  const states = []
  const stats = []
  s.on('state', (st) => states.push(st))
  s.on('stats', (st) => stats.push(st))
  s.on('error', (e) => assert.fail(`unexpected error event: ${e.code} ${e.message}`))
  await s.start()
  await sleep(4200)
  const final = await s.stop()

  await waitFor(() => states.includes('stopped'), 2000, "the 'stopped' state event")
  assert.deepEqual(states.filter((x) => x !== 'connecting'), ['live', 'stopped'], `states: ${states}`)
  assert.ok(stats.length >= 3, `expected >= 3 stats events in 4 s, got ${stats.length}`)
  for (const st of stats) {
    for (const f of SPEC_STATS_FIELDS) assert.ok(f in st, `stats lacks ${f}`)
  }
  const last = stats[stats.length - 1]
  assert.equal(last.state, 'live')
  assert.ok(last.bytes_sent > 0 && last.video_packets_sent > 0 && last.audio_frames_sent > 0)
  assert.ok(last.t_ms >= 2000)
  assert.equal(last.redirects, 0, 'no server asked to move the stream')
  assert.equal(final.state, 'stopped')
  assert.ok(final.video_packets_sent >= last.video_packets_sent)
  assert.equal(s.stats().state, 'stopped')

  const [file, ...more] = await settledRecordings(key, 1)
  assert.equal(more.length, 0)
  const frames = probe(file)
  // ~4.2 s at 30 fps; nginx skips video up to the first keyframe.
  assert.ok(frames.h264 >= 90 && frames.h264 <= 140, `h264 frames: ${frames.h264}`)
  assert.ok(frames.aac >= 150, `aac frames: ${frames.aac}`)
  assert.equal(decodeErrors(file), '')
})

test('a link cut mid-stream gives reconnecting then reconnected, and decodable recordings', async () => {
  const key = 'cut'
  const proxy = await startProxy(nginx.port)
  try {
    const s = new VideoAudioStreamer({
      url: proxy.url(key), ...SMALL, stallTimeoutMs: 2000, reconnect: { maxDelayMs: 1000 },
    })
    const order = []
    s.on('reconnecting', (ev) => {
      order.push('reconnecting')
      assert.equal(typeof ev.attempt, 'number')
      assert.equal(typeof ev.delayMs, 'number')
      assert.equal(typeof ev.reason, 'string')
    })
    s.on('reconnected', (ev) => {
      order.push('reconnected')
      assert.equal(typeof ev.downtimeMs, 'number')
    })
    s.on('error', (e) => assert.fail(`unexpected error event: ${e.code} ${e.message}`))
    await s.start()
    await sleep(2500)
    await proxy.cut(800)
    await waitFor(() => order.includes('reconnected'), 10_000, 'reconnected')
    await sleep(2500)
    const final = await s.stop()
    assert.equal(order[0], 'reconnecting')
    assert.ok(order.indexOf('reconnected') > 0, `events: ${order}`)
    assert.equal(final.reconnects, 1)
    assert.ok((await proxy.accepted()) >= 2)

    const files = await settledRecordings(key, 2)
    assert.equal(files.length, 2, `recordings: ${files}`)
    for (const f of files) {
      const frames = probe(f)
      assert.ok(frames.h264 > 20, `${f}: h264 frames ${frames.h264}`)
      assert.ok(frames.aac > 40, `${f}: aac frames ${frames.aac}`)
      assert.equal(decodeErrors(f), '', f)
    }
  } finally {
    await proxy.close()
  }
})

test('retries exhausted: an error event with a code, then the failed state', async () => {
  const proxy = await startProxy(nginx.port)
  try {
    const s = new VideoAudioStreamer({
      url: proxy.url('SUPERSECRET'), ...SMALL, reconnect: { maxDelayMs: 300, maxRetries: 2 },
    })
    const errors = []
    const states = []
    s.on('error', (e) => errors.push(e))
    s.on('state', (st) => states.push(st))
    await s.start()
    await sleep(1000)
    await proxy.cut(60_000)
    await waitFor(() => errors.length > 0, 15_000, 'an error event')
    assert.ok(errors[0] instanceof Error)
    assert.equal(errors[0].code, 'ERR_CONNECT')
    assert.doesNotMatch(errors[0].message, /SUPERSECRET/)
    await waitFor(() => s.stats().state === 'failed', 2000, 'the failed state')
    assert.ok(states.includes('failed'), `states: ${states}`)
    await s.stop()
  } finally {
    await proxy.close()
  }
})

test('stats events coalesce while the JS thread is busy', async () => {
  const s = new VideoAudioStreamer({ url: nginx.url('busy'), ...SMALL })
  const stats = []
  s.on('stats', (st) => stats.push(st))
  await s.start()
  // Block the JS thread for 3.5 s: three ticks happen meanwhile.
  const until = Date.now() + 3500
  while (Date.now() < until) { /* busy */ }
  await sleep(300)
  const afterBusy = stats.length
  await s.stop()
  assert.ok(afterBusy <= 1, `expected the busy period to coalesce into one stats event, got ${afterBusy}`)
  if (afterBusy === 1) assert.ok(stats[0].t_ms >= 2500, `the delivered snapshot is the latest: ${stats[0].t_ms}`)
})
