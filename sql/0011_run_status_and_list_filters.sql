-- Run status and the list filters of the newest official service (issue 12, items 1 and 2).

-- A run's status, by the official rule (the UI backend's, which the metadata service's status
-- filter shares), from the `end` step's metadata and the run's heartbeat:
--   1. the end step's latest `attempt_ok` is false but a later `attempt` of it was registered
--      (the end step is being retried)                                  -> 'running'
--   2. the end step's latest `attempt_ok` is true                       -> 'completed'
--   3. the end step's latest `attempt_ok` is false                      -> 'failed'
--   4. no verdict, and the run's heartbeat is at most cutoff_s seconds
--      from now (default 360 s, the official RUN_INACTIVE_CUTOFF_TIME)  -> 'running'
--   5. otherwise (heartbeat too old, or none: clients before 2.2.12)   -> 'failed'
-- "Now" is mfs.clock(), so tests can move time. One place for the rule: the status filter of
-- GET /flows/{flow_id}/runs uses it, and a UI can call it too.
create or replace function mfs.run_status(r public.runs_v3, cutoff_s bigint default 360) returns text
language sql stable as $$
    select case
        when ok.verdict is false and exists (
                select 1 from public.metadata_v3 m
                 where m.flow_id = r.flow_id and m.run_number = r.run_number and m.step_name = 'end'
                   and m.field_name = 'attempt' and m.ts_epoch > ok.ts_epoch) then 'running'
        when ok.verdict then 'completed'
        when not ok.verdict then 'failed'
        when r.last_heartbeat_ts is not null and abs(mfs.now_s() - r.last_heartbeat_ts) <= cutoff_s then 'running'
        else 'failed'
    end
      from (select 1) one
      left join lateral (
            select m.ts_epoch,
                   -- the client writes "True"/"False"; anything else gives no verdict
                   case when lower(m.value) in ('true', 't', '1') then true
                        when lower(m.value) in ('false', 'f', '0') then false end as verdict
              from public.metadata_v3 m
             where m.flow_id = r.flow_id and m.run_number = r.run_number and m.step_name = 'end'
               and m.field_name = 'attempt_ok'
             order by m.ts_epoch desc, m.id desc
             limit 1) ok on true
$$;

-- One filter parameter (`field:op` = "v1,v2,...") as a SQL condition on expr: the values are
-- OR-ed, "null" means a missing value. kind: 'epoch' (integers), 'status' (a run status) or
-- 'text'. Literals are validated or quoted here; the caller runs the text with EXECUTE.
create or replace function mfs.filter_sql(expr text, param text, val text, kind text) returns text
language plpgsql immutable as $$
declare
    field text := split_part(param, ':', 1);
    op text := coalesce(nullif(split_part(param, ':', 2), ''), 'eq');
    sql_op text := case op when 'eq' then '=' when 'ne' then '<>' when 'lt' then '<' when 'le' then '<='
                           when 'gt' then '>' when 'ge' then '>=' end;
    parts text[] := string_to_array(val, ',');
    v text;
    terms text[] := '{}';
begin
    if sql_op is null then
        perform mfs.fail(400, format('unsupported operator %s for field %s', op, field));
    end if;
    if coalesce(cardinality(parts), 0) = 0 then
        perform mfs.fail(400, format('filter %s needs a value', param));
    end if;
    foreach v in array parts loop
        if v = 'null' then
            if op not in ('eq', 'ne') then
                perform mfs.fail(400, format('filter %s cannot compare with null', param));
            end if;
            terms := terms || format('%s is %s null', expr, case when op = 'ne' then 'not' else '' end);
        elsif kind = 'epoch' then
            if v !~ '^-?[0-9]{1,18}$' then
                perform mfs.fail(400, format('invalid %s: expected integer epoch milliseconds, got ''%s''', field, v));
            end if;
            terms := terms || format('%s %s %s', expr, sql_op, v::bigint);
        elsif kind = 'status' and v not in ('running', 'completed', 'failed') then
            perform mfs.fail(400, format('unsupported status filter: %s (use running, completed or failed)', v));
        else
            terms := terms || format('%s %s %L', expr, sql_op, v);
        end if;
    end loop;
    return '(' || array_to_string(terms, ' or ') || ')';
end
$$;

-- _tags (= _tags:all, AND) and _tags:any (OR) over a run's tags and system tags together; the
-- expression is the one of the official GIN index runs_v3_idx_gin_tags_combined.
create or replace function mfs.tags_filter_sql(param text, val text) returns text
language plpgsql immutable as $$
declare
    op text := coalesce(nullif(split_part(param, ':', 2), ''), 'all');
    parts text[] := string_to_array(val, ',');
begin
    if op not in ('any', 'all') then
        perform mfs.fail(400, format('unsupported operator %s for _tags (use any or all)', op));
    end if;
    if coalesce(cardinality(parts), 0) = 0 then
        perform mfs.fail(400, format('filter %s needs a value', param));
    end if;
    return format('(r.tags || r.system_tags) %s %L::text[]', case op when 'any' then '?|' else '?&' end, parts);
end
$$;

