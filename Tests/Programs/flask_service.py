"""A small Flask service for heapsnap's leak tests (Tests/ShimTests/FlaskServiceTests.swift).

/leak keeps a record of every request in a module-level list (the leak), unless
FLASK_SERVICE_LEAK=0, when it builds the record and drops it; /churn builds a
response from temporary strings and keeps nothing. Run under gunicorn:
gunicorn -w 4 -b 127.0.0.1:0 --chdir Tests/Programs flask_service:app
"""

import os

from flask import Flask

app = Flask(__name__)
KEPT = []
LEAK = os.environ.get("FLASK_SERVICE_LEAK", "1") == "1"


@app.route("/leak")
def leak():
    record = {"n": len(KEPT), "payload": "leak-%d:" % len(KEPT) + "x" * 4000}  # LEAK-SITE
    if LEAK:
        KEPT.append(record)  # LEAK-LIST
    return {"kept": len(KEPT)}


@app.route("/churn")
def churn():
    parts = ["part-%d:" % i + "y" * 20000 for i in range(50)]  # CHURN-SITE
    body = "|".join(parts)
    return {"length": len(body)}
