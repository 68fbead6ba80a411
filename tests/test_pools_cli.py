"""`vea pools rebuild` (stored outcomes or an offline log) and `vea pools show`."""

from __future__ import annotations

import pandas as pd
import yaml
from click.testing import CliRunner

from models.activities import VALUE_ACTIVITIES
from models.pools import parse_config
from training.cli import cli
from training.simulate import simulate


def offline_log(tmp_path, rows=40_000, seed=5):
    """A simulated log with the model's probabilities as `vea score` writes them (here the
    average agent's truth: a perfect case-mix model)."""
    log, truth = simulate(rows=rows, seed=seed, n_agents=20)
    for a in VALUE_ACTIVITIES:
        log[f"p_{a}"] = truth[f"p_{a}_avg_agent"].to_numpy()
    path = tmp_path / "log.parquet"
    log.to_parquet(path)
    return path


def test_rebuild_from_a_log_prints_changes_and_stores(tmp_path):
    env = {"VEA_DATABASE_URL": f"sqlite:///{tmp_path}/vea.db"}
    runner = CliRunner()
    assert runner.invoke(cli, ["db", "upgrade"], env=env).exit_code == 0
    path = offline_log(tmp_path)

    out = tmp_path / "pools.yaml"
    written = runner.invoke(
        cli, ["pools", "rebuild", "--log", str(path), "--out", str(out)], env=env
    )
    assert written.exit_code == 0, written.output
    config = parse_config(yaml.safe_load(out.read_text()))
    assert any(p.members for p in config.pools if p.id != "general")
    assert " + agent-" in written.stdout  # who joined, with their interval

    dry = runner.invoke(cli, ["pools", "rebuild", "--log", str(path), "--dry-run"], env=env)
    assert dry.exit_code == 0 and " + agent-" in dry.stdout
    shown = runner.invoke(cli, ["pools", "show"], env=env)
    assert "pools from the file" in shown.stdout and "no proficiency" in shown.stdout

    stored = runner.invoke(cli, ["pools", "rebuild", "--log", str(path)], env=env)
    assert stored.exit_code == 0, stored.output
    shown = runner.invoke(cli, ["pools", "show"], env=env)
    assert shown.exit_code == 0, shown.output
    assert "pools from the database" in shown.stdout and "90% interval" in shown.stdout
    again = runner.invoke(cli, ["pools", "rebuild", "--log", str(path)], env=env)
    assert again.stdout.strip() == "no changes"


def test_rebuild_from_stored_outcomes_and_bad_logs(tmp_path):
    env = {"VEA_DATABASE_URL": f"sqlite:///{tmp_path}/vea.db"}
    runner = CliRunner()
    assert runner.invoke(cli, ["db", "upgrade"], env=env).exit_code == 0
    empty = runner.invoke(cli, ["pools", "rebuild", "--dry-run"], env=env)
    assert empty.exit_code == 0 and "no changes" in empty.stdout
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"agent_id": ["a"], "activity": ["educate_usage"]}).to_csv(bad, index=False)
    failed = runner.invoke(cli, ["pools", "rebuild", "--log", str(bad)], env=env)
    assert failed.exit_code == 1 and "missing columns ['ve_success']" in failed.output
    no_p = tmp_path / "nop.csv"
    pd.DataFrame({"agent_id": ["a"], "activity": ["educate_usage"], "ve_success": [1]}).to_csv(
        no_p, index=False
    )
    failed = runner.invoke(cli, ["pools", "rebuild", "--log", str(no_p)], env=env)
    assert failed.exit_code == 1 and "--prob-column" in failed.output


def test_score_adds_the_route_when_pools_are_configured(tmp_path, trained_registry):
    log, _ = simulate(rows=300, seed=9)
    data = tmp_path / "contacts.csv"
    log.to_csv(data, index=False)
    pools = tmp_path / "pools.yaml"
    pools.write_text(
        yaml.safe_dump(
            {
                "pools": [
                    {"id": "everything", "activities": list(VALUE_ACTIVITIES), "members": ["a"],
                     "lift": {a: 1.2 for a in VALUE_ACTIVITIES}},
                    {"id": "general"},
                ]
            }
        )
    )  # fmt: skip
    out = tmp_path / "scored.csv"
    env = {"VEA_REGISTRY": str(trained_registry)}
    args = ["score", "--data", str(data), "--out", str(out), "--pools", str(pools)]
    result = CliRunner().invoke(cli, args, env=env)
    assert result.exit_code == 0, result.output
    scored = pd.read_csv(out)
    assert {"route_pool", "route_activity", "route_content", "route_reason"} <= set(scored)
    assisted = (log["channel"] != "self_service").to_numpy()
    value = (scored["suggested_activity"] != "none").to_numpy()
    assert set(scored.loc[assisted & value, "route_pool"]) == {"everything"}
    assert set(scored.loc[~assisted, "route_pool"]) == {"digital_content"}
    assert scored.loc[~assisted, "route_content"].str.startswith("ss-").all()


