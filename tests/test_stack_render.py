"""Rendering a stack's files: serializers only, generated secrets, valid for docker-compose."""

import json
import subprocess

import pytest
import yaml
from django.conf import settings

from deployments.choices import Device, Registry
from deployments.models import EmbeddingModelConfig, LLMModelConfig, RerankModelConfig
from deployments.stacks import secrets as stack_secrets
from deployments.stacks.render import (
    COMPOSE_FILE,
    CONFIG_FILE,
    ENV_FILE,
    project_name,
    render,
)
from deployments.stacks.versions import LINES, get_line
from testkit.factories import make_server, make_stack

# The defaults of the upstream compose file and One API: none may ever be deployed.
UPSTREAM_DEFAULTS = [
    "1234",
    "mypassword",
    "oneapimmysql",
    "sk-fastgpt",
    "root_key",
    "filetoken",
    "oneapikey",
    "123456",
    "=password",
    "TOKEN_KEY=any",
]


@pytest.fixture
def stack(team):
    return make_stack(make_server(team))


def rendered(stack, **models):
    return render(stack, stack_secrets.stack_secrets(stack), **models)


def compose_of(result) -> dict:
    return yaml.safe_load(result.files[COMPOSE_FILE])


def test_secrets_are_generated_once_per_stack_stored_encrypted_and_unique(stack, team):
    first = stack_secrets.stack_secrets(stack)
    assert set(first) == set(stack_secrets.SECRET_NAMES)
    assert all(value.isalnum() for value in first.values())
    # 62 letters and digits: 20 characters are 119 bits, One API's longest password.
    assert len(first["ONEAPI_ROOT_PASSWORD"]) == 20
    assert all(len(first[name]) == 32 for name in first if name != "ONEAPI_ROOT_PASSWORD")
    stack.refresh_from_db()
    assert stack_secrets.stack_secrets(stack) == first
    other = make_stack(make_server(team))
    assert not set(stack_secrets.stack_secrets(other).values()) & set(first.values())
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT secrets FROM deployments_stack WHERE id = %s", [stack.pk])
        (raw,) = cursor.fetchone()
    assert first["PG_PASSWORD"] not in raw


def test_a_stale_instance_never_replaces_stored_secrets(stack):
    from deployments.models import Stack

    stale = Stack.objects.get(pk=stack.pk)
    stored = stack_secrets.stack_secrets(stack)
    assert stale.secrets == ""
    assert stack_secrets.stack_secrets(stale) == stored


def test_secrets_live_in_the_env_file_only(stack):
    result = rendered(stack)
    values = stack_secrets.stack_secrets(stack).values()
    for value in values:
        assert value in result.files[ENV_FILE]
        assert value not in result.files[COMPOSE_FILE]
        assert value not in result.files[CONFIG_FILE]
    shown = result.shown()
    assert not any(value in text for value in values for text in shown.values())
    assert "PG_PASSWORD=********" in shown[ENV_FILE]


def test_no_upstream_default_password_is_rendered(stack):
    result = rendered(stack)
    text = "\n".join(result.files.values())
    for default in UPSTREAM_DEFAULTS:
        assert default not in text


def test_every_service_has_a_healthcheck_and_the_shared_network(stack):
    services = compose_of(rendered(stack))["services"]
    assert set(services) == {"pg", "mongo", "sandbox", "fastgpt", "mysql", "oneapi", "xinference"}
    for name, service in services.items():
        assert service["healthcheck"]["test"], name
        assert service["networks"] == ["fastgpt"]


def test_database_ports_are_not_published_unless_asked(stack):
    services = compose_of(rendered(stack))["services"]
    for name in ("pg", "mongo", "mysql", "sandbox"):
        assert "ports" not in services[name]
    assert services["fastgpt"]["ports"] == ["3000:3000"]
    assert services["oneapi"]["ports"] == ["127.0.0.1:3001:3000"]
    stack.expose_database_ports = True
    services = compose_of(rendered(stack))["services"]
    assert services["pg"]["ports"] == ["5432:5432"]
    assert services["mysql"]["ports"] == ["3306:3306"]


@pytest.mark.parametrize(
    ("registry", "prefix", "fastgpt", "mongo"),
    [
        (Registry.DOCKER_HUB, "", "ghcr.io/labring/fastgpt:v4.8.8-fix2", "mongo:5.0.18"),
        (Registry.GHCR, "", "ghcr.io/labring/fastgpt:v4.8.8-fix2", "mongo:5.0.18"),
        (
            Registry.ALIYUN,
            "",
            "registry.cn-hangzhou.aliyuncs.com/fastgpt/fastgpt:v4.8.8-fix2",
            "registry.cn-hangzhou.aliyuncs.com/fastgpt/mongo:5.0.18",
        ),
        (
            Registry.CUSTOM,
            "127.0.0.1:5000/mirror/",
            "127.0.0.1:5000/mirror/fastgpt:v4.8.8-fix2",
            "127.0.0.1:5000/mirror/mongo:5.0.18",
        ),
    ],
)
def test_the_registry_setting_chooses_every_image(stack, registry, prefix, fastgpt, mongo):
    stack.registry, stack.registry_prefix = registry, prefix
    services = compose_of(rendered(stack))["services"]
    assert services["fastgpt"]["image"] == fastgpt
    assert services["mongo"]["image"] == mongo


