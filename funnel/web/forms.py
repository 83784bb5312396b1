"""The sign-up form. Field limits here match the database columns."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import EmailField, HiddenField, StringField
from wtforms.validators import DataRequired, Length, Optional, ValidationError

from funnel.core.inputs import FunnelError, clean_first_name

MAX_UTM = 100


class SignupForm(FlaskForm):
    class Meta:
        # No per-visitor token: the landing page is the same bytes for everyone and
        # the POST is checked by where it comes from (funnel.web.public.crossorigin).
        csrf = False

    email = EmailField(
        "Your email address",
        validators=[DataRequired("Please enter your email address."),
                    Length(max=254, message="That email address is too long.")],
    )
    first_name = StringField(
        "First name (optional)",
        validators=[Optional(), Length(max=80, message="Please keep your first name under 80 characters.")],
    )
    # Honeypot: hidden from people, irresistible to form-filling bots.
    website = StringField("Leave this field empty", validators=[Optional()])
    tz = HiddenField(validators=[Optional(), Length(max=64)])
    referrer = HiddenField(validators=[Optional(), Length(max=500)])
    via = HiddenField(validators=[Optional(), Length(max=16)])  # "article" or "direct"
    utm_source = HiddenField(validators=[Optional(), Length(max=MAX_UTM)])
    utm_medium = HiddenField(validators=[Optional(), Length(max=MAX_UTM)])
    utm_campaign = HiddenField(validators=[Optional(), Length(max=MAX_UTM)])
    utm_term = HiddenField(validators=[Optional(), Length(max=MAX_UTM)])
    utm_content = HiddenField(validators=[Optional(), Length(max=MAX_UTM)])

    def validate_first_name(self, field):
        try:
            clean_first_name(field.data)
        except FunnelError as exc:
            raise ValidationError(str(exc)) from exc
