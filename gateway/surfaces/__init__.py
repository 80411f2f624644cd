"""What clients speak: the native Ark API, OpenAI's /v1/videos, result files and /admin.

Each surface only translates its own wire format into the task pipeline (gateway.tasks) and
back; error envelopes and request reading are shared in http.py.
"""
