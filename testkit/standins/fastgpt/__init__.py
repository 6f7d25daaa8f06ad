"""FastGPT V488 (v4.8.8-fix2) stand-in, for tests only.

Configured by the environment variables the real image reads (DEFAULT_ROOT_PSW, TOKEN_KEY,
ROOT_KEY, FILE_TOKEN_KEY, OPENAI_BASE_URL, CHAT_API_KEY, MONGODB_URI, PG_URL, MILVUS_ADDRESS,
PORT, HOSTNAME) and by /app/data/config.json (STANDIN_FASTGPT_CONFIG names another path), which
is read once, on the first API request, as V488's lazy init does. State lives in memory.

    python3 -m testkit.standins.fastgpt        # on $HOSTNAME (else 0.0.0.0) and $PORT (else 3000)
    python3 -m testkit.standins.fastgpt --host 127.0.0.1 --port 3000
"""

from testkit.standins.fastgpt.app import FastGPT, main

__all__ = ["FastGPT", "main"]
