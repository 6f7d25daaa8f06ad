"""Importing a large document, measured end to end: browser -> panel -> worker -> FastGPT.

The panel runs as in production: one web process (controlpanel.serve) serving
controlpanel.asgi:application on a fresh SQLite
database, a real Celery worker in a subprocess (testkit/workers.py), Redis. FastGPT is the
stand-in (testkit/standins/fastgpt) in a process of its own on loopback, found by the panel
through a running stack on a server at 127.0.0.1. One text file (numbered paragraphs of words,
each one chunk) is generated once; rounds alternate between:

    (a) the panel: the browser's upload (the raw file as the request body, streamed from disk,
        as the page's XMLHttpRequest sends it), the import form, then the "dataset.import"
        pipeline in the worker, which sends the staged file to FastGPT as multipart: the time
        from the upload's first byte until the step "send documents to FastGPT" has finished,
        with its two legs (browser -> panel, worker -> FastGPT) apart;
    (b) the baseline: the same file sent straight to the stand-in's create/localFile as the
        panel's client sends it (multipart, streamed from disk by httpx).

During (a) it also takes the peak resident memory growth of the web process and of the worker
(the main process and its pool child), and after it the delay from the last chunk trained (the
stand-in's collection/list, polled every 50 ms) to the document shown ready on the page (its
htmx fragment, polled every second as the page does).

Run from the repository root: python -m bench.upload   (see bench/README.md)
"""

import argparse
import contextlib
import hashlib
import io
import json
import os
import random
import re
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from bench.deploy import median, parse_bench_args, say, seconds, table
from bench.logs import free_port
from controlpanel import serve
from deployments.knowledge.staging import PIECE_BYTES

ROOT = Path(__file__).resolve().parent.parent

MEGABYTES = 500
ROUNDS = 3
WARM_UP_MEGABYTES = 20
MB = 1024 * 1024  # as the panel's DOCUMENT_UPLOAD_MAX_MB counts
AIM_RATIO = 0.8
AIM_GROWTH_MB = 64
AIM_SHOWN_SECONDS = 3.0

CHUNK_SIZE = 512
# A numbered paragraph fits in CHUNK_SIZE and two do not: each paragraph is one chunk.
PARAGRAPH_CHARS = 470
# Paragraph texts to draw from; the number in front of each keeps every chunk unique (FastGPT
# drops a chunk it has already seen in the same upload).
PARAGRAPH_VARIANTS = 997
WORDS = [
    *("the", "lighthouse", "keeper", "winds", "clockwork", "lamp", "every", "evening", "at"),
    *("dusk", "spare", "wicks", "are", "kept", "in", "blue", "cabinet", "beside", "stairs"),
    *("a", "ship", "passes", "north", "of", "reef", "when", "fog", "rolls", "over", "harbour"),
    *("bell", "rings", "twice", "and", "log", "book", "records", "each", "hour", "watch"),
    *("with", "oil", "level", "weather", "wind", "tide"),
]
UPLOAD_NAME = "bench-handbook.txt"

# How long the stand-in takes to train a collection (its chunks leave the queue evenly over it):
# long enough for the training poll below to start before the last chunk is trained.
TRAINING_SECONDS = 5
TRAINED_POLL_SECONDS = 0.05
PAGE_POLL_SECONDS = 1.0  # the documents section's hx-trigger="every 1s"
DB_POLL_SECONDS = 0.1  # only says when to read a row: the times come from the row
MEMORY_SAMPLE_SECONDS = 0.02  # also how often the worker's file offset is read
HTTP_TIMEOUT_SECONDS = 900
ROUND_TIMEOUT_SECONDS = 1800
SEND_STEP = "send documents to FastGPT"

EMBEDDING = "bench-embedding"
CHAT = "bench-chat"
# One vector model and one LLM: all a knowledge base needs.
FASTGPT_CONFIG = {
    "feConfigs": {},
    "systemEnv": {"vectorMaxProcess": 15, "qaMaxProcess": 15, "pgHNSWEfSearch": 100},
    "llmModels": [
        {
            "model": CHAT,
            "name": "Bench chat",
            "maxContext": 32000,
            "maxResponse": 4000,
            "quoteMaxToken": 16000,
            "maxTemperature": 1,
            "charsPointsPrice": 0,
            "datasetProcess": True,
            "functionCall": False,
            "toolChoice": False,
            "customCQPrompt": "",
            "customExtractPrompt": "",
        }
    ],
    "vectorModels": [
        {
            "model": EMBEDDING,
            "name": "Bench embedding",
            "defaultToken": 512,
            "maxToken": 512,
            "weight": 100,
            "charsPointsPrice": 0,
        }
    ],
    "reRankModels": [],
}
CREATE_FILE_PATH = "/api/core/dataset/collection/create/localFile"
COLLECTION_LIST_PATH = "/api/core/dataset/collection/list"
LOGIN_PATH = "/api/support/user/account/loginByPassword"


