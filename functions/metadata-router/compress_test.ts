// deno test: which Accept-Encoding headers get gzip, and that gzip() round-trips.
import { acceptsGzip, gzip } from "./compress.ts";

function assertEquals(actual: unknown, expected: unknown, what: string) {
  if (JSON.stringify(actual) !== JSON.stringify(expected)) {
    throw new Error(`${what}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
  }
}

Deno.test("Accept-Encoding headers that admit gzip", () => {
  const cases: [string | null, boolean][] = [
    ["gzip, deflate", true], // Python requests, so the Metaflow client
    ["br;q=1.0, gzip;q=0.8, *;q=0.1", true],
    ["GZIP", true],
    ["*", true],
    ["gzip;q=0", false],
    ["gzip;q=0.0, identity", false],
    ["identity", false],
    ["deflate, br", false],
    ["", false],
    [null, false],
    ["x-gzip", false],
  ];
  for (const [header, expected] of cases) assertEquals(acceptsGzip(header), expected, String(header));
});

Deno.test("gzip() output decompresses to the input", async () => {
  const text = JSON.stringify(Array.from({ length: 200 }, (_, i) => ({ run_number: i, tags: ["a", "é"] })));
  const packed = await gzip(text);
  const unpacked = new Blob([packed]).stream().pipeThrough(new DecompressionStream("gzip"));
  assertEquals(await new Response(unpacked).text(), text, "round trip");
  if (packed.byteLength * 4 > text.length) throw new Error(`poor compression: ${packed.byteLength}`);
});
