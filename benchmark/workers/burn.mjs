// The work each request does: a fixed hash loop, about 100 µs of CPU in Node on this machine
// (BENCH_BURN_ROUNDS changes it). The same loop runs in every server.
export const ROUNDS = Number(process.env.BENCH_BURN_ROUNDS ?? 100_000)

export function burn(seed) {
  let h = 0x811c9dc5 ^ seed
  for (let i = 0; i < ROUNDS; i++) {
    h ^= i & 0xff
    h = Math.imul(h, 0x01000193)
  }
  return h >>> 0
}
