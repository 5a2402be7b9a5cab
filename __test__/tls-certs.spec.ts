// TLS certificates: given as a path (absolute or relative), a PEM string or a Buffer; keys
// in PKCS#8, PKCS#1 (RSA) and SEC1 (EC); a chain with an intermediate; SNI (exact names,
// wildcards, the default for an unknown name or none); reloadTls (new handshakes get the new
// certificate, an open connection keeps its own, a failing reload changes nothing); and
// every bad configuration rejecting listen() with ERR_HARRIER_TLS, leaving nothing listening.
import { readFileSync, writeFileSync } from 'node:fs'
import https from 'node:https'
import { join, relative } from 'node:path'
import test, { type ExecutionContext } from 'ava'
import { App } from 'harrier'
import { PATIENCE_MS, closeApp, withTimeout } from './helpers.ts'
import { ANSWERED, type TlsApp, type TlsConfig, TlsRaw, certs, connectOutcome, defaultTls, freePort, handshake, httpsRequest, sClient, secureOf, useTlsApp } from './tls-helpers.ts'
import { removeCerts } from './tls-certs.ts'

test.after.always(() => removeCerts(certs))

function hello(app: App) {
  app.get('/', (req, res) => res.text(`hello over ${secureOf(req) === true ? 'https' : 'http'}`))
}

const { localhost, localhost2, api, wild, rsa, sec1, chained } = certs

/** Checks a handshake with `servername` (none if undefined) got the certificate `expected`. */
async function servedFor(port: number, servername: string | undefined): Promise<string> {
  const info = await handshake(port, {
    servername,
    // the name is checked by comparing fingerprints: an unknown name gets a certificate that
    // is not for it, on purpose
    checkServerIdentity: () => undefined,
  })
  const names: Record<string, string> = {
    [localhost.fingerprint256]: 'localhost',
    [localhost2.fingerprint256]: 'localhost2',
    [api.fingerprint256]: 'api',
    [wild.fingerprint256]: 'wild',
    [rsa.fingerprint256]: 'rsa',
    [sec1.fingerprint256]: 'sec1',
  }
  return names[info.fingerprint256] ?? `unknown certificate ${info.subject} ${info.fingerprint256}`
}

// ---------------------------------------------------------------------------
// Forms and key formats
// ---------------------------------------------------------------------------

test('cert and key as absolute paths, relative paths, PEM strings and Buffers', async (t) => {
  const forms: Record<string, TlsConfig> = {
    'absolute paths': { cert: localhost.cert, key: localhost.key },
    'relative paths': { cert: relative(process.cwd(), localhost.cert), key: relative(process.cwd(), localhost.key) },
    'PEM strings': { cert: localhost.certPem, key: localhost.keyPem },
    Buffers: { cert: readFileSync(localhost.cert), key: readFileSync(localhost.key) },
    'a PEM string cert and a Buffer key': { cert: localhost.certPem, key: readFileSync(localhost.key) },
  }
  t.true(forms['relative paths'].cert.toString().startsWith('..') || !forms['relative paths'].cert.toString().startsWith('/'))
  for (const [form, config] of Object.entries(forms)) {
    const { port } = await useTlsApp(t, hello, config)
    const r = await httpsRequest(port)
    t.is(r.body.toString(), 'hello over https', form)
    t.is(r.socket.getPeerCertificate().fingerprint256, localhost.fingerprint256, form)
  }
})

for (const [name, leaf, keyHeader] of [
  ['PKCS#8 (BEGIN PRIVATE KEY), ECDSA P-256', localhost, 'BEGIN PRIVATE KEY'],
  ['PKCS#1 (BEGIN RSA PRIVATE KEY), RSA 2048', rsa, 'BEGIN RSA PRIVATE KEY'],
  ['SEC1 (BEGIN EC PRIVATE KEY), ECDSA P-256', sec1, 'BEGIN EC PRIVATE KEY'],
] as const) {
  test(`a ${name} key serves TLS 1.2 and 1.3, as a path and as PEM`, async (t) => {
    t.true(leaf.keyPem.includes(keyHeader))
    for (const config of [{ cert: leaf.cert, key: leaf.key }, { cert: leaf.certPem, key: leaf.keyPem }]) {
      const { port } = await useTlsApp(t, hello, config)
      for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
        const c = await TlsRaw.connect(port, { minVersion: version, maxVersion: version })
        t.is(c.socket.getProtocol(), version)
        t.true(c.socket.authorized)
        t.is(c.socket.getPeerCertificate().fingerprint256, leaf.fingerprint256)
        await c.write('GET / HTTP/1.1\r\nHost: localhost\r\n\r\n')
        t.is((await c.readResponse()).body.toString(), 'hello over https', `${version}`)
        c.destroy()
      }
    }
  })
}

