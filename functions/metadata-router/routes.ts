// The route table of the Metaflow metadata API: method + path pattern -> stored-procedure
// operation (mfs_api.<op> in sql/). Path parameters become the operation's arguments.

export interface Route {
  method: "GET" | "POST" | "PATCH";
  pattern: string; // segments; ":name" captures one path segment
  op: string;
  query?: string[]; // query parameters passed through to the operation
  /** Fields the official service filters this list on (`field:op=v1,v2`): a parameter on one
   * of them that is not in `query` (an operator or field not supported here) is a 400. */
  filterFields?: string[];
  static?: true; // answered by the router itself, without the database
}

const PAGED = ["_limit", "_cursor"];
// The official filter grammar: `field:op=v1,v2` (values OR-ed; a plain `field=` means eq;
// "null" matches a missing value). Supported here: these names exactly.
const EQ_NE = (f: string) => [f, `${f}:eq`, `${f}:ne`];
const COMPARE = (f: string) => [...EQ_NE(f), `${f}:lt`, `${f}:le`, `${f}:gt`, `${f}:ge`];
const RUN_FILTERS = [
  ...EQ_NE("status"),
  ...EQ_NE("user"),
  ...EQ_NE("user_name"),
  ...COMPARE("ts_epoch"),
  "_tags",
  "_tags:any",
  "_tags:all",
];
const TASK_FILTERS = [...EQ_NE("user_name"), ...COMPARE("ts_epoch")];
const RUN = "/flows/:flow_id/runs/:run_number";
// UI lists page by number (_page), as the UI does
const UI_PAGED = ["_limit", "_page"];
const UI_RUNS_QUERY = [
  ...UI_PAGED,
  "_order",
  "_group",
  "_group_limit",
  ...EQ_NE("flow_id"),
  ...EQ_NE("run_number"),
  ...RUN_FILTERS,
];
const STEP = `${RUN}/steps/:step_name`;
const TASK = `${STEP}/tasks/:task_id`;

