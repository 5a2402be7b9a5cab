// Picks the names of what failed out of the output of `node scripts/test.mjs`: the step
// (scripts/test.mjs prints `failed: <step>`), the ava tests (`✘ [fail]: file › title
// message`, timeouts, crashed workers) and the cargo tests (`test name ... FAILED`).
export function failuresIn(output) {
  const lines = output.split(/\r?\n/)
  const step = lines.findLast((l) => l.startsWith('failed: '))?.slice('failed: '.length)
  const tests = []
  for (const line of lines) {
    const t = line.trim()
    let m
    if ((m = /^✘ \[fail\]: (.*)$/.exec(t))) tests.push(shorten(m[1]))
    else if ((m = /^test (\S+) \.\.\. FAILED$/.exec(t))) tests.push(`cargo ${m[1]}`)
    else if (/^✘ (Timed out while running tests|.* exited (due to|with) .*|Internal error.*)$/.test(t)) tests.push(t.slice(2))
    else if (/^\d+ uncaught exceptions?$|^\d+ unhandled rejections?$/.test(t)) tests.push(t)
  }
  return { step, tests: [...new Set(tests)] }
}

// An ava line holds the title and then the error message; a long message would drown the tally.
function shorten(text, max = 200) {
  return text.length > max ? `${text.slice(0, max)}…` : text
}
