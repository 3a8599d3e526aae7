// Options are checked synchronously and errors carry a code and the option's
// name, never the stream key.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import { existsSync } from 'node:fs'
import { startNginx } from './helpers.mjs'

const require = createRequire(import.meta.url)
const { VideoAudioStreamer, VideoAudioRecorder } = require('../lib.js')

const URL = 'rtmp://127.0.0.1:1935/live/SUPERSECRET'

function throwsWith(options, code, name) {
  assert.throws(() => new VideoAudioStreamer(options), (err) => {
    assert.ok(err instanceof Error)
    assert.equal(err.code, code, `${JSON.stringify(options)}: ${err.code} ${err.message}`)
    assert.match(err.message, new RegExp(`\\b${name.replace('.', '\\.')}\\b`), err.message)
    assert.doesNotMatch(err.message, /SUPERSECRET/)
    return true
  })
}

test('bad options throw from the constructor, naming the option', () => {
  throwsWith({ url: URL, fps: 0 }, 'ERR_INVALID_OPTION', 'fps')
  throwsWith({ url: URL, fps: 29.97 }, 'ERR_INVALID_OPTION', 'fps')
  throwsWith({ url: URL, fps: 'thirty' }, 'ERR_INVALID_OPTION', 'fps')
  throwsWith({ url: URL, size: '1280' }, 'ERR_INVALID_OPTION', 'size')
  throwsWith({ url: URL, size: '1281x720' }, 'ERR_INVALID_OPTION', 'size')
  throwsWith({ url: URL, width: 100000 }, 'ERR_INVALID_OPTION', 'width')
  throwsWith({ url: URL, size: '640x480', width: 640 }, 'ERR_INVALID_OPTION', 'size')
  throwsWith({ url: URL, videoBitrate: 'fast' }, 'ERR_INVALID_OPTION', 'videoBitrate')
  throwsWith({ url: URL, videoBitrate: -5 }, 'ERR_INVALID_OPTION', 'videoBitrate')
  throwsWith({ url: URL, audioBitrate: '1M' }, 'ERR_INVALID_OPTION', 'audioBitrate')
  throwsWith({ url: URL, keyint: 0 }, 'ERR_INVALID_OPTION', 'keyint')
  throwsWith({ url: URL, video: 'webcam' }, 'ERR_INVALID_OPTION', 'video')
  throwsWith({ url: URL, video: 'none', audio: 'none' }, 'ERR_INVALID_OPTION', 'video')
  throwsWith({ url: URL, buffer: { packets: 1 } }, 'ERR_INVALID_OPTION', 'buffer.packets')
  throwsWith({ url: URL, buffer: { ms: 10 } }, 'ERR_INVALID_OPTION', 'buffer.ms')
  throwsWith({ url: URL, buffer: { bytes: 1000 } }, 'ERR_INVALID_OPTION', 'buffer.bytes')
  throwsWith({ url: URL, buffer: { packet: 10 } }, 'ERR_INVALID_OPTION', 'buffer.packet')
  throwsWith({ url: URL, stallTimeoutMs: 0 }, 'ERR_INVALID_OPTION', 'stallTimeoutMs')
  throwsWith({ url: URL, reconnect: { maxDelayMs: -1 } }, 'ERR_INVALID_OPTION', 'reconnect.maxDelayMs')
  throwsWith({ url: URL, reconnect: { maxRetries: 1.5 } }, 'ERR_INVALID_OPTION', 'reconnect.maxRetries')
  throwsWith({ url: URL, fsp: 30 }, 'ERR_INVALID_OPTION', 'fsp')
  throwsWith({}, 'ERR_INVALID_OPTION', 'url')
  throwsWith({ url: 'http://example.invalid/live/SUPERSECRET' }, 'ERR_INVALID_URL', 'url')
  throwsWith({ url: 'rtmp://127.0.0.1:99999/live/SUPERSECRET' }, 'ERR_INVALID_URL', 'url')
  throwsWith({ url: 'rtmp://127.0.0.1/live' }, 'ERR_INVALID_URL', 'url')
  throwsWith({ url: URL, streamKey: ' ' }, 'ERR_INVALID_OPTION', 'streamKey')
  throwsWith({ url: URL, minVideoBitrate: '3M' }, 'ERR_INVALID_OPTION', 'minVideoBitrate')
  throwsWith({ url: URL, minVideoBitrate: 'low' }, 'ERR_INVALID_OPTION', 'minVideoBitrate')
  throwsWith({ url: URL, adaptiveBitrate: 'yes' }, 'ERR_INVALID_OPTION', 'adaptiveBitrate')
  assert.throws(() => new VideoAudioStreamer(null), { code: 'ERR_INVALID_OPTION' })
})

test('encoder options are checked against this build (the default one: openh264 only)', () => {
  throwsWith({ url: URL, videoEncoder: 'qsv' }, 'ERR_INVALID_OPTION', 'videoEncoder')
  throwsWith({ url: URL, videoEncoder: 'x264' }, 'ERR_INVALID_OPTION', 'videoEncoder')
  throwsWith({ url: URL, videoCodec: 'vp9' }, 'ERR_INVALID_OPTION', 'videoCodec')
  throwsWith({ url: URL, videoCodec: 'hevc' }, 'ERR_INVALID_OPTION', 'videoEncoder')
  throwsWith({ url: URL, bframes: 2 }, 'ERR_INVALID_OPTION', 'bframes')
  throwsWith({ url: URL, bframes: 17 }, 'ERR_INVALID_OPTION', 'bframes')
  throwsWith({ url: URL, preset: 'veryfast' }, 'ERR_INVALID_OPTION', 'preset')
  const s = new VideoAudioStreamer({ url: URL, videoEncoder: 'openh264', videoCodec: 'h264', bframes: 0 })
  assert.ok(s)
})

