// Where the suite finds things. The shared folder beside the repo (`../shared`, from the
// repo root) holds the wrk pipelining script and the floor responder's source.

import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const bench = join(dirname(fileURLToPath(import.meta.url)), '..')
const root = join(bench, '..')

export const paths = {
  root,
  bench,
  servers: join(bench, 'servers'),
  scripts: join(bench, 'scripts'),
  results: join(bench, 'results'),
  shared: resolve(root, '../shared'),
  get pipelineScript() {
    return join(this.shared, 'bench', 'pipeline.lua')
  },
  get floorSource() {
    return join(this.shared, 'bench', 'floor.c')
  },
}

/** `--shared DIR` points the suite at another copy of the shared folder. */
export function setShared(dir) {
  paths.shared = resolve(process.cwd(), dir)
}
