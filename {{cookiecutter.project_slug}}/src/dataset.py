{% include "tasks/" ~ cookiecutter.task ~ "/dataset.py" %}
