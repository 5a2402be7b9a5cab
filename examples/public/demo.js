// The demo page's script (served by the engine from examples/public/).
'use strict'
const $ = (id) => document.getElementById(id)
const int = (n) => Math.round(n).toLocaleString('en')
const ms = (n) => (n >= 100 ? Math.round(n) : n.toFixed(1)) + ' ms'

// ---- the chat: a WebSocket in a room; the server publishes to everyone else in it
{
  const room = new URLSearchParams(location.search).get('room') || 'lobby'
  $('room').textContent = room
  const log = $('log')
  const card = $('chat-card')
  let me = null
  const line = (text, kind) => {
    const p = document.createElement('div')
    p.className = 'msg ' + (kind || '')
    const m = /^(guest \d+): ([\s\S]*)$/.exec(text)
    if (m && kind !== 'me') {
      const who = document.createElement('b')
      who.textContent = m[1]
      p.append(who, ' ' + m[2])
    } else p.textContent = text
    log.append(p)
    log.scrollTop = log.scrollHeight
  }
  card.dataset.state = 'connecting'
  const ws = new WebSocket(location.origin.replace(/^http/, 'ws') + '/chat/' + encodeURIComponent(room))
  ws.onopen = () => (card.dataset.state = 'open')
  ws.onmessage = (e) => {
    const text = String(e.data)
    const welcome = /^welcome, (guest \d+): /.exec(text)
    if (welcome) me = welcome[1]
    line(text, welcome || / (joined|left)$/.test(text) ? 'sys' : '')
  }
  ws.onclose = (e) => {
    card.dataset.state = 'closed'
    line('(closed: ' + e.code + ')', 'sys')
  }
  $('say').onsubmit = (e) => {
    e.preventDefault()
    const text = $('text')
    if (text.value && ws.readyState === WebSocket.OPEN) {
      ws.send(text.value)
      line((me ? me + ' (you)' : 'you') + ': ' + text.value, 'me')
      text.value = ''
    }
  }
}

// ---- the server's clock: Server-Sent Events from /clock
{
  const card = $('clock-card')
  let ticks = 0
  const clock = new EventSource('/clock')
  clock.addEventListener('tick', (e) => {
    const { now } = JSON.parse(e.data)
    const at = new Date(now)
    $('clock').textContent = at.toLocaleTimeString('en-GB', { hour12: false })
    $('clock-sub').textContent = 'event ' + e.lastEventId + ' · ' + at.toISOString().slice(0, 10) + ' · server time, your time zone'
    card.dataset.state = 'live'
    card.dataset.ticks = String(++ticks)
    card.dataset.lastId = e.lastEventId
  })
  clock.onerror = () => {
    card.dataset.state = 'reconnecting'
    $('clock-sub').textContent = 'reconnecting…'
  }
}

// ---- the load burst: N fetches, C in flight, from this tab
{
  const TOTAL = 2000
  const CONCURRENCY = 32
  const button = $('burst')
  const result = $('burst-result')
  const bar = $('burst-bar')
  button.onclick = async () => {
    button.disabled = true
    result.dataset.state = 'running'
    let next = 0
    let done = 0
    let errors = 0
    const latencies = []
    const started = performance.now()
    let frame = 0
    const show = () => {
      frame = 0
      const secs = (performance.now() - started) / 1000
      bar.style.width = (100 * done / TOTAL).toFixed(1) + '%'
      $('burst-done').textContent = int(done)
      $('burst-time').textContent = secs.toFixed(2) + ' s'
      $('burst-rps').textContent = secs > 0 ? int(done / secs) : '–'
      $('burst-errors').textContent = int(errors)
    }
    const worker = async () => {
      while (next < TOTAL) {
        next++
        const t0 = performance.now()
        try {
          const r = await fetch('/hello', { cache: 'no-store' })
          await r.arrayBuffer()
          if (!r.ok) errors++
        } catch {
          errors++
        }
        latencies.push(performance.now() - t0)
        done++
        frame ||= requestAnimationFrame(show)
      }
    }
    await Promise.all(Array.from({ length: CONCURRENCY }, worker))
    const secs = (performance.now() - started) / 1000
    show()
    latencies.sort((a, b) => a - b)
    const q = (p) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))]
    $('burst-p50').textContent = ms(q(0.5))
    $('burst-p99').textContent = ms(q(0.99))
    result.dataset.rps = String(Math.round(done / secs))
    result.dataset.requests = String(done)
    result.dataset.errors = String(errors)
    result.dataset.state = 'done'
    button.textContent = 'Run 2,000 more'
    button.disabled = false
  }
}

