// The ES module entry as a user's ESM TypeScript sees it: named imports, the default
// export (the CommonJS exports object), and top-level await. Type-checked only.
import harrier, { App, HttpError } from 'harrier'
import type { Listening } from 'harrier'

const app = new harrier.App()
app.get('/users/:id', (req, res) => res.json({ id: req.params.id }))
app.get('/error', () => {
  throw new harrier.HttpError(400, 'Bad Request')
})
const listening: Listening = await app.listen({ port: 0, host: '127.0.0.1', signals: false })
console.log(listening.port, new App() instanceof harrier.App, new HttpError(500) instanceof Error)
await app.close()
