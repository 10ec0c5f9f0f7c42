// The router's database pool on Deno (main.ts, Supabase Edge Functions, Cloud Run).
// Kept apart from handler.ts so the handler stays driver- and runtime-neutral.

import postgres from "npm:postgres@3.4.9";
import type { CallDatabase } from "./handler.ts";
import { callWith, CONNECTION } from "./call.ts";

export interface DbOptions {
  url: string;
  maxConnections?: number;
  prepare?: boolean; // false behind transaction poolers (Supabase port 6543)
}

export function connect(opts: DbOptions): { call: CallDatabase; close: () => Promise<void> } {
  const sql = postgres(opts.url, {
    ...CONNECTION,
    max: opts.maxConnections ?? 10,
    prepare: opts.prepare ?? true,
    idle_timeout: 30,
  });
  return { call: callWith(sql), close: () => sql.end({ timeout: 5 }) };
}
