from django.test import RequestFactory

from deployments import audit
from deployments.models import AuditEvent
from testkit.factories import make_server


def test_client_ip_ignores_forwarded_headers_without_a_trusted_proxy(settings):
    settings.TRUSTED_PROXY_COUNT = 0
    request = RequestFactory().get("/", REMOTE_ADDR="198.51.100.4", HTTP_X_FORWARDED_FOR="10.9.9.9")
    assert audit.client_ip(request) == "198.51.100.4"


def test_client_ip_takes_the_address_the_trusted_proxy_saw(settings):
    settings.TRUSTED_PROXY_COUNT = 1
    request = RequestFactory().get(
        "/", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="10.9.9.9, 198.51.100.4"
    )
    assert audit.client_ip(request) == "198.51.100.4"


def test_record_keeps_actor_target_team_and_address(team, operator):
    server = make_server(team, name="gpu-a")
    request = RequestFactory().post("/", REMOTE_ADDR="198.51.100.7")
    request.user = operator
    event = audit.record("server.create", request=request, target=server)
    event.refresh_from_db()
    assert event.actor == operator
    assert event.actor_name == operator.username
    assert event.team == team
    assert event.target_type == "server"
    assert event.target_id == str(server.pk)
    assert event.target_repr == "gpu-a"
    assert event.ip_address == "198.51.100.7"


def test_logins_and_failed_logins_are_audited_without_the_password(client, operator):
    client.post("/login/", {"login": operator.username, "password": "wrong-password-1"})
    client.post("/login/", {"login": operator.username, "password": operator.raw_password})
    actions = list(AuditEvent.objects.order_by("id").values_list("action", flat=True))
    assert actions == ["login_failed", "login"]
    failed = AuditEvent.objects.get(action="login_failed")
    assert failed.details == {"username": operator.username}
    assert "wrong-password-1" not in str(failed.details)


def test_the_audit_trail_survives_the_deletion_of_the_actor(team, operator):
    audit.record("server.create", actor=operator, team=team)
    operator.delete()
    event = AuditEvent.objects.get()
    assert event.actor is None
    assert event.actor_name.startswith("user")
