-- The retention policy a stack configures (QuotaGuard's `retention`, issue 16), kept in the
-- database so that `python -m mfs retain` run without --keep-days / --keep-runs (from cron, a
-- CI schedule, by hand) applies it: the stack writes it and applies it once at deploy; nothing
-- in a serverless stack runs on a timer, so scheduling `mfs retain` is the user's (docs/STACKS.md).

create table if not exists mfs.retention_policy (
    only_row   boolean primary key default true check (only_row),
    keep_days  int check (keep_days >= 0),
    keep_runs  int check (keep_runs >= 0),
    keep_tag   text,
    updated_at timestamptz not null default now()
);

-- Sets the policy (both keep_days and keep_runs null: no policy, the row goes).
create or replace function mfs_api.set_retention_policy(p_keep_days int, p_keep_runs int, p_keep_tag text)
returns void language plpgsql as $$
begin
    if p_keep_days is null and p_keep_runs is null then
        delete from mfs.retention_policy;
        return;
    end if;
    insert into mfs.retention_policy (keep_days, keep_runs, keep_tag)
    values (p_keep_days, p_keep_runs, nullif(p_keep_tag, ''))
    on conflict (only_row) do update
       set keep_days = excluded.keep_days, keep_runs = excluded.keep_runs, keep_tag = excluded.keep_tag,
           updated_at = now();
end
$$;
