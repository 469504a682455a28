/**
 * Which user a simulated request comes from: picked by weight, from the phase's own users or, for
 * a phase without any, from the traffic's.
 */
import type * as Random from "./random.js"
import type * as Scenario from "./scenario.js"
import { usersOf } from "./stack.js"

/** Picks users by weight (cumulative table, binary search): the index of one, plus `offset`. */
const userPicker = (
  users: ReadonlyArray<{ readonly weight: number }>,
  rng: Random.Rng,
  offset: number
): () => number => {
  const cumulative: Array<number> = []
  let sum = 0
  for (const u of users) cumulative.push(sum += u.weight)
  return () => {
    const x = rng.next() * sum
    let lo = 0, hi = cumulative.length - 1
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if (cumulative[mid] > x) hi = mid
      else lo = mid + 1
    }
    return lo + offset
  }
}

/** Per phase, a picker of its users (indices into `allUsers`): its own, or `traffic.users`. */
export const phasePickers = (scenario: Scenario.Scenario, rng: Random.Rng): ReadonlyArray<() => number> => {
  const traffic = userPicker(usersOf(scenario.traffic.users), rng, 0)
  let offset = usersOf(scenario.traffic.users).length
  return scenario.phases.map((p) => {
    if (p.users === undefined || p.users.length === 0) return traffic
    const picker = userPicker(p.users, rng, offset)
    offset += p.users.length
    return picker
  })
}
