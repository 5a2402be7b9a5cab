// Picks the names of what failed out of the output of `node scripts/test.mjs`: the step
// (scripts/test.mjs prints `failed: <step>`), the ava tests (`✘ [fail]: file › title
// message`, timeouts, crashed workers) and the cargo tests (`test name ... FAILED`, with
// where and why they panicked: that tells a known engine bug from a new failure).
export function failuresIn(output) {
  const lines = output.split(/\r?\n/).map((l) => l.trim())
  const step = lines.findLast((l) => l.startsWith('failed: '))?.slice('failed: '.length)
  const tests = []
  const cargo = []
  const panics = new Map()
  lines.forEach((line, i) => {
    let m
    if ((m = /^✘ \[fail\]: (.*)$/.exec(line))) tests.push(shorten(m[1]))
    else if (/^✘ (Timed out while running tests|.* exited (due to|with) .*|Internal error.*)$/.test(line)) tests.push(line.slice(2))
    else if (/^\d+ (uncaught exceptions?|unhandled rejections?)$/.test(line)) tests.push(line)
    else if ((m = /^test (\S+) \.\.\. FAILED$/.exec(line))) cargo.push(m[1])
    else if ((m = /^thread '([^']+)'(?: \(\d+\))? panicked at (.+?):?$/.exec(line))) panics.set(m[1], shorten(`${m[2]}: ${lines[i + 1] ?? ''}`))
  })
  for (const name of cargo) {
    const panic = [...panics].find(([thread]) => thread === name || thread.endsWith(`::${name}`) || name.endsWith(`::${thread}`))
    tests.push(`cargo ${name}${panic ? ` (panicked at ${panic[1]})` : ''}`)
  }
  return { step, tests: [...new Set(tests)] }
}

// An ava line holds the title and then the error message; a long message would drown the tally.
function shorten(text, max = 200) {
  return text.length > max ? `${text.slice(0, max)}…` : text
}