test('a full chain (leaf + intermediate) is served whole: a client that trusts only the root verifies it', async (t) => {
  const { port } = await useTlsApp(t, hello, { cert: chained.fullchain, key: chained.key })
  const c = await TlsRaw.connect(port)
  t.teardown(() => c.destroy())
  t.true(c.socket.authorized)
  const peer = c.socket.getPeerCertificate(true)
  t.is(peer.fingerprint256, chained.fingerprint256)
  t.is(peer.issuerCertificate?.subject?.CN, 'harrier test intermediate CA')
  const r = await sClient(port, ['-servername', 'localhost', '-verify_return_error', '-showcerts'], 'GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n')
  t.regex(r.stdout, ANSWERED, r.all)
  t.regex(r.stdout, /Verify return code: 0 \(ok\)/)
  t.is((r.stdout.match(/-----BEGIN CERTIFICATE-----/g) ?? []).length, 2, 'leaf and intermediate')
})

// ---------------------------------------------------------------------------
// SNI
// ---------------------------------------------------------------------------

const sniConfig = (): TlsConfig => ({
  cert: localhost.cert,
  key: localhost.key,
  sni: {
    'api.example.test': { cert: api.cert, key: api.key },
    '*.wild.example.test': { cert: wild.certPem, key: readFileSync(wild.key) },
  },
})

test('SNI: an exact name gets its certificate, verified for that name', async (t) => {
  const { port } = await useTlsApp(t, hello, sniConfig())
  const info = await handshake(port, { servername: 'api.example.test' })
  t.true(info.authorized)
  t.is(info.fingerprint256, api.fingerprint256)
  t.is(info.subjectaltname, 'DNS:api.example.test')
  const r = await httpsRequest(port, { servername: 'api.example.test', headers: { host: 'api.example.test' } })
  t.is(r.body.toString(), 'hello over https')
  t.is(r.socket.getPeerCertificate().fingerprint256, api.fingerprint256)
})

test('SNI: a name under a wildcard gets the wildcard certificate (one label only)', async (t) => {
  const { port } = await useTlsApp(t, hello, sniConfig())
  for (const name of ['a.wild.example.test', 'other-name.wild.example.test']) {
    const info = await handshake(port, { servername: name })
    t.true(info.authorized, name)
    t.is(info.fingerprint256, wild.fingerprint256, name)
  }
  // a wildcard stands for exactly one label: neither the bare name nor two labels
  t.is(await servedFor(port, 'wild.example.test'), 'localhost')
  t.is(await servedFor(port, 'a.b.wild.example.test'), 'localhost')
})

test('SNI: an unknown name and no SNI at all get the default certificate', async (t) => {
  const { port } = await useTlsApp(t, hello, sniConfig())
  t.is(await servedFor(port, 'unknown.example.test'), 'localhost')
  t.is(await servedFor(port, 'example.test'), 'localhost')
  t.is(await servedFor(port, 'localhost'), 'localhost')
  // node:tls sends no SNI to an IP address: the default, verified for 127.0.0.1
  const info = await handshake(port)
  t.true(info.authorized)
  t.is(info.fingerprint256, localhost.fingerprint256)
  // and s_client with -noservername
  const r = await sClient(port, ['-noservername', '-verify_return_error'], 'GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n')
  t.regex(r.stdout, ANSWERED, r.all)
  t.regex(r.stdout, /subject=.*CN ?= ?localhost\b/)
  t.notRegex(r.stdout, /subject=.*example\.test/)
})