def test_rebuild_says_when_nobody_reached_the_minimum(tmp_path):
    env = {"VEA_DATABASE_URL": f"sqlite:///{tmp_path}/vea.db"}
    runner = CliRunner()
    assert runner.invoke(cli, ["db", "upgrade"], env=env).exit_code == 0
    path = offline_log(tmp_path, rows=2000)
    dry = runner.invoke(
        cli, ["pools", "rebuild", "--log", str(path), "--dry-run", "--min-contacts", "5000"],
        env=env,
    )  # fmt: skip
    assert dry.exit_code == 0, dry.output
    assert "nobody can join a pool yet: an agent needs 5000 offered attempts" in dry.stderr
    assert "the most so far is" in dry.stderr


def test_the_dashboard_explains_the_proficiency_table(app, keys):
    from tests.test_pages import log_in, raw_key

    manager = app.test_client()
    log_in(manager, raw_key(keys["manager"]))
    page = manager.get("/dashboard?lang=en").get_data(as_text=True)
    section = page.split('id="table-proficiency"')[1].split("</section>")[0]
    # Empty unless another test stored some (the database is shared by the tests).
    assert "No proficiency measured yet" in section or "attempts with VES answers" in section
    assert "No data in this period" not in section


def test_a_stored_rebuild_is_audited_in_its_own_transaction(tmp_path, monkeypatch):
    """`vea pools rebuild` records pools.rebuild by the OS user (cli:<user>), written with
    the config as the API's rebuild: it recorded nothing, and named itself just `cli`."""
    import json

    from service import audit

    env = {"VEA_DATABASE_URL": f"sqlite:///{tmp_path}/vea.db"}
    runner = CliRunner()
    assert runner.invoke(cli, ["db", "upgrade"], env=env).exit_code == 0

    def broken(*_args, **_kwargs):
        raise RuntimeError("the audit log cannot be written")

    with monkeypatch.context() as patched:
        patched.setattr(audit, "record", broken)
        failed = runner.invoke(cli, ["pools", "rebuild"], env=env)
    assert failed.exit_code != 0
    # No config without its event.
    assert "pools from the file" in runner.invoke(cli, ["pools", "show"], env=env).stdout
    assert json.loads(runner.invoke(cli, ["audit", "--json"], env=env).stdout) == []

    stored = runner.invoke(cli, ["pools", "rebuild"], env=env)
    assert stored.exit_code == 0, stored.output
    assert "pools from the database" in runner.invoke(cli, ["pools", "show"], env=env).stdout
    (event,) = json.loads(runner.invoke(cli, ["audit", "--json"], env=env).stdout)
    assert event["action"] == "pools.rebuild" and event["actor"] == audit.cli_actor()
    assert event["actor"].startswith("cli")


def test_show_reads_each_pools_availability_as_routing_does(tmp_path):
    """What the platform last reported per pool and the wait vea reads from it, so an
    operator can see why value attempts stop (a busy general) without querying the API."""
    from models.pools import load_config
    from service import pools as use_cases
    from service.config import PACKAGE_DIR
    from service.db import make_engine

    env = {"VEA_DATABASE_URL": f"sqlite:///{tmp_path}/vea.db", "VEA_AVAILABILITY_TTL_S": "120"}
    runner = CliRunner()
    assert runner.invoke(cli, ["db", "upgrade"], env=env).exit_code == 0
    config = load_config(PACKAGE_DIR / "pools.default.yaml")
    value_pool = next(p.id for p in config.pools if p.id != "general")
    engine = make_engine(env["VEA_DATABASE_URL"])
    try:
        for pool_id, body in (
            ("general", {"agents_free": 0, "queue_length": 3, "agents_staffed": 30}),
            (value_pool, {"agents_free": 0, "queue_length": 9}),
        ):
            use_cases.report_availability(engine, config, pool_id, body, 120)
    finally:
        engine.dispose()

    shown = runner.invoke(cli, ["pools", "show"], env=env)
    assert shown.exit_code == 0, shown.output
    lines = {line.split()[0]: line for line in shown.stdout.splitlines() if line.startswith("  ")}
    # general: (3 + 1) x 420 s / 30 staffed = 56 s, under the 60 s limit.
    assert "free 0, queue 3, staffed 30: expected wait 56 s (30 agents)" in lines["general"]
    members = max(len(next(p for p in config.pools if p.id == value_pool).members), 1)
    wait = 10 * 420 / members
    assert f"expected wait {wait:.0f} s, over the 60 s limit ({members} agents)" in shown.stdout
    others = [p.id for p in config.pools if p.id not in ("general", value_pool)]
    for pool_id in others:
        assert f"  {pool_id}" in shown.stdout and "no report: wait unknown" in shown.stdout
