// Checks of the suite's own arithmetic and parsing, without servers or load:
//   node --test benchmark/suite/

import assert from 'node:assert/strict'
import test from 'node:test'

import { parseWrk } from './load.mjs'
import { median, summarise, summaryMarkdown } from './report.mjs'
import { delta } from './proc.mjs'
import { SCENARIOS } from './scenarios.mjs'
import { parseServerSpec } from './servers.mjs'

const WRK_OUTPUT = `Running 2s test @ http://127.0.0.1:41234/
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   612.20us  301.11us  12.03ms   91.02%
    Req/Sec   102.64k     4.11k  108.31k    75.00%
  Latency Distribution
     50%  573.00us
     75%  650.00us
     90%  740.00us
     99%    1.45ms
  204281 requests in 2.00s, 30.20MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 7
Requests/sec: 102139.87
Transfer/sec:     15.10MB
`

test('parseWrk reads counts, rates, percentiles and errors', () => {
  const r = parseWrk(WRK_OUTPUT)
  assert.equal(r.requests, 204281)
  assert.equal(r.requestsPerSec, 102139.87)
  assert.equal(r.p50Ms, 0.573)
  assert.equal(r.p99Ms, 1.45)
  assert.equal(r.non2xx, 7)
  assert.deepEqual(r.socketErrors, { connect: 0, read: 2, write: 0, timeout: 1 })
  assert.deepEqual(r.latencyWarnings, [])
})

test('parseWrk leaves out a percentile printed as 0', () => {
  const r = parseWrk(WRK_OUTPUT.replace('99%    1.45ms', '99%    0.00us'))
  assert.equal(r.p99Ms, null)
  assert.equal(r.latencyWarnings.length, 1)
})

test('delta gives CPU µs and switches per request', () => {
  const d = delta({ at: 0n, cpu: 1.0, ctx: 100 }, { at: 2_000_000_000n, cpu: 1.5, ctx: 150 }, 100_000)
  assert.equal(d.cpuUsPerRequest, 5)
  assert.equal(d.ctxPerRequest, 0.0005)
  assert.equal(d.serverCpuUtilisation, 0.25)
})

test('median', () => {
  assert.equal(median([3, 1, 2]), 2)
  assert.equal(median([4, 1, 2, 3]), 2.5)
  assert.equal(median([null, 5]), 5)
  assert.equal(median([]), null)
})

test('ratios pair the figures of one round, then take the median', () => {
  const scenario = SCENARIOS.find((s) => s.name === 'hello')
  const servers = [parseServerSpec('harrier'), parseServerSpec('deno')]
  const figures = (rps, cpu) => ({ requestsPerSec: rps, cpuUsPerRequest: cpu, p50Ms: 1, p99Ms: 2, ctxPerRequest: 0.1, rssMiB: 50 })
  const rounds = [
    { harrier: figures(200, 5), deno: figures(100, 10) }, // 2x, 0.5x
    { harrier: figures(90, 5), deno: figures(30, 10) }, // 3x
    { harrier: figures(100, 5), deno: { error: 'died' } }, // no pair
    { harrier: figures(120, 5), deno: figures(100, 10) }, // 1.2x
  ]
  const s = summarise(scenario, servers, rounds)
  assert.equal(s.ratios.requestsPerSec.harrier.deno, 2)
  assert.equal(s.ratios.cpuUsPerRequest.harrier.deno, 0.5)
  assert.equal(s.ratios.requestsPerSec.deno.harrier, 0.5)
  assert.equal(s.servers.deno.failed, 1)
  assert.equal(s.servers.harrier.median.requestsPerSec, 110)
  assert.equal(s.ratiosOfMedians.requestsPerSec.harrier.deno, 110 / 100)
  const table = summaryMarkdown({ hello: { kind: 'wrk', ...s } }, servers)
  assert.match(table, /\| hello +\| +110 · 5\.00 µs \| +100 · 10\.00 µs \|/)
})

test('server specs: names, aliases, variants', () => {
  assert.equal(parseServerSpec('node:http').id, 'node')
  assert.equal(parseServerSpec('Bun.serve').id, 'bun')
  assert.equal(parseServerSpec('nope'), null)
  const v = parseServerSpec('harrier:HARRIER_DRIVER=threads')
  assert.equal(v.id, 'harrier:HARRIER_DRIVER=threads')
  assert.equal(v.label, 'harrier (HARRIER_DRIVER=threads)')
  assert.deepEqual(v.env, { HARRIER_DRIVER: 'threads' })
  assert.throws(() => parseServerSpec('harrier:oops'))
})
