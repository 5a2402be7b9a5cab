// Test certificates for the TLS tests, made at test time with the `openssl` CLI into a
// temporary directory (no key is ever committed). Not a spec file.
//
// `makeCerts()` makes a root CA and leaves signed by it:
//   localhost        ECDSA P-256, PKCS#8 key; SAN localhost, 127.0.0.1 (the default)
//   localhost2       ECDSA P-256, PKCS#8 key; SAN localhost, 127.0.0.1, another subject and
//                    serial (the certificate a reload swaps in)
//   api              ECDSA P-256, PKCS#8 key; SAN api.example.test
//   wild             ECDSA P-256, PKCS#8 key; SAN *.wild.example.test
//   rsa              RSA 2048, PKCS#1 key (BEGIN RSA PRIVATE KEY); SAN localhost, 127.0.0.1
//   sec1             ECDSA P-256, SEC1 key (BEGIN EC PRIVATE KEY); SAN localhost, 127.0.0.1
//   chained          ECDSA P-256 signed by an intermediate CA (itself signed by the root);
//                    its `fullchain` is leaf + intermediate
// and two encrypted keys: `encryptedPkcs8` (BEGIN ENCRYPTED PRIVATE KEY) and
// `encryptedPkcs1` (BEGIN RSA PRIVATE KEY with Proc-Type: 4,ENCRYPTED), password `x`.
// Every file is written once per process (ava runs each test file in its own process);
// `removeCerts()` deletes the directory.

import { execFileSync } from 'node:child_process'
import { X509Certificate, randomBytes } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export interface Leaf {
  /** the certificate alone (PEM file) */
  cert: string
  /** the private key (PEM file) */
  key: string
  /** leaf + issuing intermediate when there is one, else the leaf alone (PEM file) */
  fullchain: string
  certPem: string
  keyPem: string
  /** SHA-256 fingerprint as Node's getPeerCertificate().fingerprint256 spells it */
  fingerprint256: string
  subject: string
  serialNumber: string
}

export interface Certs {
  dir: string
  /** the root CA certificate (PEM file) and its PEM */
  ca: string
  caPem: string
  localhost: Leaf
  localhost2: Leaf
  api: Leaf
  wild: Leaf
  rsa: Leaf
  sec1: Leaf
  chained: Leaf
  /** PKCS#8 encrypted EC key (BEGIN ENCRYPTED PRIVATE KEY), password x */
  encryptedPkcs8: string
  /** PKCS#1 RSA key with legacy PEM encryption (Proc-Type: 4,ENCRYPTED), password x */
  encryptedPkcs1: string
}

