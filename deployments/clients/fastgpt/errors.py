"""FastGPT's refusals as sentences a user can act on."""

# FastGPT names its errors with a statusText and a Chinese message or an i18n key; these say what
# each named error the panel can meet means, in words a user can act on.
REASONS = {
    "unAuthorization": (
        "it refused the panel's login token (expired, or FastGPT's TOKEN_KEY changed); log in again"
    ),
    "unAuthApiKey": "it does not know the API key the panel sent",
    "unExistDataset": "that knowledge base (or document) does not exist; it may have been deleted",
    "unAuthDataset": "the panel's user may not use that knowledge base",
    "unAuthDatasetCollection": "the panel's user may not use that document",
    "unAuthDatasetData": "the panel's user may not use that chunk",
    "unCreateCollection": "the panel's user may not add documents to that knowledge base",
    "invalidVectorModelOrQAModel": (
        "the embedding or chat model is not in FastGPT's config.json; wire the model first"
    ),
    "appUnExist": "that chat app does not exist; it may have been deleted",
    "unAuthApp": "the panel's user may not change that chat app",
    "outlinkUnExist": "that share link does not exist; it may have been deleted",
    "unAuthLink": "that share link is not valid",
    "linkUnInvalid": "that share link is not valid",
    "openapiUnExist": "that API key does not exist; it may have been deleted",
    "openapiUnAuth": "the panel's user may not change that API key",
    "openapiExceedLimit": "FastGPT allows at most 10 API keys per member, and 10 per app",
    "inheritPermissionError": (
        "the request lacked a name, a type or a node list (FastGPT reports this as a "
        "permission error)"
    ),
    "missingParams": "a required parameter was missing",
    "insufficientQuota": "the team has run out of AI points",
    "aiPointsNotEnough": "the team has run out of AI points",
}
DATASET_LIMIT_STATUS = "communityVersionNumLimit"
DATASET_LIMIT_CODE = 509000
COMMUNITY_DATASET_LIMIT = 30


class FastGPTError(Exception):
    """A FastGPT call that failed, in a sentence a user can act on.

    `permanent` is False when trying again later may help (no answer yet, a restart under way).
    `code` and `status_text` are FastGPT's own `code` and `statusText` when it answered with its
    envelope, else None.
    """

    def __init__(
        self,
        message: str,
        *,
        permanent: bool = True,
        code: int | None = None,
        status_text: str | None = None,
    ) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.code = code
        self.status_text = status_text


class DatasetLimitReached(FastGPTError):
    """FastGPT's community edition refused a 31st knowledge base (K2)."""

    def __init__(self, base_url: str) -> None:
        super().__init__(
            f"FastGPT at {base_url} already has {COMMUNITY_DATASET_LIMIT} knowledge bases, the "
            "most its community edition allows a team: delete one you no longer need before "
            "creating another.",
            permanent=True,
            code=DATASET_LIMIT_CODE,
            status_text=DATASET_LIMIT_STATUS,
        )