test('good options construct without starting anything', () => {
  const s = new VideoAudioStreamer({
    url: URL, video: 'test', audio: 'test', width: 640, height: 360, fps: 25,
    videoBitrate: 1_000_000, audioBitrate: '128k', keyint: 2,
    buffer: { packets: 200, ms: 3000, bytes: 4 << 20 }, stallTimeoutMs: 3000,
    reconnect: { maxDelayMs: 10_000, maxRetries: 5 },
    adaptiveBitrate: false, minVideoBitrate: '300k',
  })
  const st = s.stats()
  assert.equal(st.state, 'stopped')
  assert.equal(st.output, 'rtmp://127.0.0.1:1935/live/****')
})

test('the stream key may come from ONAIR_STREAM_KEY and is never shown', () => {
  process.env.ONAIR_STREAM_KEY = 'ENVSECRET'
  try {
    const s = new VideoAudioStreamer({ url: 'rtmp://127.0.0.1:1935/live' })
    assert.equal(s.stats().output, 'rtmp://127.0.0.1:1935/live/****')
  } finally {
    delete process.env.ONAIR_STREAM_KEY
  }
})

function recorderThrowsWith(options, name) {
  assert.throws(() => new VideoAudioRecorder(options), (err) => {
    assert.equal(err.code, 'ERR_INVALID_OPTION', `${JSON.stringify(options)}: ${err.code} ${err.message}`)
    assert.match(err.message, new RegExp(`invalid option ${name.replace('.', '\\.')}\\b`), err.message)
    return true
  })
}

test('recorder and record options are checked synchronously, naming the option', () => {
  // The path: missing, wrong type, empty, unknown extension.
  recorderThrowsWith({}, 'path')
  recorderThrowsWith({ path: 42 }, 'path')
  recorderThrowsWith({ path: '' }, 'path')
  recorderThrowsWith({ path: '/tmp/onair-x.avi' }, 'path')
  recorderThrowsWith({ path: '/tmp/onair-noext' }, 'path')
  recorderThrowsWith({ file: '/tmp/x.flv' }, 'file')
  recorderThrowsWith({ path: '/tmp/x.flv', url: URL }, 'url')
  // The shared capture/encoder options are parsed by the same code.
  recorderThrowsWith({ path: '/tmp/x.flv', fps: 0 }, 'fps')
  recorderThrowsWith({ path: '/tmp/x.mp4', size: '1281x720' }, 'size')
  recorderThrowsWith({ path: '/tmp/x.mp4', videoBitrate: '9G' }, 'videoBitrate')
  recorderThrowsWith({ path: '/tmp/x.mp4', overwrite: 'yes' }, 'overwrite')
  // The constructor does not touch the file.
  const r = new VideoAudioRecorder({ path: '/tmp/onair-never-created.mp4', size: '320x240' })
  assert.equal(r.stats().state, 'stopped')
  assert.equal(r.stats().output, '/tmp/onair-never-created.mp4')
  assert.equal(existsSync('/tmp/onair-never-created.mp4'), false)

  throwsWith({ url: URL, record: '/tmp/x.avi' }, 'ERR_INVALID_OPTION', 'record')
  throwsWith({ url: URL, record: { path: 'x.txt' } }, 'ERR_INVALID_OPTION', 'record.path')
  throwsWith({ url: URL, record: { path: 'x.mp4', bogus: 1 } }, 'ERR_INVALID_OPTION', 'record.bogus')
  throwsWith({ url: URL, record: 7 }, 'ERR_INVALID_OPTION', 'record')
  const s = new VideoAudioStreamer({ url: URL, record: { path: '/tmp/onair-never-created.flv', overwrite: true } })
  assert.equal(s.stats().recording.output, '/tmp/onair-never-created.flv')
  assert.equal(new VideoAudioStreamer({ url: URL }).stats().recording, undefined)
})

test('runtime errors carry codes and never the key', async (t) => {
  const nginx = await startNginx()
  t.after(() => nginx.stop())

  // Nothing listens on port 1: connection refused.
  const down = new VideoAudioStreamer({ url: 'rtmp://127.0.0.1:1/live/SUPERSECRET', size: '320x240' })
  await assert.rejects(down.start(), (err) => {
    assert.equal(err.code, 'ERR_CONNECT')
    assert.doesNotMatch(err.message, /SUPERSECRET/)
    return true
  })
  await down.stop()

  // nginx-rtmp refuses a second publisher of the same name (Publish.BadName).
  const first = new VideoAudioStreamer({ url: nginx.url('SUPERSECRET'), size: '320x240' })
  await first.start()
  const second = new VideoAudioStreamer({ url: nginx.url('SUPERSECRET'), size: '320x240' })
  await assert.rejects(second.start(), (err) => {
    assert.equal(err.code, 'ERR_PUBLISH_REJECTED')
    assert.doesNotMatch(err.message, /SUPERSECRET/)
    return true
  })
  await second.stop()
  assert.equal((await first.stop()).state, 'stopped')
})
