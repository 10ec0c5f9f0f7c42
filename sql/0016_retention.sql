-- Retention (issue 16): whole runs deleted under a policy, so a free database does not fill up.
-- `python -m mfs retain` lists the candidates, then deletes them one run per transaction: a run
-- goes with its steps, tasks, metadata and artifacts together or not at all, and only that run's
-- rows are locked meanwhile (live traffic on other runs is not blocked).

-- The runs a policy would delete, oldest first. A run goes when it is older than keep_days
-- (by its ts_epoch, against mfs.clock()) or is not among the newest keep_runs of its flow
-- (either rule alone when the other is null; both given: a run goes if either says so). Never
-- deleted: a run still running (mfs.run_status), and a run tagged keep_tag (user tag or
-- system tag).
create or replace function mfs.retention_candidates(keep_days int, keep_runs int, keep_tag text,
                                                    only_flow text default null)
returns table (flow_id varchar, run_number bigint, run_id varchar, ts_epoch bigint, tasks bigint)
language plpgsql stable as $$
begin
    if keep_days is null and keep_runs is null then
        raise exception 'a retention policy needs keep_days or keep_runs';
    end if;
    if keep_days < 0 or keep_runs < 0 then
        raise exception 'keep_days and keep_runs must not be negative';
    end if;
    return query
    select (r.run).flow_id, (r.run).run_number::bigint, (r.run).run_id, (r.run).ts_epoch,
           (select count(*) from public.tasks_v3 t
             where t.flow_id = (r.run).flow_id and t.run_number = (r.run).run_number)
      from (select x as run, row_number() over (partition by x.flow_id
                                                order by x.ts_epoch desc, x.run_number desc) as newest
              from public.runs_v3 x
             where only_flow is null or x.flow_id = only_flow) r
     where ((keep_days is not null
             and (r.run).ts_epoch < (extract(epoch from mfs.clock()) * 1000)::bigint - keep_days::bigint * 86400000)
            or (keep_runs is not null and r.newest > keep_runs))
       and not (keep_tag is not null and (coalesce((r.run).tags, '[]') ? keep_tag
                                          or coalesce((r.run).system_tags, '[]') ? keep_tag))
       and mfs.run_status(r.run) <> 'running'
     order by (r.run).ts_epoch, (r.run).run_number;
end
$$;

-- Deletes one run and everything under it; returns the rows deleted per table. A run that is
-- already gone deletes nothing (a second `retain` after an interrupted one is safe).
create or replace function mfs.delete_run(p_flow_id text, p_run_number bigint) returns jsonb
language plpgsql as $$
declare
    n_metadata bigint;
    n_artifacts bigint;
    n_tasks bigint;
    n_steps bigint;
    n_runs bigint;
begin
    -- lock the run first: a concurrent write to it waits, rather than landing half-deleted
    perform 1 from public.runs_v3 where flow_id = p_flow_id and run_number = p_run_number for update;
    delete from public.metadata_v3 where flow_id = p_flow_id and run_number = p_run_number;
    get diagnostics n_metadata = row_count;
    delete from public.artifact_v3 where flow_id = p_flow_id and run_number = p_run_number;
    get diagnostics n_artifacts = row_count;
    delete from public.tasks_v3 where flow_id = p_flow_id and run_number = p_run_number;
    get diagnostics n_tasks = row_count;
    delete from public.steps_v3 where flow_id = p_flow_id and run_number = p_run_number;
    get diagnostics n_steps = row_count;
    delete from mfs.run_end_state where flow_id = p_flow_id and run_number = p_run_number;
    delete from public.runs_v3 where flow_id = p_flow_id and run_number = p_run_number;
    get diagnostics n_runs = row_count;
    return jsonb_build_object('runs', n_runs, 'steps', n_steps, 'tasks', n_tasks,
                              'metadata', n_metadata, 'artifacts', n_artifacts);
end
$$;
