// The metadata router: one web-standard `Request -> Response` handler, free of any runtime's
// own API, so the same code serves Deno (main.ts), Supabase Edge Functions and Cloudflare
// Workers. Each API request costs exactly one database statement (mfs_api.call), quota
// included; auth is checked before that statement, so unauthorised calls cost nothing.

import { matchRoute } from "./routes.ts";
import { acceptsGzip, COMPRESS_FROM_BYTES, gzip } from "./compress.ts";
import { EGRESS_SAVED_ARG, EgressSavings } from "./egress.ts";

/** The one statement per request: runs mfs_api.call(scope, op, args, body). */
export type CallDatabase = (
  scope: string,
  op: string,
  args: Record<string, string>,
  body: string | null,
) => Promise<{ status: number; body: string; next_cursor: string | null; warning?: string | null }>;

export interface RouterConfig {
  apiKey: string;
  call: CallDatabase;
  quotaScope?: string;
  pathPrefix?: string; // e.g. "/functions/v1/metadata-router" or "/metadata-router"
  maxBodyBytes?: number;
  /** A frozen server or a lost network answers nothing: give up (503) after this long. */
  callTimeoutMs?: number;
  /** One line per notable event; `level` lets a runtime route client mishaps below errors. */
  log?: (line: string, level: LogLevel) => void;
  /** Who gzips large replies for clients that accept it: this handler (default), the runtime
   * (Cloudflare Workers compress a body whose Content-Encoding asks for it), or nobody. Only
   * the handler knows the compressed size, so only then does the quota count it (egress.ts);
   * otherwise it counts the uncompressed reply. */
  compression?: "handler" | "runtime" | "off";
  /** The gzip the handler uses (default: the web-standard CompressionStream, which every
   * runtime has; Deno's entry point passes node:zlib's, four times faster on large lists). */
  gzip?: (data: Uint8Array<ArrayBuffer>) => Promise<ArrayBuffer | Uint8Array<ArrayBuffer>>;
  /** What the quota's egress budget counts: the reply bytes sent to clients, after gzip
   * ("sent", default), or before gzip ("uncompressed": what the database sends the router,
   * which is what a database billed for its outbound transfer, such as Neon, counts). */
  egressCounts?: "sent" | "uncompressed";
}

export type LogLevel = "info" | "error";

// The official service version this router is faithful to; the client enables heartbeats,
// attempt reads, tag mutation and filtered_tasks by comparing against it.
export const SERVICE_VERSION = "2.5.1";
const MAX_DEPTH = 32;
const HEALTH_PATH = "/healthcheck";

export class HttpError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

/** The request body could not be read to its end: the client's fault (it went away, or sent
 * fewer bytes than its Content-Length), never the database's. Answered 400 if anyone listens. */
export class BodyReadError extends HttpError {
  constructor(readonly reason: unknown) {
    super(400, "the request body ended before it was complete");
  }
}

function jsonHeaders(extra: Record<string, string> = {}): Record<string, string> {
  return { "content-type": "application/json", METADATA_SERVICE_VERSION: SERVICE_VERSION, ...extra };
}

function json(status: number, body: string, extra: Record<string, string> = {}): Response {
  return new Response(body, { status, headers: jsonHeaders(extra) });
}

function errorResponse(status: number, message: string, extra: Record<string, string> = {}) {
  return json(status, JSON.stringify({ message }), extra);
}

/** Decoded, validated path segments after the prefix; throws HttpError(400/404). */
function pathSegments(pathname: string, prefix: string): string[] {
  let path = pathname;
  if (prefix && (path === prefix || path.startsWith(prefix + "/"))) path = path.slice(prefix.length);
  const raw = path.split("/").slice(1);
  return raw.map((s) => {
    let seg: string;
    try {
      seg = decodeURIComponent(s);
    } catch {
      throw new HttpError(400, "the path is not valid percent-encoding");
    }
    if (seg === "" || seg === "." || seg === "..") {
      throw new HttpError(400, "path segments may not be empty, '.' or '..'");
    }
    // ids become parts of Metaflow pathspecs ("flow/run/step/task"), where a '/' cannot be told apart
    if (seg.includes("/")) throw new HttpError(400, "path segments may not contain '/' (not even as %2F)");
    const bad = badText(seg);
    if (bad) throw new HttpError(400, `path segments may not contain ${bad}`);
    return seg;
  });
}

/** What makes a string unstorable in Postgres text/jsonb (NUL, lone UTF-16 surrogates), or null. */
function badText(s: string): string | null {
  if (s.includes("\u0000")) return "NUL characters";
  if (!s.isWellFormed()) return "unpaired UTF-16 surrogates";
  return null;
}

