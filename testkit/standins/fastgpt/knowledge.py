"""Datasets (knowledge bases), collections (documents) and their training queue.

Each collection's chunks are rows of a training queue. Where the environment names a model
endpoint, chunk-mode rows leave it when training.py's trainer has embedded them; QA rows (and
every row without an endpoint) leave it one by one over STANDIN_TRAINING_SECONDS (3 by default),
so `trainingAmount` falls to 0 while `dataAmount` rises to the row count. Only rows that left
the queue are searched.
"""

from __future__ import annotations

import http.client
import json
import re
import time
import urllib.request
from typing import TYPE_CHECKING, Any

from testkit.standins.fastgpt import documents, readers
from testkit.standins.fastgpt.common import (
    Reject,
    dump_js,
    get_nanoid,
    is_object_id,
    newest_first,
    now_iso,
    object_id,
    permission,
    sha256_hex,
)
from testkit.standins.server import Request

if TYPE_CHECKING:
    from testkit.standins.fastgpt.app import FastGPT

DATASET_TYPES = ("folder", "dataset", "websiteDataset", "externalFile")
COLLECTION_TYPES = ("folder", "virtual", "file", "link", "externalFile")
COMMUNITY_DATASET_LIMIT = 30
BUCKET_NAMES = ("dataset",)
# localFile's own fields of `data`, which are not the collection's.
FILE_ONLY_FIELDS = ("fileMetadata", "collectionMetadata")
LINK_PATTERN = re.compile(r'(http|https)://[^ "]+')
LINK_TIMEOUT_SECONDS = 30
AXIOS_AGENT = "axios/1.7.2"
HASH_OF_UNDEFINED = (
    'The "data" argument must be of type string or an instance of Buffer, '
    "TypedArray, or DataView. Received undefined"
)
COLLECTION_LIST_FIELDS = (
    "_id",
    "parentId",
    "tmbId",
    "name",
    "type",
    "forbid",
    "createTime",
    "updateTime",
    "trainingType",
    "fileId",
    "rawLink",
)
_link_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def parent_id(value: Any) -> Any:
    """parseParentIdInMongo: None when no filter applies, else the parentId to store or match."""
    if value is None or value == "":
        return None
    return value if is_object_id(value) else None


def words(text: str) -> set[str]:
    return set(re.findall(r"\w+", text.lower()))


def js_length(text: str) -> int:
    """A JavaScript string's length: UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


def _number_or_inf(value: Any) -> float:
    """A model's limit; a missing one makes NaN upstream, which no length exceeds."""
    numeric = isinstance(value, int | float) and not isinstance(value, bool)
    return float(value) if numeric else float("inf")


def _js_simple_text(item: dict, key: str) -> str:
    """simpleText(item[key]) with JavaScript's errors for what is not a string."""
    if key not in item:
        return ""
    value = item[key]
    if value is None:
        raise Reject("Cannot read properties of null (reading 'trim')")
    if not isinstance(value, str):
        raise Reject("text.trim is not a function")
    return documents.simple_text(value)


def _formatted_item(item: Any) -> Any:
    """An item after pushDataListToTrainingQueue's formatting: q and a through simpleText (an
    `a` added when missing), each index's text too, a missing or null `indexes` gone."""
    if item is None:
        raise Reject("Cannot read properties of null (reading 'q')")
    if isinstance(item, list):
        return item  # an array takes the properties but is written without them
    if not isinstance(item, dict):
        kind = "boolean" if isinstance(item, bool) else type(item).__name__
        kind = {"str": "string", "int": "number", "float": "number"}.get(kind, kind)
        shown = item if isinstance(item, str) else dump_js(item)
        raise Reject(f"Cannot create property 'q' on {kind} '{shown}'")
    formatted = dict(item)
    formatted["q"] = _js_simple_text(item, "q")
    formatted["a"] = _js_simple_text(item, "a")
    indexes = formatted.pop("indexes", None)
    if isinstance(indexes, list):
        formatted["indexes"] = [
            {**index, "text": _js_simple_text(index, "text")}
            for index in indexes
            if isinstance(index, dict)
        ]
    elif indexes is not None:
        raise Reject("item.indexes?.map is not a function")
    return formatted


