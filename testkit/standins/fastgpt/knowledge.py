"""Datasets (knowledge bases), collections (documents) and their training.

Training is modelled with time, not with models: the chunks of a new collection leave the
training queue one by one over STANDIN_TRAINING_SECONDS (3 by default), so `trainingAmount`
falls to 0 while `dataAmount` rises to the chunk count. No embedding model is called.
"""

from __future__ import annotations

import json
import re
import time
from typing import TYPE_CHECKING, Any

from testkit.standins.fastgpt import documents
from testkit.standins.fastgpt.common import (
    Reject,
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


def parent_id(value: Any) -> Any:
    """parseParentIdInMongo: None when no filter applies, else the parentId to store or match."""
    if value is None or value == "":
        return None
    return value if is_object_id(value) else None


def words(text: str) -> set[str]:
    return set(re.findall(r"\w+", text.lower()))


class Knowledge:
    def __init__(self, app: FastGPT) -> None:
        self.app = app
        self.clear()

    def clear(self) -> None:
        self.datasets: dict[str, dict[str, Any]] = {}
        self.collections: dict[str, dict[str, Any]] = {}
        # Per collection: its chunks, each with the monotonic time it leaves the queue.
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

    def _counts(self, collection_id: str) -> tuple[int, int]:
        """(dataAmount, trainingAmount) of a collection now."""
        now = time.monotonic()
        chunks = self.chunks.get(collection_id, [])
        trained = sum(1 for chunk in chunks if chunk["readyAt"] <= now)
        return trained, len(chunks) - trained

    def trained_chunks(self, dataset_ids: list[str]) -> list[dict[str, Any]]:
        """Searchable chunks of these datasets, oldest collection first."""
        now = time.monotonic()
        found = []
        for collection in self.collections.values():
            if collection["datasetId"] in dataset_ids and not collection["forbid"]:
                found.extend(
                    {**chunk, "collection": collection}
                    for chunk in self.chunks.get(collection["_id"], [])
                    if chunk["readyAt"] <= now
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

    def _new_collection(self, cert, dataset: dict, body: dict, **fields: Any) -> dict[str, Any]:
        """createOneCollection: a collection document as Mongoose stores it."""
        kind, name = fields.pop("type"), fields.pop("name")
        given = {"type": kind, "name": name}
        problems = [f"{path}: Path `{path}` is required." for path, v in given.items() if not v]
        if kind and kind not in COLLECTION_TYPES:
            problems.insert(0, f"type: `{kind}` is not a valid enum value for path `type`.")
        if problems:
            raise Reject(f"dataset_collections validation failed: {', '.join(problems)}")
        created = now_iso()
        collection = {
            "_id": object_id(),
            "parentId": body.get("parentId") or None,
            "teamId": cert.team_id,
            "tmbId": cert.tmb_id,
            "datasetId": dataset["_id"],
            "type": kind,
            "name": name,
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

    def _queue(self, collection: dict, items: list[dict[str, Any]]) -> dict[str, Any]:
        """pushDataListToTrainingQueue: drop empty and repeated chunks, queue the rest."""
        results: dict[str, list] = {"overToken": [], "repeat": [], "error": []}
        seen: set[str] = set()
        accepted = []
        for item in items:
            q = documents.simple_text(str(item.get("q") or ""))
            a = documents.simple_text(str(item.get("a") or ""))
            if not q:
                results["error"].append(item)
            elif q + a in seen:
                results["repeat"].append(item)
            else:
                seen.add(q + a)
                accepted.append({"q": q, "a": a, "chunkIndex": item.get("chunkIndex") or 0})
        start = time.monotonic()
        queued = self.chunks.setdefault(collection["_id"], [])
        for index, chunk in enumerate(accepted):
            step = self.app.training_seconds * (index + 1) / len(accepted)
            queued.append({**chunk, "readyAt": start + step})
        return {"insertLen": len(accepted), **results}

    def _chunk_items(self, text: str, body: dict) -> list[dict[str, Any]]:
        chunks = documents.split_chunks(
            text, body.get("chunkSize") or 512, body.get("chunkSplitter") or ""
        )
        return [{"q": chunk, "chunkIndex": index} for index, chunk in enumerate(chunks)]

    def create_collection(self, request: Request, body: dict) -> Any:
        with self.app.lock:
            cert, dataset = self.auth_dataset(request, body.get("datasetId"))
            fields = {"type": body.get("type"), "name": body.get("name")}
            for name in ("fileId", "rawLink", "externalFileId", "externalFileUrl"):
                if body.get(name):
                    fields[name] = body[name]
            return self._new_collection(cert, dataset, body, **fields)["_id"]

    def create_text_collection(self, request: Request, body: dict) -> Any:
        with self.app.lock:
            cert, dataset = self.auth_dataset(request, body.get("datasetId"))
            text = body.get("text")
            if not isinstance(text, str):
                raise Reject(
                    'The "data" argument must be of type string or an instance of Buffer, '
                    "TypedArray, or DataView. Received undefined"
                )
            collection = self._new_collection(
                cert,
                dataset,
                body,
                type="virtual",
                name=body.get("name"),
                rawTextLength=len(text),
                hashRawText=sha256_hex(text),
            )
            results = self._queue(collection, self._chunk_items(text, body))
            return {"collectionId": collection["_id"], "results": results}

    def create_file_collection(self, request: Request, body: dict) -> Any:
        try:
            fields, files = documents.parse_multipart(request.body, request.header("Content-Type"))
        except ValueError as error:
            raise Reject(str(error)) from None
        try:
            data = json.loads(fields.get("data") or "{}")
        except ValueError:
            data = {}
        data = data if isinstance(data, dict) else {}
        bucket = fields.get("bucketName") or "dataset"
        if bucket not in ("dataset",):
            raise Reject("BucketName is invalid")
        upload = next((f for f in files if f.field == "file"), None)
        filename = None
        if upload is not None:
            try:
                filename = documents.decode_uri_component(upload.filename)
            except ValueError as error:
                raise Reject(str(error)) from None
        with self.app.lock:
            cert, dataset = self.auth_dataset(request, data.get("datasetId"))
            if upload is None or filename is None:
                raise Reject(
                    'The "path" argument must be of type string or an instance of Buffer or '
                    "URL. Received undefined"
                )
            extension = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
            try:
                raw_text = documents.extract_text(extension, upload.data)
            except ValueError as error:
                raise Reject(str(error)) from None
            file_id = object_id()
            collection = self._new_collection(
                cert,
                dataset,
                data,
                type="file",
                name=filename,
                fileId=file_id,
                rawTextLength=len(raw_text),
                hashRawText=sha256_hex(raw_text),
            )
            collection["metadata"] = {**collection["metadata"], "relatedImgId": object_id()}
            collection["_file"] = {
                "_id": file_id,
                "length": len(upload.data),
                "chunkSize": 261120,
                "uploadDate": collection["createTime"],
                "filename": filename,
                "contentType": upload.content_type,
                "metadata": {"teamId": cert.team_id, "tmbId": cert.tmb_id},
            }
            results = self._queue(collection, self._chunk_items(raw_text, data))
            return {"collectionId": collection["_id"], "results": results}

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
        with self.app.lock:
            _, collection, _ = self.auth_collection(request, body["collectionId"])
            return self._queue(collection, [i for i in items if isinstance(i, dict)])

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