// ---- the routes: fetch one and show its answer, and who answered
{
  const out = $('route-out')
  let current = 0
  for (const b of document.querySelectorAll('[data-try]')) {
    b.onclick = async () => {
      const mine = ++current
      const url = b.dataset.try
      const method = b.dataset.method || 'GET'
      out.dataset.state = 'loading'
      out.textContent = method + ' ' + url + ' …'
      const t0 = performance.now()
      try {
        const r = await fetch(url, method === 'POST' ? { method, body: 'Hello from the demo page', headers: { 'content-type': 'text/plain' } } : { cache: 'no-store' })
        const head = 'HTTP ' + r.status + ' ' + (r.statusText || '') + '\n' +
          'content-type: ' + (r.headers.get('content-type') || '–') + '\n' +
          'answered by: ' + (r.headers.get('x-powered-by') ? 'JavaScript (x-powered-by: ' + r.headers.get('x-powered-by') + ')' : 'the engine') + '\n\n'
        out.textContent = head
        const reader = r.body.getReader()
        const decoder = new TextDecoder()
        for (;;) {
          const { value, done } = await reader.read()
          if (mine !== current) return reader.cancel()
          if (done) break
          out.textContent += decoder.decode(value, { stream: true })
        }
        out.textContent += '\n\n(' + ms(performance.now() - t0) + ')'
        out.dataset.state = 'done'
        out.dataset.status = String(r.status)
      } catch (e) {
        out.textContent = 'failed: ' + e.message
        out.dataset.state = 'failed'
      }
    }
  }
}

// ---- static files: the engine's headers against JavaScript's
$('compare').onclick = async () => {
  const names = ['status', 'content-type', 'content-length', 'etag', 'last-modified', 'cache-control', 'x-powered-by']
  const [a, b] = await Promise.all(['/assets/style.css', '/hello'].map((u) => fetch(u, { cache: 'no-store' })))
  const value = (r, n) => (n === 'status' ? String(r.status) : r.headers.get(n) || '–')
  const body = $('headers').tBodies[0]
  body.replaceChildren(...names.map((n) => {
    const tr = document.createElement('tr')
    for (const text of [n, value(a, n), value(b, n)]) {
      const td = document.createElement('td')
      td.textContent = text
      tr.append(td)
    }
    return tr
  }))
  $('headers').hidden = false
}

// ---- operations: a scrape of /metrics, and /health in the header
$('scrape').onclick = async () => {
  const text = await (await fetch('/metrics', { cache: 'no-store' })).text()
  const lines = text.split('\n').filter((l) => l && !l.startsWith('#') && !l.includes('_bucket'))
  const out = $('metrics-out')
  out.textContent = lines.slice(0, 18).join('\n') + (lines.length > 18 ? '\n… ' + (lines.length - 18) + ' more' : '')
  out.hidden = false
}
async function health() {
  const dot = $('health')
  try {
    const r = await fetch('/health', { cache: 'no-store' })
    dot.dataset.state = r.ok ? 'ok' : 'draining'
    dot.title = 'GET /health: ' + r.status + ' ' + (await r.text()).trim()
  } catch {
    dot.dataset.state = 'down'
    dot.title = 'GET /health: no answer'
  }
}
health()
setInterval(health, 15000)
