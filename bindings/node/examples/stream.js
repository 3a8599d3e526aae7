// Streams the test pattern + tone to an RTMP server for 10 s and prints stats.
//   ONAIR_STREAM_KEY=... node examples/stream.js rtmp://127.0.0.1:1935/live
'use strict'
const { VideoAudioStreamer } = require('..')

async function main() {
  const streamer = new VideoAudioStreamer({
    url: process.argv[2] ?? 'rtmp://127.0.0.1:1935/live/test', // key from ONAIR_STREAM_KEY if set
    size: '1280x720',
    fps: 30,
    videoBitrate: '2500k',
    audioBitrate: '160k',
    reconnect: { maxDelayMs: 10_000 },
  })
  streamer.on('state', (state) => console.log(`state: ${state}`))
  streamer.on('stats', (s) => console.log(
    `${(s.t_ms / 1000).toFixed(1)}s ${s.state} ${s.kbps.toFixed(0)} kbit/s buffer ${s.buffer_ms} ms, ` +
    `video sent ${s.video_packets_sent}, audio sent ${s.audio_frames_sent}, reconnects ${s.reconnects}`))
  streamer.on('reconnecting', (e) => console.log(`reconnecting (attempt ${e.attempt}, in ${e.delayMs} ms): ${e.reason}`))
  streamer.on('reconnected', (e) => console.log(`reconnected after ${e.downtimeMs} ms`))
  streamer.on('error', (err) => console.error(`error ${err.code}: ${err.message}`))

  await streamer.start()
  await new Promise((resolve) => setTimeout(resolve, 10_000))
  const final = await streamer.stop()
  console.log(`done: ${final.bytes_sent} bytes, ${final.video_packets_sent} video packets`)
}

main().catch((err) => {
  console.error(`onair: ${err.code ?? 'ERROR'}: ${err.message}`)
  process.exitCode = 1
})
