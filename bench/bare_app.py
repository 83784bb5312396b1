"""The baseline for the page benchmarks: a bare Flask page returning a constant,
served by the same gunicorn settings as the app."""

import functools

from flask import Flask

app = Flask(__name__)


@app.get("/")
def constant():
    return "hello"


@app.get("/bytes/<int:size>")
@functools.lru_cache(maxsize=8)
def sized(size: int) -> str:
    """A constant as long as one of our pages: how much of the gap is the body's size."""
    return "x" * size
