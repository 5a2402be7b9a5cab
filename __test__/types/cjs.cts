// The CommonJS entry as a user's CommonJS TypeScript sees it (`require`). Type-checked only.
import harrier = require('harrier')

const app = new harrier.App({ handlerTimeout: 1000 })
app.get('/files/*', (req, res) => res.text(req.params['*']))
app.listen({ port: 0 }).then(({ port }) => {
  console.log(port)
  return app.close()
})
