"""The open-tracking pixel: a signed, unguessable URL per delivery. A bad token gets the same
image and records nothing, so the answer tells a prober nothing."""
from __future__ import annotations

import base64

from flask import Blueprint, Response, request

from ..auth import public
from ..pixel import record_open

bp = Blueprint("tracking", __name__)

PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")


@bp.route("/t/<token>.gif")
@public
def pixel(token: str):
    record_open(token, request.headers.get("User-Agent"), request.remote_addr)
    response = Response(PIXEL, mimetype="image/gif")
    response.headers["Cache-Control"] = "no-store, max-age=0"
    return response