/** The path exactly as sent: `new URL` would silently resolve '.', '..' and '%2e' segments. */
function rawPathname(url: string): string {
  const afterScheme = url.indexOf("//");
  const start = url.indexOf("/", afterScheme < 0 ? 0 : afterScheme + 2);
  if (start < 0) return "/";
  const end = url.slice(start).search(/[?#]/);
  return end < 0 ? url.slice(start) : url.slice(start, start + end);
}

const utf8 = new TextEncoder();

/** Constant-time key check: every byte of the expected key is compared, with no early exit, so
 * the time depends on the expected key's length only, never on where a guess goes wrong.
 * Synchronous on purpose: SubtleCrypto digests are async ops run on a thread pool, and two per
 * request were the router's largest CPU cost after the HTTP server itself. */
export function keyMatches(given: string | null, expected: string): Promise<boolean> {
  const a = utf8.encode(given ?? "");
  const b = utf8.encode(expected);
  let diff = given === null || a.length !== b.length ? 1 : 0;
  for (let i = 0; i < b.length; i++) diff |= (a[i] ?? 0) ^ b[i];
  return Promise.resolve(diff === 0);
}

/** Why a parsed body cannot be stored (too deep, or a string or key with bad text), or null. */
function bodyProblem(value: unknown, maxDepth: number): string | null {
  const stack: [unknown, number][] = [[value, 1]];
  while (stack.length) {
    const [v, d] = stack.pop()!;
    if (typeof v === "string") {
      const bad = badText(v);
      if (bad) return `strings may not contain ${bad}`;
      continue;
    }
    if (v === null || typeof v !== "object") continue;
    if (d > maxDepth) return `the request body is nested deeper than ${maxDepth} levels`;
    for (const [k, child] of Object.entries(v as object)) {
      const bad = badText(k);
      if (bad) return `keys may not contain ${bad}`;
      stack.push([child, d + 1]);
    }
  }
  return null;
}

async function readBody(req: Request, maxBytes: number): Promise<string | null> {
  const declared = Number(req.headers.get("content-length") ?? "0");
  if (declared > maxBytes) throw new HttpError(413, `the request body exceeds ${maxBytes} bytes`);
  if (!req.body) return null;
  const reader = req.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    let chunk: ReadableStreamReadResult<Uint8Array>;
    try {
      chunk = await reader.read();
    } catch (err) {
      // Deno: BadResource; other runtimes: TypeError or a stream error. All mean the same.
      throw new BodyReadError(err);
    }
    const { done, value } = chunk;
    if (done) break;
    size += value.byteLength;
    if (size > maxBytes) {
      await reader.cancel();
      throw new HttpError(413, `the request body exceeds ${maxBytes} bytes`);
    }
    chunks.push(value);
  }
  if (size === 0) return null;
  const bytes = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    bytes.set(c, at);
    at += c.byteLength;
  }
  let text: string;
  try {
    // ignoreBOM keeps a byte-order mark in the text, so JSON.parse refuses it as JSON does
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    throw new HttpError(400, "the request body is not valid UTF-8");
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new HttpError(400, "the request body is not valid JSON");
  }
  const problem = bodyProblem(parsed, MAX_DEPTH);
  if (problem) throw new HttpError(400, problem);
  return text;
}

/** The call, or a rejection with code DEADLINE (no SQLSTATE: answered 503) after ms milliseconds. */
function withDeadline<T>(call: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reject(Object.assign(new Error(`no answer from the database within ${ms} ms`), { code: "DEADLINE" }));
    }, ms);
  });
  return Promise.race([call, deadline]).finally(() => clearTimeout(timer));
}

// Network errors that Deno raises by class name, without a code.
const NETWORK_ERROR_NAMES = new Set([
  "ConnectionRefused",
  "ConnectionReset",
  "ConnectionAborted",
  "NotConnected",
  "BrokenPipe",
  "TimedOut",
  "UnexpectedEof",
  "AddrNotAvailable",
  "Interrupted",
]);

/** Errors that mean "the database is not reachable right now": the client retries 503. */
export function isUnavailable(err: unknown): boolean {
  const e = err as { code?: unknown; name?: string } | null;
  const code = typeof e?.code === "string" ? e.code : "";
  if (/^(08|53|57P|40001|40P01|57014)/.test(code)) return true;
  if (/^[0-9A-Z]{5}$/.test(code)) return false; // any other SQLSTATE: the server answered
  // Driver and socket failures: node-style codes (ECONNREFUSED, CONNECTION_CLOSED,
  // CONNECT_TIMEOUT, our DEADLINE) or Deno's network error classes.
  if (/^[A-Z][A-Z_]+$/.test(code)) return true;
  return NETWORK_ERROR_NAMES.has(e?.name ?? "");
}

/** What an error says about its cause, for the log: code and message, with any connection
 * URL cut out (a driver may echo its connection string; the password must never be logged). */
