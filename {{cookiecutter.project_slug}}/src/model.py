{% include "tasks/" ~ cookiecutter.task ~ "/model.py" %}
