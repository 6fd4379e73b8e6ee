// fast-check settings shared by the property tests. Runs are reproducible: the seed is fixed
// unless SHOAL_PROPERTY_SEED names another (a number, or "random" for a fresh one each run), and
// a failure prints the seed and path of its shrunk counterexample; replay that one case with
// SHOAL_PROPERTY_SEED=<seed> SHOAL_PROPERTY_PATH=<path> and --test-name-pattern for its test.

import fc from "fast-check";

const DEFAULT_SEED = 20240611;

/** The seed of this run (undefined: fast-check picks one). */
export function propertySeed(): number | undefined {
  const env = process.env["SHOAL_PROPERTY_SEED"];
  if (env === "random") return undefined;
  if (env === undefined || env === "") return DEFAULT_SEED;
  const seed = Number(env);
  if (!Number.isInteger(seed)) {
    throw new Error(
      `SHOAL_PROPERTY_SEED must be an integer or "random", not ${JSON.stringify(env)}`,
    );
  }
  return seed;
}

/** fast-check parameters for numRuns runs with this run's seed (and path, when replaying). */
export function propertyParams<T>(numRuns: number): fc.Parameters<T> {
  // The predicate's own error (what broke, after which steps) goes into the report: node's test
  // runner does not print an error's cause.
  const params: fc.Parameters<T> = { numRuns, includeErrorInReport: true };
  const seed = propertySeed();
  if (seed !== undefined) params.seed = seed;
  const path = process.env["SHOAL_PROPERTY_PATH"];
  if (path) params.path = path;
  return params;
}

/**
 * A sequence of exactly n steps drawn from arb, in which any step may shrink to null (to be
 * skipped): runs keep their full length, and a failing run shrinks to the steps it needs.
 */
export function steps<T>(arb: fc.Arbitrary<T>, n: number): fc.Arbitrary<(T | null)[]> {
  return fc.array(fc.option(arb, { nil: null, freq: 1_000_000 }), { minLength: n, maxLength: n });
}
