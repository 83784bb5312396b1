"""The baseline for the page benchmarks: a bare Flask page returning a constant,
served by the same gunicorn settings as the app."""

from flask import Flask

app = Flask(__name__)


@app.get("/")
def constant():
    return "hello"