-- Runs of a flow, newest first. No filter and no paging parameter: the complete plain list (what
-- the Metaflow client reads). Any filter or paging parameter: a page (_limit, default 50) with
-- X-Next-Cursor; with a status filter each run also carries its "status", as officially.
create or replace function mfs_api.runs_list(a jsonb, b jsonb) returns mfs.reply
language plpgsql stable as $$
declare
    lim int := mfs.page_limit(a);
    c jsonb := mfs.cursor_decode(a);
    f public.flows_v3 := mfs.find_flow(mfs.arg(a, 'flow_id'));
    conds text[] := '{}';
    with_status boolean := false;
    p record;
    rows jsonb;
begin
    if c is not null and jsonb_typeof(c -> 1) <> 'number' then
        perform mfs.fail(400, '_cursor is not a cursor this service issued');
    end if;
    for p in select key, value from jsonb_each_text(a) order by key loop
        case split_part(p.key, ':', 1)
            when 'status' then
                conds := conds || mfs.filter_sql('mfs.run_status(r)', p.key, p.value, 'status');
                with_status := true;
            -- the verified owner, spelled as the official expression index runs_v3_idx_user_ts
            when 'user' then
                conds := conds || mfs.filter_sql(
                    '(case when r.system_tags ? (''user:'' || r.user_name) then r.user_name else null end)',
                    p.key, p.value, 'text');
            when 'user_name' then conds := conds || mfs.filter_sql('r.user_name', p.key, p.value, 'text');
            when 'ts_epoch' then conds := conds || mfs.filter_sql('r.ts_epoch', p.key, p.value, 'epoch');
            when '_tags' then conds := conds || mfs.tags_filter_sql(p.key, p.value);
            else null;
        end case;
    end loop;
    if lim is null and cardinality(conds) = 0 then
        -- the whole list, which is what the client asks for: no page keys to build and unwrap
        return row(200, coalesce((select jsonb_agg(mfs.run_json(r) order by r.ts_epoch desc, r.run_number desc)
                                    from public.runs_v3 r where r.flow_id = f.flow_id), '[]'), null::text);
    end if;
    lim := coalesce(lim, 50);
    if c is not null then
        conds := conds || format('(r.ts_epoch, r.run_number) < (%s, %s)', (c ->> 0)::bigint, (c ->> 1)::bigint);
    end if;
    execute format(
        'select coalesce(jsonb_agg(jsonb_build_object(''j'', mfs.run_json(r)%s,
                                                      ''k'', jsonb_build_array(r.ts_epoch, r.run_number))
                                   order by r.ts_epoch desc, r.run_number desc), ''[]'')
           from (select * from public.runs_v3 r
                  where r.flow_id = $1%s
                  order by r.ts_epoch desc, r.run_number desc
                  limit $2) r',
        case when with_status then ' || jsonb_build_object(''status'', mfs.run_status(r))' else '' end,
        coalesce((select string_agg(' and ' || x, '') from unnest(conds) x), ''))
    into rows using f.flow_id, lim + 1;
    return mfs.page_reply(rows, lim);
end
$$;

-- Tasks of a step, newest first; filters user_name and ts_epoch as above (any filter pages).
create or replace function mfs_api.tasks_list(a jsonb, b jsonb) returns mfs.reply
language plpgsql stable as $$
declare
    lim int := mfs.page_limit(a);
    c jsonb := mfs.cursor_decode(a);
    r public.runs_v3 := mfs.find_run(mfs.arg(a, 'flow_id'), mfs.arg(a, 'run_number'));
    s public.steps_v3 := mfs.find_step(r, mfs.arg(a, 'step_name'));
    conds text[] := '{}';
    p record;
    rows jsonb;
begin
    if c is not null and jsonb_typeof(c -> 1) <> 'number' then
        perform mfs.fail(400, '_cursor is not a cursor this service issued');
    end if;
    for p in select key, value from jsonb_each_text(a) order by key loop
        case split_part(p.key, ':', 1)
            when 'user_name' then conds := conds || mfs.filter_sql('t.user_name', p.key, p.value, 'text');
            when 'ts_epoch' then conds := conds || mfs.filter_sql('t.ts_epoch', p.key, p.value, 'epoch');
            else null;
        end case;
    end loop;
    if lim is null and cardinality(conds) = 0 then
        return row(200, coalesce((
            select jsonb_agg(mfs.task_json(t, r.tags, r.system_tags) order by t.ts_epoch desc, t.task_id desc)
              from public.tasks_v3 t
             where t.flow_id = s.flow_id and t.run_number = s.run_number and t.step_name = s.step_name), '[]'),
            null::text);
    end if;
    lim := coalesce(lim, 50);
    if c is not null then
        conds := conds || format('(t.ts_epoch, t.task_id) < (%s, %s)', (c ->> 0)::bigint, (c ->> 1)::bigint);
    end if;
    execute format(
        'select coalesce(jsonb_agg(jsonb_build_object(''j'', mfs.task_json(t, $4, $5),
                                                      ''k'', jsonb_build_array(t.ts_epoch, t.task_id))
                                   order by t.ts_epoch desc, t.task_id desc), ''[]'')
           from (select * from public.tasks_v3 t
                  where t.flow_id = $1 and t.run_number = $2 and t.step_name = $3%s
                  order by t.ts_epoch desc, t.task_id desc
                  limit $6) t',
        coalesce((select string_agg(' and ' || x, '') from unnest(conds) x), ''))
    into rows using s.flow_id, s.run_number, s.step_name, r.tags, r.system_tags, lim + 1;
    return mfs.page_reply(rows, lim);
end
$$;