function openssl(args: string[], cwd: string): string {
  try {
    return execFileSync('openssl', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { stderr?: string }
    if (err.code === 'ENOENT') throw new Error('the openssl CLI is needed to make the test certificates (apt-get install openssl)')
    throw new Error(`openssl ${args.join(' ')} failed: ${err.stderr ?? err.message}`)
  }
}

/** A random positive 128-bit serial number (as a public CA would make it: testssl.sh checks its entropy). */
function serial(): string {
  const bytes = randomBytes(16)
  bytes[0] = (bytes[0] & 0x7f) | 0x10
  return `0x${bytes.toString('hex')}`
}

function ecKey(dir: string, name: string): string {
  const file = join(dir, `${name}.key`)
  openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', file], dir)
  return file
}

function sec1Key(dir: string, name: string): string {
  const file = join(dir, `${name}.key`)
  openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', file], dir)
  return file
}

/** An RSA key in PKCS#1 (`BEGIN RSA PRIVATE KEY`): `-traditional` on OpenSSL 3, the default before. */
function rsaKey(dir: string, name: string, extra: string[] = []): string {
  const file = join(dir, `${name}.key`)
  try {
    openssl(['genrsa', '-traditional', ...extra, '-out', file, '2048'], dir)
  } catch {
    openssl(['genrsa', ...extra, '-out', file, '2048'], dir)
  }
  return file
}

function sign(dir: string, name: string, keyFile: string, subject: string, ext: string, issuer: { cert: string; key: string } | null): string {
  const csr = join(dir, `${name}.csr`)
  const cert = join(dir, `${name}.crt`)
  const extFile = join(dir, `${name}.ext`)
  writeFileSync(extFile, ext)
  openssl(['req', '-new', '-key', keyFile, '-subj', subject, '-out', csr], dir)
  const args = ['x509', '-req', '-in', csr, '-days', '365', '-sha256', '-set_serial', serial(), '-extfile', extFile, '-out', cert]
  if (issuer) args.push('-CA', issuer.cert, '-CAkey', issuer.key)
  else args.push('-signkey', keyFile)
  openssl(args, dir)
  return cert
}

const CA_EXT = 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\n'

function leafExt(sans: string[], rsa: boolean): string {
  return (
    'basicConstraints=critical,CA:FALSE\n' +
    `keyUsage=critical,digitalSignature${rsa ? ',keyEncipherment' : ''}\n` +
    'extendedKeyUsage=serverAuth\n' +
    `subjectAltName=${sans.join(',')}\n` +
    'subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n'
  )
}

function leaf(dir: string, name: string, keyFile: string, cn: string, sans: string[], issuer: { cert: string; key: string }, rsa = false, chain: string[] = []): Leaf {
  const cert = sign(dir, name, keyFile, `/O=harrier tests/CN=${cn}`, leafExt(sans, rsa), issuer)
  const certPem = readFileSync(cert, 'utf8')
  const fullchain = join(dir, `${name}.fullchain.pem`)
  writeFileSync(fullchain, certPem + chain.map((c) => readFileSync(c, 'utf8')).join(''))
  const x = new X509Certificate(certPem)
  return {
    cert,
    key: keyFile,
    fullchain,
    certPem,
    keyPem: readFileSync(keyFile, 'utf8'),
    fingerprint256: x.fingerprint256,
    subject: x.subject,
    serialNumber: x.serialNumber,
  }
}

const LOCAL = ['DNS:localhost', 'IP:127.0.0.1']

export function makeCerts(): Certs {
  const dir = mkdtempSync(join(tmpdir(), 'harrier-tls-'))
  const caKey = ecKey(dir, 'ca')
  const ca = sign(dir, 'ca', caKey, '/O=harrier tests/CN=harrier test root CA', CA_EXT, null)
  const root = { cert: ca, key: caKey }
  const interKey = ecKey(dir, 'intermediate')
  const inter = sign(dir, 'intermediate', interKey, '/O=harrier tests/CN=harrier test intermediate CA', CA_EXT + 'authorityKeyIdentifier=keyid\n', root)

  const encryptedPkcs8 = join(dir, 'encrypted-pkcs8.key')
  openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-aes256', '-pass', 'pass:x', '-out', encryptedPkcs8], dir)
  const encryptedPkcs1 = rsaKey(dir, 'encrypted-pkcs1', ['-aes256', '-passout', 'pass:x'])

  const certs: Certs = {
    dir,
    ca,
    caPem: readFileSync(ca, 'utf8'),
    localhost: leaf(dir, 'localhost', ecKey(dir, 'localhost'), 'localhost', LOCAL, root),
    localhost2: leaf(dir, 'localhost2', ecKey(dir, 'localhost2'), 'localhost (reloaded)', LOCAL, root),
    api: leaf(dir, 'api', ecKey(dir, 'api'), 'api.example.test', ['DNS:api.example.test'], root),
    wild: leaf(dir, 'wild', ecKey(dir, 'wild'), '*.wild.example.test', ['DNS:*.wild.example.test'], root),
    rsa: leaf(dir, 'rsa', rsaKey(dir, 'rsa'), 'localhost (rsa)', LOCAL, root, true),
    sec1: leaf(dir, 'sec1', sec1Key(dir, 'sec1'), 'localhost (sec1)', LOCAL, root),
    chained: leaf(dir, 'chained', ecKey(dir, 'chained'), 'localhost (chained)', LOCAL, { cert: inter, key: interKey }, false, [inter]),
    encryptedPkcs8,
    encryptedPkcs1,
  }
  // the key formats are what the names say (a different openssl would make the tests lie)
  const expect: Array<[string, RegExp]> = [
    [certs.localhost.keyPem, /^-----BEGIN PRIVATE KEY-----/],
    [certs.rsa.keyPem, /^-----BEGIN RSA PRIVATE KEY-----/],
    [certs.sec1.keyPem, /^-----BEGIN EC PRIVATE KEY-----/],
    [readFileSync(encryptedPkcs8, 'utf8'), /^-----BEGIN ENCRYPTED PRIVATE KEY-----/],
    [readFileSync(encryptedPkcs1, 'utf8'), /^-----BEGIN RSA PRIVATE KEY-----\r?\nProc-Type: 4,ENCRYPTED/],
  ]
  for (const [pem, re] of expect) if (!re.test(pem)) throw new Error(`openssl made a key that does not match ${re}: ${pem.slice(0, 80)}`)
  return certs
}

export function removeCerts(certs: Certs): void {
  rmSync(certs.dir, { recursive: true, force: true })
}
