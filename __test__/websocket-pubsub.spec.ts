// WebSocket: topics. app.publish to 1,000 subscribers in call order with sends in between,
// ws.publish leaving out the sender, subscribe/unsubscribe/isSubscribed/subscriptions,
// subscriberCount, and subscriptions ending with the socket.
import test from 'ava'
import type { WebSocket } from 'harrier'
import { PATIENCE_MS, deferred, useApp, withTimeout } from './helpers.ts'
import { type Client, Recorder, openClient, useClient } from './ws-helpers.ts'

test('app.publish reaches 1,000 subscribers, in call order with the sends in between', async (t) => {
  t.timeout(180_000)
  const N = 1000
  const ROUNDS = 50
  const opens = new Recorder<void>()
  const publishes = new Recorder<number>()
  let appRef: { publish(topic: string, data: string): number; subscriberCount(topic: string): number } | undefined
  const { app, port } = await useApp(t, (app) => {
    appRef = app
    app.ws('/', {
      open(ws) {
        ws.subscribe('news')
        opens.push()
      },
      message(ws, m) {
        if (m !== 'go') return
        for (let i = 0; i < ROUNDS; i++) {
          ws.send(`s${i}`)
          publishes.push(appRef!.publish('news', `p${i}`))
        }
      },
    })
  })
  const clients: Client[] = []
  t.teardown(() => clients.forEach((c) => c.ws.terminate()))
  // in batches, so the listen backlog is never the test's problem
  for (let i = 0; i < N; i += 100) {
    clients.push(...(await Promise.all(Array.from({ length: Math.min(100, N - i) }, () => openClient(port)))))
  }
  await opens.count(N, `${N} opens`, 60_000)
  t.is(app.subscriberCount('news'), N)
  await clients[0].send('go')
  await publishes.count(ROUNDS)
  t.deepEqual(publishes.items, Array(ROUNDS).fill(N), 'app.publish returns the number of subscribers')

  const inOrder: string[] = []
  for (let i = 0; i < ROUNDS; i++) inOrder.push(`s${i}`, `p${i}`)
  const onlyPublished = Array.from({ length: ROUNDS }, (_, i) => `p${i}`)
  await Promise.all(
    clients.map((c, i) => c.messages.count(i === 0 ? 2 * ROUNDS : ROUNDS, `client ${i}: every message`, 60_000)),
  )
  t.deepEqual(
    clients[0].messages.items.map((m) => m.text),
    inOrder,
    'the sender sees its sends and the publishes in exactly call order',
  )
  const wrong = clients.slice(1).findIndex((c) => JSON.stringify(c.messages.items.map((m) => m.text)) !== JSON.stringify(onlyPublished))
  t.is(wrong, -1, wrong < 0 ? '' : `client ${wrong + 1} got ${JSON.stringify(clients[wrong + 1].messages.items.map((m) => m.text))}`)
  t.true(
    clients.every((c) => c.messages.items.every((m) => !m.isBinary)),
    'published text is text',
  )
})

test('ws.publish goes to every subscriber but the sender; text stays text and binary binary', async (t) => {
  const { port } = await useApp(t, (app) => {
    app.ws('/chat/:room', {
      open(ws) {
        ws.subscribe(`room:${ws.params.room}`)
        ws.send('subscribed')
      },
      message(ws, m) {
        ws.publish(`room:${ws.params.room}`, m)
        // the sender's next message proves nothing of its own publish came before it
        ws.send('published')
      },
    })
  })
  const open = async (room: string, label: string) => {
    const c = await useClient(t, port, `/chat/${room}`)
    c.label = label
    t.is(await c.nextText(), 'subscribed')
    return c
  }
  const [a, b, c] = [await open('lobby', 'a'), await open('lobby', 'b'), await open('lobby', 'c')]
  const other = await open('kitchen', 'other')
  await a.send('hi from a')
  t.is(await a.nextText(), 'published', 'the sender does not get its own publish')
  t.is(await b.nextText(), 'hi from a')
  t.is(await c.nextText(), 'hi from a')

  await b.send(Buffer.from([0, 1, 2, 255]), { binary: true })
  t.is(await b.nextText(), 'published')
  for (const x of [a, c]) {
    const m = await x.next()
    t.true(m.isBinary)
    t.deepEqual([...m.data], [0, 1, 2, 255])
  }
  // the other room heard none of it
  await other.send('anyone?')
  t.is(await other.nextText(), 'published')
  t.is(other.messages.length, 2, 'subscribed + published only')
  // and the lobby heard nothing from the kitchen: each one's next message is the next lobby one
  await a.send('last')
  t.is(await a.nextText(), 'published')
  t.is(await b.nextText(), 'last')
  t.is(await c.nextText(), 'last')
})

