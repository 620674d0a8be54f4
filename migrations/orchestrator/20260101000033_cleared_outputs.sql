-- A clear now deletes the cleared task instances' outputs (as Airflow
-- clears a task's XComs before a try), so a next try that returns
-- nothing leaves its readers nothing. Outputs are written only by a
-- successful try: an instance that is not `success` and still has one
-- kept it from a try before a clear made by an earlier version.
DELETE FROM xcom x
USING task_instances ti
WHERE ti.dag_id = x.dag_id AND ti.run_id = x.run_id AND ti.task_id = x.task_id
  AND ti.map_index = x.map_index AND ti.state <> 'success';
