"""Baseline stack the Tandem benchmark compares against.

The typical Python way to put a function behind HTTP with a task queue:
Flask served by gunicorn (sync workers), the function run by a Celery worker
(prefork pool), Redis as broker and result backend on loopback.

  gunicorn -w 5 -b 127.0.0.1:PORT app:web      (BASELINE_REDIS=redis://...)
  celery -A app:celery_app worker --pool=prefork -c 2

Routes mirror what bench/run calls on Tandem:
  POST /ping        {"kwargs":{"x":1}} -> sends the task, waits, returns result
  POST /ping/async  {"kwargs":{"x":1}} -> sends the task, returns {"id": ...}
"""

import os

from celery import Celery
from flask import Flask, jsonify, request

REDIS_URL = os.environ.get("BASELINE_REDIS", "redis://127.0.0.1:18521/0")
# A sync call that has not finished within this many seconds answers 504,
# like Tandem's own timeout, so a stuck worker shows up as errors in wrk.
WAIT_TIMEOUT = float(os.environ.get("BASELINE_WAIT_TIMEOUT", "30"))

celery_app = Celery("baseline", broker=REDIS_URL, backend=REDIS_URL)
celery_app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    # Defaults otherwise: one result key per task (celery-task-meta-<id>),
    # which bench/run counts to check that async tasks really ran.
    result_expires=3600,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
)


@celery_app.task(name="ping")
def ping(x=1):
    return x


web = Flask(__name__)


def _kwargs():
    body = request.get_json(silent=True)
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise ValueError("body must be a JSON object")
    kwargs = body.get("kwargs", {})
    if not isinstance(kwargs, dict):
        raise ValueError("kwargs must be a JSON object")
    return kwargs


@web.route("/ping", methods=["GET", "POST"])
def ping_sync():
    try:
        kwargs = _kwargs()
    except ValueError as e:
        return jsonify(ok=False, message=str(e)), 400
    res = ping.apply_async(kwargs=kwargs)
    try:
        value = res.get(timeout=WAIT_TIMEOUT)
    except Exception as e:  # celery raises its own TimeoutError and the task's error
        return jsonify(ok=False, message="%s: %s" % (type(e).__name__, e)), 504
    return jsonify(value)


@web.route("/ping/async", methods=["GET", "POST"])
def ping_async():
    try:
        kwargs = _kwargs()
    except ValueError as e:
        return jsonify(ok=False, message=str(e)), 400
    res = ping.apply_async(kwargs=kwargs)
    return jsonify(id=res.id)


@web.route("/health")
def health():
    return jsonify(ok=True)