test('subscribe, unsubscribe, isSubscribed, subscriptions and subscriberCount; publish counts', async (t) => {
  const sockets = new Map<string, WebSocket>()
  const closes = new Recorder<string>()
  let appRef: { publish(topic: string, data: string): number; subscriberCount(topic: string): number } | undefined
  const { port } = await useApp(t, (app) => {
    appRef = app
    app.ws('/:name', {
      open(ws) {
        sockets.set(ws.params.name, ws)
        ws.send('open')
      },
      close(ws) {
        closes.push(ws.params.name)
      },
    })
  })
  const app = appRef!
  const a = await useClient(t, port, '/a')
  const b = await useClient(t, port, '/b')
  t.is(await a.nextText(), 'open')
  t.is(await b.nextText(), 'open')
  const wa = sockets.get('a')!
  const wb = sockets.get('b')!

  t.is(app.subscriberCount('t1'), 0)
  t.is(app.publish('t1', 'nobody'), 0, 'publish to a topic without subscribers queues for none')
  t.deepEqual(wa.subscriptions, [])
  t.false(wa.isSubscribed('t1'))

  wa.subscribe('t1')
  wa.subscribe('t2')
  wa.subscribe('t1') // twice is once
  wb.subscribe('t1')
  t.true(wa.isSubscribed('t1'))
  t.true(wa.isSubscribed('t2'))
  t.false(wb.isSubscribed('t2'))
  t.deepEqual([...wa.subscriptions].sort(), ['t1', 't2'])
  t.deepEqual(wb.subscriptions, ['t1'])
  t.is(app.subscriberCount('t1'), 2)
  t.is(app.subscriberCount('t2'), 1)

  t.is(app.publish('t1', 'one'), 2)
  t.is(app.publish('t2', 'two'), 1)
  t.is(await a.nextText(), 'one')
  t.is(await a.nextText(), 'two')
  t.is(await b.nextText(), 'one')

  wa.unsubscribe('t1')
  wa.unsubscribe('never') // not subscribed: nothing happens
  t.false(wa.isSubscribed('t1'))
  t.deepEqual(wa.subscriptions, ['t2'])
  t.is(app.subscriberCount('t1'), 1)
  t.is(app.publish('t1', 'only b'), 1)
  t.is(await b.nextText(), 'only b')
  // a got nothing for t1: its next message is the next t2 one
  t.is(app.publish('t2', 'two again'), 1)
  t.is(await a.nextText(), 'two again')

  // subscriptions end with the socket
  b.close(1000)
  await b.waitClosed()
  await closes.count(1)
  t.is(app.subscriberCount('t1'), 0)
  t.is(app.publish('t1', 'gone'), 0)
  a.close(1000)
  await a.waitClosed()
  await closes.count(2)
  t.is(app.subscriberCount('t2'), 0)
  t.is(app.publish('t2', 'gone'), 0)
})

test('subscriptions taken in open and dropped by a terminated socket', async (t) => {
  const closes = new Recorder<void>()
  const opened = deferred<void>()
  let appRef: { publish(topic: string, data: string): number; subscriberCount(topic: string): number } | undefined
  const { port } = await useApp(t, (app) => {
    appRef = app
    app.ws('/', {
      open(ws) {
        ws.subscribe('a')
        ws.subscribe('b')
        opened.resolve()
      },
      message(ws, m) {
        if (m === 'kill') ws.terminate()
      },
      close: () => void closes.push(),
    })
  })
  const c = await useClient(t, port)
  await withTimeout(opened.promise, PATIENCE_MS, 'open')
  t.is(appRef!.subscriberCount('a'), 1)
  t.is(appRef!.subscriberCount('b'), 1)
  await c.send('kill')
  await c.waitClosed()
  await closes.count(1)
  t.is(appRef!.subscriberCount('a'), 0)
  t.is(appRef!.subscriberCount('b'), 0)
})
