-- The quota ledger without a hot row (issue 14). Until now every request upserted the one
-- mfs.quota_usage row of its scope and held that row's lock through its commit's WAL flush, so
-- all requests of a scope committed one after the other. Usage is now spread over
-- mfs.quota_slot_count() slot rows per (scope, month), summed on read; mfs.quota_usage becomes
-- a view with the same columns and rows as the old table (a row once a request was counted).
--
-- Admission stays exact: at a limit of N exactly N requests are admitted, whatever the
-- concurrency, and a request is admitted while the egress bytes counted before it are below
-- the egress limit (the old rule). Three paths:
--
--   free   no limit on the scope: count in any free slot, check nothing.
--   fast   far from every limit: lock ONE slot row (any unlocked one), count in it, then read
--          the sum S (requests, bytes) of all slots in a new statement and keep the request iff
--              S.requests + K - 1 <= max_requests   and
--              S.egress - own bytes + (K - 1) * B < max_egress_bytes
--          (K slots, B = mfs.quota_fast_reply_bytes(): replies larger than B never take this
--          path). Otherwise the charge raises MFQEX and mfs_api.call rolls back the request
--          (operation included: its subtransaction) and runs it again on the exact path.
--   exact  near a limit (the snapshot's remaining budget below K requests or K * B bytes),
--          for replies larger than B, outside READ COMMITTED: lock ALL slot rows in slot
--          order, read the sum (now exact: every earlier charge has committed or rolled back
--          and no new one can start), admit iff requests < max and egress < max, count in a slot.
--   A request is refused (MF429) only on the exact path, or before the operation runs when the
--   committed usage already reached a limit (it never decreases within a month).
--
-- Why the fast path is exact. A charge that is counted but not yet committed holds the row
-- lock of its slot until its transaction ends, and a slot row has at most one such holder (a
-- second updater waits until the first is no longer running), so at any instant there are at
-- most K uncommitted counts, one per slot. A fast request R reads S in a snapshot taken after
-- it locked and counted in its slot: S holds every count committed before that instant and R's
-- own; every other count existing at that instant (committed or not) is uncommitted and sits
-- in one of the K - 1 other slots. So at R's check instant at most S.requests + K - 1 counts
-- exist, and at most S.egress - own + (K - 1) * B bytes of other requests (fast holders have
-- replies of at most B bytes; an exact holder holds all slots, so it cannot be running then).
-- Order the admitted requests by their check instant (fast: that snapshot; exact: its count,
-- taken while holding every slot). Everything admitted before R in that order counted before
-- R's check and is still there at R's check, so it is among the counts bounded above: fewer
-- than N requests (resp. fewer than max bytes) come before R, i.e. R is within the limit in a
-- serial order, exactly as with one locked row. For the last admitted request this gives
-- "at most N admitted". Conversely a refusal means N admitted requests (resp. max bytes) have
-- committed already, so no request is refused while budget remains: with more than N
-- requests, exactly N are admitted. Rolled-back counts (a fast request sent to the exact
-- path, a failed transaction) only make the bounds looser. Holders never wait for one another
-- in a cycle: a fast holder waits for nothing after locking its slot, a fast request that
-- waits for a slot holds none, and exact requests lock slots in one order.
--
-- Requests that only read are committed with synchronous_commit off (as since 0007); so are
-- heartbeats now: see mfs.durable_commit below.

create table if not exists mfs.quota_slots (
    scope        text not null,
    month        date not null,
    slot         smallint not null check (slot >= 0 and slot < 16),
    requests     bigint not null default 0,
    egress_bytes bigint not null default 0,
    primary key (scope, month, slot)
);

-- K: the number of slot rows of a (scope, month); the fast path's bound relies on there
-- never being more (the check constraint above; change both together).
create or replace function mfs.quota_slot_count() returns int
language sql immutable as $$ select 16 $$;

-- B: the largest reply that may take the fast path when an egress limit is set.
create or replace function mfs.quota_fast_reply_bytes() returns bigint
language sql immutable as $$ select 65536::bigint $$;

-- the old table's counts move to slot 0; every (scope, month) gets all its slots
insert into mfs.quota_slots (scope, month, slot, requests, egress_bytes)
select u.scope, u.month, s.slot,
       case when s.slot = 0 then u.requests else 0 end,
       case when s.slot = 0 then u.egress_bytes else 0 end
  from mfs.quota_usage u
 cross join generate_series(0, mfs.quota_slot_count() - 1) s(slot)
on conflict do nothing;

drop table mfs.quota_usage;

create view mfs.quota_usage as
select scope, month, sum(requests)::bigint as requests, sum(egress_bytes)::bigint as egress_bytes
  from mfs.quota_slots
 group by scope, month
having sum(requests) > 0;

create or replace function mfs_api.get_usage(p_scope text) returns jsonb
language sql stable as $$
    select jsonb_build_object(
        'scope', p_scope,
        'month', to_char(m.month, 'YYYY-MM'),
        'requests', u.requests,
        'egress_bytes', u.egress_bytes,
        'max_requests', l.max_requests,
        'max_egress_bytes', l.max_egress_bytes,
        'resets_at', mfs.resets_at(m.month))
      from (select mfs.current_month() as month) m
     cross join lateral (
           select coalesce(sum(s.requests), 0)::bigint as requests,
                  coalesce(sum(s.egress_bytes), 0)::bigint as egress_bytes
             from mfs.quota_slots s
            where s.scope = p_scope and s.month = m.month) u
      left join mfs.quota_limits l on l.scope = p_scope
$$;

-- Raises the 429 of an exhausted scope (message and detail as before this migration).
create or replace function mfs.quota_refuse(p_scope text, lim mfs.quota_limits) returns void
language plpgsql as $$
declare
    usage jsonb := mfs_api.get_usage(p_scope);
    budget text := case when lim.max_requests is not null and (usage ->> 'requests')::bigint >= lim.max_requests
                        then 'requests' else 'egress_bytes' end;
begin
    raise exception using errcode = 'MF429',
        message = format('the monthly %s quota of scope %s is exhausted (%s of %s used); it resets at %s',
                         replace(budget, '_', ' '), p_scope, usage ->> budget, usage ->> ('max_' || budget),
                         usage ->> 'resets_at'),
        detail = (usage || jsonb_build_object('budget', budget))::text;
end
$$;

-- All K slot rows of a (scope, month), created at once (one statement: visible together).
create or replace function mfs.quota_ensure_slots(p_scope text, m date) returns void
language sql as $$
    insert into mfs.quota_slots (scope, month, slot)
    select p_scope, m, s from generate_series(0, mfs.quota_slot_count() - 1) s
    on conflict do nothing
$$;

-- Counts one request in one slot row, whose lock is then held until the transaction ends:
-- the first slot nobody holds, else (more than K charges at once) this session's own slot,
-- waiting for its holder.
create or replace function mfs.quota_count(p_scope text, m date, bytes bigint) returns void
language plpgsql as $$
begin
    update mfs.quota_slots s
       set requests = s.requests + 1, egress_bytes = s.egress_bytes + bytes
     where (s.scope, s.month, s.slot) = (select f.scope, f.month, f.slot from mfs.quota_slots f
                                          where f.scope = p_scope and f.month = m
                                          order by f.slot limit 1 for update skip locked);
    if found then
        return;
    end if;
    perform mfs.quota_ensure_slots(p_scope, m);
    update mfs.quota_slots s
       set requests = s.requests + 1, egress_bytes = s.egress_bytes + bytes
     where s.scope = p_scope and s.month = m and s.slot = pg_backend_pid() % mfs.quota_slot_count();
end
$$;

-- Before the operation runs: 'free', 'fast' or 'exact' (see the top of this file), or MF429
-- when the committed usage already reached a limit.
create or replace function mfs.quota_plan(p_scope text, exact boolean) returns text
language plpgsql as $$
declare
    lim mfs.quota_limits;
    used_requests bigint;
    used_bytes bigint;
    k constant int := mfs.quota_slot_count();
begin
    select * into lim from mfs.quota_limits where scope = p_scope;
    if lim.max_requests is null and lim.max_egress_bytes is null then
        return 'free';
    end if;
    select coalesce(sum(requests), 0), coalesce(sum(egress_bytes), 0) into used_requests, used_bytes
      from mfs.quota_slots where scope = p_scope and month = mfs.current_month();
    if used_requests >= lim.max_requests or used_bytes >= lim.max_egress_bytes then
        perform mfs.quota_refuse(p_scope, lim);
    end if;
    if not exact and current_setting('transaction_isolation') = 'read committed'
       and (lim.max_requests is null or used_requests + k <= lim.max_requests)
       and (lim.max_egress_bytes is null or used_bytes + k * mfs.quota_fast_reply_bytes() < lim.max_egress_bytes) then
        return 'fast';
    end if;
    return 'exact';
end
$$;

-- Counts one request and its reply bytes on the planned path; MF429 when a budget is
-- exhausted, MFQEX when a fast charge finds itself too near a limit (run again exactly).
create or replace function mfs.charge(p_scope text, bytes bigint, plan text) returns void
language plpgsql as $$
declare
    lim mfs.quota_limits;
    m date := mfs.current_month();
    k constant int := mfs.quota_slot_count();
    used_requests bigint;
    used_bytes bigint;
begin
    if plan = 'free' then
        perform mfs.quota_count(p_scope, m, bytes);
        return;
    end if;
    select * into lim from mfs.quota_limits where scope = p_scope;
    if plan = 'fast' and bytes <= mfs.quota_fast_reply_bytes() then
        perform mfs.quota_count(p_scope, m, bytes);
        -- a new statement, so a snapshot taken after this request's slot was locked
        select sum(requests), sum(egress_bytes) into used_requests, used_bytes
          from mfs.quota_slots where scope = p_scope and month = m;
        if (lim.max_requests is null or used_requests + k - 1 <= lim.max_requests)
           and (lim.max_egress_bytes is null
                or used_bytes - bytes + (k - 1) * mfs.quota_fast_reply_bytes() < lim.max_egress_bytes) then
            return;
        end if;
        raise exception using errcode = 'MFQEX', message = 'quota near its limit: charge exactly';
    end if;
    perform mfs.quota_ensure_slots(p_scope, m);
    perform 1 from mfs.quota_slots where scope = p_scope and month = m order by slot for update;
    select sum(requests), sum(egress_bytes) into used_requests, used_bytes
      from mfs.quota_slots where scope = p_scope and month = m;
    if (lim.max_requests is null or used_requests < lim.max_requests)
       and (lim.max_egress_bytes is null or used_bytes < lim.max_egress_bytes) then
        update mfs.quota_slots set requests = requests + 1, egress_bytes = egress_bytes + bytes
         where scope = p_scope and month = m and slot = 0;
        return;
    end if;
    perform mfs.quota_refuse(p_scope, lim);
end
$$;

-- What a request's commit must wait for. Every write of a Metaflow record (flows, runs, steps,
-- tasks, metadata, artifacts, tags) waits for its WAL flush: the client is told "stored" only
-- once it is on disk. Reads, errors and refusals write nothing but the quota count, and a
-- heartbeat only moves a timestamp forward that the next heartbeat moves again; those commit
-- without waiting (synchronous_commit off: a crash may lose the last ~0.6 s of such commits,
-- never one a later durable commit follows, since WAL is flushed in order).
create or replace function mfs.durable_commit(op text, status int) returns boolean
language sql immutable as $$
    select status < 400
       and op not like '%\_list' and op not like '%\_get'
       and op not in ('ping', 'usage', 'filtered_tasks', 'task_heartbeat', 'run_heartbeat')