# The document


def paragraph_text(variant: int) -> str:
    pick = random.Random(variant).choice  # noqa: S311 (filler text, not a secret)
    words: list[str] = []
    while sum(len(word) + 1 for word in words) < PARAGRAPH_CHARS - 20:
        words.append(pick(WORDS))
    return " ".join(words).capitalize() + "."


def write_document(path: Path, megabytes: int) -> int:
    """A text file of exactly `megabytes` MB that FastGPT chunks like prose: numbered paragraphs
    a blank line apart. Written in blocks, so it costs little memory and a few seconds."""
    texts = [paragraph_text(variant) for variant in range(PARAGRAPH_VARIANTS)]
    left = megabytes * MB
    number = 0
    with path.open("wb") as out:
        while left > 0:
            block = "".join(
                f"{n:09d} {texts[n % PARAGRAPH_VARIANTS]}\n\n" for n in range(number, number + 5000)
            ).encode()[:left]
            out.write(block)
            left -= len(block)
            number += 5000
    return megabytes * MB


class TimedFile(io.FileIO):
    """A file sent as a request body: notes when its last byte was read, that is, handed to the
    socket, so the time after it is the receiver's own (storing, parsing, answering)."""

    finished_at: float | None = None

    def read(self, size: int = -1) -> bytes:
        chunk = super().read(size)
        if not chunk and self.finished_at is None:
            self.finished_at = time.time()
        return chunk


# Resident memory, from /proc


def status_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1])
    raise RuntimeError(f"No {key} for process {pid}.")


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if parent == pid:
                found.append(int(entry.name))
    return found