test('SNI: names are matched without regard to case', async (t) => {
  const { port } = await useTlsApp(t, hello, sniConfig())
  t.is(await servedFor(port, 'API.Example.TEST'), 'api')
  t.is(await servedFor(port, 'X.WILD.example.test'), 'wild')
})

test('SNI: an exact name wins over a wildcard that also matches it', async (t) => {
  const { port } = await useTlsApp(t, hello, {
    cert: localhost.cert,
    key: localhost.key,
    sni: {
      '*.wild.example.test': { cert: wild.cert, key: wild.key },
      'exact.wild.example.test': { cert: api.cert, key: api.key },
    },
  })
  t.is(await servedFor(port, 'exact.wild.example.test'), 'api')
  t.is(await servedFor(port, 'other.wild.example.test'), 'wild')
})

test('SNI with openssl s_client -servername picks the certificate', async (t) => {
  const { port } = await useTlsApp(t, hello, sniConfig())
  const r = await sClient(port, ['-servername', 'api.example.test', '-verify_return_error', '-verify_hostname', 'api.example.test'], 'GET / HTTP/1.1\r\nHost: api.example.test\r\nConnection: close\r\n\r\n')
  t.regex(r.stdout, ANSWERED, r.all)
  t.regex(r.stdout, /subject=.*CN ?= ?api\.example\.test/)
  t.regex(r.stdout, /hello over https/)
})

// ---------------------------------------------------------------------------
// reloadTls
// ---------------------------------------------------------------------------

test('reloadTls: the next handshake gets the new certificate, an open keep-alive connection goes on with its own', async (t) => {
  const { app, port } = await useTlsApp(t, hello)
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1, ca: certs.caPem })
  t.teardown(() => agent.destroy())
  // the agent's sockets: a second one would mean the first connection did not go on
  const sockets = new Set<unknown>()
  const first = await httpsRequest(port, { agent })
  sockets.add(first.socket)
  let handshakes = 0
  first.socket.on('secureConnect', () => handshakes++)
  t.is(first.body.toString(), 'hello over https')
  t.is(first.socket.getPeerCertificate().fingerprint256, localhost.fingerprint256)

  // a raw connection that stays open across the reload as well
  const raw = await TlsRaw.connect(port)
  t.teardown(() => raw.destroy())
  await raw.write('GET / HTTP/1.1\r\nHost: localhost\r\n\r\n')
  t.is((await raw.readResponse()).body.toString(), 'hello over https')

  await withTimeout(app.reloadTls({ cert: localhost2.cert, key: localhost2.key }), PATIENCE_MS, 'reloadTls to resolve')

  const fresh = await handshake(port)
  t.true(fresh.authorized)
  t.is(fresh.fingerprint256, localhost2.fingerprint256, 'a new handshake sees the new certificate')
  t.is(fresh.subject, 'CN=localhost (reloaded)')

  const second = await httpsRequest(port, { agent })
  t.is(second.body.toString(), 'hello over https')
  t.true(second.reusedSocket, 'the agent reused its open connection')
  sockets.add(second.socket)
  t.is(second.socket, first.socket, 'the same socket')
  t.is(sockets.size, 1, 'one connection for both requests')
  t.is(handshakes, 0, 'no second handshake on it')
  t.is(second.socket.getPeerCertificate().fingerprint256, localhost.fingerprint256)

  await raw.write('GET / HTTP/1.1\r\nHost: localhost\r\n\r\n')
  t.is((await raw.readResponse()).body.toString(), 'hello over https', 'the raw connection is served after the reload')
  t.false(raw.closed)
  t.is(raw.socket.getPeerCertificate().fingerprint256, localhost.fingerprint256)
})

