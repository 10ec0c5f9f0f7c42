-- Run status in one primary-key probe (issue 12, item 8: the status filter over 10,000 runs
-- took 157-796 ms because every run's status needed two index probes into metadata_v3).
--
-- mfs.run_end_state keeps, per run, the two facts of its `end` step that the status rule reads:
-- the latest `attempt_ok` (its ts_epoch, id and verdict) and the latest `attempt`'s ts_epoch.
-- A trigger on metadata_v3 maintains it whoever writes the metadata (this router or the official
-- service on a shared database); the six Metaflow tables and their indexes stay as the official
-- service has them. The rule itself is mfs.run_status_rule, a plain expression that Postgres
-- inlines into the runs list's query, so a status filter is a join, not 10,000 function calls.

create table if not exists mfs.run_end_state (
    flow_id    varchar(255) not null,
    run_number bigint not null,
    ok_ts      bigint,   -- latest attempt_ok of the end step, by (ts_epoch, id)
    ok_id      bigint,
    verdict    boolean,  -- its value: true, false, or null when it is neither
    attempt_ts bigint,   -- latest `attempt` of the end step
    primary key (flow_id, run_number)
);
alter table mfs.run_end_state enable row level security;

-- The rule (see 0011 for its five cases), from the stored facts and the run's heartbeat.
create or replace function mfs.run_status_rule(verdict boolean, ok_ts bigint, attempt_ts bigint,
                                               last_heartbeat_ts bigint, cutoff_s bigint default 360)
returns text language sql stable as $$
    select case
        when verdict is false and attempt_ts > ok_ts then 'running'
        when verdict then 'completed'
        when not verdict then 'failed'
        when last_heartbeat_ts is not null and abs(mfs.now_s() - last_heartbeat_ts) <= cutoff_s then 'running'
        else 'failed'
    end
$$;

create or replace function mfs.run_status(r public.runs_v3, cutoff_s bigint default 360) returns text
language sql stable as $$
    select mfs.run_status_rule(e.verdict, e.ok_ts, e.attempt_ts, r.last_heartbeat_ts, cutoff_s)
      from (select 1) one
      left join mfs.run_end_state e on e.flow_id = r.flow_id and e.run_number = r.run_number
$$;

create or replace function mfs.attempt_ok_verdict(value text) returns boolean
language sql immutable as $$
    -- the client writes "True"/"False"; anything else gives no verdict
    select case when lower(value) in ('true', 't', '1') then true
                when lower(value) in ('false', 'f', '0') then false end
$$;

-- security definer: the row is written whatever role inserted the metadata
create or replace function mfs.track_run_end() returns trigger
language plpgsql security definer set search_path = pg_catalog, mfs as $$
begin
    if new.field_name = 'attempt_ok' then
        insert into mfs.run_end_state as s (flow_id, run_number, ok_ts, ok_id, verdict)
        values (new.flow_id, new.run_number, new.ts_epoch, new.id, mfs.attempt_ok_verdict(new.value))
        on conflict (flow_id, run_number) do update
           set ok_ts = excluded.ok_ts, ok_id = excluded.ok_id, verdict = excluded.verdict
         where s.ok_ts is null or (excluded.ok_ts, excluded.ok_id) > (s.ok_ts, s.ok_id);
    else
        insert into mfs.run_end_state as s (flow_id, run_number, attempt_ts)
        values (new.flow_id, new.run_number, new.ts_epoch)
        on conflict (flow_id, run_number) do update
           set attempt_ts = greatest(s.attempt_ts, excluded.attempt_ts);
    end if;
    return null;
end
$$;

drop trigger if exists mfs_run_end_state on public.metadata_v3;
create trigger mfs_run_end_state after insert on public.metadata_v3
    for each row when (new.step_name = 'end' and new.field_name in ('attempt_ok', 'attempt'))
    execute function mfs.track_run_end();

-- Rows written before the trigger. Creating the trigger locked metadata_v3 against writes until
-- this migration commits, so nothing falls between the trigger and this backfill.
insert into mfs.run_end_state (flow_id, run_number, ok_ts, ok_id, verdict, attempt_ts)
select k.flow_id, k.run_number, ok.ts_epoch, ok.id, mfs.attempt_ok_verdict(ok.value), att.ts
  from (select distinct flow_id, run_number from public.metadata_v3
         where step_name = 'end' and field_name in ('attempt_ok', 'attempt')) k
  left join lateral (select m.ts_epoch, m.id, m.value from public.metadata_v3 m
                      where m.flow_id = k.flow_id and m.run_number = k.run_number
                        and m.step_name = 'end' and m.field_name = 'attempt_ok'
                      order by m.ts_epoch desc, m.id desc limit 1) ok on true
  left join lateral (select max(m.ts_epoch) as ts from public.metadata_v3 m
                      where m.flow_id = k.flow_id and m.run_number = k.run_number
                        and m.step_name = 'end' and m.field_name = 'attempt') att on true
on conflict (flow_id, run_number) do nothing;

-- Runs of a flow (as in 0011), the status filter and field reading the end state by a join.
create or replace function mfs_api.runs_list(a jsonb, b jsonb) returns mfs.reply
language plpgsql stable as $$
declare
    lim int := mfs.page_limit(a);
    c jsonb := mfs.cursor_decode(a);
    f public.flows_v3 := mfs.find_flow(mfs.arg(a, 'flow_id'));
    conds text[] := '{}';
    with_status boolean := false;
    status_expr constant text := 'mfs.run_status_rule(e.verdict, e.ok_ts, e.attempt_ts, r.last_heartbeat_ts)';
    p record;
    rows jsonb;
begin
    if c is not null and jsonb_typeof(c -> 1) <> 'number' then
        perform mfs.fail(400, '_cursor is not a cursor this service issued');
    end if;
    for p in select key, value from jsonb_each_text(a) order by key loop
        case split_part(p.key, ':', 1)
            when 'status' then
                conds := conds || mfs.filter_sql(status_expr, p.key, p.value, 'status');
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
        'select coalesce(jsonb_agg(jsonb_build_object(''j'', mfs.run_json(x.run)%s,
                                                      ''k'', jsonb_build_array((x.run).ts_epoch, (x.run).run_number))
                                   order by (x.run).ts_epoch desc, (x.run).run_number desc), ''[]'')
           from (select r as run, %s as status
                   from public.runs_v3 r
                   left join mfs.run_end_state e on e.flow_id = r.flow_id and e.run_number = r.run_number
                  where r.flow_id = $1%s
                  order by r.ts_epoch desc, r.run_number desc
                  limit $2) x',
        case when with_status then ' || jsonb_build_object(''status'', x.status)' else '' end,
        case when with_status then status_expr else 'null' end,
        coalesce((select string_agg(' and ' || x, '') from unnest(conds) x), ''))
    into rows using f.flow_id, lim + 1;
    return mfs.page_reply(rows, lim);
end
$$;
