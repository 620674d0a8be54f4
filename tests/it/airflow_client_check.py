"""Drive BetFlow's REST API with Airflow's official Python client.

Usage: airflow_client_check.py BASE_URL TOKEN

The client (apache-airflow-client 3.3.x) validates every response against
Airflow 3's pydantic models, so a missing or mistyped field fails here.
Run by tests/airflow_client.rs against a fresh `betflow up` with the
example DAGs loaded and paused; exits non-zero on the first failed check.
"""

import sys
import time
from datetime import datetime, timezone

import airflow_client.client as af
from airflow_client.client.exceptions import ApiException


def expect_status(status, call, *args, **kwargs):
    """Call and require an ApiException with this HTTP status."""
    try:
        call(*args, **kwargs)
    except ApiException as e:
        assert e.status == status, f"{call.__name__}: wanted {status}, got {e.status}: {e.body}"
        return
    raise AssertionError(f"{call.__name__} succeeded; wanted HTTP {status}")


def task_ids(*ids):
    """`task_ids` as the client's body model wants them (its anyOf wrapper)."""
    return [af.ClearTaskInstancesBodyTaskIdsInner(i) for i in ids]


def wait_for_run(runs, dag_id, run_id, want="success", secs=30):
    deadline = time.monotonic() + secs
    while True:
        run = runs.get_dag_run(dag_id, run_id)
        state = run.state.value
        if state == want:
            return run
        assert state not in ("success", "failed"), f"run {run_id} ended {state}, wanted {want}"
        assert time.monotonic() < deadline, f"run {run_id} still {state} after {secs}s"
        time.sleep(0.1)