def reset_high_water_mark(pid: int) -> bool:
    """VmHWM back to the current RSS (Linux 4.0+); False where the kernel refuses."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


@dataclass
class Memory:
    """Resident memory of a process (or several, added up), in MB."""

    before: float
    peak: float

    @property
    def growth(self) -> float:
        return self.peak - self.before


class PeakMemory:
    """The most resident memory some processes reached while this ran, and what they had at
    the start. The kernel's high-water mark (VmHWM) sees every peak; where it cannot be reset, a
    thread samples VmRSS instead, which can miss a peak shorter than its interval."""

    def __init__(self, pids: list[int]) -> None:
        self.before = {pid: status_kib(pid, "VmRSS") for pid in pids}
        self.sampled = dict(self.before)
        self.exact = all([reset_high_water_mark(pid) for pid in pids])
        self.stopping = threading.Event()
        self.thread = None
        if not self.exact:
            self.thread = threading.Thread(target=self._sample, daemon=True)
            self.thread.start()

    def _sample(self) -> None:
        while not self.stopping.wait(MEMORY_SAMPLE_SECONDS):
            for pid in self.sampled:
                with contextlib.suppress(OSError, RuntimeError):
                    self.sampled[pid] = max(self.sampled[pid], status_kib(pid, "VmRSS"))

    def stop(self) -> Memory:
        self.stopping.set()
        if self.thread is not None:
            self.thread.join()
        if self.exact:
            peaks = [status_kib(pid, "VmHWM") for pid in self.before]
        else:
            peaks = list(self.sampled.values())
        return Memory(before=sum(self.before.values()) / 1024, peak=sum(peaks) / 1024)


class LastByteRead(threading.Thread):
    """When one of `pids` has read `path` to its end (the offset of its open file, from
    /proc/<pid>/fdinfo, every 20 ms): for the worker, whose reads this script cannot wrap as
    it wraps its own (TimedFile). httpx reads the file as it sends, so this is when the last
    byte went to the socket."""

    def __init__(self, pids: list[int], path: Path, size: int) -> None:
        super().__init__(daemon=True)
        self.pids = pids
        self.path = str(path.resolve())
        self.size = size
        self.seen: float | None = None
        self.stopping = threading.Event()

    def _offset(self) -> int:
        for pid in self.pids:
            with contextlib.suppress(OSError):
                for fd in os.listdir(f"/proc/{pid}/fd"):
                    with contextlib.suppress(OSError):
                        if os.readlink(f"/proc/{pid}/fd/{fd}") == self.path:
                            info = Path(f"/proc/{pid}/fdinfo/{fd}").read_text()
                            return int(info.split("pos:", 1)[1].split()[0])
        return 0

    def run(self) -> None:
        while not self.stopping.wait(MEMORY_SAMPLE_SECONDS):
            if self._offset() >= self.size:
                self.seen = time.time()
                return

    def stop(self) -> None:
        self.stopping.set()
        self.join()


# The processes: stand-in FastGPT, the web process, the worker


def wait_for_port(port: int, process: subprocess.Popen, what: str, log: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
                raise RuntimeError(f"{what} did not start:\n{tail}") from None
            time.sleep(0.1)


def stop_process(process: subprocess.Popen | None) -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class StandinFastGPT:
    """The stand-in as a process of its own on a fixed port. It is restarted before every
    upload: it keeps each request's body in its request log and every chunk in memory, so a
    fresh process gives each round the same start (and this machine its memory back)."""

    def __init__(self, workdir: Path, password: str) -> None:
        self.port = free_port()
        self.password = password
        self.log = workdir / "fastgpt.log"
        config = workdir / "fastgpt-config.json"
        config.write_text(json.dumps(FASTGPT_CONFIG))
        self.env = {
            # Without OPENAI_BASE_URL the stand-in trains by the clock (STANDIN_TRAINING_SECONDS)
            # instead of asking an embedding endpoint.
            **{key: value for key, value in os.environ.items() if key != "OPENAI_BASE_URL"},
            "DEFAULT_ROOT_PSW": password,
            "TOKEN_KEY": secrets.token_hex(16),
            "MONGODB_URI": "mongodb://bench:bench@127.0.0.1:27017/fastgpt?authSource=admin",
            "PG_URL": "postgresql://bench:bench@127.0.0.1:5432/postgres",
            "STANDIN_FASTGPT_CONFIG": str(config),
            "STANDIN_TRAINING_SECONDS": str(TRAINING_SECONDS),
        }
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "testkit.standins.fastgpt"]
                + ["--host", "127.0.0.1", "--port", str(self.port)],
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Its own session: a Ctrl-C reaches this script, which stops it in order.
                start_new_session=True,
            )
        wait_for_port(self.port, self.process, "The stand-in FastGPT", self.log)

    def restart(self) -> None:
        self.stop()
        self.start()

    def stop(self) -> None:
        stop_process(self.process)
        self.process = None

    @contextlib.contextmanager
    def signed_in(self):
        """An httpx client signed in as root, as the panel's client signs in."""
        import httpx

        # trust_env=False: no proxy from the environment, only loopback.
        with httpx.Client(base_url=self.url, timeout=HTTP_TIMEOUT_SECONDS, trust_env=False) as http:
            password = hashlib.sha256(self.password.encode()).hexdigest()
            answer = http.post(LOGIN_PATH, json={"username": "root", "password": password})
            if answer.json().get("code") != 200:
                raise RuntimeError(f"The stand-in refused the login: {answer.text[:500]}")
            http.headers["token"] = answer.json()["data"]["token"]
            yield http


