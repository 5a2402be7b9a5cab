// What `npm install harrier` delivers: the root package and this machine's platform
// package are packed with `npm pack`, installed from the tarballs into a fresh project
// (no registry involved), and used there from CommonJS, from ESM and from TypeScript.
import fs from 'node:fs'
import path from 'node:path'
import test from 'ava'
import { assertBuilt, cleanEnv, lastJson, nativeFile, node, platformKey, root, run, tempDir, testDir, type RunResult } from './distribution.ts'

interface PackResult {
  filename: string
  files: Array<{ path: string }>
}

function npm(args: string[], cwd: string, env: NodeJS.ProcessEnv, timeout = 40_000): Promise<RunResult> {
  return run(process.platform === 'win32' ? 'npm.cmd' : 'npm', args, { cwd, env, timeout })
}

async function pack(dir: string, destination: string, env: NodeJS.ProcessEnv): Promise<PackResult> {
  const r = await npm(['pack', '--json', '--pack-destination', destination], dir, env)
  if (r.code !== 0) throw new Error(`npm pack in ${dir} exited with ${r.code}\n${r.stdout}\n${r.stderr}`)
  // npm prints the JSON array after any lifecycle output
  const [result] = JSON.parse(r.stdout.slice(r.stdout.indexOf('['))) as PackResult[]
  return result
}

test.before(() => assertBuilt())

test('the packed packages install without a registry and serve from CommonJS, ESM and TypeScript', async (t) => {
  t.timeout(90_000)
  const key = platformKey()
  const platformDir = path.join(root, 'npm', key)
  if (!fs.existsSync(platformDir)) {
    t.fail(`no npm/${key}: harrier has no platform package for this machine`)
    return
  }
  const tmp = tempDir(t, 'pack')
  const env = cleanEnv({ npm_config_cache: path.join(tmp, 'npm-cache'), npm_config_update_notifier: 'false' })
  const tarballs = path.join(tmp, 'tarballs')
  fs.mkdirSync(tarballs)

  // --- the root package ------------------------------------------------------
  const rootPack = await pack(root, tarballs, env)
  const rootFiles = rootPack.files.map((f) => f.path.replace(/\\/g, '/')).sort()
  t.log(`${rootPack.filename}: ${rootFiles.length} files`)
  for (const file of ['package.json', 'README.md', 'CHANGELOG.md', 'index.js', 'index.mjs', 'index.d.ts', 'binding.js', 'binding.d.ts', 'dist/index.js', 'dist/index.d.ts']) {
    t.true(rootFiles.includes(file), `${rootPack.filename} contains ${file}`)
  }
  t.deepEqual(
    rootFiles.filter((f) => f.endsWith('.node') || f.endsWith('.map') || /^(crates|lib|__test__|benchmark|npm|target|node_modules|examples|scripts)\//.test(f)),
    [],
    'no native binary, source maps, sources, tests or tooling in the root package',
  )
  // every module in dist/ has its declarations
  for (const js of rootFiles.filter((f) => /^dist\/.*\.js$/.test(f))) {
    t.true(rootFiles.includes(js.replace(/\.js$/, '.d.ts')), `${js} has a .d.ts`)
  }
  const manifest = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'))
  t.deepEqual(
    Object.keys(manifest.optionalDependencies ?? {}).filter((name) => !name.startsWith('harrier-')),
    [],
    'optional dependencies are platform packages only',
  )
  t.deepEqual(manifest.dependencies ?? {}, {}, 'harrier has no runtime dependencies')

  // --- this machine's platform package -----------------------------------------
  const platformCopy = path.join(tmp, key)
  fs.cpSync(platformDir, platformCopy, { recursive: true })
  fs.copyFileSync(nativeFile, path.join(platformCopy, path.basename(nativeFile)))
  const platformPack = await pack(platformCopy, tarballs, env)
  t.deepEqual(
    platformPack.files.map((f) => f.path).sort(),
    [path.basename(nativeFile), 'README.md', 'package.json'].sort(),
    `${platformPack.filename} holds the binary, its README and its manifest`,
  )

  // --- a fresh project installs both tarballs, offline ------------------------------
  const project = path.join(tmp, 'project')
  fs.mkdirSync(project)
  fs.writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'harrier-pack-test', version: '1.0.0', private: true }, null, 2))
  const install = await npm(
    ['install', '--offline', '--no-audit', '--no-fund', path.join(tarballs, rootPack.filename), path.join(tarballs, platformPack.filename)],
    project,
    env,
  )
  t.is(install.code, 0, `npm install exited with ${install.code}\n${install.stdout}\n${install.stderr}`)
  if (install.code !== 0) return
  const installed = path.join(project, 'node_modules')
  t.true(fs.existsSync(path.join(installed, 'harrier', 'index.js')))
  t.false(fs.existsSync(path.join(installed, 'harrier', path.basename(nativeFile))), 'no local build inside node_modules/harrier')
  const installedBinary = path.join(installed, `harrier-${key}`, path.basename(nativeFile))
  t.true(fs.existsSync(installedBinary), `node_modules/harrier-${key} holds the binary`)

  // --- use it, as a user would ---------------------------------------------------
  for (const fixture of ['use-harrier.cjs', 'use-harrier.mjs']) {
    fs.copyFileSync(path.join(testDir, 'fixtures', fixture), path.join(project, fixture))
    const r = await node([fixture], { cwd: project, env: cleanEnv(), timeout: 20_000 })
    t.is(r.code, 0, `${fixture} exited with ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`)
    if (r.code !== 0) continue
    const out = lastJson<{ status: number; body: string; resolved: string; natives: string[] }>(r)
    t.is(out.status, 200, fixture)
    t.is(out.body, 'hello pack from node_modules', fixture)
    t.is(out.resolved, path.join(installed, 'harrier', fixture.endsWith('.mjs') ? 'index.mjs' : 'index.js'), `${fixture} resolved the installed harrier`)
    t.deepEqual(out.natives, [installedBinary], `${fixture} loaded the platform package's binary`)
  }

  // --- and its types, from node_modules --------------------------------------------
  fs.writeFileSync(
    path.join(project, 'check.ts'),
    [
      "import { App, HttpError, type Listening } from 'harrier'",
      'const app = new App()',
      "app.get('/hello/:name', (req, res) => res.text(req.params.name))",
      "app.get('/nope', () => { throw new HttpError(404) })",
      '// @ts-expect-error: no such param',
      "app.get('/users/:id', (req) => req.params.nope)",
      'export const listening: Promise<Listening> = app.listen({ port: 0 })',
      '',
    ].join('\n'),
  )
  fs.writeFileSync(
    path.join(project, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        target: 'ES2022',
        module: 'nodenext',
        moduleResolution: 'nodenext',
        strict: true,
        noEmit: true,
        skipLibCheck: false,
        types: ['node'],
        // @types/node from this repository: the project itself has no dev dependencies
        typeRoots: [path.join(root, 'node_modules', '@types')],
      },
      files: ['check.ts'],
    }),
  )
  const tsc = await node([path.join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json', '--listFiles', '--pretty', 'false'], {
    cwd: project,
    timeout: 40_000,
  })
  t.is(tsc.code, 0, `tsc in the project exited with ${tsc.code}\n${tsc.stdout}\n${tsc.stderr}`)
  t.true(tsc.stdout.split(/\r?\n/).some((line) => path.normalize(line.trim()) === path.join(installed, 'harrier', 'dist', 'index.d.ts')), 'types came from node_modules/harrier')
})