def _text_argument(body: dict) -> str:
    """create/text's `text`: splitText2Chunks and hashStr throw for anything else."""
    text = body.get("text")
    if "text" not in body:
        raise Reject(HASH_OF_UNDEFINED)
    if text is None:
        raise Reject("Cannot read properties of null (reading 'split')")
    if not isinstance(text, str):
        raise Reject("text.split is not a function")
    return text


def _json_object_or_empty(text: str | None) -> dict[str, Any]:
    """doUpload's `data`: JSON.parse, and {} for anything that does not parse (K5)."""
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _object_or_empty(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _file_metadata(data: dict) -> dict[str, Any]:
    """uploadFile's `metadata = {}` default, and the TypeError when it is null."""
    if "fileMetadata" not in data:
        return {}
    metadata = data["fileMetadata"]
    if metadata is None:
        raise Reject("Cannot set properties of null (setting 'teamId')")
    return _object_or_empty(metadata)


class Knowledge:
    def __init__(self, app: FastGPT) -> None:
        self.app = app
        self.clear()

    def clear(self) -> None:
        self.datasets: dict[str, dict[str, Any]] = {}
        self.collections: dict[str, dict[str, Any]] = {}
        # Per collection: its training rows (see _row), trained or still queued.
        self.chunks: dict[str, list[dict[str, Any]]] = {}

    # Lookups -----------------------------------------------------------------------------------

    def auth_dataset(self, request: Request, dataset_id: Any, *, api_key: bool = True):
        """authDataset: the caller and the dataset, or unExistDataset."""
        cert = self.app.cert(request, token=True, api_key=api_key)
        if not dataset_id:
            raise Reject("unExistDataset")
        self.app.member(cert.tmb_id)
        dataset = self.app.find(self.datasets, dataset_id, "datasets")
        if dataset is None:
            raise Reject("unExistDataset")
        return cert, dataset

    def auth_collection(self, request: Request, collection_id: Any):
        cert = self.app.cert(request, token=True, api_key=True)
        collection = self.app.find(self.collections, collection_id, "dataset_collections")
        if collection is None:
            raise Reject("unExistDataset")
        self.app.member(cert.tmb_id)
        return cert, collection, self.datasets[collection["datasetId"]]

    @staticmethod
    def _trained(row: dict[str, Any], now: float) -> bool:
        return row["trainedAt"] is not None and row["trainedAt"] <= now

    def _counts(self, collection_id: str) -> tuple[int, int]:
        """(dataAmount, trainingAmount) of a collection now."""
        now = time.monotonic()
        rows = self.chunks.get(collection_id, [])
        trained = sum(1 for row in rows if self._trained(row, now))
        return trained, len(rows) - trained

    def trained_chunks(self, dataset_ids: list[str]) -> list[dict[str, Any]]:
        """Searchable chunks of these datasets, oldest collection first."""
        now = time.monotonic()
        found = []
        for collection in self.collections.values():
            if collection["datasetId"] in dataset_ids and not collection["forbid"]:
                found.extend(
                    {**chunk, "collection": collection}
                    for chunk in self.chunks.get(collection["_id"], [])
                    if self._trained(chunk, now)
                )
        return found

    def best_chunks(self, dataset_ids: list[str], question: str, limit: int = 5) -> list[dict]:
        """The chunks sharing the most words with the question (a stand-in for vector search)."""
        asked = words(question)
        scored = []
        for order, chunk in enumerate(self.trained_chunks(dataset_ids)):
            score = len(asked & words(chunk["q"] + " " + chunk["a"]))
            if score:
                scored.append((-score, order, chunk))
        scored.sort(key=lambda item: item[:2])
        return [{**chunk, "score": -negative} for negative, _, chunk in scored[:limit]]

    # Datasets ----------------------------------------------------------------------------------

    def _vector_model_name(self, body: dict) -> str:
        if "vectorModel" in body and body["vectorModel"] is not None:
            return body["vectorModel"]
        models = self.app.config["vectorModels"]
        if not models:
            raise Reject("Cannot read properties of undefined (reading 'model')")
        return models[0]["model"]

    def create_dataset(self, request: Request, body: dict) -> Any:
        vector_model = self._vector_model_name(body)
        agent_model = body.get("agentModel")
        if agent_model is None:
            model = self.app.dataset_model(None)
            if model is None:
                raise Reject("Cannot read properties of undefined (reading 'model')")
            agent_model = model["model"]
        cert = self.app.auth_user(request, api_key=True)
        if self.app.vector_model(vector_model) is None or self.app.llm_model(agent_model) is None:
            raise Reject("invalidVectorModelOrQAModel")
        with self.app.lock:
            count = sum(1 for d in self.datasets.values() if d["type"] != "folder")
            if count >= COMMUNITY_DATASET_LIMIT:
                raise Reject("communityVersionNumLimit")
            kind = body.get("type") or "dataset"
            if kind not in DATASET_TYPES:
                raise Reject(
                    f"datasets validation failed: type: `{kind}` is not a valid enum value "
                    "for path `type`."
                )
            if not body.get("name"):
                raise Reject("datasets validation failed: name: Path `name` is required.")
            dataset = {
                "_id": object_id(),
                "parentId": parent_id(body.get("parentId")),
                "teamId": cert.team_id,
                "tmbId": cert.tmb_id,
                "type": kind,
                "status": "active",
                "avatar": body.get("avatar") or "/icon/logo.svg",
                "name": body["name"],
                "updateTime": now_iso(),
                "vectorModel": vector_model,
                "agentModel": agent_model,
                # V488 does not read `intro` on create: it stays empty until an update.
                "intro": "",
                "defaultPermission": 0,
                "inheritPermission": True,
                "__v": 0,
            }
            self.datasets[dataset["_id"]] = dataset
            return dataset["_id"]

    def list_datasets(self, request: Request, body: dict) -> Any:
        parent = body.get("parentId")
        if parent:
            cert, _ = self.auth_dataset(request, parent, api_key=False)
        else:
            cert = self.app.auth_user(request, api_key=True)
        search = body.get("searchKey")
        kinds = body.get("type")
        with self.app.lock:
            found = []
            for dataset in self.datasets.values():
                if dataset["teamId"] != cert.team_id:
                    continue
                if search:
                    pattern = re.compile(re.escape(str(search)), re.IGNORECASE)
                    if not (pattern.search(dataset["name"]) or pattern.search(dataset["intro"])):
                        continue
                else:
                    if kinds and dataset["type"] not in (
                        kinds if isinstance(kinds, list) else [kinds]
                    ):
                        continue
                    if "parentId" in body and dataset["parentId"] != parent_id(parent):
                        continue
                found.append(dataset)
            found.sort(key=newest_first, reverse=True)
            return [
                {
                    "_id": d["_id"],
                    "avatar": d["avatar"],
                    "name": d["name"],
                    "intro": d["intro"],
                    "type": d["type"],
                    "permission": permission(),
                    "vectorModel": self.app.vector_model(d["vectorModel"]),
                    "defaultPermission": d["defaultPermission"],
                    "inheritPermission": d["inheritPermission"],
                }
                for d in found
            ]

    def all_datasets(self, request: Request, body: dict) -> Any:
        cert = self.app.auth_user(request, api_key=True)
        with self.app.lock:
            found = [
                d
                for d in self.datasets.values()
                if d["teamId"] == cert.team_id and d["type"] != "folder"
            ]
            found.sort(key=newest_first, reverse=True)
            return [
                {
                    "_id": d["_id"],
                    "avatar": d["avatar"],
                    "name": d["name"],
                    "vectorModel": self.app.vector_model(d["vectorModel"]),
                }
                for d in found
            ]

    def dataset_detail(self, request: Request, body: dict) -> Any:
        dataset_id = request.query.get("id")
        if not dataset_id:
            raise Reject("missingParams")
        with self.app.lock:
            _, dataset = self.auth_dataset(request, dataset_id)
            return {
                **dataset,
                "permission": permission(),
                "vectorModel": self.app.vector_model(dataset["vectorModel"]),
                "agentModel": self.app.llm_model(dataset["agentModel"]),
            }

    def update_dataset(self, request: Request, body: dict) -> Any:
        if not body.get("id"):
            raise Reject("missingParams")
        with self.app.lock:
            _, dataset = self.auth_dataset(request, body["id"], api_key=False)
            if "parentId" in body:
                dataset["parentId"] = parent_id(body["parentId"])
            for name in ("name", "avatar", "status", "externalReadUrl", "websiteConfig"):
                if body.get(name):
                    dataset[name] = body[name]
            if isinstance(body.get("agentModel"), dict) and body["agentModel"].get("model"):
                dataset["agentModel"] = body["agentModel"]["model"]
            if "intro" in body:
                dataset["intro"] = body["intro"]
        return None

    def delete_dataset(self, request: Request, body: dict) -> Any:
        dataset_id = request.query.get("id")
        if not dataset_id:
            raise Reject("missingParams")
        with self.app.lock:
            _, dataset = self.auth_dataset(request, dataset_id)
            doomed = {dataset["_id"]}
            while True:
                children = {
                    d["_id"] for d in self.datasets.values() if d["parentId"] in doomed
                } - doomed
                if not children:
                    break
                doomed |= children
            for collection_id in [
                c["_id"] for c in self.collections.values() if c["datasetId"] in doomed
            ]:
                self._drop_collection(collection_id)
            for gone in doomed:
                del self.datasets[gone]
        return None

    # Collections -------------------------------------------------------------------------------

    @staticmethod
    def _check_collection_fields(kind: Any, name: Any) -> None:
        """The schema's validation of a new collection's type and name."""
        given = {"type": kind, "name": name}
        problems = [f"{path}: Path `{path}` is required." for path, v in given.items() if not v]
        if kind and kind not in COLLECTION_TYPES:
            problems.insert(0, f"type: `{kind}` is not a valid enum value for path `type`.")
        if problems:
            raise Reject(f"dataset_collections validation failed: {', '.join(problems)}")

    def _new_collection(self, cert, dataset: dict, body: dict, **fields: Any) -> dict[str, Any]:
        """createOneCollection: a collection document as Mongoose stores it."""
        kind, name = fields.pop("type"), fields.pop("name")
        self._check_collection_fields(kind, name)
        created = now_iso()
        collection = {
            "_id": object_id(),
            "parentId": body.get("parentId") or None,
            "teamId": cert.team_id,
            "tmbId": cert.tmb_id,
            "datasetId": dataset["_id"],
            "type": kind,
            "name": name if isinstance(name, str) else dump_js(name),
            "createTime": created,
            "updateTime": created,
            "forbid": False,
            "trainingType": body.get("trainingType") or "chunk",
            "chunkSize": body.get("chunkSize") or 512,
            **({"chunkSplitter": body["chunkSplitter"]} if body.get("chunkSplitter") else {}),
            **({"qaPrompt": body["qaPrompt"]} if body.get("qaPrompt") else {}),
            "tags": body.get("tags") if isinstance(body.get("tags"), list) else [],
            **fields,
            "metadata": body.get("metadata") if isinstance(body.get("metadata"), dict) else {},
            "__v": 0,
        }
        self.collections[collection["_id"]] = collection
        return collection

    # The training queue: pushDataListToTrainingQueue -------------------------------------------

    def _training_limit(self, dataset: dict, mode: Any) -> float:
        """checkModelValid: the longest `q` (in UTF-16 units) a row of this mode may have."""
        agent = self.app.llm_model(dataset["agentModel"])
        if agent is None:
            raise Reject(f"File model {dataset['agentModel']} is inValid")
        vector = self.app.vector_model(dataset["vectorModel"])
        if vector is None:
            raise Reject(f"Vector model {dataset['vectorModel']} is inValid")
        if mode == "chunk":
            return _number_or_inf(vector.get("maxToken")) * 1.3
        if mode in ("qa", "auto"):
            return _number_or_inf(agent.get("maxContext")) * 0.8
        shown = mode if isinstance(mode, str) else dump_js(mode)
        raise Reject(f'Training mode "{shown}" is inValid')

    def _row_model(self, dataset: dict, mode: str) -> str:
        model = self.app.vector_model if mode == "chunk" else self.app.llm_model
        name = dataset["vectorModel"] if mode == "chunk" else dataset["agentModel"]
        return (model(name) or {}).get("model", name)

    def _push(self, dataset: dict, collection: dict, items: list, mode: Any) -> dict[str, Any]:
        """pushDataListToTrainingQueue: simpleText on q and a, then each item goes to `error`
        (no q), `overToken` (q over the limit), `repeat` (q+a seen before in this call) or the
        queue. The three lists hold the items as they then are."""
        limit = self._training_limit(dataset, mode)
        formatted = [_formatted_item(item) for item in items]
        results: dict[str, list] = {"overToken": [], "repeat": [], "error": []}
        seen: set[str] = set()
        accepted = []
        for item in formatted:
            if not isinstance(item, dict) or not item["q"]:
                results["error"].append(item)
            elif js_length(item["q"]) > limit:
                results["overToken"].append(item)
            elif item["q"] + item["a"] in seen:
                results["repeat"].append(item)
            else:
                seen.add(item["q"] + item["a"])
                accepted.append(item)
        rows = [
            self._row(item["q"], item["a"], item.get("chunkIndex"), mode, dataset)
            for item in accepted
        ]
        self._enqueue(collection, rows)
        return {"insertLen": len(rows), **results}

    def _row(self, q: str, a: str, chunk_index: Any, mode: str, dataset: dict) -> dict[str, Any]:
        return {
            "q": q,
            "a": a,
            "chunkIndex": chunk_index if chunk_index is not None else 0,
            "mode": mode,
            "model": self._row_model(dataset, mode),
            # Set when the row leaves the queue (monotonic clock); None while queued.
            "trainedAt": None,
            "lockedAt": float("-inf"),
            "lockedForGood": False,
        }

    def _enqueue(self, collection: dict, rows: list[dict[str, Any]]) -> None:
        """Rows the trainer does not take (QA rows, or every row without a model endpoint) leave
        the queue at even steps over STANDIN_TRAINING_SECONDS; `auto` rows never do (no
        open-source worker takes that mode)."""
        timed = [row for row in rows if row["mode"] == "qa" or row["mode"] == "chunk"]
        if self.app.trainer is not None:
            timed = [row for row in timed if row["mode"] == "qa"]
        start = time.monotonic()
        for index, row in enumerate(timed):
            row["trainedAt"] = start + self.app.training_seconds * (index + 1) / len(timed)
        self.chunks.setdefault(collection["_id"], []).extend(rows)

    def take_vector_row(self, retry_seconds: float) -> dict[str, Any] | None:
        """generateVector's findOneAndUpdate: a queued chunk row not locked within the lock
        time (nor for good), which it locks now."""
        with self.app.lock:
            now = time.monotonic()
            for rows in self.chunks.values():
                for row in rows:
                    if (
                        row["mode"] == "chunk"
                        and row["trainedAt"] is None
                        and not row["lockedForGood"]
                        and row["lockedAt"] <= now - retry_seconds
                    ):
                        row["lockedAt"] = now
                        return row
        return None

    def mark_trained(self, row: dict[str, Any]) -> None:
        with self.app.lock:
            row["trainedAt"] = time.monotonic()

    def lock_row_for_good(self, row: dict[str, Any]) -> None:
        with self.app.lock:
            row["lockedForGood"] = True

    def _chunk_items(self, text: str, body: dict) -> list[dict[str, Any]]:
        chunks = documents.split_chunks(
            text, body.get("chunkSize") or 512, body.get("chunkSplitter") or ""
        )
        return [{"q": chunk, "chunkIndex": index} for index, chunk in enumerate(chunks)]

    # Creating collections ----------------------------------------------------------------------

    def create_collection(self, request: Request, body: dict) -> Any:
        with self.app.lock:
            cert, dataset = self.auth_dataset(request, body.get("datasetId"))
            fields = {"type": body.get("type"), "name": body.get("name")}
            for name in ("fileId", "rawLink", "externalFileId", "externalFileUrl"):
                if body.get(name):
                    fields[name] = body[name]
            return self._new_collection(cert, dataset, body, **fields)["_id"]

    def create_text_collection(self, request: Request, body: dict) -> Any:
        mode = body.get("trainingType", "chunk")
        with self.app.lock:
            cert, dataset = self.auth_dataset(request, body.get("datasetId"))
            text = _text_argument(body)
            items = self._chunk_items(text, body)
            self._check_collection_fields("virtual", body.get("name"))
            self._training_limit(dataset, mode)
            collection = self._new_collection(
                cert,
                dataset,
                {**body, "trainingType": mode},
                type="virtual",
                name=body.get("name"),
                rawTextLength=js_length(text),
                hashRawText=sha256_hex(text),
            )
            results = self._push(dataset, collection, items, mode)
            return {"collectionId": collection["_id"], "results": results}

    def create_file_collection(self, request: Request, body: dict) -> Any:
        try:
            form = documents.read_upload_form(
                request.body, request.header("Content-Type"), BUCKET_NAMES
            )
        except documents.NoAnswer as error:
            self.app.hang(str(error))
        except ValueError as error:
            raise Reject(str(error)) from None
        data = _json_object_or_empty(form.fields.get("data"))
        with self.app.lock:
            cert, dataset = self.auth_dataset(request, data.get("datasetId"))
        raw_text = self._file_text(form.filename, form.file.data)
        file_metadata = _file_metadata(data)
        mode = data.get("trainingType", "chunk")
        items = self._chunk_items(raw_text, data)
        # K4: `metadata` is dropped; collectionMetadata is the collection's, with relatedImgId.
        collection_data = {k: v for k, v in data.items() if k not in FILE_ONLY_FIELDS}
        collection_data["metadata"] = {
            **_object_or_empty(data.get("collectionMetadata")),
            "relatedImgId": get_nanoid(),
        }
        collection_data["trainingType"] = mode
        with self.app.lock:
            self._check_collection_fields("file", form.filename)
            self._training_limit(dataset, mode)
            file_record = self._stored_file(cert, form, file_metadata)
            collection = self._new_collection(
                cert,
                dataset,
                collection_data,
                type="file",
                name=form.filename,
                fileId=file_record["_id"],
                rawTextLength=js_length(raw_text),
                hashRawText=sha256_hex(raw_text),
            )
            collection["_file"] = {**file_record, "uploadDate": collection["createTime"]}
            results = self._push(dataset, collection, items, mode)
            return {"collectionId": collection["_id"], "results": results}

    def _file_text(self, filename: str, data: bytes) -> str:
        extension = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
        try:
            return documents.extract_text(extension, data)
        except readers.ReaderMissing as error:
            self.app.add_log.error(str(error))
            raise Reject(str(error)) from None
        except ValueError as error:
            raise Reject(str(error)) from None

    @staticmethod
    def _stored_file(cert, form: documents.UploadForm, metadata: dict) -> dict[str, Any]:
        """uploadFile: the GridFS record, its metadata the fileMetadata plus who and how."""
        encoding = documents.file_encoding(form.file.data)
        return {
            "_id": object_id(),
            "length": len(form.file.data),
            "chunkSize": 261120,
            "filename": form.filename,
            "contentType": form.file.content_type,
            "metadata": {
                **metadata,
                "teamId": cert.team_id,
                "tmbId": cert.tmb_id,
                **({"encoding": encoding} if encoding else {}),
            },
        }

    def create_link_collection(self, request: Request, body: dict) -> Any:
        """create/link: the collection is named after the link, the page fetched at once (a
        failed fetch is an empty page), renamed after the page's title, chunked with
        `chunkSize` only and queued without the overToken/repeat filter."""
        link = body.get("link")
        mode = body.get("trainingType", "chunk")
        with self.app.lock:
            cert, dataset = self.auth_dataset(request, body.get("datasetId"))
        self._check_collection_fields("link", link)
        if not (isinstance(link, str) and LINK_PATTERN.fullmatch(link)):
            # urlsFetch drops the link, and hashing the missing text throws.
            raise Reject(HASH_OF_UNDEFINED)
        title, raw_text = self._fetch_page(link)
        if mode not in ("chunk", "qa"):
            raise Reject("Training model error")
        body = {**body, "trainingType": mode, "chunkSize": body.get("chunkSize", 512)}
        chunks = documents.split_chunks(raw_text, body["chunkSize"] or 512)
        with self.app.lock:
            collection = self._new_collection(
                cert, dataset, body, type="link", name=link, rawLink=link
            )
            if title:
                collection["name"] = title
            collection.update(rawTextLength=js_length(raw_text), hashRawText=sha256_hex(raw_text))
            rows = [self._row(q, "", index, mode, dataset) for index, q in enumerate(chunks)]
            for row in rows:
                row["model"] = dataset["vectorModel" if mode == "chunk" else "agentModel"]
            self._enqueue(collection, rows)
            return {"collectionId": collection["_id"], "results": {"insertLen": len(rows)}}

    def _fetch_page(self, url: str) -> tuple[str, str]:
        """urlsFetch: axios GET (30 s), the title, the body's text; ('', '') when it fails."""
        request = urllib.request.Request(  # noqa: S310 - the link the caller asked for
            url, headers={"Accept": "application/json, text/plain, */*", "User-Agent": AXIOS_AGENT}
        )
        try:
            with _link_opener.open(request, timeout=LINK_TIMEOUT_SECONDS) as response:
                page = response.read().decode("utf-8", errors="replace")
        except (OSError, http.client.HTTPException, ValueError) as error:
            print(f"{error} fetch error", flush=True)
            return "", ""
        text = documents.html_text(documents.page_body(page))
        return documents.page_title(page, url), documents.simple_text(text)

    @staticmethod
    def _public(collection: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in collection.items() if not k.startswith("_") or k == "_id"}

    def list_collections(self, request: Request, body: dict) -> Any:
        page_num = body.get("pageNum") or 1
        page_size = min(body.get("pageSize") or 10, 30)
        search = str(body.get("searchText") or "").replace("'", "")
        with self.app.lock:
            cert, dataset = self.auth_dataset(request, body.get("datasetId"))
            parent = body.get("parentId") or None
            matched = [
                c
                for c in self.collections.values()
                if c["teamId"] == cert.team_id
                and c["datasetId"] == dataset["_id"]
                and c["parentId"] == parent
                and (not body.get("selectFolder") or c["type"] == "folder")
                and (not search or re.search(search, c["name"], re.IGNORECASE))
            ]
            matched.sort(key=newest_first, reverse=True)
            simple = bool(body.get("simple"))
            chosen = matched if simple else matched[(page_num - 1) * page_size :][:page_size]
            rows = []
            for collection in chosen:
                row = {k: collection[k] for k in COLLECTION_LIST_FIELDS if k in collection}
                data_amount, training_amount = (0, 0) if simple else self._counts(collection["_id"])
                row.update(dataAmount=data_amount, trainingAmount=training_amount)
                row["permission"] = permission()
                rows.append(row)
            return {"pageNum": page_num, "pageSize": page_size, "data": rows, "total": len(matched)}

    def collection_detail(self, request: Request, body: dict) -> Any:
        collection_id = request.query.get("id")
        if not collection_id:
            raise Reject("missingParams")
        with self.app.lock:
            _, collection, dataset = self.auth_collection(request, collection_id)
            source_id = next(
                (
                    collection[name]
                    for name in ("fileId", "rawLink", "externalFileId", "externalFileUrl")
                    if collection.get(name)
                ),
                None,
            )
            detail = {
                **self._public(collection),
                "datasetId": dict(dataset),
                "sourceName": collection["name"],
                "permission": permission(),
            }
            if source_id is not None:
                detail["sourceId"] = source_id
            if "_file" in collection:
                detail["file"] = collection["_file"]
            return detail

    def _drop_collection(self, collection_id: str) -> None:
        doomed = {collection_id}
        while True:
            children = {
                c["_id"] for c in self.collections.values() if c["parentId"] in doomed
            } - doomed
            if not children:
                break
            doomed |= children
        for gone in doomed:
            self.collections.pop(gone, None)
            self.chunks.pop(gone, None)

    def delete_collection(self, request: Request, body: dict) -> Any:
        collection_id = request.query.get("id")
        if not collection_id:
            raise Reject("missingParams")
        with self.app.lock:
            _, collection, _ = self.auth_collection(request, collection_id)
            self._drop_collection(collection["_id"])
        return None

    def push_data(self, request: Request, body: dict) -> Any:
        items = body.get("data")
        if not body.get("collectionId") or not isinstance(items, list):
            raise Reject("collectionId or data is empty")
        if len(items) > 200:
            raise Reject("Data is too long, max 200")
        mode = body.get("trainingMode", "chunk")
        with self.app.lock:
            _, collection, dataset = self.auth_collection(request, body["collectionId"])
            return self._push(dataset, collection, items, mode)

    def training_queue(self, request: Request, body: dict) -> Any:
        with self.app.lock:
            _, dataset = self.auth_dataset(request, request.query.get("datasetId"))
            training = sum(
                self._counts(c["_id"])[1]
                for c in self.collections.values()
                if c["datasetId"] == dataset["_id"]
            )
            return {"rebuildingCount": 0, "trainingCount": training}

    def search_test(self, request: Request, body: dict) -> Any:
        if not body.get("datasetId") or not body.get("text"):
            raise Reject("missingParams")
        started = time.monotonic()
        with self.app.lock:
            _, dataset = self.auth_dataset(request, body["datasetId"])
            found = self.best_chunks([dataset["_id"]], str(body["text"]))
        return {
            "list": [self.quote(chunk) for chunk in found],
            "duration": f"{time.monotonic() - started:.3f}s",
            "searchMode": body.get("searchMode") or "embedding",
            "limit": min(body.get("limit") or 1500, 20000),
            "similarity": body.get("similarity") or 0,
            "usingReRank": False,
            "usingSimilarityFilter": bool(body.get("similarity")),
        }

    @staticmethod
    def quote(chunk: dict[str, Any]) -> dict[str, Any]:
        """A search result as FastGPT lists it, with a word-overlap score."""
        collection = chunk["collection"]
        return {
            "id": f"{collection['_id']}-{chunk['chunkIndex']}",
            "datasetId": collection["datasetId"],
            "collectionId": collection["_id"],
            "sourceName": collection["name"],
            "sourceId": collection.get("fileId") or collection.get("rawLink") or "",
            "q": chunk["q"],
            "a": chunk["a"],
            "chunkIndex": chunk["chunkIndex"],
            "score": [{"type": "fullText", "value": chunk["score"], "index": 0}],
        }
