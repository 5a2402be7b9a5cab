import { readFile } from 'node:fs/promises'

import type { TlsCertificate, TlsOptions } from './types'

/** What the engine takes: every certificate and key as PEM bytes. */
export interface NativeTls {
  cert: Buffer
  key: Buffer
  sni?: { name: string; cert: Buffer; key: Buffer }[]
  minVersion?: string
}

/** A TLS option that cannot serve: `code` says it is one, the message which option and why. */
export function tlsError(message: string, cause?: unknown): Error {
  const error = new Error(`harrier: ${message}`, cause === undefined ? undefined : { cause })
  ;(error as Error & { code: string }).code = 'ERR_HARRIER_TLS'
  return error
}

/** PEM content (a Buffer, or a string that starts with `-----BEGIN`), else a path to read. */
async function pem(source: unknown, field: string): Promise<Buffer> {
  if (Buffer.isBuffer(source)) return source
  if (source instanceof Uint8Array) return Buffer.from(source.buffer, source.byteOffset, source.byteLength)
  if (typeof source !== 'string' || source === '') {
    throw tlsError(`${field}: expected a path, or PEM as a string or Buffer, got ${source === '' ? 'an empty string' : typeof source}`)
  }
  if (source.trimStart().startsWith('-----BEGIN')) return Buffer.from(source)
  try {
    return await readFile(source)
  } catch (e) {
    const reason = e instanceof Error ? e.message : String(e)
    throw tlsError(`${field}: cannot read ${JSON.stringify(source)}: ${reason}`, e)
  }
}

async function pair(value: unknown, field: string): Promise<{ cert: Buffer; key: Buffer }> {
  if (value === null || typeof value !== 'object') throw tlsError(`${field}: expected { cert, key }`)
  const { cert, key } = value as Partial<TlsCertificate>
  if (cert === undefined) throw tlsError(`${field}.cert: missing (the certificate chain, leaf first)`)
  if (key === undefined) throw tlsError(`${field}.key: missing (the private key)`)
  const [certPem, keyPem] = await Promise.all([pem(cert, `${field}.cert`), pem(key, `${field}.key`)])
  return { cert: certPem, key: keyPem }
}

/** Reads what `tls` names into PEM for the engine (which checks it). */
export async function loadTls(tls: TlsOptions): Promise<NativeTls> {
  const main = await pair(tls, 'tls')
  const out: NativeTls = { ...main }
  if (tls.sni !== undefined) {
    if (tls.sni === null || typeof tls.sni !== 'object') throw tlsError('tls.sni: expected an object of server name → { cert, key }')
    out.sni = await Promise.all(
      Object.entries(tls.sni).map(async ([name, entry]) => ({ name, ...(await pair(entry, `tls.sni[${JSON.stringify(name)}]`)) })),
    )
  }
  if (tls.minVersion !== undefined) {
    if (tls.minVersion !== 'TLSv1.2' && tls.minVersion !== 'TLSv1.3') {
      throw tlsError(`tls.minVersion: must be 'TLSv1.2' or 'TLSv1.3', got ${JSON.stringify(tls.minVersion)}`)
    }
    out.minVersion = tls.minVersion
  }
  return out
}
