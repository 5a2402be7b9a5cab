// The platform's fetch classes (undici's, in Node), taken on first use rather than at import:
// the first read of `globalThis.Request` loads undici, about 4 MiB of heap per thread, which
// an app without fetch handlers or `formData()` never needs (every worker of
// `serve({ module })` would pay it). They are taken before `serve` or `mount` puts harrier's
// own in the global scope: the fetch layer asks for them as it loads.

export interface Platform {
  Request: typeof globalThis.Request
  Response: typeof globalThis.Response
  Headers: typeof globalThis.Headers
  fetch: typeof globalThis.fetch
}

let taken: Platform | undefined

export function platform(): Platform {
  return (taken ??= { Request: globalThis.Request, Response: globalThis.Response, Headers: globalThis.Headers, fetch: globalThis.fetch })
}
