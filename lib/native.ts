// The native addon, through the loader that `napi build` generates (binding.js at the top).
// eslint-disable-next-line @typescript-eslint/no-require-imports
const binding = require('../binding.js') as typeof import('../binding')

export const { NativeServer, checkRoute, inlineSupported, groupAnnounceDrain, groupMetricsJson } = binding
export type NativeServer = import('../binding').NativeServer
