// The public types: written in lib/ and emitted by tsc into dist/.
export * from './dist/index'
