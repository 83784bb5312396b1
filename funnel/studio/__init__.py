"""The coach's studio: the email files edited from the browser.

The files in EMAILS_DIR stay the one source of truth (reviewable, in git, checked by
``emails check``); this package is the use case the admin pages, and any other front,
call: find a file by slug, check and preview a text before it is saved, save it (or
keep it as a draft when it has errors), remember every save as a revision, and take
pictures in. Flask-free: the web layer passes in what it knows (settings, sessions,
the clock, which site paths exist).
"""

from funnel.studio.files import EmailFile, StudioError, fill_emails_dir, resolve
from funnel.studio.service import SaveResult, Studio

__all__ = ["EmailFile", "SaveResult", "Studio", "StudioError", "fill_emails_dir", "resolve"]
