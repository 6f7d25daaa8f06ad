"""Launching a model, measured: the panel's launch pipeline against Xinference's API by hand.

One stack is deployed once (the SSH target and local registry of testkit/stacks.py, Xinference
4.1 on the CPU); then rounds alternate between:

    (a) the panel: a model launch run in this process by the pipeline runner, as a worker runs
        it, from the call that starts it until the run has SUCCEEDED. Its steps split the time
        into: until the model is loaded and checked (fit check, registration of the local
        weights, launch, the wait, the smoke test: what (b) does too), and the wiring (One API's
        channel, its test and cache wait, FastGPT's config.json and restart), which (b) leaves
        out: by hand it is a person typing into two web pages;
    (b) the baseline: what a script of one's own would do on the same Xinference: register the
        same custom model, launch it with the blocking call (POST /v1/models, which answers once
        the model is ready), and ask it for one embedding.

The model is MiniLM (all-MiniLM-L6-v2, registered from the weights inside the Xinference
environment), as an embedding model. Between rounds it is terminated and unregistered.

Run from the repository root: python -m bench.launch   (see bench/README.md)
"""

import argparse
import contextlib
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path

from bench.deploy import median, parse_bench_args, say, seconds, table

ROOT = Path(__file__).resolve().parent.parent
AIM = 1.25
ROUNDS = 3
WORKER = f"bench-launch:{os.getpid()}"
MODEL = "bench-minilm"
# The steps of (a) up to and including the work (b) does as well.
LOADED_STEP = "smoke test"


class Bench:
    def __init__(self, workdir: Path, exits: contextlib.ExitStack) -> None:
        data_dir = workdir / "stack"
        os.environ.update(
            {
                "CONTROLPANEL_VAR_DIR": str(workdir),
                "DATABASE_URL": f"sqlite:///{workdir / 'bench.sqlite3'}",
                "CHANNELS_PREFIX": f"bench-{secrets.token_hex(4)}",
                "DJANGO_SETTINGS_MODULE": "controlpanel.settings",
                "LOG_LEVEL": "WARNING",
                "STACK_PROJECT_PREFIX": f"bench{os.getpid()}l",
                "STACK_HEALTH_TIMEOUT": "600",
            }
        )
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)

        from deployments.actions.llm import do_create_model_config
        from deployments.actions.stacks import do_deploy_stack
        from deployments.choices import Role, RunStatus
        from deployments.models import PipelineRun
        from deployments.pipelines import runner
        from testkit.factories import add_member, make_team
        from testkit.stacks import compose_down, make_deployable_stack, stack_target
        from testkit.target import prepare_image
        from testkit.xinference_models import minilm_embedding_form

        target = exits.enter_context(stack_target(prepare_image(), data_dir))
        team = make_team("bench")
        self.operator = add_member(team, role=Role.OPERATOR)
        self.stack = make_deployable_stack(team, target, data_dir)
        exits.callback(compose_down, self.stack)
        say("Deploying the stack (once, untimed) ...")
        deployment = do_deploy_stack(self.stack, user=self.operator)
        runner.run(deployment.run_id, WORKER)
        run = PipelineRun.objects.get(pk=deployment.run_id)
        if run.status != RunStatus.SUCCEEDED:
            raise RuntimeError(f"The deployment ended {run.status}: {run.error}")
        self.stack.refresh_from_db()
        self.config = do_create_model_config(
            "embedding",
            team=team,
            user=self.operator,
            data=minilm_embedding_form(MODEL),
        )

    def client(self, timeout: float = 600):
        """Xinference as the panel reaches it (through SSH unless the stack publishes it), so
        the baseline pays for the same tunnel."""
        from deployments.stacks.xinference_access import xinference_client

        return xinference_client(self.stack, timeout=timeout)

    def panel(self) -> dict[str, float]:
        from deployments.actions.launches import do_launch_model, do_terminate_model
        from deployments.choices import RunStatus
        from deployments.models import PipelineRun
        from deployments.pipelines import runner

        started = time.time()
        launch = do_launch_model(self.config, stack=self.stack, user=self.operator)
        runner.run(launch.run_id, WORKER)
        ended = time.time()
        run = PipelineRun.objects.get(pk=launch.run_id)
        if run.status != RunStatus.SUCCEEDED:
            raise RuntimeError(f"The launch ended {run.status}: {run.error}")
        loaded = run.steps.get(name=LOADED_STEP).finished_at.timestamp()
        steps = {
            step.name: (step.finished_at - step.started_at).total_seconds()
            for step in run.steps.order_by("index")
        }
        # Terminate through the panel too (untimed): the next round starts from nothing.
        runner.run(do_terminate_model(launch, user=self.operator).pk, WORKER)
        with self.client() as client:
            client.unregister("embedding", f"{MODEL}-weights")
        return {"loaded": loaded - started, "total": ended - started, **steps}

    def baseline(self) -> dict[str, float]:
        from deployments.llm.launch import (
            WeightsFiles,
            launch_body,
            registration_spec,
            served_name,
        )

        spec = registration_spec(self.config, WeightsFiles())
        body = launch_body(self.config)
        with self.client() as client:
            started = time.time()
            client.register("embedding", spec)
            # The blocking call a script would make: it answers once the model is ready.
            client.launch(body, wait_ready=True, timeout=600)
            vectors = client.embed(MODEL, ["a cat sleeps"])
            ended = time.time()
            if len(vectors[0]) != self.config.dimensions:
                raise RuntimeError("The baseline's model gave vectors of another length.")
            client.terminate(MODEL)
            client.unregister("embedding", served_name(self.config))
        return {"loaded": ended - started}


def report(panels: list[dict], baselines: list[dict]) -> None:
    print(f"\nLaunching {MODEL} (MiniLM, embedding, CPU), {len(panels)} rounds of each side:\n")
    rows = []
    for number, (a, b) in enumerate(zip(panels, baselines, strict=True), start=1):
        rows.append(
            (
                str(number),
                seconds(a["loaded"]),
                seconds(b["loaded"]),
                f"{a['loaded'] / b['loaded']:.2f}",
                seconds(a["total"] - a["loaded"]),
                seconds(a["total"]),
            )
        )
    table(("round", "(a) loaded+checked s", "(b) s", "a/b", "(a) wiring s", "(a) total s"), rows)
    ratio = median([a["loaded"] / b["loaded"] for a, b in zip(panels, baselines, strict=True)])
    verdict = "met" if ratio is not None and ratio <= AIM else "NOT met"
    print(
        f"median a/b until the model is loaded and checked: {ratio:.2f} (aim <= {AIM}: {verdict})"
    )
    names = [name for name in panels[0] if name not in ("loaded", "total")]
    print("\n(a) median seconds per step:")
    table(("step", "s"), [(name, seconds(median([p[name] for p in panels]))) for name in names])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="launches of each side")
    args = parse_bench_args(parser)
    if args is None:
        return 2
    with (
        tempfile.TemporaryDirectory(prefix="bench-launch-", ignore_cleanup_errors=True) as workdir,
        contextlib.ExitStack() as exits,
    ):
        bench = Bench(Path(workdir), exits)
        panels, baselines = [], []
        for number in range(1, args.rounds + 1):
            say(f"Round {number}: (a) the panel ...")
            panels.append(bench.panel())
            say(f"Round {number}: (b) by hand ...")
            baselines.append(bench.baseline())
    report(panels, baselines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
