"""The OpenAI surface in the document: /v1/videos, with OpenAI's own shapes (its published
schema for /videos), where `size` and `seconds` are Seedance's rather than Sora's enums."""

from __future__ import annotations

from gateway.openapi.common import (
    CLIENT,
    CLIENT_ERRORS,
    JSON,
    UPSTREAM_ERRORS,
    Schema,
    errors,
    json_body,
    nullable,
    path_param,
    query_param,
    ref,
)

PREFIX = "/v1/videos"
TAG = "videos"
ERRORS = (*CLIENT_ERRORS, *UPSTREAM_ERRORS)
CREATE_ERRORS = (*ERRORS, 408, 409, 413, 415)

_CREATE_FIELDS: Schema = {
    "model": {"type": "string", "description": "A model id or alias (GET /v1/models); "
                                               "sora-2 and sora-2-pro map to Seedance."},
    "prompt": {"type": "string", "maxLength": 32000},
    "size": {"type": "string", "pattern": "^[0-9]{1,5}x[0-9]{1,5}$",
             "description": "WIDTHxHEIGHT, e.g. 1280x720: mapped to Seedance's nearest "
                            "resolution and ratio."},
    "seconds": {"type": "string", "pattern": "^-?[0-9]{1,3}(\\.0+)?$",
                "description": "Duration in seconds, e.g. \"5\" (-1: the model chooses)."},
    "input_reference": {"type": "object", "description": "A first-frame image.",
                        "properties": {"image_url": {"type": "string"},
                                       "file_id": {"type": "string"}}},
}
SCHEMAS: dict[str, Schema] = {
    "VideoStatus": {"type": "string",
                    "enum": ["queued", "in_progress", "completed", "failed"]},
    "VideoError": {"type": "object", "required": ["code", "message"],
                   "properties": {"code": {"type": "string"}, "message": {"type": "string"}}},
    "Video": {
        "type": "object",
        "required": ["id", "object", "model", "status", "progress", "created_at",
                     "completed_at", "expires_at", "size", "seconds", "error"],
        "properties": {
            "id": {"type": "string"},
            "object": {"const": "video"},
            "model": {"type": "string"},
            "status": ref("VideoStatus"),
            "progress": {"type": "integer", "minimum": 0, "maximum": 100},
            "created_at": {"type": "integer"},
            "completed_at": nullable({"type": "integer"}),
            "expires_at": nullable({"type": "integer"}),
            "prompt": nullable({"type": "string"}),
            "size": {"type": "string"},
            "seconds": {"type": "string"},
            "remixed_from_video_id": nullable({"type": "string"}),
            "error": nullable(ref("VideoError")),
        },
    },
    "VideoList": {
        "type": "object",
        "required": ["object", "data", "first_id", "last_id", "has_more"],
        "properties": {"object": {"const": "list"},
                       "data": {"type": "array", "items": ref("Video")},
                       "first_id": nullable({"type": "string"}),
                       "last_id": nullable({"type": "string"}),
                       "has_more": {"type": "boolean"}},
    },
    "DeletedVideo": {
        "type": "object", "required": ["object", "deleted", "id"],
        "properties": {"object": {"const": "video.deleted"}, "deleted": {"type": "boolean"},
                       "id": {"type": "string"}},
    },
    "CreateVideoJson": {"type": "object", "required": ["prompt"],
                        "properties": _CREATE_FIELDS},
    "CreateVideoMultipart": {
        "type": "object", "required": ["prompt"],
        "properties": {**_CREATE_FIELDS,
                       "input_reference": {"type": "string", "format": "binary",
                                           "description": "A first-frame image file."}},
    },
}

_VIDEO_ID = path_param("video_id", "The video id a create returned.")
_POLL_AFTER = {"openai-poll-after-ms": {
    "description": "While the video is queued or in progress: milliseconds to wait before "
                   "polling again.", "schema": {"type": "string"}}}
_FILE_TYPES = ("video/mp4", "video/quicktime", "image/jpeg", "image/png", "image/webp",
               "application/octet-stream")
_FILE = {"content": {t: {"schema": {"type": "string", "format": "binary"}} for t in _FILE_TYPES}}


