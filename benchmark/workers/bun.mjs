// Bun.serve with reusePort: one process of WORKERS (the benchmark starts them all on PORT).
import { burn } from './burn.mjs'

const TEXT = { 'content-type': 'text/plain; charset=utf-8' }
Bun.serve({
  port: Number(process.env.PORT),
  hostname: '127.0.0.1',
  reusePort: true,
  fetch(req) {
    const url = req.url
    const path = url.slice(url.indexOf('/', url.indexOf('//') + 2))
    return new Response(path === '/burn' ? String(burn(path.length)) : 'Hello, World!', { headers: TEXT })
  },
})
