// The one statement each API request costs, over any postgres.js `sql` instance (Deno's pool
// in db.ts, a per-request client in worker.ts). Parameters are sent as text and cast in SQL:
// postgres.js would JSON-encode a string bound to a jsonb parameter a second time.

import type { CallDatabase } from "./handler.ts";

// deno-lint-ignore no-explicit-any
type Sql = (strings: TemplateStringsArray, ...values: any[]) => Promise<any[]>;

export function callWith(sql: Sql): CallDatabase {
  return async (scope, op, args, body) => {
    const rows = await sql`select status, body, next_cursor, warning
                             from mfs_api.call(${scope}, ${op}, ${
      JSON.stringify(args)
    }::text::jsonb, ${body}::text::jsonb)`;
    return rows[0] as { status: number; body: string; next_cursor: string | null; warning: string | null };
  };
}

/** Connection settings shared by every runtime. */
export const CONNECTION = {
  connect_timeout: 5,
  connection: { application_name: "metaflow-serverless-router", statement_timeout: 15000 },
  onnotice: () => {},
};
