-- The quota ledger without a hot row (issue 14). Until now every request upserted the one
-- mfs.quota_usage row of its scope and held that row's lock through its commit's WAL flush, so
-- all requests of a scope committed one after the other. Usage is now spread over
-- K = mfs.quota_slot_count() slot rows per (scope, month), summed on read; mfs.quota_usage
-- becomes a view with the same columns and rows as the old table (a row once a request counted).
--
-- Admission stays exact: at a limit of N exactly N requests are admitted, whatever the
-- concurrency, and a request is admitted while the egress bytes counted before it are below
-- the egress limit (the old rule). A transaction (one request through the router; SQL callers
-- may call mfs_api.call several times before committing) charges on one of three paths:
--
--   free   no limit on the scope: count in any free slot, check nothing.
--   fast   far from every limit: lock ONE slot row (the first unlocked one), count in it, then
--          read the sum S (requests, bytes) of all slots in a new statement and keep the
--          request iff, with C = mfs.quota_fast_counts() and B = mfs.quota_fast_reply_bytes(),
--              S.requests + K * C - 1 <= max_requests   and
--              S.egress - own bytes + (K * C - 1) * B < max_egress_bytes.
--          Otherwise the charge raises MFQEX, and mfs_api.call rolls the request back (the
--          operation too: its subtransaction) and runs it again on the exact path. The
--          transaction's next C - 1 charges of replies up to B bytes count in the slot it holds
--          without a check (the first check budgeted them); a reply larger than B never takes
--          this path.
--   exact  near a limit (the snapshot's remaining budget below K * C requests or K * C * B
--          bytes), replies over B, outside READ COMMITTED, a transaction's (C + 1)-th charge:
--          lock ALL slot rows in slot order, read the sum (now exact: every other charge has
--          committed or rolled back, and no new one can start), admit iff requests < max and
--          egress < max, count in slot 0; the transaction keeps every slot till it ends.
--   A request is refused (MF429) only on the exact path, or before its operation runs when the
--   usage its snapshot sees already reached a limit (usage never decreases within a month).
--
-- Why the fast path is exact. A count not yet committed sits in a slot row whose lock its
-- transaction holds until it ends, and a slot row has one such holder at most (a second
-- updater waits until the first is no longer running); a holder has at most C fast counts, all
-- in its one slot. Call a transaction's check instant the snapshot of its fast check (exact:
-- each exact count, taken while holding every slot). Let t be the latest check instant of all
-- admitted counts (a fast transaction's later counts belong to its first check). Every count
-- admitted at all belongs to a check at or before t; at t its transaction had committed (its
-- counts are in S, read at t) or was running: a fast transaction X checking at t holds one
-- slot, every other running counter holds another one of the K - 1 others (an exact one would
-- hold all slots, impossible while X holds one) and ends with at most C counts of at most B
-- bytes each. So all counts ever admitted number at most (S - 1) + (K - 1) * C + C
-- = S + K * C - 1 <= N, and the bytes of all but X's first are below the egress limit; if t is
-- an exact count, nothing else runs and S was exact: at most N. Conversely a refusal means N
-- requests (resp. the egress limit) committed already, so none is refused while budget
-- remains: with more than N requests, exactly N are admitted. Rolled-back counts only loosen
-- the bounds.
--
-- Waits: a fast holder waits for nothing after its first count, a fast request that waits for
-- a slot holds none, an exact request that held nothing locks slots in one order: no cycle. A
-- transaction that counted on the fast path and then needs the exact path (its (C + 1)-th
-- charge, or a reply over B, in one transaction) waits for every slot while holding one: two of
-- those at once can deadlock, which PostgreSQL breaks by aborting one (rolled back, nothing
-- counted). The router never does it: one request, one transaction.
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

-- C: how many fast counts one transaction may hold in its slot.
create or replace function mfs.quota_fast_counts() returns int
language sql immutable as $$ select 4 $$;

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

-- The transaction-local setting naming what this transaction holds of (scope, month)'s slots:
-- '' nothing, 'slot,count' one slot and its fast counts, 'all' every slot (the exact path).
-- set_config is transactional: a failed charge's subtransaction rolls it back with the count.
create or replace function mfs.quota_held_setting(p_scope text, m date) returns text
language sql stable as $$ select 'mfs.held_' || md5(p_scope || '/' || to_char(m, 'YYYY-MM')) $$;

-- Counts one request in a slot row nobody holds (the first), else (more than K charges at
-- once) in this session's own slot, waiting for its holder; the lock lasts till the
-- transaction ends. Returns the slot.
create or replace function mfs.quota_count(p_scope text, m date, bytes bigint) returns smallint
language plpgsql as $$
declare
    got smallint;
begin
    update mfs.quota_slots s
       set requests = s.requests + 1, egress_bytes = s.egress_bytes + bytes
     where (s.scope, s.month, s.slot) = (select f.scope, f.month, f.slot from mfs.quota_slots f
                                          where f.scope = p_scope and f.month = m
                                          order by f.slot limit 1 for update skip locked)
    returning s.slot into got;
    if not found then
        perform mfs.quota_ensure_slots(p_scope, m);
        update mfs.quota_slots s
           set requests = s.requests + 1, egress_bytes = s.egress_bytes + bytes
         where s.scope = p_scope and s.month = m and s.slot = pg_backend_pid() % mfs.quota_slot_count()
        returning s.slot into got;
    end if;
    return got;
end
$$;

-- Before the operation runs: 'free', 'fast' or 'exact' (see the top of this file), or MF429
-- when the usage already reached a limit.
create or replace function mfs.quota_plan(p_scope text, exact boolean) returns text
language plpgsql as $$
declare
    lim mfs.quota_limits;
    used_requests bigint;
    used_bytes bigint;
    margin constant int := mfs.quota_slot_count() * mfs.quota_fast_counts();
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
       and (lim.max_requests is null or used_requests + margin <= lim.max_requests)
       and (lim.max_egress_bytes is null
            or used_bytes + margin * mfs.quota_fast_reply_bytes() < lim.max_egress_bytes) then
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
    margin constant int := mfs.quota_slot_count() * mfs.quota_fast_counts();
    big constant bigint := mfs.quota_fast_reply_bytes();
    setting text := mfs.quota_held_setting(p_scope, m);
    held text := coalesce(current_setting(setting, true), '');
    slot_ smallint;
    n int;
    used_requests bigint;
    used_bytes bigint;
begin
    if held not in ('', 'all') then
        -- this transaction holds one slot: up to C fast counts there, budgeted by its first check
        slot_ := split_part(held, ',', 1)::smallint;
        n := split_part(held, ',', 2)::int;
        if plan = 'free' or (n < mfs.quota_fast_counts() and bytes <= big) then
            update mfs.quota_slots set requests = requests + 1, egress_bytes = egress_bytes + bytes
             where scope = p_scope and month = m and slot = slot_;
            perform set_config(setting, slot_ || ',' || (n + 1), true);
            return;
        end if;
    elsif held = '' and (plan = 'free' or (plan = 'fast' and bytes <= big)) then
        slot_ := mfs.quota_count(p_scope, m, bytes);
        perform set_config(setting, slot_ || ',1', true);
        if plan = 'free' then
            return;
        end if;
        select * into lim from mfs.quota_limits where scope = p_scope;
        -- a new statement, so a snapshot taken after this request's slot was locked
        select sum(requests), sum(egress_bytes) into used_requests, used_bytes
          from mfs.quota_slots where scope = p_scope and month = m;
        if (lim.max_requests is null or used_requests + margin - 1 <= lim.max_requests)
           and (lim.max_egress_bytes is null or used_bytes - bytes + (margin - 1) * big < lim.max_egress_bytes) then
            return;
        end if;
        raise exception using errcode = 'MFQEX', message = 'quota near its limit: charge exactly';
    end if;
    select * into lim from mfs.quota_limits where scope = p_scope;
    perform mfs.quota_ensure_slots(p_scope, m);
    perform 1 from mfs.quota_slots where scope = p_scope and month = m order by slot for update;
    perform set_config(setting, 'all', true);
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