def main(base_url, token):
    config = af.Configuration(host=base_url, access_token=token)
    with af.ApiClient(config) as client:
        dags = af.DAGApi(client)
        runs = af.DagRunApi(client)
        tis = af.TaskInstanceApi(client)

        version = af.VersionApi(client).get_version()
        assert version.version, version

        health = af.MonitorApi(client).get_health()
        assert health.metadatabase.status == "healthy", health

        # DAGs: list, filter, get, unpause.
        examples = dags.get_dags(tags=["example"], limit=100)
        ids = [d.dag_id for d in examples.dags]
        assert "example_etl" in ids, ids
        assert examples.total_entries == len(ids), (examples.total_entries, ids)
        assert all(d.dag_id.startswith("example_") for d in examples.dags), ids
        page = dags.get_dags(tags=["example"], limit=2, offset=1)
        assert [d.dag_id for d in page.dags] == sorted(ids)[1:3], page.dags
        assert page.total_entries == len(ids)
        only_etl = dags.get_dags(dag_id_pattern="example_etl")
        assert [d.dag_id for d in only_etl.dags] == ["example_etl"], only_etl

        etl = dags.get_dag("example_etl")
        assert etl.is_paused is True, etl
        assert [t.name for t in etl.tags] == ["example"], etl.tags
        assert etl.timetable_summary is None, etl.timetable_summary
        expect_status(404, dags.get_dag, "no_such_dag")

        patched = dags.patch_dag("example_etl", af.DAGPatchBody(is_paused=False))
        assert patched.is_paused is False, patched
        assert dags.get_dag("example_etl").is_paused is False

        # Trigger with conf, follow the run, read its tasks and log.
        logical = datetime(2024, 4, 1, tzinfo=timezone.utc)
        run = runs.trigger_dag_run(
            "example_etl",
            af.TriggerDAGRunPostBody(logical_date=logical, conf={"multiplier": 3}),
        )
        assert run.dag_id == "example_etl", run
        assert run.run_type.value == "manual", run.run_type
        assert run.logical_date == logical, run.logical_date
        assert run.conf == {"multiplier": 3}, run.conf
        run_id = run.dag_run_id
        expect_status(
            409,
            runs.trigger_dag_run,
            "example_etl",
            af.TriggerDAGRunPostBody(logical_date=logical),
        )
        # No logical date: the client sends null, meaning now.
        now_run = runs.trigger_dag_run("example_etl", af.TriggerDAGRunPostBody())
        assert now_run.logical_date is not None
        assert now_run.dag_run_id != run_id

        done = wait_for_run(runs, "example_etl", run_id)
        assert done.end_date is not None and done.duration is not None, done

        # DAG versions: the structure this binary defines is version 1, and
        # the run names it.
        versions = af.DagVersionApi(client).get_dag_versions("example_etl")
        assert versions.total_entries == 1, versions
        v1 = versions.dag_versions[0]
        assert (v1.dag_id, v1.version_number) == ("example_etl", 1), v1
        assert [v.version_number for v in done.dag_versions] == [1], done.dag_versions
        assert done.dag_versions[0].id == v1.id
        assert af.DagVersionApi(client).get_dag_version("example_etl", 1).id == v1.id
        expect_status(404, af.DagVersionApi(client).get_dag_version, "example_etl", 2)

        # The batch task-instance list: filters in the body.
        batch_tis = tis.get_task_instances_batch(
            "~",
            "~",
            af.TaskInstancesBatchBody(
                dag_ids=["example_etl"],
                dag_run_ids=[run_id],
                task_ids=["extract", "load"],
                state=["success"],
                order_by="-task_id",
            ),
        )
        assert [t.task_id for t in batch_tis.task_instances] == ["load", "extract"], batch_tis
        assert batch_tis.total_entries == 2, batch_tis.total_entries
        expect_status(400, tis.get_task_instances_batch, "~", "~", af.TaskInstancesBatchBody(queue=["q"]))

        # A task instance's tries, and the run's XCom entries.
        tries = tis.get_task_instance_tries("example_etl", run_id, "extract")
        assert [(t.try_number, t.state.value) for t in tries.task_instances] == [(1, "success")], tries
        one_try = tis.get_task_instance_try_details("example_etl", run_id, "extract", 1)
        assert one_try.try_number == 1 and one_try.end_date is not None, one_try
        expect_status(404, tis.get_task_instance_try_details, "example_etl", run_id, "extract", 2)
        xcoms = af.XComApi(client).get_xcom_entries("example_etl", run_id, "~")
        keyed = {(x.task_id, x.key) for x in xcoms.xcom_entries}
        assert ("extract", "return_value") in keyed, keyed
        assert xcoms.total_entries == len(keyed), xcoms.total_entries
        entry = af.XComApi(client).get_xcom_entry("example_etl", "extract", run_id, "return_value")
        assert entry.actual_instance.value is not None, entry
        expect_status(404, af.XComApi(client).get_xcom_entry, "example_etl", "extract", run_id, "nope")

        # DAG details and the DAG's source (the Rust file defining it).
        details = dags.get_dag_details("example_etl")
        assert details.dag_id == "example_etl" and details.catchup is False, details
        assert details.concurrency == details.max_active_tasks, details
        assert details.latest_dag_version.version_number == 1, details.latest_dag_version
        assert details.timezone, details
        source = af.DagSourceApi(client).get_dag_source("example_etl")
        assert source.version_number == 1, source.version_number
        assert 'Dag::builder("example_etl")' in source.content, source.content[:200]
        expect_status(404, af.DagSourceApi(client).get_dag_source, "example_etl", version_number=2)
        wait_for_run(runs, "example_etl", now_run.dag_run_id)

        listed = runs.get_dag_runs("example_etl", limit=1, order_by=["logical_date"])
        assert listed.total_entries == 2, listed.total_entries
        assert [r.dag_run_id for r in listed.dag_runs] == [run_id], listed.dag_runs
        everywhere = runs.get_dag_runs("~", state=["success"])
        assert everywhere.total_entries == 2, everywhere.total_entries
        batch = runs.get_list_dag_runs_batch(
            "~",
            af.DAGRunsBatchBody(
                dag_ids=["example_etl", "example_skip"],
                states=["success"],
                logical_date_gte=logical,
                logical_date_lte=logical,
                order_by="-logical_date",
            ),
        )
        assert [r.dag_run_id for r in batch.dag_runs] == [run_id], batch.dag_runs
        assert batch.total_entries == 1, batch.total_entries
        expect_status(400, runs.get_list_dag_runs_batch, "~", af.DAGRunsBatchBody(conf_contains="x"))

        instances = tis.get_task_instances("example_etl", run_id)
        assert instances.total_entries == 3, instances.total_entries
        states = {t.task_id: (t.state.value, t.try_number) for t in instances.task_instances}
        assert states == {
            "extract": ("success", 1),
            "process.transform": ("success", 1),
            "load": ("success", 1),
        }, states
        load = tis.get_task_instance("example_etl", run_id, "load")
        assert load.state.value == "success" and load.try_number == 1, load
        assert load.dag_run_id == run_id and load.map_index == -1, load

        log = tis.get_log("example_etl", run_id, "load", 1, full_content=True, map_index=-1)
        lines = log.content.actual_instance
        events = [line.event for line in lines]
        assert "loaded total 18" in events, events  # (1 + 2 + 3) * multiplier 3
        expect_status(404, tis.get_log, "example_etl", run_id, "load", 2)

        # Dynamic task mapping: `double` runs once per number made upstream.
        dags.patch_dag("example_dynamic_mapping", af.DAGPatchBody(is_paused=False))
        mapped_run = runs.trigger_dag_run("example_dynamic_mapping", af.TriggerDAGRunPostBody())
        wait_for_run(runs, "example_dynamic_mapping", mapped_run.dag_run_id)
        mapped = tis.get_mapped_task_instances("example_dynamic_mapping", mapped_run.dag_run_id, "double")
        assert mapped.total_entries == 3, mapped
        assert [t.map_index for t in mapped.task_instances] == [0, 1, 2], mapped
        second = tis.get_mapped_task_instance("example_dynamic_mapping", mapped_run.dag_run_id, "double", 1)
        assert second.map_index == 1 and second.state.value == "success", second
        expect_status(404, tis.get_mapped_task_instance, "example_dynamic_mapping", mapped_run.dag_run_id, "double", 3)

        # Clear `load`: it runs again as try 2.
        dry = tis.post_clear_task_instances(
            "example_etl",
            af.ClearTaskInstancesBody(dag_run_id=run_id, task_ids=task_ids("load"), only_failed=False),
        )
        assert [t.task_id for t in dry.task_instances] == ["load"], dry
        assert tis.get_task_instance("example_etl", run_id, "load").try_number == 1, "dry run"
        cleared = tis.post_clear_task_instances(
            "example_etl",
            af.ClearTaskInstancesBody(
                dry_run=False, dag_run_id=run_id, task_ids=task_ids("load"), only_failed=False
            ),
        )
        assert cleared.total_entries == 1, cleared
        wait_for_run(runs, "example_etl", run_id)
        again = tis.get_task_instance("example_etl", run_id, "load")
        assert again.state.value == "success" and again.try_number == 2, again
        log2 = tis.get_log("example_etl", run_id, "load", 2)
        assert "loaded total 18" in [line.event for line in log2.content.actual_instance]

        # A DAG's tasks, run counts, pools, the engine processes, and the
        # concepts BetFlow has not (empty collections, 404 for one id).
        task_api = af.TaskApi(client)
        etl_tasks = task_api.get_tasks("example_etl")
        assert etl_tasks.total_entries == 3, etl_tasks
        assert [t.task_id for t in etl_tasks.tasks] == ["extract", "process.transform", "load"], etl_tasks
        extract = task_api.get_task("example_etl", "extract")
        assert extract.downstream_task_ids == ["process.transform"], extract
        assert extract.pool == "default_pool" and extract.trigger_rule == "all_success", extract
        expect_status(404, task_api.get_task, "example_etl", "no_such_task")

        stats = af.DagStatsApi(client).get_dag_stats(dag_ids=["example_etl"])
        assert [d.dag_id for d in stats.dags] == ["example_etl"], stats
        counts = {s.state.value: s.count for s in stats.dags[0].stats}
        assert counts == {"queued": 0, "running": 0, "success": 2, "failed": 0}, counts

        pool_api = af.PoolApi(client)
        names = [p.name for p in pool_api.get_pools().pools]
        assert "default_pool" in names and "example_single" in names, names
        single = pool_api.get_pool("example_single")
        assert single.slots == 1 and single.open_slots == 1, single
        expect_status(404, pool_api.get_pool, "no_such_pool")

        jobs = af.JobApi(client).get_jobs()
        assert jobs.total_entries >= 1, jobs
        assert any(j.state == "running" and j.job_type == "SchedulerJob" for j in jobs.jobs), jobs

        connection_api = af.ConnectionApi(client)
        assert connection_api.get_connections().total_entries == 0
        expect_status(404, connection_api.get_connection, "aws_default")
        variable_api = af.VariableApi(client)
        assert variable_api.get_variables().total_entries == 0
        expect_status(404, variable_api.get_variable, "some_key")
        assert af.ImportErrorApi(client).get_import_errors().total_entries == 0
        assert af.DagWarningApi(client).list_dag_warnings().total_entries == 0
        assert af.PluginApi(client).get_plugins().total_entries == 0
        assert af.ProviderApi(client).get_providers().total_entries == 0

        # A task instance set by hand with everything downstream of it, and
        # a note on it; a dry run first changes nothing.
        failed_body = af.PatchTaskInstanceBody(
            new_state=af.TaskInstanceState("failed"), include_downstream=True, note="bad input file"
        )
        dry = tis.patch_task_instance_dry_run("example_etl", run_id, "extract", failed_body)
        assert sorted(t.task_id for t in dry.task_instances) == ["extract", "load", "process.transform"], dry
        assert all(t.state.value == "success" for t in dry.task_instances), dry
        marked = tis.patch_task_instance("example_etl", run_id, "extract", failed_body)
        states = {t.task_id: t.state.value for t in marked.task_instances}
        assert states == {"extract": "failed", "process.transform": "failed", "load": "failed"}, states
        assert tis.get_task_instance("example_etl", run_id, "extract").note == "bad input file"
        expect_status(
            400, tis.patch_task_instance, "example_etl", run_id, "extract",
            af.PatchTaskInstanceBody(new_state=af.TaskInstanceState("running")),
        )
        expect_status(
            404, tis.patch_task_instance, "example_etl", run_id, "no_such_task",
            af.PatchTaskInstanceBody(new_state=af.TaskInstanceState("success")),
        )
        back = tis.patch_task_instance(
            "example_etl", run_id, "extract",
            af.PatchTaskInstanceBody(new_state=af.TaskInstanceState("success"), include_downstream=True),
            update_mask=["new_state"],
        )
        assert all(t.state.value == "success" for t in back.task_instances), back
        assert tis.get_task_instance("example_etl", run_id, "extract").note == "bad input file"

        # A run's note and state by hand, and a run deleted.
        noted = runs.patch_dag_run(
            "example_etl", run_id, af.DAGRunPatchBody(note="checked by ops"), update_mask=["note"]
        )
        assert noted.note == "checked by ops" and noted.state.value == "success", noted
        failed = runs.patch_dag_run(
            "example_etl", run_id, af.DAGRunPatchBody(state=af.DagRunMutableStates("failed"))
        )
        assert failed.state.value == "failed" and failed.note == "checked by ops", failed
        runs.delete_dag_run("example_etl", now_run.dag_run_id)
        expect_status(404, runs.get_dag_run, "example_etl", now_run.dag_run_id)
        expect_status(404, runs.delete_dag_run, "example_etl", now_run.dag_run_id)
        left = af.DagStatsApi(client).get_dag_stats(dag_ids=["example_etl"])
        counts = {s.state.value: s.count for s in left.dags[0].stats}
        assert counts == {"queued": 0, "running": 0, "success": 0, "failed": 1}, counts

        # Backfills: a dry run, one created, paused and resumed, run to its
        # end under its own limit (the DAG is paused: backfills still run).
        backfill_api = af.BackfillApi(client)
        day = lambda d: datetime(2024, 5, d, tzinfo=timezone.utc)
        body = af.BackfillPostBody(
            dag_id="example_daily", from_date=day(1), to_date=day(3), max_active_runs=1,
            reprocess_behavior=af.ReprocessBehavior("none"), run_backwards=True,
        )
        dry = backfill_api.create_backfill_dry_run(body)
        assert [b.logical_date for b in dry.backfills] == [day(3), day(2), day(1)], dry
        backfill = backfill_api.create_backfill(body)
        assert backfill.dag_id == "example_daily" and backfill.max_active_runs == 1, backfill
        assert backfill.reprocess_behavior.value == "none" and not backfill.is_paused, backfill
        expect_status(409, backfill_api.create_backfill, body)
        assert backfill_api.pause_backfill(backfill.id).is_paused
        assert not backfill_api.unpause_backfill(backfill.id).is_paused
        listed = backfill_api.list_backfills("example_daily")
        assert [b.id for b in listed.backfills] == [backfill.id] and listed.total_entries == 1, listed
        deadline = time.monotonic() + 30
        while backfill_api.get_backfill(backfill.id).completed_at is None:
            assert time.monotonic() < deadline, "the backfill did not complete in 30 s"
            time.sleep(0.1)
        for d in (1, 2, 3):
            run = runs.get_dag_run("example_daily", f"backfill__2024-05-0{d}T00:00:00+00:00")
            assert run.state.value == "success" and run.run_type.value == "backfill", run
        expect_status(422, backfill_api.create_backfill, body)  # nothing left to do
        expect_status(409, backfill_api.cancel_backfill, backfill.id)  # completed
        expect_status(404, backfill_api.get_backfill, 999999)

        # Assets: the example producers' and consumer's, an update posted
        # by hand for a day, waiting in the (paused) consumer's queue.
        asset_api = af.AssetApi(client)
        assets = asset_api.get_assets(uri_prefix_pattern="example://", order_by=["uri"])
        assert [a.uri for a in assets.assets] == ["example://letters", "example://numbers"], assets
        numbers = assets.assets[1]
        assert [d.dag_id for d in numbers.scheduled_dags] == ["example_asset_consumer"], numbers
        assert [(t.dag_id, t.task_id) for t in numbers.producing_tasks] == [("example_asset_numbers", "write")], numbers
        assert [t.dag_id for t in numbers.consuming_tasks] == ["example_asset_consumer"], numbers
        assert asset_api.get_asset(numbers.id).uri == "example://numbers"
        expect_status(404, asset_api.get_asset, 999999)
        event = asset_api.create_asset_event(af.CreateAssetEventsBody(
            asset_id=numbers.id, partition_key="2024-06-01", extra={"by": "client"}))
        assert event.asset_id == numbers.id and event.partition_key == "2024-06-01", event
        assert event.source_dag_id is None and event.source_map_index == -1, event
        events = asset_api.get_asset_events(asset_id=numbers.id, order_by=["-timestamp"])
        assert events.asset_events[0].id == event.id and events.total_entries >= 1, events
        waiting = asset_api.get_dag_asset_queued_events("example_asset_consumer")
        assert [(q.asset_id, q.dag_id) for q in waiting.queued_events] == [(numbers.id, "example_asset_consumer")], waiting
        assert asset_api.get_asset_aliases().total_entries == 0
        upstream = runs.get_upstream_asset_events("example_daily", "backfill__2024-05-01T00:00:00+00:00")
        assert upstream.total_entries == 0, upstream

        # The audit trail is for admins; an operator is told so.
        expect_status(403, af.EventLogApi(client).get_event_logs)
        expect_status(403, af.ConfigApi(client).get_config)

    print("airflow client checks passed")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
