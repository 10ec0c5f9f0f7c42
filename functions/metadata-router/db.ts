// The database side of the router: a postgres.js pool issuing the single statement per
// request. Parameters are sent as text and cast in SQL: postgres.js would JSON-encode a
// string bound to a jsonb parameter a second time. Kept apart from handler.ts so the handler stays driver- and runtime-neutral.

import postgres from "npm:postgres@3.4.9";
import type { CallDatabase } from "./handler.ts";

export interface DbOptions {
  url: string;
  maxConnections?: number;
  prepare?: boolean; // false behind transaction poolers (Supabase port 6543)
}

export function connect(opts: DbOptions): { call: CallDatabase; close: () => Promise<void> } {
  const sql = postgres(opts.url, {
    max: opts.maxConnections ?? 10,
    prepare: opts.prepare ?? true,
    idle_timeout: 30,
    connect_timeout: 5,
    connection: { application_name: "metaflow-serverless-router", statement_timeout: 15000 },
    onnotice: () => {},
  });
  const call: CallDatabase = async (scope, op, args, body) => {
    const rows = await sql`select status, body, next_cursor
                             from mfs_api.call(${scope}, ${op}, ${JSON.stringify(args)}::text::jsonb, ${body}::text::jsonb)`;
    return rows[0] as { status: number; body: string; next_cursor: string | null };
  };
  return { call, close: () => sql.end({ timeout: 5 }) };
}
