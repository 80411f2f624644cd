"""Seedance gateway: OpenAI /v1/videos and native Ark task APIs over Seedance."""

__version__ = "0.1.0"
