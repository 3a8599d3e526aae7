// The load-time check: a missing system library becomes an Error that names
// the package to install, not a bare dlopen failure. The real loader cannot be
// made to miss libasound here, so lib.js is loaded beside a stand-in index.js
// that fails the way napi-rs's loader does (the dlopen error in `cause`).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, copyFileSync, writeFileSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const LIB = fileURLToPath(new URL('../lib.js', import.meta.url))

function loadWithFailingNative(dlopenMessage) {
  const dir = mkdtempSync(path.join(tmpdir(), 'onair-load-'))
  try {
    copyFileSync(LIB, path.join(dir, 'lib.js'))
    writeFileSync(path.join(dir, 'index.js'), `
      const e = new Error('Cannot find native binding.')
      e.cause = new Error(${JSON.stringify(dlopenMessage)})
      throw e
    `)
    return () => createRequire(path.join(dir, 'x.js'))('./lib.js')
  } finally {
    setTimeout(() => rmSync(dir, { recursive: true, force: true }), 1000)
  }
}

test('a missing libasound names the package to install', () => {
  const load = loadWithFailingNative('libasound.so.2: cannot open shared object file: No such file or directory')
  assert.throws(load, (e) => e.code === 'ERR_MISSING_SYSTEM_LIBRARY' && /apt-get install libasound2/.test(e.message))
})

test('any other load failure is passed through unchanged', () => {
  const load = loadWithFailingNative('invalid ELF header')
  assert.throws(load, (e) => e.code === undefined && /Cannot find native binding/.test(e.message))
})
