// Cookies: the `Cookie` request header parsed (`req.cookies`), `Set-Cookie` lines built and
// checked (`res.cookie`, `res.clearCookie`). RFC 6265 (and 6265bis for SameSite, CHIPS for
// Partitioned).

/** Attributes of a `Set-Cookie` line. */
export interface CookieOptions {
  /** Seconds until the cookie expires (`Max-Age`); 0 or less expires it at once. */
  maxAge?: number
  /** When the cookie expires (`Expires`, a valid `Date`). */
  expires?: Date
  /** `Path` (default: none, so the browser uses the request's directory). */
  path?: string
  /** `Domain`: the cookie goes to this host and its subdomains. */
  domain?: string
  /** `Secure`: sent over HTTPS only. */
  secure?: boolean
  /** `HttpOnly`: hidden from `document.cookie`. */
  httpOnly?: boolean
  /** `SameSite`: `'strict'`, `'lax'` or `'none'` (which needs `secure`). */
  sameSite?: 'strict' | 'lax' | 'none' | 'Strict' | 'Lax' | 'None'
  /** `Partitioned` (CHIPS): kept per top-level site; needs `secure`. */
  partitioned?: boolean
  /**
   * Whether the value is percent-encoded (`encodeURIComponent`, the default; `req.cookies`
   * decodes it). `false`: the value is sent as given and must be cookie octets (RFC 6265:
   * no space, `"`, `,`, `;`, `\` or control characters).
   */
  encode?: boolean
}

/** A cookie name: an RFC 7230 token. */
const NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/
/** A cookie value: cookie octets, optionally in double quotes. */
const VALUE = /^("?)[\x21\x23-\x2B\x2D-\x3A\x3C-\x5B\x5D-\x7E]*\1$/
/** A domain: labels of letters, digits and hyphens, optionally with a leading dot. */
const DOMAIN = /^\.?[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/
/** A path: any character but control characters and `;`. */
const PATH = /^[\x20-\x3A\x3C-\x7E]*$/

const SAME_SITE: Record<string, string> = { strict: 'Strict', lax: 'Lax', none: 'None' }

function decode(value: string): string {
  if (!value.includes('%')) return value
  try {
    return decodeURIComponent(value)
  } catch {
    return value
  }
}

/**
 * `name=value; name2=value2` by name: values unquoted and percent-decoded, the first of a
 * name sent twice kept, pieces without `=` ignored.
 */
export function parseCookies(header: string | undefined): Record<string, string> {
  const cookies: Record<string, string> = Object.create(null)
  if (header === undefined || header === '') return cookies
  let at = 0
  const n = header.length
  while (at < n) {
    let end = header.indexOf(';', at)
    if (end === -1) end = n
    const eq = header.indexOf('=', at)
    if (eq !== -1 && eq < end) {
      const name = header.slice(at, eq).trim()
      if (name !== '' && !(name in cookies)) {
        let value = header.slice(eq + 1, end).trim()
        if (value.length >= 2 && value.charCodeAt(0) === 34 && value.charCodeAt(value.length - 1) === 34) value = value.slice(1, -1)
        cookies[name] = decode(value)
      }
    }
    at = end + 1
  }
  return cookies
}

function fail(message: string): never {
  throw new TypeError(`harrier: ${message}`)
}

/** One `Set-Cookie` value; throws a `TypeError` naming what is wrong. */
export function serializeCookie(name: string, value: string, options: CookieOptions = {}): string {
  if (typeof name !== 'string' || !NAME.test(name)) fail(`invalid cookie name ${JSON.stringify(name)} (a token: letters, digits and !#$%&'*+-.^_\`|~)`)
  if (typeof value !== 'string') fail(`the value of cookie ${name} must be a string, got ${typeof value}`)
  if (options === null || typeof options !== 'object') fail('cookie options must be an object')
  const encoded = options.encode === false ? value : encodeURIComponent(value)
  if (!VALUE.test(encoded)) fail(`invalid value for cookie ${name}: ${JSON.stringify(value)} (cookie octets only; leave encode on to percent-encode it)`)
  let line = `${name}=${encoded}`
  const { maxAge, expires, path, domain, secure, httpOnly, sameSite, partitioned } = options
  if (maxAge !== undefined) {
    if (!Number.isInteger(maxAge)) fail(`cookie ${name}: maxAge must be an integer number of seconds, got ${String(maxAge)}`)
    line += `; Max-Age=${maxAge}`
  }
  if (expires !== undefined) {
    if (!(expires instanceof Date) || Number.isNaN(expires.getTime())) fail(`cookie ${name}: expires must be a valid Date`)
    line += `; Expires=${expires.toUTCString()}`
  }
  if (domain !== undefined) {
    if (typeof domain !== 'string' || !DOMAIN.test(domain)) fail(`cookie ${name}: invalid domain ${JSON.stringify(domain)}`)
    line += `; Domain=${domain}`
  }
  if (path !== undefined) {
    if (typeof path !== 'string' || !PATH.test(path)) fail(`cookie ${name}: invalid path ${JSON.stringify(path)} (no ';' or control characters)`)
    line += `; Path=${path}`
  }
  for (const [key, flag] of [['secure', secure], ['httpOnly', httpOnly], ['partitioned', partitioned]] as const) {
    if (flag !== undefined && typeof flag !== 'boolean') fail(`cookie ${name}: ${key} must be a boolean`)
  }
  if (httpOnly) line += '; HttpOnly'
  if (secure) line += '; Secure'
  if (sameSite !== undefined) {
    const site = typeof sameSite === 'string' ? SAME_SITE[sameSite.toLowerCase()] : undefined
    if (site === undefined) fail(`cookie ${name}: sameSite must be 'strict', 'lax' or 'none', got ${JSON.stringify(sameSite)}`)
    if (site === 'None' && !secure) fail(`cookie ${name}: sameSite 'none' needs secure: true (browsers drop it otherwise)`)
    line += `; SameSite=${site}`
  }
  if (partitioned) {
    if (!secure) fail(`cookie ${name}: partitioned needs secure: true`)
    line += '; Partitioned'
  }
  if (name.startsWith('__Secure-') && !secure) fail(`cookie ${name}: a __Secure- cookie needs secure: true`)
  if (name.startsWith('__Host-') && (!secure || path !== '/' || domain !== undefined)) fail(`cookie ${name}: a __Host- cookie needs secure: true, path: '/' and no domain`)
  return line
}

const EPOCH = new Date(0)

/** A `Set-Cookie` value that removes the cookie (same `path` and `domain` as it was set with). */
export function clearedCookie(name: string, options: CookieOptions = {}): string {
  if (options === null || typeof options !== 'object') fail('cookie options must be an object')
  const { maxAge: _m, expires: _e, ...rest } = options
  return serializeCookie(name, '', { ...rest, expires: EPOCH, maxAge: 0 })
}
