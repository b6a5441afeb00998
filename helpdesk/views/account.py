"""The signed-in user's own settings: the time zone the pages show times in (chosen once,
remembered with the user)."""
from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import SelectField

from .. import times
from ..models import db, utcnow

bp = Blueprint("account", __name__, url_prefix="/account")


class TimeZoneForm(FlaskForm):
    time_zone = SelectField("Time zone", validate_choice=True)


@bp.route("", methods=["GET", "POST"])
def index():
    form = TimeZoneForm(time_zone=current_user.time_zone or times.UTC)
    now = utcnow()
    form.time_zone.choices = [(name, times.zone_label(name, now)) for name in times.time_zones()]
    if form.validate_on_submit():
        current_user.time_zone = form.time_zone.data
        db.session.commit()
        flash(f"Times are now shown in {times.zone_label(form.time_zone.data, now)}.", "success")
        return redirect(url_for("account.index"), 303)
    return render_template("account.html", form=form, chosen=current_user.time_zone,
                           example=times.exact(now, times.zone(current_user.time_zone))), \
        400 if form.errors else 200