test('reloadTls replaces the SNI certificates too, and takes PEM strings', async (t) => {
  const { app, port } = await useTlsApp(t, hello, sniConfig())
  t.is(await servedFor(port, 'api.example.test'), 'api')
  await withTimeout(
    app.reloadTls({ cert: localhost2.certPem, key: localhost2.keyPem, sni: { 'x.wild.example.test': { cert: sec1.certPem, key: sec1.keyPem } } }),
    PATIENCE_MS,
    'reloadTls to resolve',
  )
  t.is(await servedFor(port, 'api.example.test'), 'localhost2', 'a name no longer in sni gets the new default')
  t.is(await servedFor(port, 'y.wild.example.test'), 'localhost2', 'the old wildcard is gone')
  t.is(await servedFor(port, 'x.wild.example.test'), 'sec1')
  t.is(await servedFor(port, undefined), 'localhost2')
})

// ---------------------------------------------------------------------------
// Bad configurations
// ---------------------------------------------------------------------------

interface TlsError extends Error {
  code?: string
}

async function expectTlsError(t: ExecutionContext, what: string, promise: Promise<unknown>, field: RegExp, reason: RegExp): Promise<TlsError | undefined> {
  const outcome = await withTimeout(
    promise.then(
      () => null,
      (e: TlsError) => e,
    ),
    PATIENCE_MS,
    `${what} to settle`,
  )
  if (outcome === null) {
    t.fail(`${what}: resolved; it should have rejected`)
    return undefined
  }
  t.true(outcome instanceof Error, `${what}: an Error`)
  t.is(outcome.code, 'ERR_HARRIER_TLS', `${what}: code (message: ${outcome.message})`)
  t.regex(outcome.message, field, `${what}: the message names the field`)
  t.regex(outcome.message, reason, `${what}: the message says why`)
  return outcome
}

const missing = join(certs.dir, 'no-such-dir', 'missing.pem')
const garbagePem = '-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGUgYXQgYWxs\n-----END CERTIFICATE-----\n'

/** The bad configurations: name, config, the field named, the reason given. */
const badConfigs: Array<[string, TlsConfig, RegExp, RegExp]> = [
  ['a cert and key that do not match', { cert: localhost.cert, key: api.key }, /tls\.(key|cert)/, /does not match/i],
  ['a cert and key that do not match (RSA cert, EC key)', { cert: rsa.certPem, key: sec1.keyPem }, /tls\.(key|cert)/, /does not match/i],
  ['a cert file that does not exist', { cert: missing, key: localhost.key }, /tls\.cert/, new RegExp(`ENOENT.*${reEscape(missing)}|${reEscape(missing)}.*ENOENT`)],
  ['a key file that does not exist', { cert: localhost.cert, key: missing }, /tls\.key/, new RegExp(`ENOENT.*${reEscape(missing)}|${reEscape(missing)}.*ENOENT`)],
  ['a directory as the cert', { cert: certs.dir, key: localhost.key }, /tls\.cert/, /EISDIR|directory/i],
  ['an encrypted PKCS#8 key', { cert: localhost.cert, key: certs.encryptedPkcs8 }, /tls\.key/, /encrypted/i],
  ['an encrypted PKCS#1 key (Proc-Type: 4,ENCRYPTED)', { cert: rsa.cert, key: certs.encryptedPkcs1 }, /tls\.key/, /encrypted/i],
  ['a cert PEM without a certificate (a key)', { cert: localhost.keyPem, key: localhost.key }, /tls\.cert/, /no certificate/i],
  ['a key PEM without a private key (a certificate)', { cert: localhost.cert, key: localhost.certPem }, /tls\.key/, /no private key/i],
  ['a key file without a private key (a certificate, as a Buffer)', { cert: localhost.cert, key: readFileSync(localhost.cert) }, /tls\.key/, /no private key/i],
  ['a certificate PEM block that is not a certificate', { cert: garbagePem, key: localhost.key }, /tls\.cert/, /./],
  [
    'an SNI key that does not match its cert',
    { cert: localhost.cert, key: localhost.key, sni: { 'api.example.test': { cert: api.cert, key: wild.key } } },
    /tls\.sni\["api\.example\.test"\]\.(key|cert)/,
    /does not match/i,
  ],
  [
    'an SNI cert file that does not exist',
    { cert: localhost.cert, key: localhost.key, sni: { 'api.example.test': { cert: missing, key: api.key } } },
    /tls\.sni\["api\.example\.test"\]\.cert/,
    /ENOENT/,
  ],
  [
    'an encrypted SNI key',
    { cert: localhost.cert, key: localhost.key, sni: { '*.wild.example.test': { cert: wild.cert, key: certs.encryptedPkcs8 } } },
    /tls\.sni\["\*\.wild\.example\.test"\]\.key/,
    /encrypted/i,
  ],
]

