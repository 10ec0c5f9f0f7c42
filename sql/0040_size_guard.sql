-- The database size in the quota guard (issue 16). A free database that fills up is switched to
-- read-only by its vendor and every run then fails; so each scope may carry a size limit
-- (mfs.quota_limits.max_database_bytes, null = none) and a warning threshold in percent of it.
--
--   * Every reply of mfs_api.call carries a warning (the router's X-Quota-Warning header) while
--     the database holds at least database_warn_percent of max_database_bytes.
--   * At or over the limit, creates (the operations that add rows: flows, runs, steps, tasks,
--     metadata, artifacts; mfs.storage_creates) are answered 507 with a message saying what to
--     do; reads, heartbeats and tag changes still work (they add no rows), and so does
--     `mfs retain`, which deletes in SQL outside mfs_api.call.
--
-- The size is pg_database_size (what Supabase reports and limits), cached in the one row of
-- mfs.database_size: measuring it on every request would cost a stat of every file. A request
-- that finds the row older than mfs.database_size_max_age() (120 s; the setting
-- mfs.database_size_max_age_s overrides it) measures again, unless another request is doing
-- so right now: pg_try_advisory_xact_lock never waits, the loser uses the cached row.
--
-- What is exact: a create is refused iff the cached size its request read (after any refresh
-- that request made itself) is at or over the limit. So once a refresh that says "over" has
-- committed, no create that starts afterwards is admitted, whatever the concurrency. What is not:
-- the bytes written between two refreshes, and by creates in flight when the refresh commits,
-- land on top of the limit (at most max_age of growth); the warning threshold is the margin.

alter table mfs.quota_limits
    add column if not exists max_database_bytes bigint check (max_database_bytes >= 0),
    -- the schema's default for `mfs quota`; a stack writes its own (Pulumi.yaml databaseWarnPercent)
    add column if not exists database_warn_percent int not null default 80
        check (database_warn_percent between 1 and 100);

create table if not exists mfs.database_size (
    only_row    boolean primary key default true check (only_row),
    bytes       bigint not null,
    measured_at timestamptz not null
);
insert into mfs.database_size (bytes, measured_at)
values (pg_database_size(current_database()), mfs.clock())
on conflict do nothing;

create or replace function mfs.database_size_max_age() returns interval
language sql stable as $$
    select make_interval(secs => coalesce(nullif(current_setting('mfs.database_size_max_age_s', true), '')::float8, 120))
$$;

-- Measures the size now and caches it (`mfs quota`, `mfs retain` after deleting).
create or replace function mfs.refresh_database_size() returns mfs.database_size
language sql as $$
    insert into mfs.database_size (only_row, bytes, measured_at)
    values (true, pg_database_size(current_database()), mfs.clock())
    on conflict (only_row) do update set bytes = excluded.bytes, measured_at = excluded.measured_at
    returning *
$$;

-- The cached size; measured again first when stale and no other session is measuring it.
create or replace function mfs.cached_database_size() returns mfs.database_size
language plpgsql as $$
declare
    cur mfs.database_size;
    stale_before timestamptz := mfs.clock() - mfs.database_size_max_age();
begin
    select * into cur from mfs.database_size;
    if cur.measured_at is null or cur.measured_at < stale_before or cur.measured_at > mfs.clock() then
        -- the key: 'mfs size' as an int8; held until this transaction ends, never waited for
        if pg_try_advisory_xact_lock(7164637391447909477) then
            -- the row as last committed: another session may have refreshed it since our read
            select * into cur from mfs.database_size;
            if cur.measured_at is null or cur.measured_at < stale_before or cur.measured_at > mfs.clock() then
                cur := mfs.refresh_database_size();
            end if;
        end if;
    end if;
    return cur;
end
$$;

create or replace function mfs.storage_creates(op text) returns boolean
language sql immutable as $$
    select op in ('flow_create', 'run_create', 'step_create', 'task_create', 'metadata_create', 'artifact_create')
$$;

-- Bytes as a person reads them: MB (10^6 bytes), as the vendors write their free plans.
create or replace function mfs.megabytes(bytes bigint) returns text
language sql immutable as $$ select to_char(bytes / 1e6, 'FM999999990.0') || ' MB' $$;

-- What to do when the database fills up, said in the warning and in the refusal.
create or replace function mfs.storage_advice() returns text
language sql immutable as $$
    select 'delete old runs with `python -m mfs retain --keep-days 30 --vacuum-full` '
           '(add --dry-run first to see what goes), or raise the limit '
           '(`python -m mfs quota --max-database-bytes N`, or the stack''s maxDatabaseBytes)'
$$;

-- The storage state of a scope for a size: null under the threshold (or without a limit),
-- else 'warn' or 'full' with a plain sentence.
create or replace function mfs.storage_state(lim mfs.quota_limits, bytes bigint, out state text, out sentence text)
language sql immutable as $$
    select case when bytes >= lim.max_database_bytes then 'full' else 'warn' end,
           format('the metadata database holds %s of its %s limit (%s%%); %s; %s',
                  mfs.megabytes(bytes), mfs.megabytes(lim.max_database_bytes),
                  floor(100.0 * bytes / greatest(lim.max_database_bytes, 1)),
                  case when bytes >= lim.max_database_bytes
                       then 'new runs, tasks, metadata and artifacts are refused until space is freed'
                       else format('at %s new runs will be refused', mfs.megabytes(lim.max_database_bytes)) end,
                  mfs.storage_advice())
     where lim.max_database_bytes is not null
       and bytes * 100 >= lim.max_database_bytes::numeric * lim.database_warn_percent
$$;

-- The guard one request runs first: the warning for its reply, and the 507 reply of a create
-- refused because the database is full (null when admitted).
create or replace function mfs.storage_guard(p_scope text, p_op text, out warning text, out refusal jsonb)
language plpgsql as $$
declare
    lim mfs.quota_limits;
    size_ mfs.database_size;
    state_ text;
begin
    select * into lim from mfs.quota_limits where scope = p_scope;
    if lim.max_database_bytes is null then
        return;
    end if;
    size_ := mfs.cached_database_size();
    select s.state, s.sentence into state_, warning from mfs.storage_state(lim, size_.bytes) s;
    if state_ = 'full' and mfs.storage_creates(p_op) then
        refusal := jsonb_build_object(
            'message', format('the metadata database is full: it holds %s, its limit is %s (scope %s), so '
                              'nothing new can be stored; reads and heartbeats still work. To go on, %s.',
                              mfs.megabytes(size_.bytes), mfs.megabytes(lim.max_database_bytes), p_scope,
                              mfs.storage_advice()),
            'database_bytes', size_.bytes,
            'max_database_bytes', lim.max_database_bytes,
            'measured_at', to_char(size_.measured_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'));
    end if;
end
$$;

-- Sets a scope's size limit (null = none) and warning threshold, leaving its monthly limits.
create or replace function mfs_api.set_storage_limit(p_scope text, p_max_database_bytes bigint,
                                                     p_warn_percent int default null)
returns jsonb language plpgsql as $$
begin
    if p_scope is null or p_scope = '' then
        raise exception 'a quota scope name is required';
    end if;
    insert into mfs.quota_limits as l (scope, max_database_bytes)
    values (p_scope, p_max_database_bytes)
    on conflict (scope) do update set max_database_bytes = excluded.max_database_bytes, updated_at = now();
    if p_warn_percent is not null then
        update mfs.quota_limits set database_warn_percent = p_warn_percent where scope = p_scope;
    end if;
    return mfs_api.get_usage(p_scope);
end
$$;

-- GET /usage and `mfs quota`: the monthly usage as before, and the cached database size.
create or replace function mfs_api.get_usage(p_scope text) returns jsonb
language sql stable as $$
    select jsonb_build_object(
        'scope', p_scope,
        'month', to_char(m.month, 'YYYY-MM'),
        'requests', u.requests,
        'egress_bytes', u.egress_bytes,
        'max_requests', l.max_requests,
        'max_egress_bytes', l.max_egress_bytes,
        'resets_at', mfs.resets_at(m.month),
        'database_bytes', d.bytes,
        'database_measured_at', to_char(d.measured_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
        'max_database_bytes', l.max_database_bytes,
        'database_warn_percent', l.database_warn_percent,
        'warning', (mfs.storage_state(l, d.bytes)).sentence)
      from (select mfs.current_month() as month) m
     cross join lateral (
           select coalesce(sum(s.requests), 0)::bigint as requests,
                  coalesce(sum(s.egress_bytes), 0)::bigint as egress_bytes
             from mfs.quota_slots s
            where s.scope = p_scope and s.month = m.month) u
      left join mfs.quota_limits l on l.scope = p_scope
      left join mfs.database_size d on true
$$;

-- mfs_api.call of 0031 (text replies, egress saving) with the size guard: the marked lines are
-- this migration's only change (a fourth column, `warning`, hence drop and create).
drop function mfs_api.call(text, text, jsonb, jsonb);
create function mfs_api.call(p_scope text, p_op text, p_args jsonb, p_body jsonb)
returns table (status int, body text, next_cursor text, warning text)
language plpgsql as $$
declare
    res mfs.text_reply;
    err mfs.reply;
    txt text;
    st text;
    msg text;
    det text;
    plan text;
    exact boolean := false;
    saved bigint := mfs.egress_saved(p_args);
    args jsonb := (coalesce(p_args, '{}') - '_egress_saved') || jsonb_build_object('_scope', p_scope);
    guard record; -- [0040 size guard]
begin
    guard := mfs.storage_guard(p_scope, p_op); -- [0040 size guard]
    loop
        begin
            plan := mfs.quota_plan(p_scope, exact);
            begin
                if guard.refusal is not null then -- [0040 size guard] a create, the database full
                    res := row(507, guard.refusal::text, null::text);
                else
                    res := mfs.dispatch_text(p_op, args, p_body);
                end if;
            exception when others then
                get stacked diagnostics st = returned_sqlstate, msg = message_text, det = pg_exception_detail;
                err := mfs.error_reply(st, msg, det);
                if err is null then
                    raise;
                end if;
                res := row(err.status, err.body::text, err.next_cursor);
                -- the official service lists nothing, rather than 404, under a missing parent
                if res.status = 404 and (p_op like '%\_list' or p_op = 'filtered_tasks') then
                    res := row(200, '[]', null::text);
                end if;
            end;
            txt := res.body;
            perform mfs.charge(p_scope, octet_length(txt) - saved, plan);
            exit;
        exception
            when sqlstate 'MF429' then
                get stacked diagnostics msg = message_text, det = pg_exception_detail;
                res := row(429, (jsonb_build_object('message', msg) || det::jsonb)::text, null::text);
                txt := res.body;
                exit;
            when sqlstate 'MFQEX' then
                -- the operation and the count were rolled back with the block: again, exactly
                exact := true;
        end;
    end loop;
    if not mfs.durable_commit(p_op, res.status) then
        perform set_config('synchronous_commit', 'off', true);
    end if;
    return query select res.status, txt, res.next_cursor, guard.warning; -- [0040 size guard] warning
end
$$;
