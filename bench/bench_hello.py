"""The baseline of bench/api.py: a bare Flask JSON hello-world, served by the same gunicorn
settings as `thingbridge api`."""

from flask import Flask

app = Flask(__name__)


@app.get("/")
def hello():
    return {"hello": "world"}