class Panel:
    """The database, the web process, one worker, the stand-in, and an operator signed in."""

    def __init__(self, workdir: Path, exits: contextlib.ExitStack, megabytes: int) -> None:
        self.workdir = workdir
        (workdir / "tmp").mkdir()
        os.environ.update(
            {
                "CONTROLPANEL_VAR_DIR": str(workdir),
                "DATABASE_URL": f"sqlite:///{workdir / 'bench.sqlite3'}",
                "CHANNELS_PREFIX": f"bench-{secrets.token_hex(4)}",
                # A queue of its own: no other worker on this Redis takes the bench's runs.
                "CELERY_QUEUE": f"bench-upload-{secrets.token_hex(4)}",
                "ALLOWED_HOSTS": "127.0.0.1,localhost",
                "DJANGO_SETTINGS_MODULE": "controlpanel.settings",
                "LOG_LEVEL": "WARNING",
                "DOCUMENT_UPLOAD_MAX_MB": str(max(1024, 2 * megabytes)),
                # Where the web server and Django spool request bodies: inside the bench's folder,
                # so
                # they are on the same disk and go with it.
                "TMPDIR": str(workdir / "tmp"),
            }
        )
        import django

        django.setup()
        from django.conf import settings
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        # The pages name their static files through the manifest, as scripts/start prepares.
        call_command("collectstatic", interactive=False, verbosity=0)
        from deployments.choices import Role, StackStatus
        from deployments.stacks.secrets import stack_secrets
        from testkit.factories import add_member, make_server, make_stack, make_team

        team = make_team("bench")
        self.operator = add_member(team, role=Role.OPERATOR)
        self.stack = make_stack(make_server(team, host="127.0.0.1"), status=StackStatus.RUNNING)
        self.standin = StandinFastGPT(workdir, stack_secrets(self.stack)["FASTGPT_ROOT_PASSWORD"])
        exits.callback(self.standin.stop)
        self.standin.start()
        self.stack.fastgpt_port = self.standin.port
        self.stack.save(update_fields=["fastgpt_port"])

        self.port = free_port()
        self.web = self._start_web()
        exits.callback(stop_process, self.web)
        from testkit.workers import Worker

        self.worker = Worker(workdir / "worker.log", concurrency=1)
        exits.callback(self.worker.stop)
        self.worker.start()

        from django.test import Client

        client = Client()
        client.force_login(self.operator)
        self.session = (settings.SESSION_COOKIE_NAME, client.cookies[settings.SESSION_COOKIE_NAME])
        self.bases = 0

    def _start_web(self) -> subprocess.Popen:
        path = self.workdir / "web.log"
        with path.open("wb") as log:
            web = subprocess.Popen(
                serve.command(self.port),
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            wait_for_port(self.port, web, "web", path)
        except BaseException:
            stop_process(web)
            raise
        return web

    def worker_pids(self) -> list[int]:
        """The worker's main process and its pool's child, which runs the pipeline."""
        main = self.worker.process.pid
        return [main, *children_of(main)]

    def new_round(self):
        """A fresh start for a round (untimed): the stand-in restarted empty, the disk's
        writeback of earlier files done (so no round pays for the one before), and a knowledge
        base to import into, made as an operator makes one."""
        from deployments.actions.knowledge import do_create_knowledge_base

        self.standin.restart()
        os.sync()
        self.bases += 1
        return do_create_knowledge_base(
            self.stack,
            name=f"bench {self.bases}",
            intro="",
            embedding_model=EMBEDDING,
            agent_model=CHAT,
            user=self.operator,
        )

    def browser(self):
        """An httpx client holding the operator's session cookie, as the browser does."""
        import httpx

        name, value = self.session
        return httpx.Client(
            base_url=f"http://127.0.0.1:{self.port}",
            cookies={name: value.value},
            timeout=HTTP_TIMEOUT_SECONDS,
            trust_env=False,  # no proxy from the environment: loopback only
        )

    def url(self, name: str, pk: int) -> str:
        from django.urls import reverse

        return reverse(name, args=[pk])


# The browser's side


def open_page(browser, panel: Panel, base) -> str:
    """Load the knowledge base's page, as the browser has before it uploads; its CSRF token."""
    page = browser.get(panel.url("knowledge_detail", base.pk))
    page.raise_for_status()
    found = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    if found is None:
        raise RuntimeError("The knowledge base's page has no CSRF token.")
    return found.group(1)


def upload(browser, panel: Panel, base, path: Path, csrf: str) -> int:
    """The page's uploads: the file in pieces of PIECE_BYTES, one request each, every piece
    after the first with the token the last answer gave. The document's id."""
    size = path.stat().st_size
    offset, token = 0, ""
    with path.open("rb") as stream:
        while True:
            piece = stream.read(PIECE_BYTES)
            answer = browser.post(
                panel.url("knowledge_upload", base.pk),
                content=piece,
                headers={
                    "Content-Type": "application/octet-stream",
                    "X-CSRFToken": csrf,
                    "X-Upload-Name": quote(UPLOAD_NAME, safe=""),
                    "X-Upload-Size": str(size),
                    "X-Upload-Offset": str(offset),
                    "X-Upload-Token": token,
                },
            )
            if answer.status_code != 200:
                raise RuntimeError(
                    f"The upload failed: HTTP {answer.status_code} {answer.text[:500]}"
                )
            body = answer.json()
            if "next" not in body:
                return body["id"]
            offset, token = body["received"], body["next"]


def start_import(browser, panel: Panel, base, document_id: int, csrf: str) -> None:
    """The import form, with the default chunk settings."""
    answer = browser.post(
        panel.url("knowledge_import", base.pk),
        data={
            "documents": str(document_id),
            "training_type": "chunk",
            "chunk_size": str(CHUNK_SIZE),
            "chunk_splitter": "",
            "csrfmiddlewaretoken": csrf,
        },
    )
    if answer.status_code != 302:
        raise RuntimeError(f"The import form failed: HTTP {answer.status_code}")


class Poller(threading.Thread):
    """Asks something every `interval` seconds (from one question's start to the next) until
    it answers true; `seen` is when that answer came, `answers` how many were asked."""

    def __init__(self, ask, interval: float) -> None:
        super().__init__(daemon=True)
        self.ask = ask
        self.interval = interval
        self.seen: float | None = None
        self.before: float | None = None  # when the answer before the true one came
        self.answers = 0
        self.error: BaseException | None = None
        self.stopping = threading.Event()

    def run(self) -> None:
        try:
            while not self.stopping.is_set():
                asked = time.monotonic()
                done = self.ask()
                self.answers += 1
                if done:
                    self.seen = time.time()
                    return
                self.before = time.time()
                self.stopping.wait(max(0.0, asked + self.interval - time.monotonic()))
        except BaseException as error:  # noqa: BLE001 (handed to the main thread)
            self.error = error

    def finish(self, timeout: float) -> None:
        self.join(timeout)
        self.stopping.set()
        if self.error is not None:
            raise self.error
        if self.seen is None:
            raise RuntimeError(f"No true answer in {timeout} s.")


def page_shows(browser, panel: Panel, base, document_id: int):
    """The page's own refresh: its documents fragment (HX-Request), true once the row says
    ready."""
    row = re.compile(rf'data-document="{document_id}" data-status="(\w+)"')
    url = panel.url("knowledge_detail", base.pk)

    def ask() -> bool:
        fragment = browser.get(url, headers={"HX-Request": "true"})
        found = row.search(fragment.text)
        status = found.group(1) if found else None
        if status == "failed":
            raise RuntimeError("The page shows the document failed.")
        return status == "ready"

    return ask


def training_done(fastgpt, dataset_id: str, collection_id: str):
    """FastGPT's own count: true once no chunk of the collection waits to be trained."""

    def ask() -> bool:
        answer = fastgpt.post(
            COLLECTION_LIST_PATH,
            json={
                "datasetId": dataset_id,
                "parentId": None,
                "pageNum": 1,
                "pageSize": 30,
                "simple": False,
            },
        ).json()
        row = next(row for row in answer["data"]["data"] if row["_id"] == collection_id)
        return row["trainingAmount"] == 0 and row["dataAmount"] > 0

    return ask


# The rounds


@dataclass
class PanelRound:
    size: int
    started: float  # the browser began sending
    uploaded: float  # the panel's answer: staged
    step_started: float  # the worker began "send documents to FastGPT"
    worker_sent: float | None  # the worker's last byte handed to the socket
    step_finished: float
    chunks: int
    memory: dict[str, Memory] = field(default_factory=dict)  # "web", "worker"
    memory_exact: bool = True  # from the kernel's high-water mark, not sampled
    shown_delay: float | None = None  # last chunk trained -> the page shows ready

    @property
    def seconds(self) -> float:
        return self.step_finished - self.started

    @property
    def browser_leg(self) -> float:
        return self.uploaded - self.started

    @property
    def worker_leg(self) -> float:
        return self.step_finished - self.step_started

    @property
    def between_legs(self) -> float:
        """The import form, the queue, the worker starting the run."""
        return self.step_started - self.uploaded

    @property
    def until_handed(self) -> float | None:
        """Until the last byte went to FastGPT: the time FastGPT's own work does not count in."""
        return None if self.worker_sent is None else self.worker_sent - self.started

    @property
    def standin_own(self) -> float | None:
        return None if self.worker_sent is None else self.step_finished - self.worker_sent


@dataclass
class DirectRound:
    size: int
    started: float
    sent: float
    answered: float
    chunks: int

    @property
    def seconds(self) -> float:
        return self.answered - self.started

    @property
    def until_handed(self) -> float:
        return self.sent - self.started

    @property
    def standin_own(self) -> float:
        """After the last byte: the stand-in reads, splits and queues the file."""
        return self.answered - self.sent


def wait_for_send_step(run_id: int):
    """The finished "send documents to FastGPT" step of the run (it records its own times)."""
    from deployments.choices import RUN_TERMINAL, StepStatus
    from deployments.models import PipelineRun, StepRun

    deadline = time.monotonic() + ROUND_TIMEOUT_SECONDS
    while True:
        step = (
            StepRun.objects.filter(run_id=run_id, name=SEND_STEP, finished_at__isnull=False)
            .order_by("-attempt")
            .first()
        )
        if step is not None:
            if step.status != StepStatus.SUCCEEDED:
                raise RuntimeError(f"{SEND_STEP} failed: {step.error}")
            return step
        run = PipelineRun.objects.get(pk=run_id)
        if run.status in RUN_TERMINAL or time.monotonic() > deadline:
            raise RuntimeError(f"The import ended {run.status} before sending: {run.error}")
        time.sleep(DB_POLL_SECONDS)


def wait_for_run(run_id: int) -> None:
    from deployments.choices import RUN_TERMINAL, RunStatus
    from deployments.models import PipelineRun

    deadline = time.monotonic() + ROUND_TIMEOUT_SECONDS
    while (run := PipelineRun.objects.get(pk=run_id)).status not in RUN_TERMINAL:
        if time.monotonic() > deadline:
            raise RuntimeError("The import did not finish in time.")
        time.sleep(DB_POLL_SECONDS)
    if run.status != RunStatus.SUCCEEDED:
        raise RuntimeError(f"The import ended {run.status}: {run.error}")


def watch_worker_reading(panel: Panel, document_id: int, size: int) -> LastByteRead:
    from deployments.knowledge import staging
    from deployments.models import Document

    staged = staging.staged_path(Document.objects.get(pk=document_id).staged_file)
    watcher = LastByteRead(panel.worker_pids(), staged, size)
    watcher.start()
    return watcher


def trained_to_shown(panel: Panel, base, document_id: int, shown: Poller) -> float | None:
    """(c) From the last chunk trained, by FastGPT's count, to the page showing it ready;
    None where the training poll started too late to see a chunk still queued."""
    from deployments.models import Document

    collection_id = Document.objects.get(pk=document_id).fastgpt_collection_id
    # FastGPT has had the collection since the send step finished; it trains for
    # TRAINING_SECONDS after it queued the chunks, so this starts well before the end.
    with panel.standin.signed_in() as fastgpt:
        trained = Poller(
            training_done(fastgpt, base.fastgpt_dataset_id, collection_id), TRAINED_POLL_SECONDS
        )
        trained.start()
        trained.finish(ROUND_TIMEOUT_SECONDS)
    shown.finish(ROUND_TIMEOUT_SECONDS)
    if trained.answers < 2:
        return None
    # The last chunk left the queue between the last two answers of the training poll.
    return shown.seen - (trained.before + trained.seen) / 2


def through_panel(panel: Panel, path: Path, size: int) -> PanelRound:
    from deployments.models import Document

    base = panel.new_round()
    with panel.browser() as browser, panel.browser() as page:
        csrf = open_page(browser, panel, base)
        memory = {
            "web": PeakMemory([panel.web.pid]),
            "worker": PeakMemory(panel.worker_pids()),
        }
        started = time.time()
        document_id = upload(browser, panel, base, path, csrf)
        uploaded = time.time()
        handed = watch_worker_reading(panel, document_id, size)
        start_import(browser, panel, base, document_id, csrf)
        # The page reloads after the import and from then on refreshes itself every second.
        shown = Poller(page_shows(page, panel, base, document_id), PAGE_POLL_SECONDS)
        shown.start()
        run_id = Document.objects.get(pk=document_id).run_id
        step = wait_for_send_step(run_id)
        handed.stop()
        used = {name: watch.stop() for name, watch in memory.items()}
        delay = trained_to_shown(panel, base, document_id, shown)
        wait_for_run(run_id)
    return PanelRound(
        size=size,
        started=started,
        uploaded=uploaded,
        step_started=step.started_at.timestamp(),
        worker_sent=handed.seen,
        step_finished=step.finished_at.timestamp(),
        chunks=Document.objects.get(pk=document_id).inserted_chunks,
        memory=used,
        memory_exact=all(by_pid.exact for by_pid in memory.values()),
        shown_delay=delay,
    )


def direct(panel: Panel, path: Path, size: int) -> DirectRound:
    """The same file to the same stand-in's create/localFile, as the panel's client sends it:
    the form field `data` (JSON) and the file, its name URI-encoded."""
    base = panel.new_round()
    data = {
        "datasetId": base.fastgpt_dataset_id,
        "parentId": None,
        "trainingType": "chunk",
        "chunkSize": CHUNK_SIZE,
        "chunkSplitter": "",
        "qaPrompt": "",
        "collectionMetadata": {},
    }
    with panel.standin.signed_in() as fastgpt, TimedFile(path, "rb") as body:
        started = time.time()
        answer = fastgpt.post(
            CREATE_FILE_PATH,
            data={"data": json.dumps(data)},
            files={"file": (quote(UPLOAD_NAME, safe=""), body, "text/plain")},
        )
        answered = time.time()
    result = answer.json()
    if result.get("code") != 200:
        raise RuntimeError(f"The direct upload failed: {answer.text[:500]}")
    return DirectRound(
        size=size,
        started=started,
        sent=body.finished_at,
        answered=answered,
        chunks=result["data"]["results"]["insertLen"],
    )


def warm_up(panel: Panel, workdir: Path) -> None:
    """One small file each way, untimed: the first request of each kind pays for imports,
    connections and caches in the web process, the worker and the stand-in, which no later
    one does."""
    say(f"Warming up with a {WARM_UP_MEGABYTES} MB file each way (not measured) ...")
    path = workdir / f"warm-up-{UPLOAD_NAME}"
    size = write_document(path, WARM_UP_MEGABYTES)
    through_panel(panel, path, size)
    direct(panel, path, size)
    path.unlink()


def measure(panel: Panel, path: Path, size: int, rounds: int):
    panels, directs = [], []
    for number in range(1, rounds + 1):
        say(f"round {number}/{rounds}: (a) through the panel ...")
        result = through_panel(panel, path, size)
        panels.append(result)
        say(
            f"    {rate(size, result.seconds)} MB/s ({result.seconds:.1f} s; browser leg "
            f"{result.browser_leg:.1f} s, worker leg {result.worker_leg:.1f} s), "
            f"{result.chunks:,} chunks"
        )
        say(f"round {number}/{rounds}: (b) straight to the stand-in ...")
        baseline = direct(panel, path, size)
        directs.append(baseline)
        say(
            f"    {rate(size, baseline.seconds)} MB/s ({baseline.seconds:.1f} s; "
            f"stand-in's own {baseline.standin_own:.1f} s), {baseline.chunks:,} chunks"
        )
    return panels, directs


# The report


def rate(size: int, seconds: float | None) -> str:
    return "-" if seconds is None else f"{size / MB / seconds:.1f}"


def verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def round_rows(panels: list[PanelRound], directs: list[DirectRound]) -> list[tuple[str, ...]]:
    rows = []
    for number, (a, b) in enumerate(zip(panels, directs, strict=True), start=1):
        rows.append(
            (
                str(number),
                seconds(a.seconds),
                seconds(b.seconds),
                f"{b.seconds / a.seconds:.2f}",
                seconds(a.browser_leg),
                seconds(a.between_legs),
                seconds(a.worker_leg),
                seconds(a.standin_own),
                seconds(b.standin_own),
                f"{a.memory['web'].before:.0f} / {a.memory['web'].peak:.0f}",
                f"{a.memory['worker'].before:.0f} / {a.memory['worker'].peak:.0f}",
                "-" if a.shown_delay is None else f"{a.shown_delay:.2f}",
            )
        )
    return rows


def summary_rows(panels: list[PanelRound], directs: list[DirectRound]) -> list[tuple[str, ...]]:
    size = panels[0].size
    ratios = [b.seconds / a.seconds for a, b in zip(panels, directs, strict=True)]
    ratio = statistics.median(ratios)
    handed_a = median([a.until_handed for a in panels])
    handed_b = median([b.until_handed for b in directs])
    web = max(a.memory["web"].growth for a in panels)
    worker = max(a.memory["worker"].growth for a in panels)
    delay = median([a.shown_delay for a in panels])
    return [
        (
            "(a) MB/s, upload start -> in FastGPT",
            rate(size, statistics.median(a.seconds for a in panels)),
            rate(size, statistics.median(b.seconds for b in directs)),
            f"{ratio:.2f} ({min(ratios):.2f}-{max(ratios):.2f})",
            f">= {AIM_RATIO}",
            verdict(ratio >= AIM_RATIO),
        ),
        (
            "    leg 1: browser -> panel (staged)",
            rate(size, statistics.median(a.browser_leg for a in panels)),
            *("", "", "", ""),
        ),
        (
            "    leg 2: worker -> FastGPT (the step)",
            rate(size, statistics.median(a.worker_leg for a in panels)),
            *("", "", "", ""),
        ),
        (
            "    until the last byte went to FastGPT",
            rate(size, handed_a),
            rate(size, handed_b),
            "-" if handed_a is None else f"{handed_b / handed_a:.2f}",
            *("", ""),
        ),
        (
            "(b) web process peak RSS growth, MB",
            f"{web:.0f}",
            *("", ""),
            f"< {AIM_GROWTH_MB}",
            verdict(web < AIM_GROWTH_MB),
        ),
        (
            "    worker peak RSS growth, MB",
            f"{worker:.0f}",
            *("", ""),
            f"< {AIM_GROWTH_MB}",
            verdict(worker < AIM_GROWTH_MB),
        ),
        (
            "(c) last chunk trained -> shown ready, s",
            "-" if delay is None else f"{delay:.2f}",
            *("", ""),
            f"< {AIM_SHOWN_SECONDS:g}",
            "-" if delay is None else verdict(delay < AIM_SHOWN_SECONDS),
        ),
    ]


NOTES = """
MB = 2^20 bytes. First, untimed, a {warm_up} MB file each way (first requests pay for imports
and connections). Before each round (untimed): the stand-in restarted empty, the disk's writeback
done (sync), a new knowledge base. (a) the panel: from the browser's first byte until the
worker's step '{step}' finished (its StepRun row); (b) direct: the same multipart request from
this script, until the stand-in's answer. Medians of the rounds; the ratio (b's time / a's, i.e.
a's MB/s over b's) is per round: median, range. Leg 1: the browser's upload, in pieces of 8 MiB,
until the answer to the last one (the file is staged on disk then); leg 2: the step (sign-in,
the multipart upload of the staged file, the stand-in's answer); 'between': the import form, the
Celery queue and the worker starting the run. 'stand-in s': from the last byte handed to the
socket to the stand-in's answer, its own work (it reads, splits and queues the chunks in
Python), the same on both sides and most of the time: the row 'until the last byte' leaves it
out ((a): the worker's offset in the staged file, read every 20 ms). Memory: resident MB before
the round / at its peak during (a), {memory}; the web process alone, the worker's main process
and pool child added up; the growth (peak less before) is the largest of the rounds. (c) the
stand-in's collection/list polled every {trained_ms} ms (the last chunk left the queue between
the last two answers), the page's htmx fragment every {page} s (the answer that first shows
ready); median. The panel's worker polls FastGPT every TRAINING_POLL_SECONDS. All on loopback,
sharing this machine's CPUs and disk: figures move between runs.
"""


def report(panels: list[PanelRound], directs: list[DirectRound]) -> None:
    print(f"\nImporting one {panels[0].size // MB} MB text file, {len(panels)} rounds of each:\n")
    header = ("round", "(a) panel s", "(b) direct s", "b/a")
    header += ("leg 1 s", "between s", "leg 2 s", "stand-in s (a)")
    header += ("stand-in s (b)", "web MB", "worker MB", "trained->shown s")
    table(header, round_rows(panels, directs))
    table(("measure", "panel", "direct", "panel/direct", "aim", ""), summary_rows(panels, directs))
    memory = "from VmHWM" if all(a.memory_exact for a in panels) else "VmRSS sampled every 20 ms"
    notes = NOTES.format(
        step=SEND_STEP,
        warm_up=WARM_UP_MEGABYTES,
        memory=memory,
        trained_ms=f"{TRAINED_POLL_SECONDS * 1000:.0f}",
        page=f"{PAGE_POLL_SECONDS:g}",
    )
    print(textwrap.fill(" ".join(notes.split()), width=96))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--megabytes", type=int, default=MEGABYTES, help="the file's size in MB")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="uploads of each side")
    args = parse_bench_args(parser)
    if args is None:
        return 2
    if args.megabytes < 1:
        parser.error("--megabytes must be at least 1")
    with (
        tempfile.TemporaryDirectory(prefix="bench-upload-", ignore_cleanup_errors=True) as workdir,
        contextlib.ExitStack() as exits,
    ):
        workdir = Path(workdir)
        say(f"Writing a {args.megabytes} MB text file ...")
        path = workdir / UPLOAD_NAME
        size = write_document(path, args.megabytes)
        say("Starting the stand-in FastGPT, the web process and a worker ...")
        panel = Panel(workdir, exits, args.megabytes)
        try:
            warm_up(panel, workdir)
            panels, directs = measure(panel, path, size, args.rounds)
        except Exception:
            for name in ("web.log", "worker.log", "fastgpt.log"):
                log = workdir / name
                if log.exists():
                    say(f"The end of {name}:\n" + log.read_text(errors="replace")[-3000:])
            raise
    report(panels, directs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