function reEscape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}

for (const [name, config, field, reason] of badConfigs) {
  test(`listen() rejects ${name}: ERR_HARRIER_TLS naming the field, nothing left listening, the App can listen afterwards`, async (t) => {
    const app = new App() as TlsApp
    hello(app)
    const port = await freePort()
    await expectTlsError(t, 'listen()', app.listen({ port, host: '127.0.0.1', signals: false, tls: config }), field, reason)
    t.is(await connectOutcome(port), 'ECONNREFUSED', 'nothing listens on the port')
    // The same App listens afterwards (on a port of its own: the one above was only free when
    // asked, and other test files take ports meanwhile).
    const addr = await withTimeout(app.listen({ port: 0, host: '127.0.0.1', signals: false, tls: defaultTls() }), PATIENCE_MS, 'listen() again')
    t.teardown(() => closeApp(app))
    t.is((await httpsRequest(addr.port)).body.toString(), 'hello over https')
  })
}

test("listen() rejects a minVersion other than 'TLSv1.2' and 'TLSv1.3' (nothing listening)", async (t) => {
  for (const minVersion of ['TLSv1.1', 'TLSv1', 'tls1.3', '']) {
    const app = new App() as TlsApp
    hello(app)
    const port = await freePort()
    const outcome = await withTimeout(
      app.listen({ port, host: '127.0.0.1', signals: false, tls: defaultTls({ minVersion: minVersion as 'TLSv1.2' }) }).then(
        () => null,
        (e: Error) => e,
      ),
      PATIENCE_MS,
      'listen() to settle',
    )
    if (outcome === null) await closeApp(app)
    t.true(outcome instanceof Error, `minVersion ${JSON.stringify(minVersion)} was refused`)
    t.regex(outcome?.message ?? '', /minVersion/, `the message names minVersion: ${outcome?.message}`)
    t.is(await connectOutcome(port), 'ECONNREFUSED')
  }
})

test('reloadTls rejects every bad configuration the same way, and the old certificate keeps answering', async (t) => {
  const { app, port } = await useTlsApp(t, hello, sniConfig())
  for (const [name, config, field, reason] of badConfigs) {
    await expectTlsError(t, `reloadTls(${name})`, app.reloadTls(config), field, reason)
    t.is(await servedFor(port, undefined), 'localhost', `${name}: the default is unchanged`)
    t.is(await servedFor(port, 'api.example.test'), 'api', `${name}: the SNI certificates are unchanged`)
  }
  const r = await httpsRequest(port)
  t.is(r.body.toString(), 'hello over https')
  // and a good reload after all of those still works
  await withTimeout(app.reloadTls({ cert: localhost2.cert, key: localhost2.key }), PATIENCE_MS, 'reloadTls to resolve')
  t.is(await servedFor(port, undefined), 'localhost2')
})

test('a cert file rewritten on disk is read again by reloadTls (paths are read at reload, not remembered)', async (t) => {
  const cert = join(certs.dir, `rewritten-${process.pid}.crt`)
  const key = join(certs.dir, `rewritten-${process.pid}.key`)
  writeFileSync(cert, localhost.certPem)
  writeFileSync(key, localhost.keyPem)
  const { app, port } = await useTlsApp(t, hello, { cert, key })
  t.is(await servedFor(port, undefined), 'localhost')
  writeFileSync(cert, localhost2.certPem)
  writeFileSync(key, localhost2.keyPem)
  t.is(await servedFor(port, undefined), 'localhost', 'nothing changes until the reload')
  await withTimeout(app.reloadTls({ cert, key }), PATIENCE_MS, 'reloadTls to resolve')
  t.is(await servedFor(port, undefined), 'localhost2')
})
