// Lifecycle safety: each case runs in a child process that must exit by
// itself with code 0 (no crash, no leaked engine thread keeping it alive).
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { startNginx, decodeErrors } from './helpers.mjs'

const FIXTURE = fileURLToPath(new URL('./fixtures/lifecycle.cjs', import.meta.url))

let nginx
before(async () => { nginx = await startNginx() })
after(async () => { await nginx?.stop() })

for (const mode of ['gc', 'recorder-gc', 'exit', 'stop-twice', 'start-after-stop', 'stop-while-starting']) {
  test(`lifecycle: ${mode}`, () => {
    const r = spawnSync(process.execPath, ['--expose-gc', FIXTURE, mode, nginx.url(`life-${mode}`)], {
      encoding: 'utf8',
      timeout: 30_000,
    })
    const out = `${r.stdout}\n${r.stderr}`
    assert.equal(r.signal, null, `killed by ${r.signal} (timeout = hang?): ${out}`)
    assert.equal(r.status, 0, out)
    assert.match(r.stdout, new RegExp(`^OK ${mode}$`, 'm'), out)
    if (mode === 'exit') {
      // The exit hook stopped the stream gracefully: nginx closed a clean file.
      const [file] = nginx.recordings(`life-${mode}`)
      assert.ok(file, 'no recording')
      assert.equal(decodeErrors(file), '')
    }
  })
}