def _unsupported(operation_id: str, summary: str) -> Schema:
    return {"operationId": operation_id, "tags": [TAG], "security": CLIENT, "summary": summary,
            "description": "Always a 400 `unsupported_operation`: Seedance has no such "
                           "operation. Served so that OpenAI clients get a clear answer.",
            "responses": errors("OpenAIError", *CLIENT_ERRORS)}


PATHS: dict[str, Schema] = {
    PREFIX: {
        "post": {
            "operationId": "createVideo", "tags": [TAG], "security": CLIENT,
            "summary": "Create a video (JSON or multipart/form-data; equivalent).",
            "parameters": [{"name": "Idempotency-Key", "in": "header", "required": False,
                            "schema": {"type": "string"}}],
            "requestBody": {"required": True, "content": {
                JSON: {"schema": ref("CreateVideoJson")},
                "multipart/form-data": {"schema": ref("CreateVideoMultipart")}}},
            "responses": {"200": {**json_body(ref("Video"), "The new video job."),
                                  "headers": _POLL_AFTER},
                          **errors("OpenAIError", *CREATE_ERRORS)},
        },
        "get": {
            "operationId": "listVideos", "tags": [TAG], "security": CLIENT,
            "summary": "The key's videos.",
            "parameters": [
                query_param("limit", "0 to 100 (default 20).",
                            {"type": "integer", "minimum": 0, "maximum": 100}),
                query_param("order", "By creation time.",
                            {"type": "string", "enum": ["asc", "desc"]}),
                query_param("after", "A video id: list those after it.", {"type": "string"}),
            ],
            "responses": {"200": json_body(ref("VideoList"), "A page of videos."),
                          **errors("OpenAIError", *CLIENT_ERRORS)},
        },
    },
    PREFIX + "/{video_id}": {
        "parameters": [_VIDEO_ID],
        "get": {
            "operationId": "retrieveVideo", "tags": [TAG], "security": CLIENT,
            "summary": "A video job, refreshed from the upstream when due.",
            "responses": {"200": {**json_body(ref("Video"), "The video job."),
                                  "headers": _POLL_AFTER},
                          **errors("OpenAIError", *ERRORS)},
        },
        "delete": {
            "operationId": "deleteVideo", "tags": [TAG], "security": CLIENT,
            "summary": "Delete a finished video, or cancel a queued one.",
            "responses": {"200": json_body(ref("DeletedVideo"), "Deleted."),
                          **errors("OpenAIError", *ERRORS)},
        },
    },
    PREFIX + "/{video_id}/content": {
        "parameters": [_VIDEO_ID],
        "get": {
            "operationId": "downloadVideoContent", "tags": [TAG], "security": CLIENT,
            "summary": "The video file or its thumbnail, streamed; Range requests served.",
            "parameters": [
                query_param("variant", "spritesheet is always a 404 (Seedance makes none).",
                            {"type": "string", "enum": ["video", "thumbnail", "spritesheet"]}),
                {"name": "Range", "in": "header", "required": False,
                 "schema": {"type": "string"}, "description": "e.g. bytes=0-1023"},
                {"name": "If-Range", "in": "header", "required": False,
                 "schema": {"type": "string"}},
            ],
            "responses": {"200": {"description": "The whole file.", **_FILE},
                          "206": {"description": "The requested range.", **_FILE},
                          "304": {"description": "Not modified."},
                          **errors("OpenAIError", *ERRORS, 416)},
        },
    },
    PREFIX + "/{video_id}/remix": {
        "parameters": [_VIDEO_ID],
        "post": _unsupported("remixVideo", "Not supported: Seedance has no remix."),
    },
    PREFIX + "/edits": {"post": _unsupported("editVideo", "Not supported yet.")},
    PREFIX + "/extensions": {"post": _unsupported("extendVideo", "Not supported yet.")},
    PREFIX + "/characters": {"post": _unsupported("createCharacter", "Not supported.")},
    PREFIX + "/characters/{character_id}": {
        "parameters": [path_param("character_id", "A Sora character id.")],
        "get": _unsupported("getCharacter", "Not supported."),
    },
}
