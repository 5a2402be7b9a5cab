// Medians, ratios between servers, and the two outputs: markdown for people, JSON for
// programs.

import { METRICS } from './scenarios.mjs'

export function median(values) {
  const sorted = values.filter((v) => typeof v === 'number' && Number.isFinite(v)).sort((a, b) => a - b)
  if (sorted.length === 0) return null
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}

function ratio(a, b) {
  return typeof a === 'number' && typeof b === 'number' && Number.isFinite(a) && Number.isFinite(b) && b !== 0 ? a / b : null
}

/** A measurement with figures: neither failed (`error`) nor left without figures (`unsupported`). */
const usable = (run) => Boolean(run) && !run.error && !run.unsupported

/**
 * Summarises one scenario. `rounds` holds, per round, each server's figures (or
 * `{ error }`, or `{ unsupported }`: the server cannot do what the scenario measures, e.g.
 * it does not resume TLS sessions; such a round has no figures and is not a failure). Per server: the median of each figure over the rounds. Per metric and
 * pair of servers: the median over the rounds of the ratio within each round (a round
 * runs the servers back to back, so both figures of a ratio saw the same machine), and
 * the ratio of the medians.
 */
export function summarise(scenario, servers, rounds) {
  const out = { servers: {}, ratios: {}, ratiosOfMedians: {} }
  for (const server of servers) {
    const runs = rounds.map((round) => round[server.id]).filter(Boolean)
    const ok = runs.filter(usable)
    const med = {}
    for (const key of scenario.metrics) med[key] = median(ok.map((run) => run[key]))
    const unsupported = runs.filter((run) => run.unsupported)
    out.servers[server.id] = {
      label: server.label,
      median: med,
      runs,
      failed: runs.filter((run) => run.error).length,
      ...(unsupported.length ? { unsupported: unsupported.length, unsupportedReason: unsupported[0].unsupported } : {}),
    }
  }
  for (const key of scenario.metrics) {
    if (METRICS[key].ratio === false) continue
    out.ratios[key] = {}
    out.ratiosOfMedians[key] = {}
    for (const a of servers) {
      out.ratios[key][a.id] = {}
      out.ratiosOfMedians[key][a.id] = {}
      for (const b of servers) {
        if (a.id === b.id) continue
        const paired = rounds.map((round) => {
          const x = round[a.id]
          const y = round[b.id]
          return usable(x) && usable(y) ? ratio(x[key], y[key]) : null
        })
        out.ratios[key][a.id][b.id] = median(paired)
        out.ratiosOfMedians[key][a.id][b.id] = ratio(out.servers[a.id].median[key], out.servers[b.id].median[key])
      }
    }
  }
  return out
}

export function markdownTable(header, rows) {
  const widths = header.map((cell, i) => Math.max(cell.length, ...rows.map((row) => row[i].length)))
  const line = (cells) => `| ${cells.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join(' | ')} |`
  const rule = `|${widths.map((w, i) => (i === 0 ? ` ${'-'.repeat(w)} ` : ` ${'-'.repeat(w - 1)}: `)).join('|')}|`
  return [line(header), rule, ...rows.map(line)].join('\n')
}

function formatRatio(r) {
  if (r === null || r === undefined) return 'n/a'
  return r >= 100 ? `${r.toFixed(0)}×` : r >= 10 ? `${r.toFixed(1)}×` : `${r.toFixed(2)}×`
}

/**
 * The markdown for one scenario: figures, then one ratio matrix per figure. `skipped`:
 * the servers asked for that do not take part in this scenario, `{ label, reason }`.
 */
export function scenarioMarkdown(scenario, load, servers, summary, skipped = []) {
  const present = servers.filter((s) => summary.servers[s.id]?.runs.length)
  const lines = [`## ${scenario.name}: ${scenario.title}`, '', `${scenario.about}. Load: ${load}.`, '']
  if (skipped.length) lines.push(`Not run here: ${skipped.map((s) => `${s.label} (${s.reason})`).join(', ')}.`, '')
  if (scenario.tls) lines.push(...tlsLines(scenario, present, summary))
  const other = present.flatMap((s) => summary.servers[s.id].runs.map((run) => run.serverCoreOtherPct)).filter((v) => typeof v === 'number')
  if (other.length) {
    lines.push(`Other processes on the server's CPU during the measured runs (the machine's noise): median ${Math.round(median(other))}%, at most ${Math.round(Math.max(...other))}% of a CPU.`, '')
  }
  const header = ['server', ...scenario.metrics.map((key) => METRICS[key].title)]
  const rows = present.map((s) => {
    const entry = summary.servers[s.id]
    if (entry.unsupported && entry.unsupported === entry.runs.length) return [`${s.label} (${entry.unsupportedReason})`, ...scenario.metrics.map(() => '—')]
    const cells = scenario.metrics.map((key) => (entry.median[key] === null ? 'n/a' : METRICS[key].format(entry.median[key])))
    const notes = [entry.failed ? `${entry.failed} failed` : null, entry.unsupported ? `${entry.unsupported} not resumed` : null].filter(Boolean)
    return [notes.length ? `${s.label} (${notes.join(', ')})` : s.label, ...cells]
  })
  lines.push(markdownTable(header, rows))
  const ratioKeys = scenario.metrics.filter((key) => METRICS[key].ratio !== false)
  if (present.length > 1 && ratioKeys.length) {
    lines.push('', 'Ratios, row ÷ column (median over the rounds of the ratio within each round):')
    for (const key of ratioKeys) {
      const metric = METRICS[key]
      lines.push('', `${metric.title} (${metric.better} is better)`, '')
      const matrix = present.map((a) => [
        a.label,
        ...present.map((b) => (a.id === b.id ? '—' : formatRatio(summary.ratios[key][a.id][b.id]))),
      ])
      lines.push(markdownTable([metric.title, ...present.map((s) => s.label)], matrix))
    }
  }
  return lines.join('\n')
}

