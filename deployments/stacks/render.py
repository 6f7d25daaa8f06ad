"""Render a stack's files: docker-compose.yml, .env and FastGPT's config.json.

Everything goes through the YAML and JSON serializers; no text of a user's is pasted into
a template. Secrets live only in .env (mode 0600 on the server): the compose file and
config.json refer to them by name, so those two can be shown and diffed in the panel.
"""

import json
from dataclasses import dataclass

import yaml
from django.conf import settings

from ..choices import Device
from ..models import EmbeddingModelConfig, LLMModelConfig, RerankModelConfig, Stack
from .ports import published_ports
from .secrets import ONEAPI_FASTGPT_KEY, SECRET_NAMES, XINFERENCE_API_KEY
from .versions import get_line

COMPOSE_FILE = "docker-compose.yml"
ENV_FILE = ".env"
CONFIG_FILE = "config.json"
SECRET_FILES = (ENV_FILE,)
NETWORK = "fastgpt"
XINFERENCE_URL = "http://xinference:9997"

# Initialises the replica set on first start and is a no-op on later starts. A fixed
# script: credentials come from the container's environment, never pasted in. `$$` is
# compose's escape for a literal `$`.
MONGO_ENTRYPOINT = """\
openssl rand -base64 128 > /data/mongodb.key
chmod 400 /data/mongodb.key
chown 999:999 /data/mongodb.key
docker-entrypoint.sh "$$@" &
mongod_pid=$$!
# bash as PID 1 ignores SIGTERM: pass it on, so mongod shuts down cleanly on a stop.
trap 'kill -TERM "$$mongod_pid"; wait "$$mongod_pid"' TERM INT
until mongo --quiet -u "$$MONGO_INITDB_ROOT_USERNAME" -p "$$MONGO_INITDB_ROOT_PASSWORD" \\
    --authenticationDatabase admin --eval "db.adminCommand('ping')" > /dev/null 2>&1; do
  echo "Waiting for MongoDB to start..."
  sleep 2
done
mongo --quiet -u "$$MONGO_INITDB_ROOT_USERNAME" -p "$$MONGO_INITDB_ROOT_PASSWORD" \\
    --authenticationDatabase admin --eval 'if (rs.status().ok !== 1) {
      rs.initiate({_id: "rs0", members: [{_id: 0, host: "mongo:27017"}]}) }'
wait "$$mongod_pid"
"""


@dataclass(frozen=True)
class RenderedStack:
    files: dict[str, str]

    def compose_services(self) -> list[str]:
        return list(yaml.safe_load(self.files[COMPOSE_FILE])["services"])

    def shown(self) -> dict[str, str]:
        """The files as the panel may show and diff them: secret values masked."""
        shown = {}
        for name, text in self.files.items():
            if name in SECRET_FILES:
                text = mask_env(text)
            elif name == CONFIG_FILE:
                text = mask_config(text)
            shown[name] = text
        return shown


def project_name(stack: Stack) -> str:
    """Compose's project name: derived from the id, so no user text reaches compose."""
    return f"{settings.STACK_PROJECT_PREFIX}{stack.pk}"


def _healthcheck(test: list[str], start_period: str = "30s") -> dict:
    return {
        "test": test,
        "interval": "10s",
        "timeout": "5s",
        "retries": 12,
        "start_period": start_period,
    }


