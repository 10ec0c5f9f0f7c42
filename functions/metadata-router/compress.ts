// gzip for large replies. The Metaflow client accepts it (Python requests sends
// `Accept-Encoding: gzip, deflate`) and decompresses transparently; the complete runs list of
// a busy flow (what Flow(...).latest_run reads) shrinks about tenfold, and egress is what the
// free plans bill.

/** Replies smaller than this are sent as they are: gzip would save little and cost CPU. */
export const COMPRESS_FROM_BYTES = 1024;

/** Whether an Accept-Encoding header admits gzip (by name or `*`, with a q-value above 0). */
export function acceptsGzip(header: string | null): boolean {
  return (header ?? "").split(",").some((part) => {
    const [coding, ...params] = part.trim().toLowerCase().split(";").map((s) => s.trim());
    const q = params.find((p) => p.startsWith("q="));
    return (coding === "gzip" || coding === "*") && (q === undefined || Number(q.slice(2)) > 0);
  });
}

export function gzip(data: string | Uint8Array<ArrayBuffer>): Promise<ArrayBuffer> {
  const stream = new Blob([data]).stream().pipeThrough(new CompressionStream("gzip"));
  return new Response(stream).arrayBuffer();
}
