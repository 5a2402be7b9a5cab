// The static-file API as a user's project sees it (checked by __test__/types.spec.ts).
import { App } from 'harrier'
import type { StaticOptions } from 'harrier'

const app = new App()
const options: StaticOptions = { maxAge: 3600, immutable: true, index: 'index.html', fallback: 'index.html', dotfiles: 'ignore', precompressed: true }
const chained: App = app.static('/assets', './public', options).static('/', './dist')
app.get('/report', (req, res) => res.sendFile('./out/report.pdf'))
app.get('/page', (req, res) => res.status(404).sendFile('./404.html', { maxAge: 60 }))
// @ts-expect-error: dotfiles is 'ignore' or 'allow'
app.static('/x', './x', { dotfiles: 'show' })
// @ts-expect-error: maxAge is in seconds, a number
app.static('/y', './y', { maxAge: '1h' })
// @ts-expect-error: sendFile needs a path
app.get('/z', (req, res) => res.sendFile())
export { chained }
