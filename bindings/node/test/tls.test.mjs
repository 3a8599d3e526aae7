// RTMPS to a real nginx behind OpenSSL, with the test kit's private CA: `caFile`
// makes its certificate trusted; a certificate that fails verification is
// ERR_CERTIFICATE (not retried), from start() and from the 'error' event.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { startNginxTls, probe, decodeErrors, waitFor, sleep } from './helpers.mjs'

const require = createRequire(import.meta.url)
const { VideoAudioStreamer } = require('../lib.js')

const SMALL = { size: '320x240', fps: 30, videoBitrate: '500k', audioBitrate: '96k', keyint: 1 }

let nginx
let dir
before(async () => {
  nginx = await startNginxTls()
  dir = mkdtempSync(path.join(tmpdir(), 'onair-node-tls-'))
})
after(async () => {
  await nginx?.stop()
  if (dir) rmSync(dir, { recursive: true, force: true })
})

test('caFile: streams over RTMPS to a server whose CA is private, and nginx records it', async () => {
  const key = 'private-ca'
  const s = new VideoAudioStreamer({ url: nginx.url('good', key), caFile: nginx.caFile, ...SMALL })
  s.on('error', (e) => assert.fail(`unexpected error event: ${e.code} ${e.message}`))
  await s.start()
  await sleep(2500)
  const final = await s.stop()
  assert.equal(final.state, 'stopped')
  assert.ok(final.video_packets_sent > 0 && final.bytes_sent > 0, JSON.stringify(final))
  assert.equal(final.reconnects, 0)
  await waitFor(() => nginx.recordings(key).length >= 1, 5000, 'the recording')
  await sleep(500)
  const [file] = nginx.recordings(key)
  const frames = probe(file)
  assert.ok(frames.h264 >= 30, `h264 frames: ${frames.h264}`)
  assert.equal(decodeErrors(file), '')
})

test('a certificate that fails verification rejects start() with ERR_CERTIFICATE', async () => {
  // Without caFile the test CA is unknown; with it, a self-signed one still is.
  for (const [cert, caFile] of [['good', undefined], ['self_signed', nginx.caFile]]) {
    const s = new VideoAudioStreamer({ url: nginx.url(cert, 'refused'), caFile, ...SMALL })
    const started = Date.now()
    await assert.rejects(s.start(), (e) => {
      assert.equal(e.code, 'ERR_CERTIFICATE', `${cert}: ${e.message}`)
      assert.match(e.message, /certificate/)
      return true
    })
    assert.ok(Date.now() - started < 15_000, `${cert}: not retried`)
  }
})

test("a refused certificate reaches the 'error' event as ERR_CERTIFICATE", async () => {
  // With a recording the streamer runs although its stream output gave up.
  const s = new VideoAudioStreamer({
    url: nginx.url('wrong_name', 'refused'), caFile: nginx.caFile, ...SMALL,
    record: path.join(dir, 'anyway.flv'),
  })
  const errors = []
  s.on('error', (e) => errors.push(e))
  await s.start()
  await waitFor(() => errors.length > 0, 5000, "the 'error' event")
  const final = await s.stop()
  assert.equal(errors.length, 1, errors.map((e) => e.message).join('; '))
  assert.equal(errors[0].code, 'ERR_CERTIFICATE', errors[0].message)
  assert.match(errors[0].message, /wrong name/)
  assert.equal(final.state, 'failed')
  assert.equal(final.reconnects, 0)
})