/**
 * What each server negotiated in a TLS scenario (from its first measurement that has it):
 * openssl s_client's protocol, cipher suite and group, which are wrk's (both use libssl's
 * defaults), h2load's where it was the client, and in tls-resume how many of the s_time
 * -reuse connections were resumed.
 */
export function tlsLines(scenario, servers, summary) {
  const lines = []
  const first = (s, key) => summary.servers[s.id].runs.find((run) => run[key])?.[key]
  const negotiated = servers.map((s) => [s, first(s, 'tls')]).filter(([, tls]) => tls)
  if (negotiated.length) {
    const text = (t) => [t.protocol, t.cipher, t.group].filter(Boolean).join(' ')
    lines.push(`Negotiated (openssl s_client, libssl's defaults as wrk's): ${negotiated.map(([s, t]) => `${s.label} ${text(t)}`).join('; ')}.`, '')
  }
  const h2 = servers.map((s) => [s, first(s, 'h2loadTls')]).filter(([, t]) => t)
  if (h2.length) lines.push(`h2load negotiated: ${h2.map(([s, t]) => `${s.label} ${[t.protocol, t.cipher, t.group].filter(Boolean).join(' ')}`).join('; ')}.`, '')
  const resumed = servers.map((s) => [s, first(s, 'resumption')]).filter(([, r]) => r)
  if (resumed.length) {
    lines.push(
      `Session resumption (openssl s_time -reuse, 1 s before the load): ${resumed
        .map(([s, r]) => `${s.label} ${r.reused.toLocaleString('en-US')} of ${(r.reused + r.full).toLocaleString('en-US')} resumed${r.resumes ? '' : ' (does not resume)'}`)
        .join('; ')}.`,
      '',
    )
  }
  const observed = servers.map((s) => [s, first(s, 'observed')]).filter(([, o]) => o)
  if (observed.length) {
    const who = scenario.kind === 'handshake' ? 'one h2load run of 64 clients' : 'wrk, 8 connections for 1 s'
    lines.push(
      `Handshakes seen in the servers' ServerHellos (${who}, through a relay that reads them, before the load): ${observed
        .map(([s, o]) => `${s.label} ${o.full.toLocaleString('en-US')} full, ${o.resumed.toLocaleString('en-US')} resumed${o.tls12 ? `, ${o.tls12} TLS 1.2` : ''}`)
        .join('; ')}.`,
      '',
    )
  }
  return lines
}

/**
 * TLS against plaintext, per server, when a run has both `hello` and `tls-hello` (both
 * keep-alive GET / with the same connections): CPU µs per request and requests/s of each,
 * and TLS ÷ plaintext (ratio of the medians: the two scenarios ran minutes apart, so their
 * rounds do not pair). harrier's target: TLS hello CPU per request ≤ 1.3× its own plaintext.
 * Null when the run lacks one of the two.
 */
export function tlsOverPlain(results, servers) {
  const plain = results.hello
  const tls = results['tls-hello']
  if (!plain || !tls) return null
  const rows = {}
  for (const s of servers) {
    const p = plain.servers[s.id]?.median
    const t = tls.servers[s.id]?.median
    if (!p || !t) continue
    rows[s.id] = {
      label: s.label,
      plainCpuUsPerRequest: p.cpuUsPerRequest,
      tlsCpuUsPerRequest: t.cpuUsPerRequest,
      cpuRatio: ratio(t.cpuUsPerRequest, p.cpuUsPerRequest),
      plainRequestsPerSec: p.requestsPerSec,
      tlsRequestsPerSec: t.requestsPerSec,
      requestsRatio: ratio(t.requestsPerSec, p.requestsPerSec),
    }
  }
  return Object.keys(rows).length ? rows : null
}