$$;

drop function if exists mfs.charge(text, bigint);

create or replace function mfs_api.call(p_scope text, p_op text, p_args jsonb, p_body jsonb)
returns table (status int, body text, next_cursor text)
language plpgsql as $$
declare
    res mfs.reply;
    txt text;
    st text;
    msg text;
    det text;
    plan text;
    exact boolean := false;
begin
    loop
        begin
            plan := mfs.quota_plan(p_scope, exact);
            begin
                res := mfs.dispatch(p_op, coalesce(p_args, '{}') || jsonb_build_object('_scope', p_scope), p_body);
            exception when others then
                get stacked diagnostics st = returned_sqlstate, msg = message_text, det = pg_exception_detail;
                res := mfs.error_reply(st, msg, det);
                if res is null then
                    raise;
                end if;
                -- the official service lists nothing, rather than 404, under a missing parent
                if res.status = 404 and (p_op like '%\_list' or p_op = 'filtered_tasks') then
                    res := row(200, '[]'::jsonb, null::text);
                end if;
            end;
            txt := res.body::text;
            perform mfs.charge(p_scope, octet_length(txt), plan);
            exit;
        exception
            when sqlstate 'MF429' then
                get stacked diagnostics msg = message_text, det = pg_exception_detail;
                res := row(429, jsonb_build_object('message', msg) || det::jsonb, null::text);
                txt := res.body::text;
                exit;
            when sqlstate 'MFQEX' then
                -- the operation and the count were rolled back with the block: again, exactly
                exact := true;
        end;
    end loop;
    if not mfs.durable_commit(p_op, res.status) then
        perform set_config('synchronous_commit', 'off', true);
    end if;
    return query select res.status, txt, res.next_cursor;
end
$$;

-- locked down as in 0008: only the owner (the router's role) reaches the ledger
revoke all on mfs.quota_slots, mfs.quota_usage from public;
do $$
declare
    r text;
begin
    foreach r in array array['anon', 'authenticated', 'service_role'] loop
        if exists (select 1 from pg_roles where rolname = r) then
            execute format('revoke all on mfs.quota_slots, mfs.quota_usage from %I', r);
            execute format('revoke execute on all functions in schema mfs, mfs_api from %I', r);
        end if;
    end loop;
end
$$;
revoke execute on all functions in schema mfs, mfs_api from public;
