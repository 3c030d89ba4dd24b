{% include "tasks/" ~ cookiecutter.task ~ "/report.py" %}
