"""The secret scan's own checks (testkit/secret_scan.py), on made-up rows: it finds a secret
wherever it is kept in the clear, leaves alone the fields that hold secrets on purpose, and
fails a scan that searched too little. The scan after real runs is in test_knowledge_real.py.
"""

import pytest
from django.utils import timezone

from deployments.models import AuditEvent, RemoteProvider, StepRun
from deployments.stacks.secrets import stack_secrets
from testkit.factories import make_run, make_server, make_stack
from testkit.secret_scan import SecretScan, known_secrets, scan_stored_texts
from testkit.target import KeyPair

pytestmark = pytest.mark.django_db

PROVIDER_KEY = "sk-provider-" + "q" * 24


@pytest.fixture
def stack(team):
    server = make_server(team, ssh_private_key=KeyPair.generate().private_openssh)
    stack = make_stack(server)
    stack_secrets(stack)
    RemoteProvider.objects.create(
        team=team, stack=stack, name="cloud", api_key=PROVIDER_KEY, model_names=["gpt-x"]
    )
    return stack


def test_every_secret_the_panel_knows_of_the_stack_is_searched_for(stack):
    secrets = known_secrets(stack, markers={"planted": "marker-" + "m" * 20})

    assert set(stack_secrets(stack).values()) <= set(secrets.values())
    assert PROVIDER_KEY in secrets.values()
    assert "FastGPT's login hash of its root password" in secrets
    assert any(name.startswith("ssh private key line") for name in secrets)
    assert secrets["marker planted"] == "marker-" + "m" * 20


def test_a_secret_in_a_step_output_or_an_audit_detail_is_found_and_named(stack, team):
    secrets = known_secrets(stack)
    password = stack_secrets(stack)["MONGO_PASSWORD"]
    run = make_run(team)
    StepRun.objects.create(
        run=run, index=0, name="up", output=f"mongo up with {password}", started_at=timezone.now()
    )
    AuditEvent.objects.create(team=team, action="provider.add", details={"key": PROVIDER_KEY})
    scan = SecretScan(secrets)

    scan_stored_texts(scan)

    assert any(
        leak.startswith("Stack.secrets[MONGO_PASSWORD] in stored text: StepRun.output")
        for leak in scan.leaks
    ), scan.leaks
    assert any("AuditEvent.details" in leak for leak in scan.leaks), scan.leaks
    with pytest.raises(AssertionError):
        scan.assert_clean({})


def test_the_fields_that_hold_secrets_on_purpose_are_not_leaks(stack):
    scan = SecretScan(known_secrets(stack))

    scan_stored_texts(scan)

    assert scan.leaks == []
    assert scan.seen["stored text"] > 0


def test_a_scan_that_searched_too_little_fails():
    scan = SecretScan({"a secret": "s" * 20})
    scan.look("page", "/", "nothing here")

    scan.assert_clean({"page": 1})
    with pytest.raises(AssertionError, match="saw too little"):
        scan.assert_clean({"page": 1, "log line": 1})
