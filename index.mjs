// The public entry for ES modules: the same objects as the CommonJS entry.
import harrier from './index.js'

export const { App, HttpError, Request, Response, WebSocket, serve } = harrier
export default harrier
