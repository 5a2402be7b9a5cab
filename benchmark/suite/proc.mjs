// What the suite reads about a server process from /proc (Linux only).

import { execFileSync } from 'node:child_process'
import { readFileSync, readdirSync, readlinkSync } from 'node:fs'

let ticks = null

/** Clock ticks per second, the unit of utime and stime in /proc/<pid>/stat. */
export function clockTicksPerSecond() {
  if (ticks === null) {
    const value = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim())
    if (!Number.isFinite(value) || value <= 0) throw new Error('getconf CLK_TCK returned no usable value')
    ticks = value
  }
  return ticks
}

/**
 * utime + stime of the whole process in seconds. /proc/<pid>/stat adds up every
 * thread of the process, those that have exited included.
 */
export function cpuSeconds(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  // Field 2, the command name, is in parentheses and may hold spaces.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  // fields[0] is field 3 (state); utime is field 14, stime field 15.
  return (Number(fields[11]) + Number(fields[12])) / clockTicksPerSecond()
}

/**
 * utime + stime, in seconds, of this process's children that have exited and been waited
 * for (cutime + cstime of /proc/self/stat): read before and after a load generator runs,
 * the difference is that generator's CPU (and its own children's, for a shell loop), as
 * long as no other child exits meanwhile.
 */
export function childrenCpuSeconds() {
  const stat = readFileSync('/proc/self/stat', 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  // cutime is field 16, cstime field 17.
  return (Number(fields[13]) + Number(fields[14])) / clockTicksPerSecond()
}

/** A taskset CPU list (`0`, `0-3`, `0,2`) as CPU numbers. */
export function parseCpuList(list) {
  const cpus = []
  for (const part of String(list).split(',')) {
    const [a, b] = part.split('-').map(Number)
    for (let cpu = a; cpu <= (b ?? a); cpu++) cpus.push(cpu)
  }
  return cpus
}

/**
 * Busy seconds of the given CPUs since boot (/proc/stat: every field but idle and iowait,
 * guest time being counted in user already), whoever ran there.
 */
export function coreBusySeconds(cpus) {
  const wanted = new Set(cpus.map((cpu) => `cpu${cpu}`))
  let ticks = 0
  for (const line of readFileSync('/proc/stat', 'utf8').split('\n')) {
    const fields = line.trim().split(/\s+/)
    if (!wanted.has(fields[0])) continue
    const [user, nice, system, , , irq, softirq, steal] = fields.slice(1).map(Number)
    ticks += user + nice + system + irq + softirq + (steal || 0)
  }
  return ticks / clockTicksPerSecond()
}

function statusField(text, key) {
  const match = text.match(new RegExp(`^${key}:\\s+(\\d+)`, 'm'))
  return match ? Number(match[1]) : null
}

/**
 * Voluntary plus non-voluntary context switches, added up over the threads alive
 * now (/proc/<pid>/task/<tid>/status). A thread that exits between two readings
 * takes its count with it; the servers here keep their threads.
 */
export function contextSwitches(pid) {
  let total = 0
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    let text
    try {
      text = readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8')
    } catch {
      continue // the thread exited meanwhile
    }
    total += (statusField(text, 'voluntary_ctxt_switches') ?? 0) + (statusField(text, 'nonvoluntary_ctxt_switches') ?? 0)
  }
  return total
}

/** VmRSS and VmHWM (peak RSS) in KiB. */
export function memoryKiB(pid) {
  const text = readFileSync(`/proc/${pid}/status`, 'utf8')
  return { rss: statusField(text, 'VmRSS'), hwm: statusField(text, 'VmHWM') }
}

export function threadCount(pid) {
  try {
    return readdirSync(`/proc/${pid}/task`).length
  } catch {
    return null
  }
}

/** The executable the process runs, to check that the pid measured is the server itself. */
export function executable(pid) {
  return readlinkSync(`/proc/${pid}/exe`)
}

/** Pids of the process's children (of any of its threads). */
export function childPids(pid) {
  const out = []
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      out.push(...readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').split(' ').filter(Boolean).map(Number))
    } catch {
      // thread gone, or no children file on this kernel
    }
  }
  return out
}

/** CPU seconds, context switches and memory at one instant. */
export function snapshot(pid) {
  return { at: process.hrtime.bigint(), cpu: cpuSeconds(pid), ctx: contextSwitches(pid) }
}

/** The per-request figures between two snapshots. */
export function delta(before, after, requests) {
  const cpu = after.cpu - before.cpu
  const ctx = after.ctx - before.ctx
  const wall = Number(after.at - before.at) / 1e9
  return {
    cpuSeconds: cpu,
    cpuUsPerRequest: requests > 0 ? (cpu * 1e6) / requests : null,
    ctxSwitches: ctx,
    ctxPerRequest: requests > 0 ? ctx / requests : null,
    serverCpuUtilisation: wall > 0 ? cpu / wall : null,
  }
}

/**
 * RSS samples (KiB, in the order taken) as the figures the static scenarios report: the
 * first, the largest and the last, in MiB; samples that could not be read (null) are
 * skipped. Null figures when no sample was read.
 */
export function rssSummary(samplesKiB) {
  const read = samplesKiB.filter((v) => typeof v === 'number' && Number.isFinite(v))
  if (read.length === 0) return { rssStartMiB: null, rssMaxMiB: null, rssEndMiB: null, rssSamples: 0 }
  return {
    rssStartMiB: read[0] / 1024,
    rssMaxMiB: Math.max(...read) / 1024,
    rssEndMiB: read[read.length - 1] / 1024,
    rssSamples: read.length,
  }
}

/**
 * Samples the process's VmRSS now and then every `everyMs` until `stop()`, which takes a
 * last sample and returns all of them (KiB; null where the process could not be read).
 */
export function sampleRss(pid, everyMs = 500) {
  const samples = []
  const take = () => {
    try {
      samples.push(memoryKiB(pid).rss)
    } catch {
      samples.push(null)
    }
  }
  take()
  const timer = setInterval(take, everyMs)
  return {
    stop() {
      clearInterval(timer)
      take()
      return samples
    },
  }
}
