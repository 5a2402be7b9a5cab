/* 16k slots per I/O thread: more requests than that in flight at once is rare, and those
 * go to a map. A Map alone costs ~150 ns per request: each id is new, so it keeps rehashing. */
const SLOTS = 1 << 14
const MASK = SLOTS - 1

/**
 * The requests handed to JS and not yet answered, by I/O thread and request id (ids grow by
 * one per request on each thread, so the low bits index a table directly).
 */
export class InflightTable<T extends { readonly rid: number }> {
  private readonly tables: (T | undefined)[][] = []
  private readonly overflow = new Map<number, T>()

  add(thread: number, value: T): void {
    const table = (this.tables[thread] ??= new Array<T | undefined>(SLOTS).fill(undefined))
    const i = value.rid & MASK
    if (table[i] === undefined) table[i] = value
    else this.overflow.set(value.rid * 64 + thread, value)
  }

  get(thread: number, rid: number): T | undefined {
    const value = this.tables[thread]?.[rid & MASK]
    if (value !== undefined && value.rid === rid) return value
    return this.overflow.size === 0 ? undefined : this.overflow.get(rid * 64 + thread)
  }

  delete(thread: number, rid: number): void {
    const table = this.tables[thread]
    const i = rid & MASK
    if (table !== undefined && table[i] !== undefined && table[i]!.rid === rid) table[i] = undefined
    else if (this.overflow.size !== 0) this.overflow.delete(rid * 64 + thread)
  }

  /** Empties the table, returning what was in it. */
  drain(): T[] {
    const all: T[] = [...this.overflow.values()]
    for (const table of this.tables) if (table) for (const v of table) if (v !== undefined) all.push(v)
    this.tables.length = 0
    this.overflow.clear()
    return all
  }
}
