// Cloudflare Workers entry (also run locally under workerd by the tests): the same handler as
// main.ts. A Worker may not reuse a socket across requests, so each request opens one
// connection (type fetching off: no extra round trip) and closes it after the response.
// Built by `python -m mfs worker-bundle` (esbuild with the "workerd" export condition, which
// selects postgres.js's build over `cloudflare:sockets`); bindings: DATABASE_URL,
// METADATA_API_KEY, QUOTA_SCOPE, PATH_PREFIX.

import postgres from "postgres";
import { createHandler } from "../handler.ts";
import { callWith, CONNECTION } from "../call.ts";

interface Env {
  DATABASE_URL: string;
  METADATA_API_KEY: string;
  QUOTA_SCOPE?: string;
  PATH_PREFIX?: string;
}

interface Context {
  waitUntil(p: Promise<unknown>): void;
}

export default {
  async fetch(req: Request, env: Env, ctx: Context): Promise<Response> {
    const sql = postgres(env.DATABASE_URL, { ...CONNECTION, max: 1, prepare: false, fetch_types: false });
    const handler = createHandler({
      apiKey: env.METADATA_API_KEY,
      call: callWith(sql),
      quotaScope: env.QUOTA_SCOPE,
      pathPrefix: env.PATH_PREFIX,
      compression: "runtime", // Workers gzip a body whose Content-Encoding says gzip
      log: (line, level) => (level === "error" ? console.error : console.log)(`metadata-router: ${line}`),
    });
    try {
      return await handler(req);
    } finally {
      ctx.waitUntil(sql.end({ timeout: 2 }));
    }
  },
};
