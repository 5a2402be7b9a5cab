// The public entry for ES modules: the same objects as the CommonJS entry.
import harrier from './index.js'

export const { App, EventStream, HttpError, Request, Response, WebSocket, serve } = harrier
export default harrier