export function tlsOverPlainMarkdown(rows) {
  if (!rows) return ''
  const f = (v, digits) => (v === null || v === undefined ? 'n/a' : v.toFixed(digits))
  const table = Object.values(rows).map((r) => [
    r.label,
    f(r.plainCpuUsPerRequest, 2),
    f(r.tlsCpuUsPerRequest, 2),
    formatRatio(r.cpuRatio) + (r.label.startsWith('harrier') && r.cpuRatio !== null ? (r.cpuRatio <= 1.3 ? ' (≤ 1.3×: met)' : ' (> 1.3×: not met)') : ''),
    r.plainRequestsPerSec === null ? 'n/a' : Math.round(r.plainRequestsPerSec).toLocaleString('en-US'),
    r.tlsRequestsPerSec === null ? 'n/a' : Math.round(r.tlsRequestsPerSec).toLocaleString('en-US'),
    formatRatio(r.requestsRatio),
  ])
  return [
    '## TLS against plaintext: tls-hello ÷ hello',
    '',
    "Each server's tls-hello against its own hello in this run (both keep-alive GET / on the same connections): " +
      'ratio of the medians. harrier\'s target: TLS CPU per request at most 1.3× its plaintext.',
    '',
    markdownTable(['server', 'hello CPU µs/req', 'tls-hello CPU µs/req', 'CPU TLS ÷ plain', 'hello req/s', 'tls-hello req/s', 'req/s TLS ÷ plain'], table),
  ].join('\n')
}

export function headerMarkdown(meta) {
  const m = meta.machine
  const v = meta.versions
  const c = meta.config
  return [
    `# harrier benchmark, ${meta.date}`,
    '',
    `Command: \`${meta.command}\``,
    '',
    `Machine: ${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB, Linux ${m.kernel}. ` +
      `Node ${v.node}, Fastify ${v.fastify}, Deno ${v.deno.replace(/^deno /, '').replace(/ \(.*$/, '')}, Bun ${v.bun}, ` +
      `wrk ${v.wrk.replace(/^wrk /, '').split(' ')[0]}, autocannon ${v.autocannon}` +
      `${v.nginx && v.nginx !== 'not run' ? `, nginx ${v.nginx}` : ''}. ` +
      `harrier at ${v.harrier}.`,
    '',
    `Server on CPU ${c.serverCpu}, load generator on CPU ${c.clientCpu}. ${c.runs} round(s) per scenario, ` +
      `servers interleaved within each round (order rotated); ${c.duration} s measured after ${c.warmup} s of warm-up; ` +
      `figures are medians over the rounds.${c.quick ? ' Quick mode: short runs, noisy figures.' : ''}`,
    '',
    'CPU µs/req is the server process\'s utime + stime (all threads) over the measured run ÷ requests; ' +
      'ctx sw/req the voluntary + non-voluntary context switches of its threads ÷ requests; RSS its VmRSS after the run. ' +
      'In the WebSocket scenarios the same per message echoed (/msg) or per message delivered to one subscriber (/delivery).',
  ].join('\n')
}

/**
 * One table for the whole run: a row per scenario, a column per server, the headline
 * figures in each cell (req/s and CPU µs per request; KiB per idle connection; RSS growth).
 */
export function summaryMarkdown(results, servers) {
  const names = Object.keys(results)
  if (names.length === 0) return ''
  const cell = (scenario, entry) => {
    if (!entry) return '—'
    const m = entry.median
    const f = (key) => (m[key] === null || m[key] === undefined ? 'n/a' : METRICS[key].format(m[key]))
    if (entry.runs.length && entry.failed === entry.runs.length) return 'failed'
    if (entry.unsupported && entry.unsupported + entry.failed === entry.runs.length) return 'not resumed'
    if (scenario.metrics?.includes('handshakesPerSec')) return `${f('handshakesPerSec')} · ${f('cpuUsPerHandshake')} µs`
    if (scenario.kind === 'idle' || scenario.kind === 'ws-idle') return `${f('kibPerConnection')} KiB`
    if (scenario.metrics?.includes('messagesPerSec')) return `${f('messagesPerSec')} · ${f('cpuUsPerMessage')} µs`
    if (scenario.metrics?.includes('deliveriesPerSec')) return `${f('deliveriesPerSec')} · ${f('cpuUsPerDelivery')} µs`
    if (scenario.kind === 'growth') return `${m.growthPct === null ? 'n/a' : `${m.growthPct >= 0 ? '+' : ''}${m.growthPct.toFixed(1)}%`}`
    if (scenario.metrics?.includes('transferMiBps')) return `${f('requestsPerSec')} · ${f('cpuUsPerRequest')} µs · ${f('transferMiBps')} MiB/s`
    return `${f('requestsPerSec')} · ${f('cpuUsPerRequest')} µs`
  }
  const rows = names.map((name) => [name, ...servers.map((s) => cell(results[name], results[name].servers[s.id]))])
  return [
    '## Summary',
    '',
    'Medians. Load scenarios: requests/s · server CPU µs per request (static files: · body MiB/s); idle-10k: RSS per idle connection; ' +
      'rss-growth: RSS growth from the first phase to the end; ws-echo-*: messages/s · CPU µs per message; ws-broadcast: deliveries/s · ' +
      'CPU µs per delivery; ws-idle-10k: RSS per idle WebSocket; tls-handshake, tls-resume: handshakes/s · CPU µs per handshake. ' +
      '— : not run there. Details and ratios below.',
    '',
    markdownTable(['scenario', ...servers.map((s) => s.label)], rows),
  ].join('\n')
}