export const ROUTES: Route[] = [
  { method: "GET", pattern: "/ping", op: "ping" },
  { method: "GET", pattern: "/version", op: "version", static: true },
  { method: "GET", pattern: "/usage", op: "usage" },
  { method: "GET", pattern: "/flows", op: "flows_list", query: PAGED },
  { method: "GET", pattern: "/flows/:flow_id", op: "flow_get" },
  { method: "POST", pattern: "/flows/:flow_id", op: "flow_create" },
  { method: "POST", pattern: "/flows/:flow_id/run", op: "run_create" },
  {
    method: "GET",
    pattern: "/flows/:flow_id/runs",
    op: "runs_list",
    query: [...PAGED, ...RUN_FILTERS],
    filterFields: [
      "status",
      "user",
      "user_name",
      "ts_epoch",
      "_tags",
      "flow_id",
      "run_number",
      "run_id",
      "last_heartbeat_ts",
      "tags",
      "system_tags",
    ],
  },
  { method: "GET", pattern: RUN, op: "run_get" },
  { method: "POST", pattern: `${RUN}/heartbeat`, op: "run_heartbeat" },
  { method: "PATCH", pattern: `${RUN}/tag/mutate`, op: "run_tag_mutate" },
  { method: "GET", pattern: `${RUN}/metadata`, op: "run_metadata_list", query: PAGED },
  { method: "GET", pattern: `${RUN}/artifacts`, op: "run_artifacts_list", query: PAGED },
  { method: "GET", pattern: `${RUN}/steps`, op: "steps_list", query: PAGED },
  { method: "GET", pattern: STEP, op: "step_get" },
  { method: "POST", pattern: `${STEP}/step`, op: "step_create" },
  { method: "GET", pattern: `${STEP}/artifacts`, op: "run_artifacts_list", query: PAGED },
  { method: "POST", pattern: `${STEP}/task`, op: "task_create" },
  {
    method: "GET",
    pattern: `${STEP}/tasks`,
    op: "tasks_list",
    query: [...PAGED, ...TASK_FILTERS],
    filterFields: ["user_name", "ts_epoch", "task_id", "task_name", "last_heartbeat_ts"],
  },
  {
    method: "GET",
    pattern: `${STEP}/filtered_tasks`,
    op: "filtered_tasks",
    query: ["metadata_field_name", "pattern"],
  },
  { method: "GET", pattern: TASK, op: "task_get" },
  { method: "POST", pattern: `${TASK}/heartbeat`, op: "task_heartbeat" },
  { method: "GET", pattern: `${TASK}/metadata`, op: "metadata_list", query: PAGED },
  { method: "POST", pattern: `${TASK}/metadata`, op: "metadata_create" },
  { method: "POST", pattern: `${TASK}/artifact`, op: "artifact_create" },
  { method: "GET", pattern: `${TASK}/artifacts`, op: "artifacts_list", query: PAGED },
  { method: "GET", pattern: `${TASK}/artifacts/:name`, op: "artifact_get" },
  {
    method: "GET",
    pattern: `${TASK}/attempt/:attempt_id/artifacts`,
    op: "artifacts_attempt_list",
    query: PAGED,
  },
  { method: "GET", pattern: `${TASK}/artifacts/:name/attempt/:attempt_id`, op: "artifact_attempt_get" },
  // Reads of the Metaflow UI (`mfs ui`, sql/0030): one request per view, with derived fields.
  { method: "GET", pattern: "/ui/runs", op: "ui_runs", query: UI_RUNS_QUERY },
  // sql/0050: the home page with each run's start-step metadata; changes since a cursor (/ws)
  { method: "GET", pattern: "/ui/runs/view", op: "ui_runs_view", query: UI_RUNS_QUERY },
  { method: "GET", pattern: "/ui/changes", op: "ui_changes", query: ["run_ts", "task_id", "metadata_id"] },
  { method: "GET", pattern: `/ui${RUN}`, op: "ui_run" },
  { method: "GET", pattern: `/ui${RUN}/view`, op: "ui_run_view" },
  {
    method: "GET",
    pattern: `/ui${RUN}/artifact_names`,
    op: "ui_artifact_names",
    query: ["_limit", "contains"],
  },
  { method: "GET", pattern: `/ui${RUN}/steps`, op: "ui_run_steps" },
  {
    method: "GET",
    pattern: `/ui${RUN}/tasks`,
    op: "ui_run_tasks",
    query: [...UI_PAGED, "step_name", "task_id", "attempt_id"],
  },
  {
    method: "GET",
    pattern: `/ui${RUN}/metadata`,
    op: "ui_run_metadata",
    query: [...UI_PAGED, "step_name", "task_id", "attempt_id", "field_name"],
  },
  {
    method: "GET",
    pattern: `/ui${RUN}/artifacts`,
    op: "ui_run_artifacts",
    query: [...UI_PAGED, "step_name", "task_id", "attempt_id", "name"],
  },
  {
    method: "GET",
    pattern: "/ui/autocomplete/:kind",
    op: "ui_autocomplete",
    query: ["_limit", "contains", "flow_id", "run_number"],
  },
];

export type Match =
  | { kind: "route"; route: Route; params: Record<string, string> }
  | { kind: "method_not_allowed"; allowed: string[] }
  | { kind: "not_found" };

const COMPILED = ROUTES.map((route) => ({ route, parts: route.pattern.split("/").slice(1) }));

/** Matches already-decoded path segments against the table. */
export function matchRoute(method: string, segments: string[]): Match {
  const allowed: string[] = [];
  for (const { route, parts } of COMPILED) {
    if (parts.length !== segments.length) continue;
    const params: Record<string, string> = {};
    let ok = true;
    for (let i = 0; i < parts.length && ok; i++) {
      if (parts[i].startsWith(":")) params[parts[i].slice(1)] = segments[i];
      else ok = parts[i] === segments[i];
    }
    if (!ok) continue;
    if (route.method === method) return { kind: "route", route, params };
    allowed.push(route.method);
  }
  return allowed.length ? { kind: "method_not_allowed", allowed } : { kind: "not_found" };
}
