"""The JSON API under ``/api/v1``: Bearer tokens (``helpdesk tokens create``); errors are
``{"error": "..."}`` with the right 4xx code."""
from __future__ import annotations

from flask import Blueprint, jsonify

from .auth import public
from .status import STATUSES

bp = Blueprint("api", __name__, url_prefix="/api/v1")


@bp.route("/statuses")
@public
def statuses():
    return jsonify([{"key": s.key, "label": s.label, "icon": s.icon, "colour": s.colour,
                     "meaning": s.meaning,
                     "tips": [{"title": t.title, "text": t.text, "action": t.action}
                              for t in s.tips]}
                    for s in STATUSES.values()])
