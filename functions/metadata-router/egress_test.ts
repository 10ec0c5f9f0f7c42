// deno test: the handler hands what gzip saved to its next call, gives it back after a quota
// refusal, drops it after a failed call, and a saving never crosses into another month.
import { createHandler, type RouterConfig } from "./handler.ts";
import { EgressSavings } from "./egress.ts";

function assertEquals(actual: unknown, expected: unknown, what: string) {
  if (JSON.stringify(actual) !== JSON.stringify(expected)) {
    throw new Error(`${what}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
  }
}

const BIG = JSON.stringify(Array.from({ length: 300 }, (_, i) => ({ run_number: i, tags: ["é"] })));
const MONTH = new Date().toISOString().slice(0, 7);

/** A handler over a fake database that answers `replies` in turn and records each call's args. */
function fakeRouter(
  replies: ({ status: number; body: string } | Error)[],
  options: Partial<RouterConfig> = {},
) {
  const seen: Record<string, string>[] = [];
  const handler = createHandler({
    apiKey: "k",
    call: (_scope, _op, args) => {
      seen.push({ ...args });
      const r = replies.shift()!;
      return r instanceof Error ? Promise.reject(r) : Promise.resolve({ ...r, next_cursor: null });
    },
    ...options,
  });
  const get = (encoding: string) =>
    handler(
      new Request("http://x/flows/F/runs", { headers: { "x-api-key": "k", "accept-encoding": encoding } }),
    );
  return { seen, get };
}

Deno.test("a compressed reply's saving goes with the next call, exactly once", async () => {
  const { seen, get } = fakeRouter([
    { status: 200, body: BIG },
    { status: 200, body: BIG },
    { status: 200, body: "[]" },
    { status: 200, body: "[]" },
  ]);
  const first = await get("gzip");
  const wire = (await first.arrayBuffer()).byteLength;
  assertEquals(first.headers.get("content-encoding"), "gzip", "compressed");
  await get("identity"); // carries the first saving; saves nothing itself
  await get("identity");
  await get("identity");
  const plain = new TextEncoder().encode(BIG).byteLength;
  assertEquals(
    seen.map((a) => a._egress_saved ?? null),
    [null, `${MONTH}:${plain - wire}`, null, null],
    "args",
  );
});

Deno.test("a quota refusal gives the saving back; a failed call drops it", async () => {
  const { seen, get } = fakeRouter([
    { status: 200, body: BIG },
    { status: 429, body: '{"message": "quota"}' },
    Object.assign(new Error("connection lost"), { code: "ECONNRESET" }),
    { status: 200, body: "[]" },
  ]);
  const wire = (await (await get("gzip")).arrayBuffer()).byteLength;
  const saved = `${MONTH}:${new TextEncoder().encode(BIG).byteLength - wire}`;
  assertEquals((await get("gzip")).status, 429, "refused");
  assertEquals((await get("gzip")).status, 503, "failed");
  await get("gzip");
  assertEquals(seen.map((a) => a._egress_saved ?? null), [null, saved, saved, null], "args");
});

Deno.test("nothing is handed over when egress counts uncompressed bytes or the runtime compresses", async () => {
  for (const options of [{ egressCounts: "uncompressed" }, { compression: "runtime" }] as const) {
    const { seen, get } = fakeRouter([{ status: 200, body: BIG }, { status: 200, body: "[]" }], options);
    const first = await get("gzip");
    assertEquals(first.headers.get("content-encoding"), "gzip", "still compressed");
    await first.arrayBuffer();
    await get("gzip");
    assertEquals(seen.map((a) => a._egress_saved ?? null), [null, null], JSON.stringify(options));
  }
});

Deno.test("savings of a past month are not handed to the next month", () => {
  let now = new Date("2026-03-31T23:59:59Z");
  const s = new EgressSavings(() => now);
  s.add(1000, 100);
  const march = s.take()!;
  assertEquals(march, "2026-03:900", "march");
  s.add(1000, 100);
  now = new Date("2026-04-01T00:00:01Z");
  s.giveBack(march); // same month as the pending saving: added
  s.add(500, 200);
  assertEquals(s.take(), "2026-04:300", "april starts afresh");
  s.giveBack(march); // a March saving returned in April: dropped
  assertEquals(s.take(), null, "nothing left");
});