def compose_document(stack: Stack) -> dict:
    line = get_line(stack.version_line)

    def image(service: str) -> str:
        reference = line.images[service].reference(stack.registry, stack.registry_prefix)
        if service == "xinference" and stack.xinference_device == Device.CPU:
            reference += line.xinference_cpu_suffix
        return reference

    published = {port.service: [port.compose] for port in published_ports(stack)}
    services = {
        "pg": {
            "image": image("pg"),
            "restart": "always",
            "environment": {
                "POSTGRES_USER": "fastgpt",
                "POSTGRES_PASSWORD": "${PG_PASSWORD}",
                "POSTGRES_DB": "postgres",
            },
            "volumes": ["./pg/data:/var/lib/postgresql/data"],
            "healthcheck": _healthcheck(["CMD", "pg_isready", "-U", "fastgpt", "-d", "postgres"]),
        },
        "mongo": {
            "image": image("mongo"),
            "restart": "always",
            "command": ["mongod", "--keyFile", "/data/mongodb.key", "--replSet", "rs0"],
            "environment": {
                "MONGO_INITDB_ROOT_USERNAME": "fastgpt",
                "MONGO_INITDB_ROOT_PASSWORD": "${MONGO_PASSWORD}",
            },
            "volumes": ["./mongo/data:/data/db"],
            "entrypoint": ["bash", "-c", MONGO_ENTRYPOINT],
            # Healthy only once the replica set has a primary: FastGPT needs transactions.
            "healthcheck": _healthcheck(
                [
                    "CMD-SHELL",
                    'mongo --quiet -u "$$MONGO_INITDB_ROOT_USERNAME" '
                    '-p "$$MONGO_INITDB_ROOT_PASSWORD" --authenticationDatabase admin '
                    "--eval 'quit(db.hello().isWritablePrimary ? 0 : 1)'",
                ],
                start_period="60s",
            ),
        },
        "sandbox": {
            "image": image("sandbox"),
            "restart": "always",
            "healthcheck": _healthcheck(
                [
                    "CMD",
                    "node",
                    "-e",
                    "require('net').connect(3000,'127.0.0.1')"
                    ".on('connect',()=>process.exit(0)).on('error',()=>process.exit(1))",
                ]
            ),
        },
        "fastgpt": {
            "image": image("fastgpt"),
            "restart": "always",
            "ports": published.get("fastgpt", []),
            "depends_on": ["mongo", "pg", "sandbox"],
            "environment": {
                "DEFAULT_ROOT_PSW": "${FASTGPT_ROOT_PASSWORD}",
                "OPENAI_BASE_URL": "http://oneapi:3000/v1",
                "CHAT_API_KEY": "sk-${FASTGPT_CHAT_KEY}",
                "DB_MAX_LINK": "30",
                "TOKEN_KEY": "${FASTGPT_TOKEN_KEY}",
                "ROOT_KEY": "${FASTGPT_ROOT_KEY}",
                "FILE_TOKEN_KEY": "${FASTGPT_FILE_TOKEN_KEY}",
                "MONGODB_URI": (
                    "mongodb://fastgpt:${MONGO_PASSWORD}@mongo:27017/fastgpt?authSource=admin"
                ),
                "PG_URL": "postgresql://fastgpt:${PG_PASSWORD}@pg:5432/postgres",
                "SANDBOX_URL": "http://sandbox:3000",
                "LOG_LEVEL": "info",
                "STORE_LOG_LEVEL": "warn",
                # Next's standalone server binds to $HOSTNAME, which Docker sets to the
                # container id: without this nothing listens on 127.0.0.1 inside the container
                # and the health check below never passes.
                "HOSTNAME": "0.0.0.0",  # noqa: S104
            },
            "volumes": ["./config.json:/app/data/config.json"],
            "healthcheck": _healthcheck(
                [
                    "CMD",
                    "wget",
                    "-q",
                    "-O",
                    "/dev/null",
                    "http://127.0.0.1:3000/api/common/system/getInitData",
                ],
                start_period="60s",
            ),
        },
        "mysql": {
            "image": image("mysql"),
            "restart": "always",
            "command": ["--default-authentication-plugin=mysql_native_password"],
            "environment": {
                "MYSQL_ROOT_PASSWORD": "${MYSQL_ROOT_PASSWORD}",
                "MYSQL_DATABASE": "oneapi",
            },
            "volumes": ["./mysql:/var/lib/mysql"],
            "healthcheck": _healthcheck(
                ["CMD-SHELL", 'mysqladmin ping -h 127.0.0.1 -uroot -p"$$MYSQL_ROOT_PASSWORD"'],
                start_period="60s",
            ),
        },
        "oneapi": {
            "image": image("oneapi"),
            "restart": "always",
            "ports": published.get("oneapi", []),
            "depends_on": ["mysql"],
            "environment": {
                "SQL_DSN": "root:${MYSQL_ROOT_PASSWORD}@tcp(mysql:3306)/oneapi",
                "SESSION_SECRET": "${ONEAPI_SESSION_SECRET}",
                "INITIAL_ROOT_TOKEN": "${ONEAPI_ROOT_TOKEN}",
                "MEMORY_CACHE_ENABLED": "true",
                # Channels created through the API are seen within this many seconds.
                "SYNC_FREQUENCY": "10",
                "BATCH_UPDATE_ENABLED": "true",
                "BATCH_UPDATE_INTERVAL": "10",
            },
            "volumes": ["./oneapi:/data"],
            "healthcheck": _healthcheck(
                ["CMD-SHELL", "wget -q -O - http://127.0.0.1:3000/api/status | grep -q success"]
            ),
        },
        "xinference": {
            "image": image("xinference"),
            "restart": "always",
            # All interfaces of the container: the stack's network reaches it there.
            "command": ["xinference-local", "-H", "0.0.0.0", "--port", "9997"],  # noqa: S104
            "ports": published.get("xinference", []),
            "environment": {"XINFERENCE_HOME": "/data", "XINFERENCE_MODEL_SRC": "modelscope"},
            "volumes": ["./xinference:/data"],
            "healthcheck": _healthcheck(
                [
                    "CMD",
                    "python3",
                    "-c",
                    "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9997/status')",
                ],
                start_period="60s",
            ),
        },
    }
    for database in ("pg", "mongo", "mysql"):
        services[database]["ports"] = published.get(database, [])
    if stack.xinference_device == Device.GPU:
        services["xinference"]["deploy"] = {
            "resources": {
                "reservations": {
                    "devices": [{"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}]
                }
            }
        }
    for service in services.values():
        service["networks"] = [NETWORK]
        if not service.get("ports"):
            service.pop("ports", None)
    # docker-compose v1 (1.28 and later, for the GPU reservation) and the v2 plugin both
    # read this format.
    return {"version": "3.8", "services": services, "networks": {NETWORK: {}}}


def env_values(secret_values: dict[str, str]) -> dict[str, str]:
    """The generated secrets the services read, and FastGPT's One API key: the relay token
    made for it once models are wired in, until then One API's initial root token. Other
    credentials obtained later stay out."""
    values = {name: secret_values[name] for name in SECRET_NAMES if name in secret_values}
    chat_key = secret_values.get(ONEAPI_FASTGPT_KEY) or secret_values.get("ONEAPI_ROOT_TOKEN")
    if chat_key:
        values["FASTGPT_CHAT_KEY"] = chat_key
    return values


def render_env(secret_values: dict[str, str]) -> str:
    # Values are alphanumeric (see secrets.py); quoting them keeps .env parsing unambiguous.
    return "".join(f'{name}="{value}"\n' for name, value in sorted(secret_values.items()))


def mask_env(text: str) -> str:
    lines = []
    for line in text.splitlines():
        name, sep, _ = line.partition("=")
        lines.append(f"{name}=********" if sep else line)
    return "\n".join(lines) + ("\n" if text.endswith("\n") else "")


def mask_config(text: str) -> str:
    """config.json with rerank entries' requestAuth (Xinference's API key) masked."""
    document = json.loads(text)
    for entry in document.get("reRankModels") or []:
        if entry.get("requestAuth"):
            entry["requestAuth"] = "********"
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def _llm_entry(config: LLMModelConfig) -> dict:
    return {
        "model": config.model,
        "name": config.display_name or config.model,
        "maxContext": config.max_context,
        "maxResponse": config.max_response,
        "quoteMaxToken": config.quote_max_token,
        "maxTemperature": config.max_temperature,
        "charsPointsPrice": 0,
        "censor": False,
        "vision": config.vision,
        "datasetProcess": config.dataset_process,
        "usedInClassify": config.used_in_classify,
        "usedInExtractFields": config.used_in_extract_fields,
        "usedInToolCall": config.used_in_tool_call,
        "usedInQueryExtension": config.used_in_query_extension,
        "toolChoice": config.tool_choice,
        "functionCall": config.function_call,
        "customCQPrompt": "",
        "customExtractPrompt": "",
        "defaultSystemChatPrompt": config.default_system_chat_prompt,
        "defaultConfig": {},
    }


def _vector_entry(config: EmbeddingModelConfig) -> dict:
    return {
        "model": config.model,
        "name": config.display_name or config.model,
        "charsPointsPrice": 0,
        "defaultToken": config.default_token,
        "maxToken": config.max_token,
        "weight": config.weight,
        "defaultConfig": {"dimensions": config.dimensions},
    }


def _rerank_entry(config: RerankModelConfig, auth: str) -> dict:
    # One API v0.6 has no rerank route: FastGPT calls Xinference directly, with Xinference's
    # API key when its auth is on.
    return {
        "model": config.model,
        "name": config.display_name or config.model,
        "charsPointsPrice": 0,
        "requestUrl": f"{XINFERENCE_URL}/v1/rerank",
        "requestAuth": auth,
    }


def config_document(
    llms: list[LLMModelConfig],
    embeddings: list[EmbeddingModelConfig],
    reranks: list[RerankModelConfig],
    rerank_auth: str = "",
) -> dict:
    return {
        "feConfigs": {"lafEnv": ""},
        "systemEnv": {
            "openapiPrefix": "fastgpt",
            "vectorMaxProcess": 15,
            "qaMaxProcess": 15,
            "pgHNSWEfSearch": 100,
        },
        "llmModels": [_llm_entry(c) for c in llms],
        "vectorModels": [_vector_entry(c) for c in embeddings],
        "reRankModels": [_rerank_entry(c, rerank_auth) for c in reranks],
        "audioSpeechModels": [],
        "whisperModel": {"model": "whisper-1", "name": "Whisper1", "charsPointsPrice": 0},
    }


def render(
    stack: Stack,
    secret_values: dict[str, str],
    *,
    llms: list[LLMModelConfig] = (),
    embeddings: list[EmbeddingModelConfig] = (),
    reranks: list[RerankModelConfig] = (),
) -> RenderedStack:
    compose = yaml.safe_dump(compose_document(stack), sort_keys=False, width=100)
    document = config_document(
        list(llms),
        list(embeddings),
        list(reranks),
        rerank_auth=secret_values.get(XINFERENCE_API_KEY, ""),
    )
    config = json.dumps(document, indent=2, ensure_ascii=False)
    return RenderedStack(
        files={
            COMPOSE_FILE: compose,
            ENV_FILE: render_env(env_values(secret_values)),
            CONFIG_FILE: config + "\n",
        }
    )
