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

/**
 * Summarises one scenario. `rounds` holds, per round, each server's figures (or
 * `{ error }`). Per server: the median of each figure over the rounds. Per metric and
 * pair of servers: the median over the rounds of the ratio within each round (a round
 * runs the servers back to back, so both figures of a ratio saw the same machine), and
 * the ratio of the medians.
 */
export function summarise(scenario, servers, rounds) {
  const out = { servers: {}, ratios: {}, ratiosOfMedians: {} }
  for (const server of servers) {
    const runs = rounds.map((round) => round[server.id]).filter(Boolean)
    const ok = runs.filter((run) => !run.error)
    const med = {}
    for (const key of scenario.metrics) med[key] = median(ok.map((run) => run[key]))
    out.servers[server.id] = { label: server.label, median: med, runs, failed: runs.length - ok.length }
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
          return x && y && !x.error && !y.error ? ratio(x[key], y[key]) : null
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
  const header = ['server', ...scenario.metrics.map((key) => METRICS[key].title)]
  const rows = present.map((s) => {
    const entry = summary.servers[s.id]
    const cells = scenario.metrics.map((key) => (entry.median[key] === null ? 'n/a' : METRICS[key].format(entry.median[key])))
    return [entry.failed ? `${s.label} (${entry.failed} failed)` : s.label, ...cells]
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
      'CPU µs per delivery; ws-idle-10k: RSS per idle WebSocket. — : not run there. Details and ratios below.',
    '',
    markdownTable(['scenario', ...servers.map((s) => s.label)], rows),
  ].join('\n')
}