def test_xinference_gets_the_gpus_or_the_cpu_build(stack):
    services = compose_of(rendered(stack))["services"]
    devices = services["xinference"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}]
    stack.xinference_device = Device.CPU
    services = compose_of(rendered(stack))["services"]
    assert "deploy" not in services["xinference"]
    assert services["xinference"]["image"] == "xprobe/xinference:v0.16.3-cpu"


def test_the_mongo_replica_set_script_holds_no_credentials(stack):
    mongo = compose_of(rendered(stack))["services"]["mongo"]
    script = mongo["entrypoint"][2]
    assert "rs.initiate" in script and "rs.status().ok !== 1" in script
    assert "$$MONGO_INITDB_ROOT_PASSWORD" in script
    assert mongo["environment"]["MONGO_INITDB_ROOT_PASSWORD"] == "${MONGO_PASSWORD}"


def test_config_json_lists_the_teams_models_through_the_serializer(stack, team):
    llm = LLMModelConfig.objects.create(
        team=team, model="qwen2-instruct", display_name='Qwen "2" <b>', xinference_model_name="q"
    )
    embedding = EmbeddingModelConfig.objects.create(
        team=team,
        model="m3e-base",
        display_name="M3E",
        xinference_model_name="m3e-base",
        dimensions=768,
    )
    rerank = RerankModelConfig.objects.create(
        team=team, model="bge-reranker-v2-m3", display_name="BGE", xinference_model_name="b"
    )
    config = json.loads(
        rendered(stack, llms=[llm], embeddings=[embedding], reranks=[rerank]).files[CONFIG_FILE]
    )
    assert config["llmModels"][0]["name"] == 'Qwen "2" <b>'
    assert config["llmModels"][0]["datasetProcess"] is True
    assert config["vectorModels"][0]["defaultConfig"] == {"dimensions": 768}
    assert config["reRankModels"][0]["requestUrl"] == "http://xinference:9997/v1/rerank"


def test_user_text_cannot_break_out_of_the_yaml(stack):
    stack.registry, stack.registry_prefix = Registry.CUSTOM, "evil\n  command: rm -rf /"
    document = compose_of(rendered(stack))
    fastgpt = document["services"]["fastgpt"]
    assert fastgpt["image"].startswith("evil\n  command: rm -rf /")
    assert "command" not in fastgpt


def test_the_project_name_comes_from_the_id_not_the_stack_name(stack):
    stack.name = "My Stack;rm"
    assert project_name(stack) == f"{settings.STACK_PROJECT_PREFIX}{stack.pk}"


def test_unknown_version_lines_are_named_in_the_error():
    with pytest.raises(KeyError, match="fastgpt-4.8.8"):
        get_line("fastgpt-0.1")
    assert "fastgpt-4.8.8" in LINES


def test_docker_compose_accepts_the_rendered_files(stack, tmp_path):
    """docker-compose v1 itself parses the file and substitutes the .env secrets."""
    result = rendered(stack)
    for name, text in result.files.items():
        (tmp_path / name).write_text(text)
    config = subprocess.run(
        [
            "docker-compose",
            "--project-directory",
            str(tmp_path),
            "-f",
            str(tmp_path / COMPOSE_FILE),
            "config",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert config.returncode == 0, config.stderr
    resolved = yaml.safe_load(config.stdout)
    password = stack_secrets.stack_secrets(stack)["PG_PASSWORD"]
    assert resolved["services"]["pg"]["environment"]["POSTGRES_PASSWORD"] == password
    assert resolved["services"]["fastgpt"]["environment"]["PG_URL"].endswith(
        f":{password}@pg:5432/postgres"
    )
    # $$ stays a literal $ for the container's shell.
    assert "$MONGO_INITDB_ROOT_PASSWORD" in resolved["services"]["mongo"]["entrypoint"][2]


def test_fastgpt_listens_on_every_interface_so_its_own_health_check_reaches_it(stack):
    """Next's standalone server binds to $HOSTNAME, which Docker sets to the container id; the
    health check asks 127.0.0.1 inside the container."""
    fastgpt = compose_of(rendered(stack))["services"]["fastgpt"]
    assert fastgpt["environment"]["HOSTNAME"] == "0.0.0.0"  # noqa: S104
    assert "http://127.0.0.1:3000/" in " ".join(fastgpt["healthcheck"]["test"])
