-- Step objects and filtered_tasks as the official service answers them (issue 12, items 5, 6).

-- A step's run_number is a string: the official service fills a step's run_id with the run
-- number when the run has no client-chosen id, and shows run_id. (Tasks, metadata and
-- artifacts keep the integer, as officially.)
create or replace function mfs.step_json(s public.steps_v3, run_tags jsonb, run_system_tags jsonb) returns jsonb
language sql stable as $$
    select jsonb_build_object('flow_id', s.flow_id,
        'run_number', to_jsonb(coalesce(s.run_id, s.run_number::text)), 'step_name', s.step_name,
        'user_name', s.user_name, 'ts_epoch', s.ts_epoch,
        'tags', coalesce(run_tags, s.tags, '[]'), 'system_tags', coalesce(run_system_tags, s.system_tags, '[]'))
$$;

-- Pathspecs "F/R/S/T" of the step's tasks having a metadata row, narrowed to rows named
-- metadata_field_name and/or whose value matches the regular expression pattern (searched,
-- not anchored: the client anchors it). With neither, the tasks that have any metadata, as
-- the official service answers (a task that registered no metadata yet is not listed).
create or replace function mfs_api.filtered_tasks(a jsonb, b jsonb) returns mfs.reply
language plpgsql stable as $$
declare
    r public.runs_v3 := mfs.find_run(mfs.arg(a, 'flow_id'), mfs.arg(a, 'run_number'));
    s public.steps_v3 := mfs.find_step(r, mfs.arg(a, 'step_name'));
    field text := nullif(a ->> 'metadata_field_name', '');
    pattern text := nullif(a ->> 'pattern', '');
    prefix text := s.flow_id || '/' || coalesce(r.run_id, r.run_number::text) || '/' || s.step_name || '/';
begin
    return row(200, coalesce((
        select jsonb_agg(prefix || coalesce(t.task_name, t.task_id::text) order by t.task_id)
          from public.tasks_v3 t
         where t.flow_id = s.flow_id and t.run_number = s.run_number and t.step_name = s.step_name
           and exists (
                select 1 from public.metadata_v3 m
                 where m.flow_id = t.flow_id and m.run_number = t.run_number
                   and m.step_name = t.step_name and m.task_id = t.task_id
                   and (field is null or m.field_name = field)
                   and (pattern is null or m.value ~ pattern))), '[]'), null::text);
end
$$;
