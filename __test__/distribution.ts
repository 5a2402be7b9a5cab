// Shared helpers for the distribution tests (loader, pack, types). Not a spec file.
//
// They run node, npm and tsc in child processes, in temporary directories that are
// removed when the test ends, with an environment that does not leak the npm
// lifecycle variables of the test run (`npm test` sets npm_config_prefix and friends,
// which would point a nested `npm install` back at this repository).

import { spawn } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'

// ava runs from the project root; __dirname exists when tsx compiles this file as CommonJS
export const testDir = typeof __dirname === 'string' ? __dirname : path.join(process.cwd(), '__test__')
export const root = path.resolve(testDir, '..')

/** 'glibc' or 'musl' on Linux, otherwise null. */
export function libc(): 'glibc' | 'musl' | null {
  if (process.platform !== 'linux') return null
  const report = process.report.getReport() as { header?: { glibcVersionRuntime?: string } }
  return report.header?.glibcVersionRuntime ? 'glibc' : 'musl'
}

/** The napi-rs name of this machine's platform: `linux-x64-gnu`, `darwin-arm64`, `win32-x64-msvc`, … */
export function platformKey(): string {
  if (process.platform === 'linux') return `linux-${process.arch}-${libc() === 'glibc' ? 'gnu' : 'musl'}`
  if (process.platform === 'win32') return `win32-${process.arch}-msvc`
  return `${process.platform}-${process.arch}`
}

/** The local build of the engine for this machine, as `npm run build` writes it. */
export const nativeFile = path.join(root, `harrier.${platformKey()}.node`)

/** Fails with a clear message when `npm run build` has not run. */
export function assertBuilt(): void {
  const missing = [path.join(root, 'dist', 'index.js'), path.join(root, 'dist', 'index.d.ts'), path.join(root, 'binding.js'), nativeFile].filter(
    (f) => !fs.existsSync(f),
  )
  if (missing.length > 0) throw new Error(`missing ${missing.map((f) => path.relative(root, f)).join(', ')}: run \`npm run build\` first`)
}

interface TeardownContext {
  teardown(fn: () => unknown): void
}

/** A fresh temporary directory, removed when the test ends. */
export function tempDir(t: TeardownContext, prefix: string): string {
  const dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), `harrier-${prefix}-`)))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true, maxRetries: 3 }))
  return dir
}

/** Copies files and directories from the project root into `dir`. */
export function copyFromRoot(dir: string, names: string[]): void {
  for (const name of names) fs.cpSync(path.join(root, name), path.join(dir, name), { recursive: true })
}

/** The environment without npm's lifecycle variables and without napi-rs loader overrides. */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [key, value] of Object.entries(process.env)) {
    if (/^(npm_|napi_rs_)/i.test(key) || /^init_cwd$/i.test(key)) continue
    env[key] = value
  }
  return { ...env, ...extra }
}

export interface RunResult {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
}

export interface RunOptions {
  cwd: string
  env?: NodeJS.ProcessEnv
  /** killed after this many milliseconds (default 30000) */
  timeout?: number
}

/** Runs a command to completion; never hangs longer than `timeout`. */
export function run(command: string, args: string[], options: RunOptions): Promise<RunResult> {
  // npm is a .cmd script on Windows, which only a shell runs.
  const shell = process.platform === 'win32' && command !== process.execPath
  const child = shell
    ? spawn([command, ...args.map((a) => `"${a}"`)].join(' '), { cwd: options.cwd, env: options.env ?? cleanEnv(), shell: true })
    : spawn(command, args, { cwd: options.cwd, env: options.env ?? cleanEnv() })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d))
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d))
  const timeout = options.timeout ?? 30_000
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`timed out after ${timeout} ms: ${command} ${args.join(' ')}\nstdout: ${stdout}\nstderr: ${stderr}`))
    }, timeout)
    child.once('error', (e) => {
      clearTimeout(timer)
      reject(e)
    })
    // 'close', not 'exit': stdout and stderr have been read to the end
    child.once('close', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, stdout, stderr })
    })
  })
}

/** `node <args>` with this test run's Node. */
export function node(args: string[], options: RunOptions): Promise<RunResult> {
  return run(process.execPath, args, options)
}

/** The last line of stdout, parsed as JSON (children print their findings there). */
export function lastJson<T>(r: RunResult): T {
  const lines = r.stdout.trim().split('\n')
  try {
    return JSON.parse(lines[lines.length - 1]) as T
  } catch {
    throw new Error(`no JSON on the last line of stdout (exit ${r.code})\nstdout: ${r.stdout}\nstderr: ${r.stderr}`)
  }
}