export function describeError(err: unknown): string {
  const e = err as { code?: unknown; name?: string; message?: string } | null;
  const code = typeof e?.code === "string" && e.code ? e.code : (e?.name ?? "no code");
  const message = String(e?.message ?? err)
    .replace(/[a-z][a-z0-9+.-]*:\/\/[^\s'"]*/gi, "<url>")
    .replace(/password=\S+/gi, "password=<hidden>")
    .replace(/\s+/g, " ")
    .slice(0, 300);
  return `${code}: ${message}`;
}

export function createHandler(config: RouterConfig): (req: Request) => Promise<Response> {
  const scope = config.quotaScope || "default";
  const prefix = (config.pathPrefix ?? "").replace(/\/+$/, "");
  const maxBody = config.maxBodyBytes ?? 4 * 1024 * 1024;
  const compression = config.compression ?? "handler";
  // just above the server's statement_timeout (15 s, db.ts), which normally answers first
  const callTimeout = config.callTimeoutMs ?? 16_000;
  const logTo = config.log ?? (() => {});
  const savings = config.egressCounts === "uncompressed" ? null : new EgressSavings();
  // every line says when, so that an outage can be matched with the database's own log
  const log = (level: LogLevel, line: string) => logTo(`${new Date().toISOString()} ${level} ${line}`, level);
  if (!config.apiKey) throw new Error("an API key is required (METADATA_API_KEY)");

  return async (req: Request): Promise<Response> => {
    let op = "-";
    try {
      const url = new URL(req.url);
      const pathname = rawPathname(req.url);
      const segments = pathSegments(pathname, prefix);
      if (req.method === "GET" && "/" + segments.join("/") === HEALTH_PATH) {
        return json(200, JSON.stringify({ status: "UP", version: SERVICE_VERSION }));
      }
      if (!(await keyMatches(req.headers.get("x-api-key"), config.apiKey))) {
        return errorResponse(401, "a valid x-api-key header is required (METAFLOW_SERVICE_AUTH_KEY)");
      }
      const match = matchRoute(req.method, segments);
      if (match.kind === "not_found") return errorResponse(404, `no such route: ${req.method} ${pathname}`);
      if (match.kind === "method_not_allowed") {
        return errorResponse(405, `${req.method} is not allowed here`, { allow: match.allowed.join(", ") });
      }
      const { route, params } = match;
      op = route.op;
      if (route.static) return json(200, JSON.stringify(SERVICE_VERSION));
      const accepted = route.query ?? [];
      for (const name of accepted) {
        const values = url.searchParams.getAll(name);
        if (values.length === 0) continue;
        if (values.length > 1) throw new HttpError(400, `query parameter ${name} is given more than once`);
        const bad = badText(values[0]);
        if (bad) throw new HttpError(400, `query parameter ${name} may not contain ${bad}`);
        params[name] = values[0];
      }
      if (route.filterFields) {
        // a filter this service does not apply must not silently widen the reply
        for (const name of new Set(url.searchParams.keys())) {
          const field = name.split(":", 1)[0];
          if (route.filterFields.includes(field) && !accepted.includes(name)) {
            const supported = accepted.filter((n) => n.split(":", 1)[0] === field);
            throw new HttpError(
              400,
              supported.length
                ? `unsupported filter ${name}: use ${supported.join(", ")}`
                : `filtering on ${field} is not supported here`,
            );
          }
        }
      }
      const body = req.method === "GET" ? null : await readBody(req, maxBody);
      const saved = savings?.take() ?? null;
      if (saved !== null) params[EGRESS_SAVED_ARG] = saved;
      const res = await withDeadline(config.call(scope, route.op, params, body), callTimeout);
      // a quota refusal counted nothing (its transaction rolled back)
      if (saved !== null && res.status === 429) savings?.giveBack(saved);
      const headers: Record<string, string> = res.next_cursor ? { "X-Next-Cursor": res.next_cursor } : {};
      // the database is near or over its size limit (sql/0040_size_guard.sql): said on every reply
      if (res.warning) headers["X-Quota-Warning"] = res.warning;
      if (compression !== "off" && res.body.length >= COMPRESS_FROM_BYTES) {
        headers["vary"] = "accept-encoding";
        if (acceptsGzip(req.headers.get("accept-encoding"))) {
          headers["content-encoding"] = "gzip";
          if (compression === "handler") {
            const plain = new TextEncoder().encode(res.body); // what mfs_api.call counted
            const packed = await (config.gzip ?? gzip)(plain);
            savings?.add(plain.byteLength, packed.byteLength);
            return new Response(packed, { status: res.status, headers: jsonHeaders(headers) });
          }
        }
      }
      return json(res.status, res.body, headers);
    } catch (err) {
      if (err instanceof BodyReadError) {
        // the client's mishap (typically a process killed mid-request); the reply, if anyone
        // still listens, is a 400 and nothing was changed
        log("info", `op=${op} request body incomplete, client went away? (${describeError(err.reason)})`);
        return errorResponse(err.status, err.message);
      }
      if (err instanceof HttpError) return errorResponse(err.status, err.message);
      const code = String((err as { code?: unknown })?.code ?? "");
      if (code.startsWith("22")) {
        // a data exception raised before our SQL ran (e.g. casting a parameter): the input's fault
        return errorResponse(400, `the request holds a value the database cannot store (${code})`);
      }
      if (isUnavailable(err)) {
        log("error", `op=${op} database unavailable (${describeError(err)})`);
        return errorResponse(503, "the metadata database is unavailable; retry shortly", {
          "retry-after": "2",
        });
      }
      log("error", `op=${op} internal error (${describeError(err)})`);
      return errorResponse(500, `internal error (${code || "no code"}); nothing was changed`);
    }
  };
}
