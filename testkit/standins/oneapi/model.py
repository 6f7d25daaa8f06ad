"""The rows One API keeps (users, tokens, channels): their JSON fields with Go types, and the
status and role values the code compares against."""

ROLE_COMMON, ROLE_ADMIN, ROLE_ROOT = 1, 10, 100
USER_ENABLED, USER_DISABLED = 1, 2
TOKEN_ENABLED, TOKEN_EXPIRED, TOKEN_EXHAUSTED = 1, 3, 4
CHANNEL_ENABLED, CHANNEL_MANUALLY_DISABLED, CHANNEL_AUTO_DISABLED = 1, 2, 3

CHANNEL_FIELDS = {
    "id": "int",
    "type": "int",
    "key": "string",
    "status": "int",
    "name": "string",
    "weight": "*uint",
    "created_time": "int64",
    "test_time": "int64",
    "response_time": "int",
    "base_url": "*string",
    "other": "*string",
    "balance": "float64",
    "balance_updated_time": "int64",
    "models": "string",
    "group": "string",
    "used_quota": "int64",
    "model_mapping": "*string",
    "priority": "*int64",
    "config": "string",
}
TOKEN_FIELDS = {
    "id": "int",
    "user_id": "int",
    "key": "string",
    "status": "int",
    "name": "string",
    "created_time": "int64",
    "accessed_time": "int64",
    "expired_time": "int64",
    "remain_quota": "int64",
    "unlimited_quota": "bool",
    "used_quota": "int64",
    "models": "*string",
    "subnet": "*string",
}
USER_FIELDS = {
    "id": "int",
    "username": "string",
    "password": "string",
    "display_name": "string",
    "role": "int",
    "status": "int",
    "email": "string",
    "github_id": "string",
    "wechat_id": "string",
    "lark_id": "string",
    "verification_code": "string",
    "access_token": "string",
    "quota": "int64",
    "used_quota": "int64",
    "request_count": "int",
    "group": "string",
    "aff_code": "string",
    "inviter_id": "int",
}
# go-playground/validator tags on model.User, in field order: (field, json name, min, max).
USER_LENGTH_RULES = (
    ("Username", "username", None, 12),
    ("Password", "password", 8, 20),
    ("DisplayName", "display_name", None, 20),
    ("Email", "email", None, 50),
)
