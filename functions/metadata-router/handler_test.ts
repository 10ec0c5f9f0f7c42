// deno test: the API key comparison of handler.ts.
import { deepStrictEqual } from "node:assert";
import { keyMatches } from "./handler.ts";

Deno.test("keyMatches accepts only the exact key", async () => {
  const k = "s3cr3t-key-0123456789";
  const cases: [string | null, string, boolean][] = [
    [k, k, true],
    [null, k, false],
    ["", k, false],
    [k.slice(0, -1), k, false], // a prefix
    [k + "x", k, false], // longer
    ["X" + k.slice(1), k, false], // one character changed
    ["ключ", "ключ", true], // non-ASCII
    [null, "", false], // no key never matches, not even an empty one
  ];
  for (const [given, expected, match] of cases) {
    deepStrictEqual(await keyMatches(given, expected), match, `keyMatches(${given}, ${expected})`);
  }
});
